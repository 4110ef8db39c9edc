"""All-or-nothing output folders: work in a staging folder, then move it into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spikeforge.errors import SpikeforgeError

__all__ = ["staged_output"]


@contextlib.contextmanager
def staged_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging folder beside ``out`` that replaces ``out`` when the block succeeds.

    On any exception the staging folder is removed and ``out`` is left as it was,
    so a failed command never leaves half-written output.
    """
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise SpikeforgeError(f"--out {out}: exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield stage
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; --out should not be
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
