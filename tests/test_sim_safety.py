"""`spikeforge sim` / `verify` under hostile input: one line, exit 2, nothing written.

Also the child processes of the simulators: an exception or Ctrl-C/SIGTERM stops
the simulator with everything it started, and no build folder is left behind.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_fast_sim import _alive  # one /proc check for both child-process tests

from spikeforge.cli import main
from spikeforge.qnet import save_qnet
from spikeforge.sim.fuzz import random_qnet, random_spikes
from spikeforge.sim.tools import run_child, simulator_available, use_group_launcher

# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def setup(tmp_path):
    """A small QNet, valid inputs for it, and the tmp folder."""
    net = random_qnet(21, max_width=10)
    qpath, npath = save_qnet(net, tmp_path / "net")
    x = random_spikes(2, net, 5)
    np.savez(tmp_path / "in.npz", spikes=x)
    return net, qpath, tmp_path / "in.npz", x


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))}


def _refused(capsys, argv: list[str], *words: str) -> str:
    """Run the CLI, expect exit 2 and exactly one stderr line holding ``words``."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1, captured.err
    assert err[0].startswith("spikeforge: error: "), err[0]
    assert "Traceback" not in captured.err
    for w in words:
        assert w in err[0], (w, err[0])
    return err[0]


def _npz_with_header(path: Path, name: str, shape: tuple[int, ...], descr: str = "|u1",
                     **others: np.ndarray) -> None:
    """An NPZ whose ``name`` member is only a header claiming ``shape`` (no data)."""
    with zipfile.ZipFile(path, "w") as z:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buf, {"descr": descr, "fortran_order": False, "shape": shape})
        z.writestr(name + ".npy", buf.getvalue())
        for k, v in others.items():
            b = io.BytesIO()
            np.save(b, v)
            z.writestr(k + ".npy", b.getvalue())


