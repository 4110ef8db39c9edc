"""The `spikeforge` command line: one-line errors with exit status 2, and a real run.

The end-to-end run trains a tiny network, quantizes it, simulates the Verilog
with the plain-Verilog testbench on Icarus (the second run under cocotb) and
writes the report; it is skipped only without iverilog.
"""

from __future__ import annotations

import gc
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from spikeforge import pipeline
from spikeforge.cli import main
from spikeforge.errors import SpikeforgeError
from spikeforge.qnet import InputSpec, Layer, QNet, Reset, load_qnet, save_qnet
from spikeforge.staging import MARKER, write_marker

TINY = """\
data:
  dataset: digits
model:
  input_shape: [64]
  layers: [{dense: 16}, {dense: 10}]
  neuron: {leak_shifts: [3, 4]}
  bias: false
encoding:
  timesteps: 4
train:
  epochs: 2
rtl:
  samples: 12
"""
MODEL = "model:\n  input_shape: [64]\n  layers: [{dense: 16}, {dense: 10}]\n"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spikeforge.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith("spikeforge: error: ")
    return lines[0]


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists(), f"{out} was created"
    assert not list(out.parent.glob(f".{out.name}.*")), "a staging folder was left behind"
    assert not list(out.parent.rglob(".spikeforge-stage-*")), "a staging folder was left behind"


# ----------------------------------------------------------------------------- run: bad input


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (MODEL + "  hiden: [16]\n", "field model.hiden: unknown key"),
        (MODEL + 'train:\n  epochs: "x"\n', "field train.epochs:"),
        (MODEL + "quantize:\n  weight_bits: 1\n", "field quantize.weight_bits:"),
        (MODEL + "  neuron: {leak_shifts: [4, 4]}\n", "field model.neuron:"),
        ("model: [16,\n", "is not valid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
    ],
    ids=["unknown-nested-key", "wrong-type", "weight-bits-1", "duplicate-shifts",
         "malformed-yaml", "yaml-list"],
)
def test_subprocess_bad_config(tmp_path, text, expect):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    r = _cli("run", str(cfg), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    assert str(cfg) in line and expect in line
    _assert_nothing_written(out)


def test_subprocess_missing_config(tmp_path):
    out = tmp_path / "out"
    r = _cli("run", "no_such.yaml", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "no_such.yaml" in line and "does not exist" in line
    _assert_nothing_written(out)


def test_subprocess_relative_out(tmp_path):
    (tmp_path / "cfg.yaml").write_text(MODEL + "bogus: 1\n")
    r = _cli("run", "cfg.yaml", "--out", "runs/out", cwd=tmp_path)
    assert r.returncode == 2
    assert "field bogus: unknown key" in _one_line(r.stderr)
    assert not (tmp_path / "runs" / "out").exists()
    assert not list((tmp_path).rglob(".out.*"))


def test_failing_pass_leaves_old_out_untouched(tmp_path, capsys, monkeypatch):
    """A pass that fails after writing into the staging folder: exit 2, old --out intact."""

    def writes_then_fails(st):
        """Write a partial product, then fail like bad input would."""
        (st.stage / "partial.txt").write_text("half")
        raise SpikeforgeError("quantize: weights do not fit")

    monkeypatch.setattr(pipeline, "PASSES", (("boom", writes_then_fails),))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old run")
    write_marker(out, ["keep.txt"])  # an earlier run's output folder
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    assert "quantize: weights do not fit" in _one_line(capsys.readouterr().err)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "keep.txt"]
    assert (out / "keep.txt").read_text() == "old run"


def test_failing_pass_without_old_out_writes_nothing(tmp_path, capsys, monkeypatch):
    def fails(st):
        """Fail at once."""
        (st.stage / "partial.txt").write_text("half")
        raise SpikeforgeError("boom")

    monkeypatch.setattr(pipeline, "PASSES", (("boom", fails),))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err)
    _assert_nothing_written(out)


def test_out_is_a_file_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(pipeline, "PASSES", ())  # the check must not need a real run
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(TINY)
    out = tmp_path / "out"
    out.write_text("not a folder")
    assert main(["run", str(cfg), "--out", str(out)]) == 2
    assert str(out) in _one_line(capsys.readouterr().err)
    assert out.read_text() == "not a folder"
    assert not list(tmp_path.glob(".out.*"))


# ----------------------------------------------------------------------------- verilog


def _small_qnet() -> QNet:
    rng = np.random.default_rng(3)
    l1 = Layer(name="hid", n_in=6, n_out=4, weight_bits=4,
               weights=rng.integers(-8, 8, size=(4, 6)), threshold=5, membrane_bits=10,
               leak_shifts=(3,), reset=Reset.ZERO, fire=True)
    l2 = Layer(name="readout", n_in=4, n_out=3, weight_bits=4,
               weights=rng.integers(-8, 8, size=(3, 4)), threshold=1, membrane_bits=10,
               reset=Reset.NONE, fire=False)
    return QNet(layers=(l1, l2), timesteps=3, input=InputSpec(size=6), name="small")


