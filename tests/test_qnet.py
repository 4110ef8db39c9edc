"""QNet data classes, validation and files (docs/QNET.md §1 and §6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from spikeforge.errors import QNetError
from spikeforge.qnet import (
    FORMAT,
    InputEncoding,
    InputSpec,
    Layer,
    QNet,
    Reset,
    load_qnet,
    qnet_paths,
    save_qnet,
)

# ----------------------------------------------------------------------------- helpers


def _layer(**overrides) -> Layer:
    """A small valid spiking layer; ``overrides`` replace any field."""
    kw = dict(
        name="l1",
        n_in=3,
        n_out=2,
        weight_bits=4,
        weights=np.array([[1, -2, 3], [7, -8, 0]]),
        threshold=5,
        membrane_bits=8,
        leak_shifts=(),
        reset=Reset.ZERO,
        fire=True,
        bias=None,
    )
    kw.update(overrides)
    return Layer(**kw)


def _net() -> QNet:
    """Three layers: scalar threshold without bias, per-neuron threshold with bias, readout."""
    rng = np.random.default_rng(1)
    l1 = Layer(
        name="hidden1", n_in=6, n_out=5, weight_bits=4,
        weights=rng.integers(-8, 8, size=(5, 6)), threshold=4, membrane_bits=10,
        leak_shifts=(3, 4), reset=Reset.ZERO, fire=True,
    )
    l2 = Layer(
        name="hidden2", n_in=5, n_out=4, weight_bits=6,
        weights=rng.integers(-32, 32, size=(4, 5)), threshold=np.array([3, 7, 1, 20]),
        membrane_bits=12, leak_shifts=(2,), reset=Reset.SUBTRACT, fire=True,
        bias=np.array([1, -2, 0, 5]),
    )
    l3 = Layer(
        name="readout", n_in=4, n_out=3, weight_bits=8,
        weights=rng.integers(-128, 128, size=(3, 4)), threshold=100, membrane_bits=16,
        leak_shifts=(), reset=Reset.NONE, fire=False, bias=np.array([0, 3, -3]),
    )
    return QNet(
        layers=(l1, l2, l3), timesteps=7,
        input=InputSpec(size=6, encoding=InputEncoding.SPIKES, shape=(2, 3)),
        name="demo",
    )


def _check(exc: pytest.ExceptionInfo[QNetError], layer: str, field: str) -> None:
    e = exc.value
    assert e.layer == layer
    assert e.field == field
    assert f"layer {layer}" in str(e)
    assert f"field {field}" in str(e)


# ----------------------------------------------------------------------------- files


def test_round_trip_equal(tmp_path: Path) -> None:
    net = _net()
    ypath, npath = save_qnet(net, tmp_path / "demo")
    assert ypath == tmp_path / "demo.qnet.yaml"
    assert npath == tmp_path / "demo.qnet.npz"
    assert ypath.is_file() and npath.is_file()

    back = load_qnet(tmp_path / "demo")
    assert back == net
    assert back.name == "demo"
    assert back.timesteps == 7
    assert back.input == InputSpec(size=6, encoding=InputEncoding.SPIKES, shape=(2, 3))
    for a, b in zip(back.layers, net.layers):
        assert a.name == b.name
        assert a.weights.dtype == np.int64
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.thresholds, b.thresholds)
        assert (a.bias is None) == (b.bias is None)
        np.testing.assert_array_equal(a.biases, b.biases)
        assert a.leak_shifts == b.leak_shifts
        assert a.reset is b.reset
        assert a.fire is b.fire
        assert (a.weight_bits, a.membrane_bits) == (b.weight_bits, b.membrane_bits)
    assert isinstance(back.layers[0].threshold, int)  # scalar stays scalar
    assert isinstance(back.layers[1].threshold, np.ndarray)  # per-neuron stays an array
    assert back.layers[0].bias is None
    assert not back.layers[-1].fire

    # any of the two file names, or the stem, loads the same network
    assert load_qnet(ypath) == net
    assert load_qnet(npath) == net


def test_file_contents(tmp_path: Path) -> None:
    ypath, npath = save_qnet(_net(), tmp_path / "demo.qnet.yaml")
    assert (ypath, npath) == qnet_paths(tmp_path / "demo")
    doc = yaml.safe_load(ypath.read_text())
    assert doc["format"] == FORMAT == "qnet/1"
    assert doc["timesteps"] == 7
    assert doc["input"]["size"] == 6
    assert [rec["name"] for rec in doc["layers"]] == ["hidden1", "hidden2", "readout"]
    assert doc["layers"][1]["threshold"] == "per-neuron"
    assert doc["layers"][0]["threshold"] == 4
    for rec in doc["layers"]:
        assert "weights" not in rec  # arrays live in the npz only
    with np.load(npath) as npz:
        assert sorted(npz.files) == sorted([
            "hidden1.weights",
            "hidden2.weights", "hidden2.bias", "hidden2.threshold",
            "readout.weights", "readout.bias",
        ])


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    net = _net()
    save_qnet(net, tmp_path / "demo")
    save_qnet(net, tmp_path / "demo")  # overwriting is fine too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.qnet.npz", "demo.qnet.yaml"]


def test_failed_save_leaves_no_temporary_files(tmp_path: Path, monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError, match="disk full"):
        save_qnet(_net(), tmp_path / "demo")
    assert list(tmp_path.iterdir()) == []


def test_equality_detects_differences() -> None:
    net = _net()
    assert net == _net()
    l1, l2, l3 = net.layers
    w = l1.weights.copy()
    w[0, 0] = w[0, 0] + 1 if w[0, 0] < 7 else w[0, 0] - 1
    other = QNet(layers=(_replace(l1, weights=w), l2, l3), timesteps=7, input=net.input)
    assert other != net
    assert QNet(layers=net.layers, timesteps=8, input=net.input) != net
    assert _replace(l1, threshold=5) != l1
    assert _replace(l1, bias=np.zeros(5, dtype=np.int64)) != l1  # bias present vs absent
    assert _replace(l1, threshold=np.full(5, 4)) != l1  # per-neuron vs scalar
    assert _replace(l1, leak_shifts=(3,)) != l1


def _replace(layer: Layer, **changes) -> Layer:
    kw = {f: getattr(layer, f) for f in (
        "name", "n_in", "n_out", "weight_bits", "weights", "threshold", "membrane_bits",
        "leak_shifts", "reset", "fire", "bias", "kind")}
    kw.update(changes)
    return Layer(**kw)


# ----------------------------------------------------------------------------- validation


def test_valid_extremes_accepted() -> None:
    _layer(weights=np.array([[7, -8, 0], [0, 0, 0]]))
    _layer(weight_bits=2, weights=np.array([[1, -2, 0], [0, 0, 0]]))
    _layer(weight_bits=16, weights=np.array([[32767, -32768, 0], [0, 0, 0]]))
    _layer(threshold=127)  # top of the 8-bit membrane range
    _layer(threshold=1)
    _layer(leak_shifts=(3, 4))


@pytest.mark.parametrize("bad", [8, -9, 100])
def test_weight_out_of_range(bad: int) -> None:
    with pytest.raises(QNetError) as exc:
        _layer(weights=np.array([[0, bad, 0], [0, 0, 0]]))
    _check(exc, "l1", "weights")
    assert str(bad) in str(exc.value)


def test_wrong_weights_shape() -> None:
    with pytest.raises(QNetError) as exc:
        _layer(weights=np.zeros((3, 2), dtype=np.int64))
    _check(exc, "l1", "weights")


@pytest.mark.parametrize("wb", [1, 0, 17, 32])
def test_weight_bits_out_of_range(wb: int) -> None:
    with pytest.raises(QNetError) as exc:
        _layer(weight_bits=wb, weights=np.zeros((2, 3), dtype=np.int64))
    _check(exc, "l1", "weight_bits")


@pytest.mark.parametrize("th", [0, -1, np.array([1, 0]), np.array([-3, 4])])
def test_threshold_not_positive(th) -> None:
    with pytest.raises(QNetError) as exc:
        _layer(threshold=th)
    _check(exc, "l1", "threshold")


@pytest.mark.parametrize("th", [128, 1000, np.array([5, 128])])
def test_threshold_above_membrane_range(th) -> None:
    with pytest.raises(QNetError) as exc:
        _layer(threshold=th)  # membrane_bits=8 → largest value 127
    _check(exc, "l1", "threshold")


def test_per_neuron_threshold_wrong_shape() -> None:
    with pytest.raises(QNetError) as exc:
        _layer(threshold=np.array([1, 2, 3]))
    _check(exc, "l1", "threshold")


@pytest.mark.parametrize("shifts", [(2, 2), (0,), (3, 0), (-1,)])
def test_bad_leak_shifts(shifts) -> None:
    with pytest.raises(QNetError) as exc:
        _layer(leak_shifts=shifts)
    _check(exc, "l1", "leak_shifts")


def test_spiking_layer_needs_reset() -> None:
    with pytest.raises(QNetError) as exc:
        _layer(fire=True, reset=Reset.NONE)
    _check(exc, "l1", "reset")


@pytest.mark.parametrize("reset", [Reset.ZERO, Reset.SUBTRACT])
def test_readout_layer_has_no_reset(reset: Reset) -> None:
    with pytest.raises(QNetError) as exc:
        _layer(fire=False, reset=reset)
    _check(exc, "l1", "reset")


def test_readout_must_be_last() -> None:
    ro = _layer(name="ro", n_in=3, n_out=3, weights=np.zeros((3, 3), dtype=np.int64),
                fire=False, reset=Reset.NONE)
    l2 = _layer(name="l2", n_in=3, n_out=2)
    QNet(layers=(ro,), timesteps=2, input=InputSpec(size=3))  # fine when last
    with pytest.raises(QNetError) as exc:
        QNet(layers=(ro, l2), timesteps=2, input=InputSpec(size=3))
    _check(exc, "ro", "fire")


def test_n_in_chain_mismatch() -> None:
    l1 = _layer(name="a")  # 3 → 2
    l2 = _layer(name="b")  # expects 3 but gets 2
    with pytest.raises(QNetError) as exc:
        QNet(layers=(l1, l2), timesteps=2, input=InputSpec(size=3))
    _check(exc, "b", "n_in")
    with pytest.raises(QNetError) as exc:
        QNet(layers=(l1,), timesteps=2, input=InputSpec(size=4))
    _check(exc, "a", "n_in")


def test_duplicate_layer_names() -> None:
    l1 = _layer(name="same", n_in=3, n_out=3, weights=np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(QNetError) as exc:
        QNet(layers=(l1, l1), timesteps=2, input=InputSpec(size=3))
    _check(exc, "network", "layers")
    assert "same" in str(exc.value)


@pytest.mark.parametrize("t", [0, -1])
def test_timesteps_positive(t: int) -> None:
    with pytest.raises(QNetError) as exc:
        QNet(layers=(_layer(),), timesteps=t, input=InputSpec(size=3))
    _check(exc, "network", "timesteps")


# ----------------------------------------------------------------------------- load errors


def _saved(tmp_path: Path) -> tuple[Path, Path]:
    return save_qnet(_net(), tmp_path / "demo")


def _rewrite_npz(npath: Path, **changes) -> None:
    """Rewrite the archive with some arrays replaced (value) or removed (None)."""
    with np.load(npath) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez_compressed(npath, **arrays)


def _edit_yaml(ypath: Path, edit) -> None:
    doc = yaml.safe_load(ypath.read_text())
    edit(doc)
    ypath.write_text(yaml.safe_dump(doc, sort_keys=False))


def _load_error(path: Path, file: Path, layer: str, field: str) -> QNetError:
    with pytest.raises(QNetError) as exc:
        load_qnet(path)
    _check(exc, layer, field)
    assert str(file) in str(exc.value)
    return exc.value


def test_load_missing_yaml(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    ypath.unlink()
    _load_error(tmp_path / "demo", ypath, "network", "file")


def test_load_missing_npz(tmp_path: Path) -> None:
    _, npath = _saved(tmp_path)
    npath.unlink()
    _load_error(tmp_path / "demo", npath, "network", "file")


def test_load_nothing_there(tmp_path: Path) -> None:
    _load_error(tmp_path / "nope", tmp_path / "nope.qnet.yaml", "network", "file")


def test_load_malformed_yaml(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    ypath.write_text("format: qnet/1\nlayers: [\n  {name: a,\n")
    _load_error(ypath, ypath, "network", "yaml")


def test_load_yaml_not_a_mapping(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    ypath.write_text("- just\n- a list\n")
    _load_error(ypath, ypath, "network", "yaml")


@pytest.mark.parametrize("fmt", ["qnet/2", None])
def test_load_wrong_format(tmp_path: Path, fmt) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d.__setitem__("format", fmt))
    _load_error(ypath, ypath, "network", "format")


def test_load_unknown_layer_field(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["layers"][1].__setitem__("gain", 2))
    _load_error(ypath, ypath, "hidden2", "gain")


def test_load_missing_layer_field(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["layers"][0].pop("weight_bits"))
    _load_error(ypath, ypath, "hidden1", "weight_bits")


def test_load_bad_reset_value(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["layers"][0].__setitem__("reset", "halve"))
    _load_error(ypath, ypath, "hidden1", "reset")


def test_load_timesteps_zero(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d.__setitem__("timesteps", 0))
    _load_error(ypath, ypath, "network", "timesteps")


@pytest.mark.parametrize(
    ("key", "layer", "field"),
    [
        ("hidden1__weights", "hidden1", "weights"),
        ("hidden2__bias", "hidden2", "bias"),
        ("hidden2__threshold", "hidden2", "threshold"),
    ],
)
def test_load_missing_array(tmp_path: Path, key: str, layer: str, field: str) -> None:
    ypath, npath = _saved(tmp_path)
    _rewrite_npz(npath, **{key: None})
    _load_error(tmp_path / "demo", ypath, layer, field)


def test_load_array_wrong_shape(tmp_path: Path) -> None:
    ypath, npath = _saved(tmp_path)
    _rewrite_npz(npath, hidden1__weights=np.zeros((6, 5), dtype=np.int64))
    _load_error(tmp_path / "demo", ypath, "hidden1", "weights")


def test_load_threshold_array_wrong_shape(tmp_path: Path) -> None:
    ypath, npath = _saved(tmp_path)
    _rewrite_npz(npath, hidden2__threshold=np.array([1, 2, 3], dtype=np.int64))
    _load_error(tmp_path / "demo", ypath, "hidden2", "threshold")


def test_load_weight_out_of_range(tmp_path: Path) -> None:
    ypath, npath = _saved(tmp_path)
    with np.load(npath) as npz:
        w = npz["hidden1.weights"].copy()
    w[2, 3] = 8  # weight_bits=4 → range [-8, 7]
    _rewrite_npz(npath, hidden1__weights=w)
    e = _load_error(tmp_path / "demo", ypath, "hidden1", "weights")
    assert "8" in e.message


def test_load_damaged_npz(tmp_path: Path) -> None:
    _, npath = _saved(tmp_path)
    npath.write_bytes(b"this is not a zip archive")
    _load_error(tmp_path / "demo", npath, "network", "npz")


@pytest.mark.parametrize("damage", [False, True])
def test_load_closes_npz_archive(tmp_path: Path, monkeypatch, damage: bool) -> None:
    ypath, npath = _saved(tmp_path)
    if damage:
        _rewrite_npz(npath, hidden1__weights=np.zeros((6, 5), dtype=np.int64))
    opened = []
    real_load = np.load

    def spy(*args, **kwargs):
        obj = real_load(*args, **kwargs)
        opened.append(obj)
        return obj

    monkeypatch.setattr(np, "load", spy)
    try:
        if damage:
            with pytest.raises(QNetError):
                load_qnet(ypath)
        else:
            load_qnet(ypath)
        assert len(opened) == 1
        still_open = opened[0].fid is not None
    finally:
        for obj in opened:
            obj.close()  # do not leak the handle into later tests
    assert not still_open, "the npz archive is still open after load_qnet returned"


def test_requantize_scales_weights_thresholds_and_biases_together():
    from spikeforge.qnet import requantize
    from spikeforge.sim.fuzz import random_qnet

    net = random_qnet(21)
    top = [int(np.abs(l.weights).max()) for l in net.layers]
    q = requantize(net, 3)
    for layer, old, m in zip(q.layers, net.layers, top):
        assert layer.weight_bits == 3 and np.abs(layer.weights).max() == 3
        np.testing.assert_array_equal(layer.weights, np.rint(old.weights * 3 / m))
        assert (layer.thresholds >= 1).all()
        assert layer.membrane_bits == old.membrane_bits
    # scaling by exactly 1 changes nothing
    same = requantize(net, net.layers[0].weight_bits)
    if all(int(np.abs(l.weights).max()) == (1 << (l.weight_bits - 1)) - 1 for l in net.layers):
        assert same.layers == net.layers
    with pytest.raises(QNetError, match="weight_bits"):
        requantize(net, 1)


# ----------------------------------------------------------------------------- strict loading


@pytest.mark.parametrize(("where", "key"), [
    ("top", "tiemsteps"),  # a typo of timesteps
    ("top", "layer"),
    ("input", "sise"),
    ("input", "encodings"),
])
def test_load_unknown_keys_refused(tmp_path: Path, where: str, key: str) -> None:
    ypath, _ = _saved(tmp_path)
    if where == "top":
        _edit_yaml(ypath, lambda d: d.__setitem__(key, 4))
        _load_error(ypath, ypath, "network", key)
    else:
        _edit_yaml(ypath, lambda d: d["input"].__setitem__(key, 4))
        _load_error(ypath, ypath, "input", key)


def test_load_duplicate_key_refused(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    ypath.write_text(ypath.read_text().replace("timesteps: 7", "timesteps: 7\ntimesteps: 8"))
    e = _load_error(ypath, ypath, "network", "yaml")
    assert "duplicate" in str(e).lower()


def test_load_goes_through_the_bounded_reader(tmp_path: Path) -> None:
    ypath, _ = _saved(tmp_path)
    ypath.write_bytes(b"format: qnet/1\nname: \xff\xfe\n")
    e = _load_error(ypath, ypath, "network", "yaml")
    assert "UTF-8" in str(e)
    ypath.write_text('a: &a ["x","x","x","x","x","x","x","x","x","x"]\n'
                     + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                               for p, c in zip("abcdefgh", "bcdefghi")))
    e = _load_error(ypath, ypath, "network", "f")  # names where it expands
    assert "aliases" in str(e)


@pytest.mark.parametrize("name", ["_", "_x", "ñandú", "a-b", "1a", "a" * 65, "", 7, None,
                                  ["x"]])
def test_load_bad_network_name(tmp_path: Path, name) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d.__setitem__("name", name))
    _load_error(ypath, ypath, "network", "name")


@pytest.mark.parametrize("name", ["_", "ñandú", "a.b", "x" * 65, 3])
def test_load_bad_layer_name(tmp_path: Path, name) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["layers"][0].__setitem__("name", name))
    _load_error(ypath, ypath, "layers[0]", "name")


@pytest.mark.parametrize("name", ["_", "_hidden", "ñandú", "x" * 65, "a b", "a.b"])
def test_constructors_refuse_bad_names(name) -> None:
    with pytest.raises(QNetError) as exc:
        _layer(name=name)
    assert exc.value.field == "name"
    with pytest.raises(QNetError) as exc:
        QNet(layers=(_layer(),), timesteps=2, input=InputSpec(size=3), name=name)
    _check(exc, "network", "name")


def test_longest_name_accepted() -> None:
    name = "a" + "_9" * 31 + "z"
    assert len(name) == 64
    QNet(layers=(_layer(name=name),), timesteps=2, input=InputSpec(size=3), name=name)


def test_load_name_defaults_to_a_valid_file_stem(tmp_path: Path) -> None:
    ypath, _ = save_qnet(_net(), tmp_path / "my-net")
    _edit_yaml(ypath, lambda d: d.pop("name"))
    assert load_qnet(ypath).name == "qnet"  # "my-net" is no identifier


@pytest.mark.parametrize("meta", [[1, 2], "text", 5])
def test_load_meta_must_be_a_mapping(tmp_path: Path, meta) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d.__setitem__("meta", meta))
    _load_error(ypath, ypath, "network", "meta")


@pytest.mark.parametrize("t", [100_001, 10**30, "4", 4.0, True, None, -1])
def test_load_timesteps_limits(tmp_path: Path, t) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d.__setitem__("timesteps", t))
    e = _load_error(ypath, ypath, "network", "timesteps")
    assert "100000" in e.message
    assert len(str(e)) < 300


def test_timesteps_limit_in_constructor() -> None:
    QNet(layers=(_layer(),), timesteps=100_000, input=InputSpec(size=3))
    with pytest.raises(QNetError) as exc:
        QNet(layers=(_layer(),), timesteps=100_001, input=InputSpec(size=3))
    _check(exc, "network", "timesteps")


@pytest.mark.parametrize("shape", [[2, 2], [7], [2, 3, 2], [0, 6], [-2, -3], "2x3", [2.0, 3.0],
                                   [True, 6]])
def test_load_input_shape_must_match_size(tmp_path: Path, shape) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["input"].__setitem__("shape", shape))
    _load_error(ypath, ypath, "input", "shape")


def test_input_spec_shape_checked_in_constructor() -> None:
    assert InputSpec(size=6, shape=(2, 3)).shape == (2, 3)
    assert InputSpec(size=6, shape=[6]).shape == (6,)
    with pytest.raises(QNetError) as exc:
        InputSpec(size=6, shape=(4, 2))
    _check(exc, "input", "shape")
    with pytest.raises(QNetError):
        InputSpec(size=True)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_load_bias_flag_must_be_boolean(tmp_path: Path, value) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["layers"][1].__setitem__("bias", value))
    _load_error(ypath, ypath, "hidden2", "bias")


@pytest.mark.parametrize("value", ["per_neuron", "5", [1, 2]])
def test_load_bad_threshold_value(tmp_path: Path, value) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["layers"][0].__setitem__("threshold", value))
    _load_error(ypath, ypath, "hidden1", "threshold")


@pytest.mark.parametrize("kind", [[1], {"a": 1}, "conv"])
def test_load_unhashable_or_unknown_kind(tmp_path: Path, kind) -> None:
    ypath, _ = _saved(tmp_path)
    _edit_yaml(ypath, lambda d: d["layers"][0].__setitem__("kind", kind))
    _load_error(ypath, ypath, "hidden1", "kind")


def _weights(npath: Path) -> np.ndarray:
    with np.load(npath) as npz:
        return npz["hidden1.weights"].copy()


def test_load_uint64_weight_does_not_wrap(tmp_path: Path) -> None:
    ypath, npath = _saved(tmp_path)
    w = _weights(npath).astype(np.int64)
    w[w < 0] = 0
    w = w.astype(np.uint64)
    w[0, 0] = np.uint64(2**64 - 1)  # would become -1 (a valid 4-bit weight) after a cast
    _rewrite_npz(npath, hidden1__weights=w)
    e = _load_error(tmp_path / "demo", ypath, "hidden1", "weights")
    assert "18446744073709551615" in e.message


def test_layer_refuses_uint64_that_wraps() -> None:
    with pytest.raises(QNetError) as exc:
        _layer(weights=np.array([[1, 2, 2**64 - 1], [0, 0, 0]], dtype=np.uint64))
    _check(exc, "l1", "weights")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.5, 2.0**70])
def test_load_float_weights_refused_unless_integral(tmp_path: Path, bad: float) -> None:
    ypath, npath = _saved(tmp_path)
    w = _weights(npath).astype(np.float64)
    w[1, 1] = bad
    _rewrite_npz(npath, hidden1__weights=w)
    _load_error(tmp_path / "demo", ypath, "hidden1", "weights")


def test_load_integral_float_weights_accepted(tmp_path: Path) -> None:
    _, npath = _saved(tmp_path)
    w = _weights(npath)
    _rewrite_npz(npath, hidden1__weights=w.astype(np.float32))
    np.testing.assert_array_equal(load_qnet(tmp_path / "demo").layers[0].weights, w)


@pytest.mark.parametrize("dtype", ["U3", "S3", "complex128", bool])
def test_load_non_integer_dtypes_refused(tmp_path: Path, dtype) -> None:
    ypath, npath = _saved(tmp_path)
    _rewrite_npz(npath, hidden1__weights=_weights(npath).astype(dtype))
    _load_error(tmp_path / "demo", ypath, "hidden1", "weights")


def test_load_bias_and_threshold_arrays_checked_exactly(tmp_path: Path) -> None:
    ypath, npath = _saved(tmp_path)
    _rewrite_npz(npath, hidden2__bias=np.array([1, 2, 3, 2**64 - 1], dtype=np.uint64))
    _load_error(tmp_path / "demo", ypath, "hidden2", "bias")
    ypath, npath = _saved(tmp_path)
    _rewrite_npz(npath, hidden2__threshold=np.array([1, 2, np.nan, 4]))
    _load_error(tmp_path / "demo", ypath, "hidden2", "threshold")


class _Boom:
    """Unpickling this creates a file: a stand-in for code a malicious NPZ would run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_load_object_array_refused_without_unpickling(tmp_path: Path) -> None:
    _, npath = _saved(tmp_path)
    sentinel = tmp_path / "pwned"
    obj = np.empty((5, 6), dtype=object)
    obj[:] = 0
    obj[0, 0] = _Boom(str(sentinel))
    _rewrite_npz(npath, hidden1__weights=obj)
    e = _load_error(tmp_path / "demo", npath, "network", "npz")
    assert "object" in e.message
    assert not sentinel.exists()