class _Boom:
    """Unpickling this creates a file: a stand-in for code a malicious NPZ would run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


# ----------------------------------------------------------------------------- bad QNets


@pytest.mark.parametrize("command", ["sim", "verify"])
@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d.__setitem__("tiemsteps", 4), "tiemsteps"),
    (lambda d: d["input"].__setitem__("sise", 4), "sise"),
    (lambda d: d.__setitem__("name", "_"), "name"),
    (lambda d: d["layers"][0].__setitem__("name", "ñandú"), "name"),
    (lambda d: d.__setitem__("meta", [1]), "meta"),
    (lambda d: d.__setitem__("timesteps", 10**9), "timesteps"),
])
def test_bad_qnet_refused(setup, tmp_path, capsys, command, edit, field):
    _, qpath, inputs, _ = setup
    doc = yaml.safe_load(qpath.read_text())
    edit(doc)
    qpath.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    _refused(capsys, [command, str(qpath), "--inputs", str(inputs), "--out", str(out)],
             str(qpath), f"field {field}")
    assert _snapshot(tmp_path) == before


def test_qnet_with_wrapping_uint64_weight_refused(setup, tmp_path, capsys):
    net, qpath, inputs, _ = setup
    npath = qpath.with_name("net.qnet.npz")
    with np.load(npath) as d:
        arrays = {k: d[k] for k in d.files}
    key = f"{net.layers[0].name}.weights"
    w = np.zeros(arrays[key].shape, dtype=np.uint64)
    w[0, 0] = 2**64 - 1
    arrays[key] = w
    np.savez(npath, **arrays)
    _refused(capsys, ["sim", str(qpath), "--inputs", str(inputs), "--out",
                      str(tmp_path / "out")], "field weights", "18446744073709551615")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(("make", "words"), [
    (lambda x: {"spikes": x[:0]}, ["spikes", "holds 0 samples"]),
    (lambda x: {"pixels": np.zeros((0, x.shape[2]), np.uint8)}, ["holds 0 samples"]),
    (lambda x: {"spikes": x.astype(np.float32)}, ["field spikes", "dtype float32"]),
    (lambda x: {"spikes": x.astype(np.float64) * 0.5}, ["field spikes", "dtype"]),
    (lambda x: {"spikes": x.astype("U1")}, ["field spikes", "dtype"]),
    (lambda x: {"spikes": x[:, :, :-1]}, ["field spikes", "shape"]),
    (lambda x: {"spikes": x[0]}, ["field spikes", "shape"]),
    (lambda x: {"spikes": x * 3}, ["field spikes", "0 or 1"]),
    (lambda x: {"spikes": x.astype(np.int64) - 1}, ["field spikes", "0 or 1"]),
    (lambda x: {"spikes": x, "labels": np.zeros(len(x) + 1, np.int64)},
     ["field labels", "expected [5]"]),
    (lambda x: {"spikes": x, "labels": np.zeros((len(x), 2), np.int64)}, ["field labels"]),
    (lambda x: {"spikes": x, "labels": np.full(len(x), 0.5)}, ["field labels", "dtype"]),
    (lambda x: {"spikes": x, "labels": -np.ones(len(x), np.int64)}, ["field labels"]),
    (lambda x: {"spikes": x, "seeds": np.zeros(len(x), np.uint32)}, ["field seeds"]),
    (lambda x: {"spikes": x, "pixels": np.zeros((5, x.shape[2]), np.uint8)}, ["not both"]),
    (lambda x: {"spikes": x, "extra": x}, ["field extra", "not a known array"]),
    (lambda x: {"pixels": np.full((5, x.shape[2]), 256, np.int64)}, ["field pixels", "0..255"]),
    (lambda x: {"pixels": np.zeros((5, x.shape[2]), np.uint8),
                "seeds": np.zeros(4, np.uint32)}, ["field seeds", "expected [5]"]),
    (lambda x: {"pixels": np.zeros((5, x.shape[2]), np.uint8),
                "seeds": np.full(5, 2**33, np.int64)}, ["field seeds"]),
    (lambda x: {"labels": np.zeros(5, np.int64)}, ["missing"]),
])
@pytest.mark.parametrize("command", ["sim", "verify"])
def test_bad_inputs_refused(setup, tmp_path, capsys, make, words, command):
    _, qpath, _, x = setup
    bad = tmp_path / "bad.npz"
    np.savez(bad, **make(x))
    before = _snapshot(tmp_path)
    _refused(capsys, [command, str(qpath), "--inputs", str(bad), "--out",
                      str(tmp_path / "out")], str(bad), *words)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04 broken"])
def test_damaged_inputs_refused(setup, tmp_path, capsys, content):
    _, qpath, _, _ = setup
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    _refused(capsys, ["sim", str(qpath), "--inputs", str(bad), "--out", str(tmp_path / "o")],
             str(bad))
    assert not (tmp_path / "o").exists()


def test_inputs_folder_refused(setup, tmp_path, capsys):
    _, qpath, _, _ = setup
    (tmp_path / "dir.npz").mkdir()
    _refused(capsys, ["sim", str(qpath), "--inputs", str(tmp_path / "dir.npz"), "--out",
                      str(tmp_path / "o")], "not a regular file")


def test_object_array_inputs_refused_without_unpickling(setup, tmp_path, capsys):
    _, qpath, _, x = setup
    sentinel = tmp_path / "pwned"
    obj = np.empty(x.shape, dtype=object)
    obj[:] = 0
    obj[0, 0, 0] = _Boom(str(sentinel))
    bad = tmp_path / "evil.npz"
    np.savez(bad, spikes=obj)
    _refused(capsys, ["verify", str(qpath), "--inputs", str(bad), "--out",
                      str(tmp_path / "o")], str(bad), "object")
    assert not sentinel.exists()
    assert not (tmp_path / "o").exists()


def test_huge_sample_count_refused_before_reading(setup, tmp_path, capsys):
    """A header claiming 10^12 samples is refused from the header alone (no allocation)."""
    net, qpath, _, _ = setup
    bad = tmp_path / "huge.npz"
    _npz_with_header(bad, "spikes", (10**12, net.timesteps, net.n_in))
    _refused(capsys, ["sim", str(qpath), "--inputs", str(bad), "--out", str(tmp_path / "o")],
             "memory", "GiB")
    assert not (tmp_path / "o").exists()


def test_memory_estimate_compared_with_available(setup, tmp_path, capsys, monkeypatch):
    from spikeforge.sim import cli as sim_cli

    _, qpath, inputs, _ = setup
    monkeypatch.setattr(sim_cli, "_available_memory", lambda: 100)
    _refused(capsys, ["verify", str(qpath), "--inputs", str(inputs), "--out",
                      str(tmp_path / "o")], "--inputs", "memory")
    assert not (tmp_path / "o").exists()


def test_memory_estimate_grows_with_samples_and_verify():
    from spikeforge.sim.cli import memory_needed

    net = random_qnet(21, max_width=10)
    one = memory_needed(net, 1, False)
    assert one >= net.timesteps * net.n_in
    assert memory_needed(net, 1000, False) >= 1000 * one - 1000
    assert memory_needed(net, 1000, True) > memory_needed(net, 1000, False)


def test_cocotb_step_limit(setup, tmp_path, capsys):
    from spikeforge.sim.cli import MAX_COCOTB_STEPS

    net, qpath, _, _ = setup
    bad = tmp_path / "many.npz"
    n = MAX_COCOTB_STEPS // net.timesteps + 1
    _npz_with_header(bad, "spikes", (n, net.timesteps, net.n_in))
    _refused(capsys, ["sim", str(qpath), "--inputs", str(bad), "--mode", "cocotb", "--out",
                      str(tmp_path / "o")], "--mode cocotb", "--mode fast")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- options


@pytest.mark.parametrize(("extra", "words"), [
    (["--stall-seed", "-1"], ["--stall-seed"]),
    (["--stall-seed", str(2**64)], ["--stall-seed"]),
    (["--stall-seed", "abc"], ["--stall-seed"]),
    (["--stall-seed", "3"], ["--stall-seed", "--mode cocotb"]),  # fast mode has no stalls
    (["--lanes", "0"], ["--lanes"]),
    (["--lanes", "-3"], ["--lanes"]),
    (["--lanes", "x"], ["--lanes"]),
    (["--lanes", str(10**30)], ["--lanes"]),
    (["--mode", "slow"], ["--mode"]),
    (["--simulator", "ghdl"], ["--simulator", "unknown simulator"]),
])
def test_bad_options_refused(setup, tmp_path, capsys, extra, words):
    _, qpath, inputs, _ = setup
    before = _snapshot(tmp_path)
    _refused(capsys, ["sim", str(qpath), "--inputs", str(inputs), *extra, "--out",
                      str(tmp_path / "o")], *words)
    assert _snapshot(tmp_path) == before


def test_stall_seed_accepts_the_full_range():
    from spikeforge.cli import build_parser

    args = build_parser().parse_args(["sim", "n.qnet.yaml", "--inputs", "i.npz", "--mode",
                                      "cocotb", "--stall-seed", str(2**64 - 1), "--out", "o"])
    assert args.stall_seed == 2**64 - 1
    np.random.default_rng(args.stall_seed)  # what the driver does with it


# ----------------------------------------------------------------------------- --out


@pytest.mark.parametrize("command", ["sim", "verify"])
def test_out_is_an_existing_file(setup, tmp_path, capsys, command):
    _, qpath, inputs, _ = setup
    f = tmp_path / "results.txt"
    f.write_text("mine")
    _refused(capsys, [command, str(qpath), "--inputs", str(inputs), "--out", str(f)],
             "--out", "not a folder")
    assert f.read_text() == "mine"


@pytest.mark.parametrize("command", ["sim", "verify"])
def test_out_is_a_users_folder(setup, tmp_path, capsys, command):
    _, qpath, inputs, _ = setup
    d = tmp_path / "thesis"
    d.mkdir()
    (d / "chapter1.tex").write_text("precious")
    before = _snapshot(d)
    _refused(capsys, [command, str(qpath), "--inputs", str(inputs), "--out", str(d)],
             "--out", "not empty")
    assert _snapshot(d) == before


@pytest.mark.parametrize("command", ["sim", "verify"])
def test_out_holding_the_qnet_or_inputs(setup, tmp_path, capsys, command):
    _, qpath, inputs, _ = setup
    before = _snapshot(tmp_path)
    # the folder holding the QNet and the inputs
    _refused(capsys, [command, str(qpath), "--inputs", str(inputs), "--out", str(tmp_path)],
             "--out")
    # the QNet file itself, the NPZ of the QNet, and a folder below the inputs file
    for out in (qpath, qpath.with_name("net.qnet.npz"), inputs / "sub"):
        _refused(capsys, [command, str(qpath), "--inputs", str(inputs), "--out", str(out)],
                 "--out")
    assert _snapshot(tmp_path) == before


def test_out_inside_the_qnet_folder_is_refused_when_it_holds_the_mapping(setup, tmp_path,
                                                                        capsys):
    _, qpath, inputs, _ = setup
    maps = tmp_path / "maps"
    maps.mkdir()
    mapping = maps / "mapping.yaml"
    mapping.write_text("hardware: {}\n")
    _refused(capsys, ["sim", str(qpath), "--inputs", str(inputs), "--mapping", str(mapping),
                      "--out", str(maps)], "--out", "mapping.yaml")
    assert mapping.read_text() == "hardware: {}\n"


def test_out_checked_before_the_inputs_are_read(setup, tmp_path, capsys, monkeypatch):
    """A bad --out is refused before any array of the inputs is loaded."""
    from spikeforge.sim import cli as sim_cli

    _, qpath, inputs, _ = setup
    f = tmp_path / "file"
    f.write_text("x")

    def never(*a, **k):
        raise AssertionError("inputs read before --out was checked")

    monkeypatch.setattr(sim_cli, "load_inputs", never)
    monkeypatch.setattr(sim_cli, "inspect_inputs", never)
    _refused(capsys, ["sim", str(qpath), "--inputs", str(inputs), "--out", str(f)], "--out")


# ----------------------------------------------------------------------------- failures in the run


def test_failed_simulation_leaves_nothing(setup, tmp_path, capsys, monkeypatch):
    """A simulator that fails gives one line; --out and no build folder stay behind."""
    from spikeforge.sim import fast

    if simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    _, qpath, inputs, _ = setup
    monkeypatch.setattr(fast, "run_child", lambda cmd, **kw: 7)
    before = _snapshot(tmp_path)
    _refused(capsys, ["sim", str(qpath), "--inputs", str(inputs), "--out",
                      str(tmp_path / "o")], "icarus", "exit 7")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_simulation_leaves_nothing(setup, tmp_path, capsys, monkeypatch, exc):
    from spikeforge.sim import fast

    if simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    _, qpath, inputs, _ = setup

    def interrupted(cmd, **kw):
        raise exc()

    monkeypatch.setattr(fast, "run_child", interrupted)
    before = _snapshot(tmp_path)
    if exc is KeyboardInterrupt:
        assert main(["sim", str(qpath), "--inputs", str(inputs), "--out",
                     str(tmp_path / "o")]) == 130
    else:
        with pytest.raises(RuntimeError):
            main(["sim", str(qpath), "--inputs", str(inputs), "--out", str(tmp_path / "o")])
    assert _snapshot(tmp_path) == before


def test_run_fast_removes_the_build_folder_it_made(tmp_path, monkeypatch):
    from spikeforge.sim import fast

    if simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    net = random_qnet(3)

    def interrupted(cmd, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(fast, "run_child", interrupted)
    build = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt):
        fast.run_fast(net, random_spikes(1, net, 2), simulator="icarus", build_dir=build)
    assert list(tmp_path.iterdir()) == []
    # a build folder that existed before is kept
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    with pytest.raises(KeyboardInterrupt):
        fast.run_fast(net, random_spikes(1, net, 2), simulator="icarus", build_dir=keep)
    assert (keep / "mine.txt").read_text() == "x"


def test_run_rtl_removes_its_temporary_build_folder(tmp_path, monkeypatch):
    """Without build_dir, run_rtl's temporary folder does not outlive a failure."""
    import tempfile

    from spikeforge.sim import runner

    net = random_qnet(3)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "_run", boom)
    if simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    with pytest.raises(KeyboardInterrupt):
        runner.run_rtl(net, random_spikes(1, net, 2), simulator="icarus")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- child processes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_run_child_stops_the_whole_group_on_an_exception(tmp_path):
    """Ctrl-C (or SIGTERM, or any error) during the wait stops the child *and* its children."""
    pidfile = tmp_path / "pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_child(["sh", "-c", script], cwd=tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 30
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the simulator's own child survived"


