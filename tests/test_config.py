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

# (id, YAML text, the field the error must name; None: a file-level error)
BAD = [
    ("unknown-top-level-key", "bogus: 1\n", "bogus"),
    ("unknown-nested-key", "model:\n  hiden: [16]\n", "model.hiden"),
    ("wrong-type", 'train:\n  epochs: "x"\n', "train.epochs"),
    ("hidden-zero", "model:\n  hidden: [0]\n", "model.hidden.0"),
    ("hidden-second-too-big", "model:\n  hidden: [16, 5000]\n", "model.hidden.1"),
    ("hidden-empty", "model:\n  hidden: []\n", "model.hidden"),
    ("weight-bits-1", "quantize:\n  weight_bits: 1\n", "quantize.weight_bits"),
    ("timesteps-0", "encoding:\n  timesteps: 0\n", "encoding.timesteps"),
    ("test-fraction-1.5", "data:\n  test_fraction: 1.5\n", "data.test_fraction"),
    ("duplicate-leak-shifts", "model:\n  leak_shifts: [3, 3]\n", "model.leak_shifts"),
    ("duplicate-readout-shifts", "model:\n  readout_leak_shifts: [2, 2]\n",
     "model.readout_leak_shifts"),
    ("section-not-a-mapping", "model: 5\n", "model"),
    ("bad-enum", "model:\n  reset: sometimes\n", "model.reset"),
    ("bad-simulator", "rtl:\n  simulator: modelsim\n", "rtl.simulator"),
    ("bad-name", "name: 3abc\n", "name"),
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


def test_defaults_are_valid():
    cfg = RunConfig()
    assert cfg.model.hidden == [128]
    assert cfg.encoding.timesteps == 6
    assert cfg.rtl.samples == "all"


def test_example_config_loads():
    cfg = load_config(ROOT / "examples" / "digits.yaml")
    assert cfg.name == "digits"
    assert cfg.model.hidden == [128]
    assert cfg.model.leak_shifts == [3, 4]
    assert cfg.model.surrogate.value == "fast_sigmoid"
    assert cfg.quantize.weight_bits == 8
    assert cfg.rtl.simulator == "icarus"


def test_empty_file_gives_defaults(tmp_path):
    assert load_config(_write(tmp_path, "")) == RunConfig()


def test_partial_config_keeps_other_defaults(tmp_path):
    cfg = load_config(_write(tmp_path, "model:\n  hidden: [16]\nrtl:\n  samples: 12\n"))
    assert cfg.model.hidden == [16]
    assert cfg.model.leak_shifts == [3, 4]
    assert cfg.rtl.samples == 12
    assert cfg.train == RunConfig().train


def test_config_is_frozen(tmp_path):
    cfg = load_config(_write(tmp_path, ""))
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
    p = _write(tmp_path, "model:\n  hiden: [16]\n")
    with pytest.raises(ConfigError, match=r"field model\.hiden: unknown key$"):
        load_config(p)


def test_out_of_range_message_shows_the_value(tmp_path):
    p = _write(tmp_path, "data:\n  test_fraction: 1.5\n")
    with pytest.raises(ConfigError, match=r"\(got 1\.5\)"):
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
    p = _write(tmp_path, "encoding:\n  timesteps: 0\n")
    assert main(["run", str(p), "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err)
    assert (out / "keep.txt").read_text() == "old run"
    assert sorted(x.name for x in out.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob(".out.*"))


def test_union_field_is_named_plainly(tmp_path):
    p = _write(tmp_path, "rtl:\n  samples: 0\n")
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