@pytest.mark.parametrize("extra", ["hidden1.threshold", "hidden1.bias", "evil", "x.weights"])
def test_load_unused_npz_arrays_refused(tmp_path: Path, extra: str) -> None:
    ypath, npath = _saved(tmp_path)
    _rewrite_npz(npath, **{extra.replace(".", "__"): np.ones(5, dtype=np.int64)})
    e = _load_error(tmp_path / "demo", npath, "network", "npz")
    assert extra in e.message and "not used" in e.message


def test_load_npz_header_claiming_a_huge_array_refused(tmp_path: Path) -> None:
    """Only the header is read: a tiny archive cannot make the loader allocate terabytes."""
    import io
    import zipfile

    ypath, npath = _saved(tmp_path)
    with np.load(npath) as npz:
        arrays = {k: npz[k] for k in npz.files}
    with zipfile.ZipFile(npath, "w") as z:
        for k, v in arrays.items():
            buf = io.BytesIO()
            if k == "hidden1.weights":
                np.lib.format.write_array_header_1_0(
                    buf, {"descr": "<i8", "fortran_order": False, "shape": (10**6, 10**6)})
            else:
                np.save(buf, v)
            z.writestr(k + ".npy", buf.getvalue())
    e = _load_error(tmp_path / "demo", npath, "network", "npz")
    assert "limited" in e.message


def test_load_npz_member_that_is_not_an_array(tmp_path: Path) -> None:
    import zipfile

    _, npath = _saved(tmp_path)
    with zipfile.ZipFile(npath, "a") as z:
        z.writestr("notes.txt", b"hello")
    _load_error(tmp_path / "demo", npath, "network", "npz")


def test_saved_files_follow_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        ypath, npath = save_qnet(_net(), tmp_path / "demo")
    finally:
        os.umask(old)
    for p in (ypath, npath):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
