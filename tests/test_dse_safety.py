"""Design-space exploration under hostile input: bad studies and options, damaged stores, signals.

Every bad input is one line on stderr and exit status 2, with nothing written;
``points.jsonl`` is append-only (a damaged line is skipped with one warning, the
file is never cut or rewritten, every intact point is reused); SIGTERM and
SIGHUP stop the study and its worker processes (exit 143 / 129) and a resumed
study reuses every finished point.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from spikeforge.cli import main as cli_main
from spikeforge.dse import PointStore, load_study, run_study, study_from_dict
from spikeforge.errors import SpikeforgeError
from spikeforge.staging import MARKER, write_marker

TINY_BASE = {"dataset": "digits", "train_samples": 400, "test_samples": 100, "hidden": [8],
             "epochs": 1, "batch_size": 64, "timesteps": 2, "copies": 1, "mesh_rows": 2,
             "mesh_cols": 2, "map_samples": 8}

TINY = {
    "name": "tiny",
    "base": TINY_BASE,
    "parameters": {"weight_bits": {"choices": [3, 6]}, "leak_shifts": {"choices": [[2], [3]]}},
    "objectives": {"accuracy": "max", "energy_hw_pj": "min"},
    "search": {"method": "grid"},
}


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


def _write(path: Path, doc) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("spikeforge: error: ")
    return lines[0]


def _strict(name):
    raise AssertionError(f"{name} written into JSON")


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


# ----------------------------------------------------------------------------- bad studies


def _with(**changes):
    doc = copy.deepcopy(TINY)
    for dotted, value in changes.items():
        d = doc
        *parents, last = dotted.split("__")
        for k in parents:
            d = d.setdefault(k, {})
        d[last] = value
    return doc


BIG_GRID = {n: {"choices": list(range(1, 11))} for n in ("timesteps", "epochs", "copies")} | {
    "weight_bits": {"low": 2, "high": 11}, "membrane_bits": {"low": 16, "high": 25},
    "hop_cycles": {"low": 0, "high": 9}}


@pytest.mark.parametrize(("doc", "expect"), [
    (_with(seed=-1), "field seed: Input should be greater than or equal to 0"),
    (_with(seed=2**64), "field seed: Input should be less than or equal to"),
    (_with(seed="zero"), "field seed"),
    (_with(base__seed=2**64), "field base.seed"),
    (_with(constraints=[{"metric": "accuracy", "min": float("nan")}]),
     "field constraints.0.min: Input should be a finite number"),
    (_with(constraints=[{"metric": "accuracy", "max": float("inf")}]),
     "field constraints.0.max: Input should be a finite number"),
    (_with(parameters={"weight_bits": {"low": float("nan"), "high": 4}}),
     "field parameters.weight_bits.low: Input should be a finite number"),
    (_with(parameters={"threshold": {"low": 0.5, "high": float("inf")}},
           search={"method": "random"}),
     "field parameters.threshold.high: Input should be a finite number"),
    (_with(parameters={"timesteps": {"choices": list(range(1, 1002))}}),
     "field parameters.timesteps.choices: List should have at most 1000 items"),
    (_with(parameters=BIG_GRID),
     "field parameters: the grid has 1,000,000 points, more than the limit of 100,000"),
    (_with(parameters={"seed": {"low": 0, "high": 1e18}, "hop_cycles": {"low": 0, "high": 999},
                       "epochs": {"low": 1, "high": 1000}}),
     "field parameters: the grid has more than 10^12 points"),
    (_with(search={"method": "random", "budget": 10**7}), "field search.budget"),
    (_with(search={"method": "nsga2", "population": 10**6}), "field search.population"),
    (_with(name="n" * 200), "field name"),
    (_with(base__hidden=[8] * 17), "field base.hidden"),
    (_with(base__threshold=float("inf")), "field base.threshold"),
    (_with(base__lr=float("nan")), "field base.lr"),
    (_with(constraints=[{"metric": "accuracy", "min": 0.1}] * 101), "field constraints"),
])
def test_bad_study_is_one_line_exit_2_nothing_written(tmp_path, capsys, doc, expect):
    path = _write(tmp_path / "study.yaml", doc)
    out = tmp_path / "out"
    t0 = time.perf_counter()
    assert cli_main(["dse", str(path), "--out", str(out), "--workers", "0"]) == 2
    assert time.perf_counter() - t0 < 30, "refused before any work (a grid is counted, not listed)"
    line = _one_error(capsys)
    assert line.startswith(f"spikeforge: error: {path}: "), line
    assert expect in line, line
    assert len(line) < 300
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["study.yaml"]


def test_grid_size_is_counted_not_listed():
    big = copy.deepcopy(TINY) | {"parameters": {"seed": {"low": 0, "high": 2**62}}}
    with pytest.raises(SpikeforgeError, match="more than 10.12 points"):
        study_from_dict(big, "big.yaml")
    ok = copy.deepcopy(TINY) | {"parameters": {"weight_bits": {"low": 2, "high": 16},
                                               "seed": {"low": 0, "high": 5000}}}
    assert len(study_from_dict(ok, "ok.yaml").grid()) == 15 * 5001  # under the limit


@pytest.mark.parametrize(("args", "expect"), [
    (["--workers", "257"], "--workers: must be 0..256, not 257"),
    (["--workers", "-1"], "--workers"),
    (["--workers", "many"], "--workers"),
    (["--cluster", "http://127.0.0.1:8786"], "--cluster: a scheduler address tcp://HOST:PORT"),
    (["--cluster", "tcp://127.0.0.1"], "--cluster: a scheduler address"),
    (["--cluster", "tcp://127.0.0.1:0"], "--cluster: port 0 is not in 1..65535"),
    (["--cluster", "tcp://127.0.0.1:99999"], "--cluster: port 99999 is not in 1..65535"),
    (["--cluster", "tcp://-bad-.host:8786"], "is not a host name or address"),
    (["--cluster", "tcp://[zz::1]:8786"], "--cluster"),
    (["--cluster", "tcp://h:1" + "1" * 500], "--cluster"),
])
def test_bad_option_is_one_line_exit_2_nothing_written(tmp_path, capsys, args, expect):
    path = _write(tmp_path / "study.yaml", TINY)
    out = tmp_path / "out"
    assert cli_main(["dse", str(path), "--out", str(out), *args]) == 2
    line = _one_error(capsys)
    assert expect in line and len(line) < 300, line
    assert not out.exists()


def test_api_refuses_worker_count_and_address_before_writing(tmp_path):
    study = study_from_dict(TINY, "tiny.yaml")
    with pytest.raises(SpikeforgeError, match="--workers: must be 0..256"):
        run_study(study, tmp_path / "a", workers=1000, console=_quiet())
    with pytest.raises(SpikeforgeError, match="--cluster 'udp://x:1': a scheduler address"):
        run_study(study, tmp_path / "b", cluster="udp://x:1", console=_quiet())
    assert os.listdir(tmp_path) == []


def test_unusable_out_is_refused_and_left_alone(tmp_path, capsys):
    study = _write(tmp_path / "study.yaml", TINY)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep")
    before = _tree(tmp_path)
    for out, expect in ((mine, "folder is not empty and was not made by spikeforge"),
                        (a_file, "exists and is not a folder"),
                        (a_file / "sub", "is a file, not a folder"),
                        (tmp_path, "holds the input")):
        assert cli_main(["dse", str(study), "--out", str(out), "--workers", "0"]) == 2
        assert expect in _one_error(capsys)
    assert _tree(tmp_path) == before
    # a spikeforge folder holding a file of a study's name that spikeforge did not write
    made = tmp_path / "made"
    made.mkdir()
    write_marker(made, ["model.pt"])
    (made / "results.csv").write_text("mine")
    before = _tree(tmp_path)
    assert cli_main(["dse", str(study), "--out", str(made), "--workers", "0"]) == 2
    assert "results.csv there was not written by spikeforge" in _one_error(capsys)
    assert _tree(tmp_path) == before


def test_a_second_study_in_the_same_folder_is_refused(tmp_path, capsys):
    study = _write(tmp_path / "study.yaml", TINY)
    out = tmp_path / "out"
    out.mkdir()
    write_marker(out, [])
    with open(out / ".spikeforge.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert cli_main(["dse", str(study), "--out", str(out), "--workers", "0"]) == 2
    assert "another study is running in this folder" in _one_error(capsys)
    assert set(os.listdir(out)) == {MARKER, ".spikeforge.lock"}  # the other study's lock


def test_points_file_that_is_not_a_file_is_one_line(tmp_path, capsys):
    study = _write(tmp_path / "study.yaml", TINY)
    out = tmp_path / "out"
    (out / "points.jsonl").mkdir(parents=True)
    write_marker(out, ["points.jsonl"])
    assert cli_main(["dse", str(study), "--out", str(out), "--workers", "0"]) == 2
    assert "points.jsonl: is not a regular file" in _one_error(capsys)
    assert sorted(os.listdir(out)) == [MARKER, "points.jsonl"]


def test_python_m_spikeforge_dse_uses_the_same_handler(tmp_path):
    path = _write(tmp_path / "study.yaml", _with(seed=-1))
    for args, expect in (([], "field seed"), (["--workers", "300"], "--workers")):
        proc = subprocess.run([sys.executable, "-m", "spikeforge.dse", str(path), "--out",
                               str(tmp_path / "out"), *args], capture_output=True, text=True,
                              timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("spikeforge: error: ") and expect in lines[0]
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- the store


def _record(i: int) -> dict:
    return {"status": ["ok", "infeasible", "failed"][i % 3], "message": f"point {i}",
            "metrics": {"accuracy": i / 50, "energy_hw_pj": 1000.0 + i, "tiles": None},
            "seconds": {"total": 0.5, "train": 0.1}, "worker": "host:1"}


def _store(path: Path, n: int = 50) -> dict[str, dict]:
    st = PointStore(path, "fp")
    for i in range(n):
        st.add(f"k{i:03d}", {"weight_bits": i, "leak_shifts": [2]}, _record(i))
    return {r["key"]: r for r in st.records()}


def test_damaged_bytes_skip_only_their_lines_and_never_touch_the_file(tmp_path, capsys):
    path = tmp_path / "points.jsonl"
    good = _store(path)
    clean = path.read_bytes()
    spans, start = [], 0  # each line's bytes with its newline, and the newline before it
    for line in clean.split(b"\n")[:-1]:
        spans.append((max(0, start - 1), start + len(line)))
        start += len(line) + 1
    keys = list(good)
    rng = np.random.default_rng(12345)
    for trial in range(40):
        data = bytearray(clean)
        where = rng.choice(len(data), size=int(rng.integers(1, 8)), replace=False)
        for w in where:
            data[w] = (data[w] + int(rng.integers(1, 256))) % 256  # always a different byte
        if trial % 4 == 3:  # and a torn last line
            data = data[:-int(rng.integers(2, 40))]
        path.write_bytes(bytes(data))
        stamp = os.stat(path).st_mtime_ns
        capsys.readouterr()
        st = PointStore(path, "fp")
        assert path.read_bytes() == bytes(data) and os.stat(path).st_mtime_ns == stamp, \
            "loading must never modify the store"
        intact = {keys[i] for i, (a, b) in enumerate(spans)
                  if not any(a <= w <= b for w in where) and b < len(data)}
        loaded = {r["key"]: r for r in st.records()}
        assert intact <= set(loaded), f"trial {trial}: an intact point was lost"
        for k, r in loaded.items():  # a damaged line never passes for a point
            assert r == good[k], f"trial {trial}: {k} loaded with damaged contents"
        warnings = capsys.readouterr().err.strip().splitlines()
        assert len(warnings) == len(st.skipped)
        for n, w in zip(st.skipped, warnings):
            assert w.startswith(f"spikeforge: warning: {path}: line {n}: ")
            assert w.endswith("; skipped")
        # the next append stands on its own line, even after a torn one
        st.add("new", {"weight_bits": 99}, _record(99))
        assert path.read_bytes().startswith(bytes(data))
        again = PointStore(path, "fp")
        assert "new" in again and set(loaded) | {"new"} == {r["key"] for r in again.records()}


@pytest.mark.parametrize("bad", [
    b"\xff\xfe\x00garbage",
    b"not json at all",
    b"[1, 2]",
    b"null",
    b'"a string"',
    b"{}",
    b'{"fingerprint": "fp", "settings": {}, "status": "ok"}',
    b'{"key": 7, "fingerprint": "fp", "settings": {}, "status": "ok"}',
    b'{"key": "x", "fingerprint": "fp", "settings": [], "status": "ok"}',
    b'{"key": "x", "fingerprint": "fp", "settings": {}, "status": "great"}',
    b'{"key": "x", "fingerprint": "fp", "settings": {}, "status": "ok", "metrics": "high"}',
    b'{"key": "x", "fingerprint": "fp", "settings": {}, "status": "ok", '
    b'"metrics": {"accuracy": NaN}}',
    b'{"key": "x", "fingerprint": "fp", "settings": {}, "status": "ok", '
    b'"metrics": {"accuracy": true}}',
    b'{"key": "x", "fingerprint": "fp", "settings": {}, "status": "ok", "sum": "0000"}',
    b"[" * 100_000,
])
def test_malformed_line_is_one_warning_and_the_rest_is_reused(tmp_path, capsys, bad):
    path = tmp_path / "points.jsonl"
    good = _store(path, 4)
    lines = path.read_bytes().split(b"\n")[:-1]
    data = b"\n".join([*lines[:2], bad, *lines[2:]]) + b"\n"
    path.write_bytes(data)
    capsys.readouterr()
    st = PointStore(path, "fp")
    assert {r["key"]: r for r in st.records()} == good
    assert path.read_bytes() == data
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"spikeforge: warning: {path}: line 3: ")
    assert err[0].endswith("; skipped") and len(err[0]) < 300


def test_many_damaged_lines_are_at_most_21_warning_lines(tmp_path, capsys):
    path = tmp_path / "points.jsonl"
    path.write_bytes(b"junk\n" * 500)
    capsys.readouterr()
    st = PointStore(path, "fp")
    assert len(st) == 0 and len(st.skipped) == 500
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 21 and err[-1].endswith("480 more unusable lines skipped")


def test_study_resumes_past_a_damaged_line_and_writes_its_files_atomically(tmp_path, capsys):
    study = study_from_dict(TINY, "tiny.yaml")
    out = tmp_path / "out"
    first = run_study(study, out, workers=0, console=_quiet())
    assert first.evaluated == 4
    points = out / "points.jsonl"
    lines = points.read_bytes().split(b"\n")
    lines[1] = lines[1][:20] + b"\x00\xff" + lines[1][22:]
    damaged = b"\n".join(lines)
    points.write_bytes(damaged)
    capsys.readouterr()
    res = run_study(study, out, workers=0, console=_quiet())
    assert res.reused == 3 and res.evaluated == 1
    assert points.read_bytes().startswith(damaged), "the store is only ever appended to"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"spikeforge: warning: {out.resolve() / 'points.jsonl'}: line 2: "
                   "not UTF-8 (damaged bytes); skipped"]
    summary = json.loads((out / "summary.json").read_text(), parse_constant=_strict)
    assert summary["skipped_lines"] == [2]
    recorded = json.loads((out / MARKER).read_text())["outputs"]
    names = sorted(os.listdir(out))
    assert set(names) - {MARKER} <= set(recorded), "every output is recorded in the marker"
    assert not [p for p in out.rglob(".*") if p.name != MARKER], "no temporary files left"
    json.loads((out / "study.json").read_text())


# ----------------------------------------------------------------------------- signals

SIGNAL_STUDY = {
    "name": "sig",
    "base": {"dataset": "digits", "train_samples": 800, "test_samples": 100, "hidden": [8],
             "epochs": 2, "batch_size": 64, "timesteps": 2},
    "parameters": {"threshold": {"low": 0.5, "high": 2.0}},
    "objectives": {"accuracy": "max"},
    "search": {"method": "random", "budget": 24, "batch": 24},
}


def _alive(procs) -> list:
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_signal_stops_study_and_workers_and_resume_reuses_every_point(tmp_path, sig, status):
    psutil = pytest.importorskip("psutil")
    path = _write(tmp_path / "study.yaml", SIGNAL_STUDY)
    out = tmp_path / "out"
    points = out / "points.jsonl"
    log = open(tmp_path / "stderr.txt", "w+b")  # noqa: SIM115 (a file: a pipe could fill up)
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.cli", "dse", str(path), "--out",
                             str(out), "--workers", "2"], stdout=subprocess.DEVNULL,
                            stderr=log, start_new_session=True)
    children: set = set()
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                children |= set(psutil.Process(proc.pid).children(recursive=True))
            except psutil.NoSuchProcess:
                break
            if points.exists() and points.stat().st_size > 0:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the study ended before the signal could be sent"
        children |= set(psutil.Process(proc.pid).children(recursive=True))
        assert len(children) >= 2, "two worker processes"
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.seek(0)
        err = log.read().decode(errors="replace")
        log.close()
    assert rc == status, err[-2000:]
    assert "Traceback" not in err and err.rstrip().endswith("spikeforge: interrupted")
    deadline = time.monotonic() + 15
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _alive(children)
    for p in left:
        p.kill()
    assert not left, f"worker processes outlived the study: {left}"
    # nothing half-written: only recorded outputs, no staging or temporary files, no lock
    recorded = set(json.loads((out / MARKER).read_text())["outputs"])
    assert set(os.listdir(out)) - {MARKER} <= recorded
    assert not [p.name for p in out.iterdir() if p.name.startswith(".") and p.name != MARKER]
    stored = [json.loads(line)["key"] for line in points.read_text().splitlines()]
    assert 1 <= len(stored) < 24 and len(set(stored)) == len(stored)
    # the resumed study reuses every finished point and evaluates only the rest
    seen = []
    res = run_study(load_study(path), out, workers=0, console=_quiet(),
                    on_point=lambda r: seen.append(r["key"]))
    assert res.reused == len(stored) and res.evaluated == len(seen) == 24 - len(stored)
    assert not set(seen) & set(stored)
    keys = [json.loads(line)["key"] for line in points.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 24
    assert not [p for p in out.rglob(".*") if p.name != MARKER]
