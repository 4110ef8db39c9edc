"""The safety foundations every command stands on.

* ``spikeforge.yamlio``: one bounded YAML reader (bombs, depth, duplicates, bytes).
* ``spikeforge.staging``: output folders that never touch a user's files.
* ``spikeforge.cliutil`` / ``spikeforge.cli``: one-line argparse errors, checked numbers.
* ``spikeforge.jsonio``: strict JSON.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikeforge import jsonio
from spikeforge.cli import main
from spikeforge.cliutil import MAX_SEED, seed
from spikeforge.errors import ConfigError, SpikeforgeError
from spikeforge.staging import MARKER, check_out, claim_out, release_out, staged_output
from spikeforge.yamlio import MAX_DEPTH, parse_yaml, read_yaml, short


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    """Every entry under ``root``: content (or link target) and mode."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                what = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                what = "dir"
            else:
                what = p.read_bytes().hex()
            snap[str(p.relative_to(root))] = (what, stat.S_IMODE(st.st_mode))
    return snap


# ----------------------------------------------------------------------------- YAML


def _bomb(levels: int, width: int = 9) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        (_bomb(9), "aliases expand"),
        ("a: " + "[" * 20000 + "]" * 20000 + "\n", "nesting deeper"),
        ("a: " + "{b: " * (MAX_DEPTH + 2) + "1" + "}" * (MAX_DEPTH + 2) + "\n", "nesting deeper"),
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a' (line 3)"),
        ("a:\n  b: 1\n  b: 1\n", "duplicate key 'b'"),
        ("a: [1, 2\n", "is not valid YAML"),
        ("a: !!python/object/apply:os.system ['true']\n", "is not valid YAML"),
        ("\tkey: 1\n", "is not valid YAML"),
        ("a: 1\x00\n", "is not valid YAML"),
        ("a: \x07\n", "is not valid YAML"),
    ],
    ids=["billion-laughs", "deep-20000", "deep-limit", "dup-top", "dup-nested", "unclosed",
         "python-tag", "tab", "nul", "bell"],
)
def test_bad_yaml_one_error(tmp_path, text, expect):
    p = tmp_path / "x.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as ei:
        read_yaml(p)
    line = str(ei.value)
    assert expect in line and str(p) in line
    assert "\n" not in line and len(line) < 300


