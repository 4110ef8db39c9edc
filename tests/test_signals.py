"""SIGTERM, SIGHUP and Ctrl-C mid-run: children stopped, nothing half-written, 128+signal.

A real ``spikeforge sim`` is started as a process; once its simulator (``vvp``)
runs as a child, the signal is sent to spikeforge alone (as a service manager
or ``kill`` would). The simulator must be gone, ``--out`` never created and no
staging folder left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from spikeforge.qnet import InputSpec, Layer, QNet, save_qnet


def _net() -> QNet:
    rng = np.random.default_rng(5)
    l1 = Layer(name="fc1", n_in=64, n_out=48, weight_bits=6, membrane_bits=14,
               weights=rng.integers(-31, 32, (48, 64)), threshold=40, leak_shifts=(3,))
    l2 = Layer(name="fc2", n_in=48, n_out=10, weight_bits=6, membrane_bits=14,
               weights=rng.integers(-31, 32, (10, 48)), threshold=30, leak_shifts=(3,))
    return QNet(layers=(l1, l2), timesteps=16, input=InputSpec(size=64))


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog is not on PATH")
    root = tmp_path_factory.mktemp("sig")
    save_qnet(_net(), root / "net")
    spikes = (np.random.default_rng(1).random((6000, 16, 64)) < 0.3).astype(np.uint8)
    np.savez(root / "inputs.npz", spikes=spikes)
    return root


def _wait_for_child(proc: subprocess.Popen, name: str, timeout: float = 120) -> list:
    me = psutil.Process(proc.pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"spikeforge ended (status {proc.returncode}) before {name} started:\n"
                        + proc.stderr.read())
        kids = me.children(recursive=True)
        if any(k.name() == name for k in kids if k.is_running()):
            return kids
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"{name} did not start within {timeout} s")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                              (signal.SIGINT, 130)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_signal_during_simulation(workdir, sig, status):
    out = workdir / f"out_{sig.name}"
    before = _snapshot(workdir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "spikeforge", "sim", "net.qnet.yaml", "--inputs", "inputs.npz",
         "--simulator", "icarus", "--out", out.name],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        kids = _wait_for_child(proc, "vvp")
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["spikeforge: interrupted"]
    gone, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, f"children outlived spikeforge: {[p.name() for p in alive]}"
    assert _snapshot(workdir) == before, "output or staging folder left behind"


def test_signal_while_generating_verilog(workdir):
    """SIGTERM during Amaranth elaboration (no child process): nothing written."""
    out = workdir / "rtl_out"
    before = _snapshot(workdir)
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge", "rtl", "net.qnet.yaml",
                             "--out", out.name, "--lanes", "1"],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    t0 = time.monotonic()
    while not list(workdir.rglob(".spikeforge-stage-*")) and proc.poll() is None \
            and time.monotonic() - t0 < 60:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("generation finished before the signal arrived")
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert _snapshot(workdir) == before
