"""Design-space exploration: bad studies, the store, Pareto fronts, resume, local and Dask runs.

Every study here runs tiny points on scikit-learn's digits (an 8-hidden-neuron
network, one epoch on 400 images, two time steps), so a point costs well
under a second and the file stays fast.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from spikeforge.dse import (
    Goal,
    PointStore,
    load_study,
    pareto_mask,
    run_study,
    study_from_dict,
)
from spikeforge.dse.cli import main as dse_main
from spikeforge.errors import ConfigError, SpikeforgeError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "dse"

TINY_BASE = {"dataset": "digits", "train_samples": 400, "test_samples": 100, "hidden": [8],
             "epochs": 1, "batch_size": 64, "timesteps": 2, "copies": 1, "mesh_rows": 2,
             "mesh_cols": 2, "map_samples": 8}

TINY = {
    "name": "tiny",
    "base": TINY_BASE,
    "parameters": {"weight_bits": {"choices": [3, 6]}, "leak_shifts": {"choices": [[2], [3]]}},
    "objectives": {"accuracy": "max", "energy_hw_pj": "min"},
    "record": ["memory_bits", "dense_weight_bits", "cycles_mapped", "tiles"],
    "search": {"method": "grid"},
}


def _study(**changes):
    d = copy.deepcopy(TINY)
    d.update(changes)
    return study_from_dict(d, source="tiny.yaml")


def _figures(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "cpu_seconds", "worker")}
            for r in rows]


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


# ----------------------------------------------------------------------------- bad studies


@pytest.mark.parametrize(("change", "expect"), [
    ({"parameters": {"weight_bitz": {"low": 2, "high": 4}}},
     "field parameters.weight_bitz: unknown parameter"),
    ({"parameters": {"weight_bits": {"low": 8, "high": 2}}},
     "field parameters.weight_bits: empty range (low 8 > high 2)"),
    ({"parameters": {"timesteps": {"choices": []}}},
     "field parameters.timesteps: empty range (no choices)"),
    ({"parameters": {"weight_bits": {"low": 2, "high": 40}}},
     "field parameters.weight_bits: value 40 is refused"),
    ({"parameters": {"leak_shifts": {"low": 1, "high": 3}}},
     "field parameters.leak_shifts: a list setting takes choices"),
    ({"objectives": {"luts": "min"}},
     "field objectives.luts: luts cannot be computed here: needs synthesis"),
    ({"objectives": {"accuracy": "max", "fmax_mhz": "max"}},
     "field objectives.fmax_mhz: fmax_mhz cannot be computed here"),
    ({"objectives": {"joules": "min"}}, "field objectives.joules: unknown metric 'joules'"),
    ({"constraints": [{"metric": "accuracy"}]}, "field constraints.0: needs min or max"),
    ({"base": {"hidden": [8], "dataset": "imagenet"}}, "field base.dataset"),
    ({"search": {"method": "bayes"}}, "field search.method"),
    ({"parameters": {"threshold": {"low": 0.5, "high": 2.0}}},
     "field parameters.threshold: a float range has no grid"),
])
def test_bad_study_is_one_line_and_exit_2_with_nothing_evaluated(tmp_path, capsys, change,
                                                                expect):
    doc = copy.deepcopy(TINY) | change
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=None) as e:
        load_study(path)
    assert expect in str(e.value)
    out = tmp_path / "out"
    assert dse_main([str(path), "--out", str(out), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spikeforge: error: ") and expect in err[0]
    assert not out.exists(), "a refused study must not create its folder"


def test_missing_and_malformed_files(tmp_path, capsys):
    assert dse_main([str(tmp_path / "none.yaml"), "--out", str(tmp_path / "o")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [\n")
    assert dse_main([str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "does not exist" in err[0] and "not valid YAML" in err[1]


def test_rtl_objective_needs_its_simulator(monkeypatch):
    import spikeforge.sim.tools as tools

    monkeypatch.setattr(tools, "simulator_available", lambda name: "not installed (test)")
    with pytest.raises(ConfigError, match="objectives.cycles_rtl: cycles_rtl cannot be "
                                          "computed here: simulator icarus: not installed"):
        _study(objectives={"cycles_rtl": "min"})


def test_examples_load():
    names = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    assert len(names) >= 3
    for p in EXAMPLES.glob("*.yaml"):
        load_study(p)


# ----------------------------------------------------------------------------- pieces


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.integers(0, 6, size=(30, 3)).astype(float)
        goals = [Goal.MAX, Goal.MIN, Goal.MIN]
        mask = pareto_mask(v, goals)
        s = v * np.array([-1, 1, 1])
        for i in range(len(v)):
            dom = any((s[j] <= s[i]).all() and (s[j] < s[i]).any() for j in range(len(v)))
            assert mask[i] == (not dom)


def test_store_skips_a_torn_line_and_refuses_a_second_evaluation(tmp_path, capsys):
    path = tmp_path / "points.jsonl"
    st = PointStore(path, "fp")
    st.add("a", {"x": 1}, {"status": "ok", "metrics": {"accuracy": 0.5, "ee": float("inf")}})
    st.add("b", {"x": 2}, {"status": "ok", "metrics": {}})
    with pytest.raises(SpikeforgeError, match="evaluated twice"):
        st.add("a", {"x": 1}, {"status": "ok", "metrics": {}})
    with open(path, "a") as f:
        f.write('{"key": "c", "fingerp')  # killed mid-write
    before = path.read_bytes()
    capsys.readouterr()
    st2 = PointStore(path, "fp")
    assert [r["key"] for r in st2.records()] == ["a", "b"]
    assert st2.get("a")["metrics"] == {"accuracy": 0.5, "ee": None}
    assert path.read_bytes() == before, "loading must never cut or rewrite the store"
    err = capsys.readouterr().err.splitlines()
    assert err == [f"spikeforge: warning: {path}: line 3: not valid JSON (torn by an "
                   "interrupted write); skipped"]
    # the next point does not glue onto the torn line
    st2.add("d", {"x": 4}, {"status": "ok", "metrics": {}})
    assert path.read_bytes().startswith(before + b"\n{")
    assert [r["key"] for r in PointStore(path, "fp").records()] == ["a", "b", "d"]
    assert len(PointStore(path, "another study")) == 0


# ----------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dse") / "grid"
    return run_study(_study(), out, workers=0, console=_quiet())


def test_grid_evaluates_every_point_and_writes_results(grid_run):
    res = grid_run
    assert res.evaluated == 4 and res.reused == 0
    assert [r["status"] for r in res.rows] == ["ok"] * 4
    for r in res.rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["energy_hw_pj"] > 0 and r["cycles_mapped"] > 0
    # weight bits change the memory, not the training: same leak -> same float network
    assert {r["dense_weight_bits"] for r in res.rows} == {(64 * 8 + 8 * 10) * b
                                                          for b in (3, 6)}
    # memory_bits is hw.json's for the mapped layout: zero rows dropped, membranes and
    # line tables added
    assert all(r["memory_bits"] > 0 for r in res.rows)
    assert any(r["pareto"] for r in res.rows)
    for name in ("results.csv", "pareto.csv", "points.jsonl", "summary.json",
                 "accuracy_vs_energy_hw_pj.png", "accuracy_vs_cycles_mapped.png"):
        assert (res.out / name).is_file(), name
    lines = (res.out / "results.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("key,status,weight_bits,leak_shifts")
    # two trainings (one per leak), cached for the weight-bit siblings
    assert len(list((res.out / "cache" / "models").glob("*.pt"))) == 2


def test_rerun_reuses_everything(grid_run, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(grid_run.out, out)
    res = run_study(_study(), out, workers=0, console=_quiet())
    assert res.evaluated == 0 and res.reused == 4
    assert _figures(res.rows) == _figures(grid_run.rows)


def test_constraints_stop_points_before_the_expensive_stages(tmp_path):
    study = _study(constraints=[{"metric": "dense_weight_bits", "max": 2000},
                                {"metric": "accuracy", "min": 0.99}])
    res = run_study(study, tmp_path / "c", workers=0, console=_quiet())
    recs = {r["key"]: r for r in PointStore(tmp_path / "c" / "points.jsonl",
                                            study.fingerprint()).records()}
    by_bits = {r["weight_bits"]: r for r in res.rows}
    big = recs[by_bits[6]["key"]]
    assert big["status"] == "infeasible" and "dense_weight_bits" in big["message"]
    assert "train" not in big["seconds"], "a static constraint must stop before training"
    small = recs[by_bits[3]["key"]]
    assert small["status"] == "infeasible" and "accuracy" in small["message"]
    assert "mapping" not in small["seconds"] and "cycles_mapped" not in small["metrics"]
    assert not any(r["pareto"] for r in res.rows)


NSGA = {"method": "nsga2", "population": 4, "budget": 8}
NSGA_PARAMS = {"weight_bits": {"low": 2, "high": 8}, "leak_shifts": {"choices": [[1], [2], [3]]},
               "threshold": {"low": 0.5, "high": 2.0, "log": True}}


def test_interrupted_study_resumes_without_evaluating_a_point_twice(tmp_path):
    study = _study(parameters=NSGA_PARAMS, search=NSGA,
                   constraints=[{"metric": "accuracy", "min": 0.2}])
    whole = run_study(study, tmp_path / "whole", workers=0, console=_quiet())
    assert len(whole.rows) == 8 and whole.evaluated == 8

    seen = []

    def stop_after_three(rec):
        seen.append(rec["key"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    out = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_study(study, out, workers=0, console=_quiet(), on_point=stop_after_three)
    res = run_study(study, out, workers=0, console=_quiet(), on_point=lambda r: seen.append(
        r["key"]))
    assert res.reused == 3 and res.evaluated == 5
    assert len(seen) == len(set(seen)) == 8, "a point was evaluated twice"
    keys = [json.loads(line)["key"] for line in (out / "points.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 8
    # the replayed search made the same proposals and got the same figures
    assert _figures(res.rows) == _figures(whole.rows)


def test_dask_local_cluster_and_local_processes_give_the_same_results(grid_run, tmp_path):
    from distributed import LocalCluster

    # No Client here: the study connects its own to the address, as `--cluster` does.
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=None) as cluster:
        res = run_study(_study(), tmp_path / "dask", cluster=cluster.scheduler_address,
                        console=_quiet())
        assert res.executor == f"Dask {cluster.scheduler_address} (2 threads)"
        workers = {json.loads(line)["worker"] for line in
                   (tmp_path / "dask" / "points.jsonl").read_text().splitlines()}
    assert res.evaluated == 4
    assert _figures(res.rows) == _figures(grid_run.rows)
    assert workers
    procs = run_study(_study(), tmp_path / "procs", workers=2, console=_quiet())
    assert _figures(procs.rows) == _figures(grid_run.rows)


def test_unreachable_cluster_is_one_line(tmp_path, capsys, monkeypatch):
    import spikeforge.dse.execute as execute

    monkeypatch.setattr(execute, "CONNECT_TIMEOUT", "1s")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(TINY))
    rc = dse_main([str(path), "--out", str(tmp_path / "o"), "--cluster", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot reach the Dask scheduler" in err[0]
    assert not (tmp_path / "o").exists()


def test_rtl_cycles_through_icarus(tmp_path):
    from spikeforge.sim.tools import simulator_available

    why = simulator_available("icarus")
    if why:
        pytest.skip(f"icarus: {why}")
    study = _study(parameters={"weight_bits": {"choices": [4]}},
                   objectives={"accuracy": "max", "cycles_rtl": "min",
                               "cycles_generated": "min"},
                   constraints=[{"metric": "rtl_mismatches", "max": 0}],
                   base=TINY_BASE | {"rtl_samples": TINY_BASE["map_samples"]})
    res = run_study(study, tmp_path / "rtl", workers=0, console=_quiet())
    (row,) = res.rows
    assert row["status"] == "ok", row["message"]
    assert row["cycles_rtl"] > 0 and row["rtl_mismatches"] == 0
    # the RTL is built from the point's mapping, whose cycle model predicts it exactly
    assert row["cycles_rtl"] == pytest.approx(row["cycles_generated"])
    assert (tmp_path / "rtl" / "accuracy_vs_cycles_rtl.png").is_file()


@pytest.mark.slow
def test_examples_run(tmp_path):
    """The digits grid example through the CLI, and the Python API example (about 2 minutes)."""
    import subprocess
    import sys

    out = tmp_path / "grid"
    assert dse_main([str(EXAMPLES / "digits_grid.yaml"), "--out", str(out), "--workers", "2"]) == 0
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 13
    proc = subprocess.run([sys.executable, str(EXAMPLES / "api_example.py"), "--out",
                           str(tmp_path / "api")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Pareto front" in proc.stdout


def test_killed_process_resumes_without_evaluating_a_point_twice(tmp_path):
    """SIGKILL a real ``python -m spikeforge.dse`` midway, run it again: each point once."""
    import os
    import signal
    import subprocess
    import sys
    import time

    doc = copy.deepcopy(TINY) | {"parameters": NSGA_PARAMS,
                                 "search": {"method": "random", "budget": 12, "batch": 12}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    points = out / "points.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.dse", str(path), "--out", str(out),
                             "--workers", "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if points.exists() and len(points.read_bytes().splitlines()) >= 4:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the study ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = len(PointStore(points, "-").records()) + PointStore(points, "-").other
    assert 4 <= before < 12
    seen = []
    res = run_study(load_study(path), out, workers=0, console=_quiet(),
                    on_point=lambda r: seen.append(r["key"]))
    keys = [json.loads(line)["key"] for line in points.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 12, "a point was stored twice"
    assert res.reused == before and res.evaluated == len(seen) == 12 - before
