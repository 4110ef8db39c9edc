"""Suite-wide fixtures."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread for tests that use torch (no import for those that don't).

    The test matrices are small: one thread is as fast as two on an idle machine
    and does not slow down tenfold (OpenMP spin-waiting) when the cores are shared.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