def test_run_child_returns_the_exit_status(tmp_path):
    assert run_child(["sh", "-c", "exit 3"], cwd=tmp_path) == 3
    with open(tmp_path / "log", "w") as log:
        assert run_child(["sh", "-c", "echo hi; echo err >&2"], stdout=log, stderr=log) == 0
    assert (tmp_path / "log").read_text().split() == ["hi", "err"]


def test_cocotb_runner_uses_the_group_launcher(tmp_path):
    """cocotb's runner (subprocess.run: kills only its direct child) is given run_child."""
    from cocotb_tools.runner import get_runner

    runner = get_runner("icarus")
    runner.env = dict(os.environ)
    use_group_launcher(runner)
    runner._execute_cmds([["sh", "-c", "echo ok"]], tmp_path)
    with pytest.raises(RuntimeError, match="return code: 5"):
        runner._execute_cmds([["sh", "-c", "exit 5"]], tmp_path)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_subprocess_run_kills_its_child_on_an_exception(tmp_path):
    """What cocotb relies on without the group launcher: verified, for the direct child.

    (On KeyboardInterrupt ``subprocess.run`` kills the child but does not reap it;
    Popen's finalizer then warns. :func:`run_child` kills the group and reaps.)
    """
    import gc

    pidfile = tmp_path / "pid"

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            subprocess.run(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        gc.collect()
    assert not _alive(int(pidfile.read_text()))


# ----------------------------------------------------------------------------- strict JSON


def test_verify_writes_strict_json(setup, tmp_path, capsys, monkeypatch):
    """NaN in a report becomes null: every JSON verify writes parses strictly."""
    import spikeforge.energy as energy_mod

    if simulator_available("icarus"):
        pytest.skip("icarus is not installed")
    _, qpath, inputs, _ = setup
    real = energy_mod.energy_report

    def with_nan(*a, **k):
        rep = real(*a, **k)
        rep["ee"] = float("nan")
        return rep

    monkeypatch.setattr(energy_mod, "energy_report", with_nan)
    out = tmp_path / "v"
    assert main(["verify", str(qpath), "--inputs", str(inputs), "--out", str(out)]) == 0

    def refuse(name):
        raise ValueError(name)

    for name in ("mismatches.json", "energy.json"):
        doc = json.loads((out / name).read_text(), parse_constant=refuse)
        assert isinstance(doc, dict)
    assert json.loads((out / "energy.json").read_text())["ee"] is None
    # the same --out again: spikeforge's own folder is accepted and replaced
    assert main(["sim", str(qpath), "--inputs", str(inputs), "--out", str(out)]) == 0
    assert not (out / "energy.json").exists()