def test_non_utf8_in_a_comment(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_bytes(b"a: 1\n# caf\xe9\nb: 2\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xe9 at line 2\)"):
        read_yaml(p)


def test_size_cap(tmp_path, monkeypatch):
    from spikeforge import yamlio

    monkeypatch.setattr(yamlio, "MAX_BYTES", 100)
    p = tmp_path / "x.yaml"
    p.write_text("a: " + "1" * 200 + "\n")
    with pytest.raises(ConfigError, match="limited to 100"):
        read_yaml(p)


def test_missing_and_folder(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_yaml(tmp_path)


def test_small_aliases_still_work():
    doc = parse_yaml("base: &b {x: 1}\nuse: *b\nlist: [*b, *b]\n", "t")
    assert doc["use"] == {"x": 1} and doc["list"] == [{"x": 1}, {"x": 1}]
    assert parse_yaml("d: 2026-12-07\n", "t") == {"d": "2026-12-07"}  # no datetimes


def test_short_quotes_at_most_80_chars():
    shared = ["lol"] * 9
    for _ in range(8):
        shared = [shared] * 9  # 9^9 leaves, shared: repr would never end
    assert len(short(shared)) <= 80
    assert len(short("x" * 10_000)) == 80
    assert short(3) == "3"


def test_config_error_quotes_a_bomb_briefly(tmp_path, capsys):
    levels = ["&a0 [" + ", ".join(["1"] * 9) + "]"]
    for i in range(1, 6):  # 9^6 values: under the alias cap, so pydantic sees it
        levels.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    cfg = tmp_path / "run.yaml"
    cfg.write_text("seed: [" + ", ".join(levels) + "]\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "field seed" in err and len(err) < 300


# ----------------------------------------------------------------------------- --out


def _user_folder(tmp_path: Path) -> Path:
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("years of work")
    (d / "sub").mkdir()
    (d / "sub" / "data.csv").write_text("1,2,3")
    return d


def test_user_folder_refused_and_untouched(tmp_path):
    d = _user_folder(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(SpikeforgeError, match="not made by spikeforge"):
        with staged_output(d) as stage:
            (stage / "hw.json").write_text("{}")
    assert _snapshot(tmp_path) == before


def test_symlink_to_user_folder_refused(tmp_path):
    d = _user_folder(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(d)
    before = _snapshot(tmp_path)
    with pytest.raises(SpikeforgeError, match="not made by spikeforge"):
        check_out(link)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["is", "contains", "inside"])
def test_out_and_inputs_overlap_refused(tmp_path, where):
    d = tmp_path / "proj"
    d.mkdir()
    qnet = d / "net.qnet.yaml"
    qnet.write_text("x")
    out = {"is": qnet, "contains": d, "inside": qnet / "deeper"}[where]
    inputs = [qnet] if where != "inside" else [d]
    if where == "inside":
        out = d / "o"
        inputs = [d]
    before = _snapshot(tmp_path)
    with pytest.raises(SpikeforgeError, match="input"):
        check_out(out, inputs)
    assert _snapshot(tmp_path) == before


def test_out_under_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(SpikeforgeError, match="is a file"):
        check_out(f / "a" / "b")
    with pytest.raises(SpikeforgeError, match="not a folder"):
        check_out(f)


def test_new_folder_written_with_marker_and_umask_modes(tmp_path):
    out = tmp_path / "a" / "b"
    old = os.umask(0o022)
    try:
        with staged_output(out) as stage:
            (stage / "x.txt").write_text("1")
            (stage / "sub").mkdir()
            (stage / "sub" / "y.txt").write_text("2")
    finally:
        os.umask(old)
    assert sorted(os.listdir(out)) == sorted([MARKER, "x.txt", "sub"])
    assert json.loads((out / MARKER).read_text())["outputs"] == ["sub", "x.txt"]
    assert stat.S_IMODE(os.stat(out / "x.txt").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(out / "sub").st_mode) == 0o755


def test_rewrite_replaces_only_own_outputs(tmp_path):
    out = tmp_path / "o"
    with staged_output(out) as stage:
        (stage / "a.txt").write_text("run 1")
        (stage / "old.txt").write_text("run 1 only")
    (out / "notes.md").write_text("the user's")
    with staged_output(out) as stage:
        (stage / "a.txt").write_text("run 2")
    assert (out / "a.txt").read_text() == "run 2"
    assert not (out / "old.txt").exists()  # spikeforge's own, from run 1
    assert (out / "notes.md").read_text() == "the user's"


def test_user_file_with_an_output_name_is_not_overwritten(tmp_path):
    out = tmp_path / "o"
    with staged_output(out) as stage:
        (stage / "a.txt").write_text("run 1")
    (out / "b.txt").write_text("the user's")
    before = _snapshot(tmp_path)
    with pytest.raises(SpikeforgeError, match="b.txt"):
        with staged_output(out) as stage:
            (stage / "a.txt").write_text("run 2")
            (stage / "b.txt").write_text("run 2")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("exc", [SpikeforgeError("bad"), KeyboardInterrupt(), RuntimeError()])
def test_failure_leaves_nothing(tmp_path, exc):
    before = _snapshot(tmp_path)
    with pytest.raises(type(exc)):
        with staged_output(tmp_path / "new" / "deeper") as stage:
            (stage / "half.txt").write_text("half")
            raise exc
    assert _snapshot(tmp_path) == before
    out = tmp_path / "o"
    with staged_output(out) as stage:
        (stage / "a.txt").write_text("1")
    before = _snapshot(tmp_path)
    with pytest.raises(type(exc)):
        with staged_output(out) as stage:
            (stage / "a.txt").write_text("2")
            raise exc
    assert _snapshot(tmp_path) == before


def test_claim_and_release(tmp_path):
    out = tmp_path / "t"
    path, made = claim_out(out, names=["config.yaml"])
    assert (path / MARKER).is_file() and made == [path]
    release_out(path, made)
    assert not out.exists()
    d = _user_folder(tmp_path)
    with pytest.raises(SpikeforgeError):
        claim_out(d)


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    "argv",
    [
        ["nosuchcommand"],
        ["rtl"],
        ["rtl", "x.qnet.yaml"],
        ["rtl", "x.qnet.yaml", "--out", "o", "--bogus"],
        ["map", "x.qnet.yaml", "--hw", "h.yaml", "--out", "o", "--seed", "-1"],
        ["map", "x.qnet.yaml", "--hw", "h.yaml", "--out", "o", "--seed", str(2**64)],
        [],
    ],
)
def test_argparse_errors_one_line(tmp_path, argv, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("spikeforge: error: ")
    assert os.listdir(tmp_path) == []


def test_version_and_module(tmp_path):
    r = subprocess.run([sys.executable, "-m", "spikeforge", "--version"], capture_output=True,
                       text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("spikeforge ")


def test_seed_type_edges():
    assert seed("0") == 0 and seed(str(MAX_SEED)) == MAX_SEED
    for bad in ("-1", str(2**64), "1.5", "nan", ""):
        with pytest.raises(Exception):  # noqa: B017  (argparse.ArgumentTypeError)
            seed(bad)


def test_strict_json():
    text = jsonio.dumps({"a": float("nan"), "b": [np.float64("inf"), np.int64(3)],
                         "c": np.arange(2)})
    assert json.loads(text) == {"a": None, "b": [None, 3], "c": [0, 1]}
    assert "NaN" not in text and "Infinity" not in text
