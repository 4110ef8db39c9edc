"""Benchmark of the design-space exploration (issue 9) on Fashion-MNIST.

Runs ``examples/dse/fashion_mlp.yaml`` (NSGA-II, 48 points over weight bits,
leak, time steps and tile size; a 784-128-10 LIF MLP trained one epoch on the
first 10,000 training images, the bit-exact QNet scored on the first 1,000 test
images) three times, each into a fresh folder under ``--out``:

1. with 1 local worker process, then with 2: wall times and the speed-up, and
   whether both runs produced the same points and the same figures; then on a
   Dask ``LocalCluster`` of 2 worker processes (``--no-dask`` skips it), which
   must give the same figures too;
2. the resume check: the study as a subprocess (``python -m spikeforge.dse``,
   2 workers) interrupted with SIGINT once ``--kill-after`` points are stored,
   then run again to the end; every point key must be stored exactly once and
   the final figures must equal the uninterrupted run's.

Prints what it measured, and the Pareto front::

    .venv/bin/python benchmarks/dse_fashion.py [--out out/bench-dse] [--kill-after 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spikeforge.dse import load_study, run_study

STUDY = Path(__file__).resolve().parents[1] / "examples" / "dse" / "fashion_mlp.yaml"


def _figures(rows: list[dict]) -> list[tuple]:
    """What must not depend on the executor: the points and their figures, in visit order."""
    skip = {"seconds", "cpu_seconds", "worker"}
    return [tuple((k, v) for k, v in r.items() if k not in skip) for r in rows]


def _stored_keys(path: Path) -> list[str]:
    if not path.exists():
        return []
    keys = []
    for line in path.read_text().splitlines():
        try:
            keys.append(json.loads(line)["key"])
        except ValueError:
            pass
    return keys


def _spin(n: int) -> float:
    x = 0
    for i in range(n):
        x += i * i
    return float(x > 0)


def parallel_headroom(n: int = 10_000_000) -> float:
    """Cores this machine gives two processes right now: 2 x (one spin) / (two spins at once).

    2.0 on an idle 2-core machine; 1.0 when the other jobs leave one core's worth.
    """
    import multiprocessing

    t0 = time.perf_counter()
    _spin(n)
    one = time.perf_counter() - t0
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_spin, [1, 1])  # start the workers before timing
        t0 = time.perf_counter()
        pool.map(_spin, [n, n])
        two = time.perf_counter() - t0
    return 2 * one / two


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def resume_check(out: Path, kill_after: int, console: Console) -> dict:
    """Interrupt a real ``spikeforge dse`` process midway, then run it again to the end."""
    folder = _fresh(out / "resume")
    cmd = [sys.executable, "-m", "spikeforge.dse", str(STUDY), "--out", str(folder),
           "--workers", "2"]
    t0 = time.perf_counter()
    # A shell's background job ignores SIGINT, and the child would inherit that: restore it.
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    points = folder / "points.jsonl"
    while proc.poll() is None and len(_stored_keys(points)) < kill_after:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # its own session: the study and its workers
    proc.wait(timeout=120)
    first = time.perf_counter() - t0
    before = _stored_keys(points)
    console.print(f"resume: interrupted after {first:.1f} s with {len(before)} points stored "
                  f"(exit status {proc.returncode})")
    if proc.returncode != 130:
        console.print("[red]the study was not interrupted (it finished first?)[/]")
    res = run_study(load_study(STUDY), folder, workers=2, console=console)
    after = _stored_keys(points)
    twice = [k for k, n in Counter(after).items() if n > 1]
    return {"stored_before": len(before), "evaluated_after": res.evaluated,
            "reused_after": res.reused, "stored_total": len(after), "duplicates": len(twice),
            "first_s": first, "second_s": res.wall_s, "rows": res.rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench-dse")
    ap.add_argument("--kill-after", type=int, default=20)
    ap.add_argument("--no-dask", action="store_true",
                    help="skip the run on a Dask LocalCluster (2 worker processes)")
    args = ap.parse_args()
    out = Path(args.out)
    console = Console(stderr=True)
    study = load_study(STUDY)
    runs = {}
    load = {}
    headroom = {}
    for workers in (1, 2):
        headroom[workers] = parallel_headroom()
        before = os.getloadavg()[0]
        res = run_study(study, _fresh(out / f"workers{workers}"), workers=workers,
                        console=console)
        runs[workers] = res
        load[workers] = (before, os.getloadavg()[0])
        console.print(f"{workers} worker(s): {res.evaluated} points in {res.wall_s:.1f} s "
                      f"(1-min load average {before:.2f} before, {load[workers][1]:.2f} after)")
    same = _figures(runs[1].rows) == _figures(runs[2].rows)
    dask = None
    if not args.no_dask:
        from distributed import LocalCluster

        before = os.getloadavg()[0]
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            dask = run_study(study, _fresh(out / "dask"), cluster=cluster.scheduler_address,
                             console=console)
        console.print(f"Dask LocalCluster (2 worker processes): {dask.evaluated} points in "
                      f"{dask.wall_s:.1f} s (load {before:.2f} before, "
                      f"{os.getloadavg()[0]:.2f} after)")
    rc = resume_check(out, args.kill_after, console)
    resumed_same = _figures(rc["rows"]) == _figures(runs[2].rows)

    rows = runs[2].rows
    status = Counter(r["status"] for r in rows)
    t = Table(title="DSE benchmark: examples/dse/fashion_mlp.yaml")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, "
                         f"Python {platform.python_version()}")
    t.add_row("points evaluated (ok / infeasible / failed)",
              f"{len(rows)} ({status['ok']} / {status['infeasible']} / {status['failed']})")
    t.add_row("wall time, 1 local worker (s)", f"{runs[1].wall_s:.1f}")
    t.add_row("wall time, 2 local workers (s)", f"{runs[2].wall_s:.1f}")
    t.add_row("speed-up", f"{runs[1].wall_s / runs[2].wall_s:.2f}x")
    t.add_row("parallel headroom before the run: cores two spinning processes got "
              "(1 worker; 2 workers)", f"{headroom[1]:.2f}; {headroom[2]:.2f}")
    t.add_row("1-min load average before/after (1 worker; 2 workers)",
              f"{load[1][0]:.2f}/{load[1][1]:.2f}; {load[2][0]:.2f}/{load[2][1]:.2f}")
    wall = {w: sum(r["seconds"] or 0.0 for r in runs[w].rows) for w in (1, 2)}
    cpu = {w: sum(r["cpu_seconds"] or 0.0 for r in runs[w].rows) for w in (1, 2)}
    t.add_row("sum of per-point wall seconds (1 worker; 2 workers)",
              f"{wall[1]:.1f}; {wall[2]:.1f}")
    t.add_row("sum of per-point CPU seconds (1 worker; 2 workers)",
              f"{cpu[1]:.1f}; {cpu[2]:.1f}")
    t.add_row("cores the points got: CPU s / study wall s (1 worker; 2 workers)",
              f"{cpu[1] / runs[1].wall_s:.2f}; {cpu[2] / runs[2].wall_s:.2f}")
    t.add_row("same points and figures, 1 vs 2 workers", str(same))
    if dask is not None:
        t.add_row("wall time, Dask LocalCluster, 2 worker processes (s)", f"{dask.wall_s:.1f}")
        t.add_row("same points and figures, Dask vs local",
                  str(_figures(dask.rows) == _figures(runs[2].rows)))
    t.add_row("resume: stored when interrupted", str(rc["stored_before"]))
    t.add_row("resume: evaluated / reused after restart",
              f"{rc['evaluated_after']} / {rc['reused_after']}")
    t.add_row("resume: points stored twice", str(rc["duplicates"]))
    t.add_row("resume: same figures as uninterrupted", str(resumed_same))
    t.add_row("Pareto front (accuracy, energy_hw_pj, cycles_mapped)",
              str(sum(r["pareto"] for r in rows)))
    console.print(t)
    front = Table(title="Pareto front (2 workers run)")
    cols = ["weight_bits", "leak_shifts", "timesteps", "tile_size", "accuracy", "energy_hw_pj",
            "cycles_mapped", "tiles"]
    for c in cols:
        front.add_column(c, justify="right")
    for r in sorted((r for r in rows if r["pareto"]), key=lambda r: -r["accuracy"]):
        front.add_row(*(f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    console.print(front)
    plots = sorted(str(p) for p in runs[2].files.values() if p.suffix == ".png")
    console.print(f"plots: {plots}")
    ok = same and resumed_same and rc["duplicates"] == 0 and len(rows) >= 40
    ok = ok and (dask is None or _figures(dask.rows) == _figures(runs[2].rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