def _rename_layers(net: QNet, names: tuple[str, ...]) -> QNet:
    layers = tuple(
        Layer(name=n, n_in=l.n_in, n_out=l.n_out, weight_bits=l.weight_bits, weights=l.weights,
              threshold=l.threshold, membrane_bits=l.membrane_bits, leak_shifts=l.leak_shifts,
              reset=l.reset, fire=l.fire, bias=l.bias)
        for n, l in zip(names, net.layers)
    )
    return QNet(layers=layers, timesteps=net.timesteps, input=net.input, name=net.name)


@pytest.fixture
def saved_qnet(tmp_path) -> Path:
    ypath, _ = save_qnet(_small_qnet(), tmp_path / "net" / "small")
    return ypath


def test_verilog_writes_file(tmp_path, saved_qnet, capsys):
    out = tmp_path / "v"
    assert main(["rtl", str(saved_qnet), "--out", str(out)]) == 0
    printed = Path(capsys.readouterr().out.split()[1])
    assert printed.parent == out and printed.suffix == ".v"
    assert "module" in printed.read_text()
    assert (out / "hw.json").is_file()


def _damage_yaml(ypath: Path, old: str, new: str) -> None:
    text = ypath.read_text()
    assert old in text
    ypath.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        ("missing-yaml", "does not exist"),
        ("missing-npz", "does not exist"),
        ("npz-garbage", "npz"),
        ("npz-empty", "npz"),
        ("yaml-malformed", "is not valid YAML"),
        ("yaml-list", "must be a mapping"),
        ("wrong-format", "format"),
        ("unknown-layer-field", "colour"),
        ("weights-out-of-range", "weights"),
        ("n_in-mismatch", "n_in"),
        ("missing-threshold", "threshold"),
        ("bad-reset", "reset"),
    ],
)
def test_verilog_damaged_qnet(tmp_path, saved_qnet, capsys, damage, expect):
    npath = saved_qnet.with_name("small.qnet.npz")
    if damage == "missing-yaml":
        saved_qnet.unlink()
    elif damage == "missing-npz":
        npath.unlink()
    elif damage == "npz-garbage":
        npath.write_bytes(b"this is not a zip archive")
    elif damage == "npz-empty":
        npath.write_bytes(b"")
    elif damage == "yaml-malformed":
        saved_qnet.write_text("format: qnet/1\nlayers: [\n")
    elif damage == "yaml-list":
        saved_qnet.write_text("- 1\n- 2\n")
    elif damage == "wrong-format":
        _damage_yaml(saved_qnet, "format: qnet/1", "format: qnet/99")
    elif damage == "unknown-layer-field":
        _damage_yaml(saved_qnet, "  kind: dense", "  colour: red\n  kind: dense")
    elif damage == "weights-out-of-range":
        _damage_yaml(saved_qnet, "weight_bits: 4", "weight_bits: 2")
    elif damage == "n_in-mismatch":
        _damage_yaml(saved_qnet, "n_in: 4", "n_in: 5")
    elif damage == "missing-threshold":
        _damage_yaml(saved_qnet, "  threshold: 5\n", "\n")
    elif damage == "bad-reset":
        _damage_yaml(saved_qnet, "reset: zero", "reset: sometimes")
    out = tmp_path / "v"
    assert main(["rtl", str(saved_qnet), "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert expect in line
    assert "small.qnet." in line  # names the file
    assert not out.exists()


def test_verilog_missing_qnet_subprocess(tmp_path):
    out = tmp_path / "v"
    r = _cli("rtl", "gone.qnet.yaml", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "gone.qnet.yaml" in line and "does not exist" in line
    assert not out.exists()


def test_verilog_damaged_qnet_subprocess(tmp_path, saved_qnet):
    saved_qnet.with_name("small.qnet.npz").write_bytes(b"garbage")
    out = tmp_path / "v"
    r = _cli("rtl", str(saved_qnet), "--out", str(out), cwd=tmp_path)
    assert r.returncode == 2
    assert "small.qnet.npz" in _one_line(r.stderr)
    assert not out.exists()


def test_verilog_bad_input_shape_one_line(tmp_path, saved_qnet, capsys):
    _damage_yaml(saved_qnet, "  encoding: spikes", "  encoding: spikes\n  shape: 5")
    out = tmp_path / "v"
    assert main(["rtl", str(saved_qnet), "--out", str(out)]) == 2
    assert "shape" in _one_line(capsys.readouterr().err)


def test_verilog_damaged_zip_closes_the_file(tmp_path, saved_qnet, capsys):
    saved_qnet.with_name("small.qnet.npz").write_bytes(b"PK\x03\x04 damaged zip")
    out = tmp_path / "v"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["rtl", str(saved_qnet), "--out", str(out)]) == 2
        gc.collect()
    assert "npz" in _one_line(capsys.readouterr().err)
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, [str(w.message) for w in leaks]


@pytest.mark.parametrize("names", [("hid", "o"), ("i", "readout"), ("hid", "done")])
def test_verilog_layer_named_like_a_port_one_line(tmp_path, capsys, names):
    ypath, _ = save_qnet(_rename_layers(_small_qnet(), names), tmp_path / "net" / "small")
    out = tmp_path / "v"
    escaped = None
    with warnings.catch_warnings():
        # the half-built amaranth Network warns "created but never used" when collected
        warnings.simplefilter("ignore")
        try:
            rc = main(["rtl", str(ypath), "--out", str(out)])
        except Exception as e:  # any escape is the bug under test
            escaped, rc = f"{type(e).__name__}: {e}", None
        gc.collect()
    assert escaped is None, f"traceback instead of one line: {escaped}"
    assert rc == 2
    line = _one_line(capsys.readouterr().err)
    assert names[0] in line or names[1] in line
    assert not out.exists()


# ----------------------------------------------------------------------------- end to end


def _need_iverilog() -> None:
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog (Icarus Verilog) is not on PATH; the RTL pass needs it")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    _need_iverilog()
    root = tmp_path_factory.mktemp("e2e")
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY)
    out = root / "out"
    assert main(["run", str(cfg), "--out", str(out)]) == 0
    return out


def test_run_report(tiny_run):
    r = json.loads((tiny_run / "report.json").read_text())
    acc = r["accuracy"]
    for k in ("float", "qnet", "rtl"):
        assert 0.0 <= acc[k] <= 1.0, k
    assert acc["samples"] > 12  # the whole test split went through the reference
    assert acc["rtl_samples"] == 12

    rtl = r["rtl"]
    assert rtl["simulator"] == "icarus"
    assert rtl["samples"] == 12
    assert rtl["mismatches"] == 0, rtl["first_mismatches"]
    assert rtl["cycles_per_sample"] > 0

    c = r["counters"]
    assert c["reference"] == c["rtl"]
    assert r["counters_equal"] is True
    assert len(c["reference"]) == 2  # hidden + readout
    for layer, cs in c["reference"].items():
        for k in ("synaptic_events", "neuron_updates", "spikes_out"):
            assert isinstance(cs[k], int) and cs[k] >= 0, (layer, k)
    first = next(iter(c["reference"].values()))
    assert first["neuron_updates"] == 12 * 4 * 16  # samples x steps x hidden neurons
    assert first["synaptic_events"] > 0

    e = r["energy"]
    assert e["snn_pj"] > 0 and e["ann_pj"] > 0 and e["ee"] > 0
    assert e["ee"] == pytest.approx(e["ann_pj"] / e["snn_pj"])
    assert e["ann_pj"] == pytest.approx((64 * 16 + 16 * 10) * 3.2)
    assert e["hardware_pj"] > 0
    assert e["source"] == "rtl counters"
    assert e["reference_snn_pj"] == pytest.approx(e["snn_pj"])

    assert r["config"]["model"]["layers"] == [{"dense": 16}, {"dense": 10}]
    assert r["config"]["encoding"]["timesteps"] == 4
    assert set(r["timings_s"]) == {"data", "train", "quantize", "rtl", "report"}


def test_run_files(tiny_run):
    for name in ("model.qnet.yaml", "model.qnet.npz", "raster.png", "report.json"):
        assert (tiny_run / name).is_file(), name
    assert list((tiny_run / "rtl").glob("*.v"))
    assert (tiny_run / "raster.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tiny_run.parent.glob(".out.*"))

    net = load_qnet(tiny_run / "model.qnet.yaml")
    assert net.timesteps == 4
    assert net.n_in == 64
    assert [layer.n_out for layer in net.layers] == [16, 10]
    assert net.layers[0].weight_bits == 8
    assert net.layers[-1].fire is False


def test_second_run_replaces_out(tiny_run, tmp_path, capsys):
    (tiny_run / "stale.txt").write_text("from before")
    cfg = tmp_path / "again.yaml"
    cfg.write_text(TINY.replace("epochs: 2", "epochs: 1")
                   .replace("samples: 12", "samples: 3\n  mode: cocotb"))
    assert main(["run", str(cfg), "--out", str(tiny_run)]) == 0
    capsys.readouterr()
    assert (tiny_run / "stale.txt").read_text() == "from before"  # the user's: kept
    r = json.loads((tiny_run / "report.json").read_text())
    assert r["config"]["train"]["epochs"] == 1
    assert r["rtl"]["samples"] == 3 and r["rtl"]["mismatches"] == 0
    assert r["rtl"]["mode"] == "cocotb"
    assert r["counters"]["reference"] == r["counters"]["rtl"]
    assert (tiny_run / "model.qnet.yaml").is_file()
    assert not list(tiny_run.glob(".spikeforge-stage-*"))
    assert sorted(p.name for p in tiny_run.parent.iterdir()) == ["out", "tiny.yaml"]
