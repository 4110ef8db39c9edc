"""Run a study: propose, evaluate the points not stored yet, tell, until the budget is spent.

::

    strategy.propose(batch)          parameter values -> full settings -> point key
    store lookup                     stored points are reused, never evaluated again
    executor                         the rest, the first point of each training group
                                     alone and its siblings after it (one training each)
    store.add                        each record the moment it arrives (fsynced)
    strategy.tell(batch in order)    so the next batch does not depend on timing

The budget counts distinct points the search visits. Interrupting a study
(Ctrl-C, a kill, a lost cluster) loses only the points in flight; running it
again replays the search from the store, which reproduces the same proposals
and evaluates only what is missing.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spikeforge.errors import SpikeforgeError
from spikeforge.jsonio import dumps
from spikeforge.staging import _recorded, check_out, claim_out, release_out

from .execute import MAX_WORKERS, Executor, make_executor
from .metrics import Goal
from .results import atomic_write, plot_names, plot_pairs, result_rows, write_csv
from .search import make_strategy
from .store import PointStore
from .study import TRAIN_FIELDS, Method, Study, settings_key

__all__ = ["DEFAULT_BUDGET", "StudyResult", "run_study"]

DEFAULT_BUDGET = 50  # random and nsga2 without search.budget
LOCK_NAME = ".spikeforge.lock"  # held while a study writes into its folder


@dataclass
class StudyResult:
    """What :func:`run_study` returns.

    Attributes
    ----------
    out : Path
        The study folder.
    rows : list of dict
        One row per visited point (parameters, metrics, status, ``pareto``), in visit order.
    evaluated : int
        Points evaluated by this run.
    reused : int
        Points taken from the store.
    wall_s : float
        Wall time of this run.
    files : dict
        Paths of the files written.
    """

    out: Path
    rows: list[dict[str, Any]]
    evaluated: int
    reused: int
    wall_s: float
    executor: str
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def pareto(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["pareto"]]


def _budget(study: Study, strategy) -> int:
    if study.search.budget is not None:
        return study.search.budget
    return strategy.size if study.search.method is Method.GRID else DEFAULT_BUDGET


class _Run:
    """State of one run: store, executor, progress, counters."""

    def __init__(self, study: Study, out: Path, ex: Executor, progress: Progress,
                 on_point: Callable[[dict[str, Any]], None] | None):
        self.study, self.out, self.ex = study, out, ex
        self.store = PointStore(out / "points.jsonl", study.fingerprint())
        self.progress = progress
        self.on_point = on_point
        self.evaluated = self.reused = self.asks = 0
        self.trained: set[str] = set()  # training keys whose network is in the cache
        self.counts = {"ok": 0, "infeasible": 0, "failed": 0}
        self.best: float | None = None
        self.task_id = None

    def _task(self, key: str, settings: dict[str, Any]) -> dict[str, Any]:
        return {"key": key, "settings": settings, "metrics": self.study.metrics,
                "constraints": [c.model_dump() for c in self.study.constraints],
                "train_key": settings_key(settings, TRAIN_FIELDS),
                "cache_dir": str(self.out / "cache" / "models"),
                "work_dir": str(self.out / "cache" / "rtl")}

    def count(self, rec: dict[str, Any]) -> None:
        """Update the progress line with one more visited point."""
        self.counts[rec["status"]] = self.counts.get(rec["status"], 0) + 1
        first = next(iter(self.study.objectives))
        v = rec.get("metrics", {}).get(first)
        if rec["status"] == "ok" and v is not None:
            better = self.study.objectives[first] is Goal.MAX
            if self.best is None or (v > self.best if better else v < self.best):
                self.best = v
        best = f"best {first} {self.best:.4g}" if self.best is not None else ""
        c = self.counts
        self.progress.update(self.task_id, advance=1, info=(
            f"ok {c['ok']} infeasible {c['infeasible']} failed {c['failed']} "
            f"reused {self.reused}  {best}"))

    def evaluate(self, points: list[tuple[str, dict[str, Any]]]) -> None:
        """Evaluate ``points`` (none stored yet), storing each record as it arrives."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for key, settings in points:
            task = self._task(key, settings)
            groups.setdefault(task["train_key"], []).append(task)
        in_flight: dict[Any, dict[str, Any]] = {}
        waiting: dict[str, list[dict[str, Any]]] = {}
        cache = self.out / "cache" / "models"
        for tk, tasks in groups.items():
            if tk in self.trained or (cache / f"{tk}.pt").is_file():
                first, rest = tasks, []
            else:
                first, rest = tasks[:1], tasks[1:]
            waiting[tk] = rest
            for t in first:
                in_flight[self.ex.submit(t)] = t
        while in_flight:
            for fut in self.ex.wait_any(in_flight):
                task = in_flight.pop(fut)
                try:
                    rec = self.ex.result(fut)
                except Exception as e:
                    raise SpikeforgeError(f"a worker failed on point {task['key']}: "
                                          f"{e.__class__.__name__}: {e}") from None
                self.store.add(task["key"], task["settings"], rec)
                self.evaluated += 1
                self.count(rec)
                tk = task["train_key"]
                rest = waiting.get(tk, [])
                if "train" in rec.get("seconds", {}):
                    self.trained.add(tk)
                    waiting[tk], nxt = [], rest
                else:  # stopped before training: the next sibling leads instead
                    waiting[tk], nxt = rest[1:], rest[:1]
                for t in nxt:
                    in_flight[self.ex.submit(t)] = t
                if self.on_point is not None:
                    self.on_point(rec)


OUTPUTS = ("points.jsonl", "study.json", "results.csv", "pareto.csv", "summary.json", "cache")


def _output_names(study: Study) -> list[str]:
    """Every name a study writes into its folder (recorded in the output marker)."""
    return [*OUTPUTS, *plot_names(study.objectives, study.metrics)]


def _refuse_foreign(out: Path, names: list[str]) -> None:
    """Refuse a spikeforge folder where one of our names is a file spikeforge did not write."""
    if not out.is_dir():
        return
    recorded = set(_recorded(out) or [])
    for name in names:
        p = out / name
        if (p.exists() or p.is_symlink()) and name not in recorded:
            raise SpikeforgeError(f"--out {out}: {name} there was not written by spikeforge; "
                                  "give a new or empty folder")


def _lock(out: Path) -> IO[str]:
    """Take the study folder's lock (one study at a time writes into a folder)."""
    try:
        f = open(out / LOCK_NAME, "a")  # noqa: SIM115 (held for the whole run)
    except OSError as e:
        raise SpikeforgeError(f"--out {out}: cannot be written ({e.strerror})") from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise SpikeforgeError(f"--out {out}: another study is running in this folder"
                              ) from None
    return f


def _unlock(out: Path, f: IO[str]) -> None:
    with contextlib.suppress(OSError):
        (out / LOCK_NAME).unlink()
    f.close()


def _sweep(out: Path, names: list[str]) -> None:
    """Remove what a killed run left half-written: temporary files and RTL build folders."""
    leftovers = [p for n in names for p in out.glob(f".{glob.escape(n)}.*.tmp")]
    leftovers += out.glob("cache/models/.*.tmp")
    for p in leftovers:
        with contextlib.suppress(OSError):
            p.unlink()
    for d in out.glob("cache/rtl/dse-rtl-*"):
        shutil.rmtree(d, ignore_errors=True)


def _write_json(path: Path, obj: Any) -> None:
    data = dumps(obj).encode()
    atomic_write(path, lambda f: f.write(data))


def run_study(study: Study, out: str | os.PathLike[str], *, workers: int | None = None,
              cluster: Any = None, console: Console | None = None,
              on_point: Callable[[dict[str, Any]], None] | None = None,
              inputs: list[str | os.PathLike[str]] | None = None) -> StudyResult:
    """Run ``study`` into the folder ``out`` (resuming what is stored there).

    Parameters
    ----------
    study : Study
        A validated study (:func:`~spikeforge.dse.study.load_study`).
    out : path-like
        Study folder: ``points.jsonl``, ``results.csv``, ``pareto.csv``, plots, cache.
        A new or empty folder, or one a study wrote (:func:`spikeforge.staging.claim_out`).
    workers : int, optional
        Local worker processes, 0..256 (default: the CPU count; 0 evaluates in this process).
    cluster : str or distributed.Client, optional
        A Dask scheduler address (``tcp://host:8786``) or client; overrides ``workers``.
    console : rich.console.Console, optional
        Where progress and the summary go.
    on_point : callable, optional
        Called with every new record as it is stored.
    inputs : list of path-like, optional
        Files the study reads, which ``out`` may not hold (default: the study file).

    Returns
    -------
    StudyResult
    """
    console = console or Console(stderr=True)
    if inputs is None:
        inputs = [study.source] if Path(study.source).is_file() else []
    out = check_out(out, inputs)  # before a worker or a connection exists
    names = _output_names(study)
    _refuse_foreign(out, names)
    strategy = make_strategy(study)
    budget = _budget(study, strategy)
    workers = min(os.cpu_count() or 1, MAX_WORKERS) if workers is None else workers
    t0 = time.perf_counter()
    visited: dict[str, dict[str, Any]] = {}
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), console=console, transient=False)
    # the executor first: an unreachable cluster must not leave a study folder behind
    with make_executor(workers, cluster) as ex:
        out, made = claim_out(out, inputs, names)
        try:
            lock = _lock(out)
        except BaseException:
            release_out(out, made)
            raise
        try:
            _sweep(out, names)
            run = _Run(study, out, ex, progress, on_point)
            _write_json(out / "study.json", study.doc.model_dump(mode="json"))
            with progress:
                _search(study, strategy, budget, run, visited)
            wall = time.perf_counter() - t0
            points = [run.store.get(k) for k in visited]
            rows = result_rows(points, list(study.parameters), study.metrics,
                               study.objectives)
            files = {"points": out / "points.jsonl", "results": out / "results.csv",
                     "pareto": out / "pareto.csv"}
            write_csv(files["results"], rows)
            write_csv(files["pareto"], [r for r in rows if r["pareto"]])
            for p in plot_pairs(out, rows, study.objectives, study.metrics, study.name):
                files[p.stem] = p
            summary = {"study": study.name, "method": study.search.method.value,
                       "budget": budget, "visited": len(visited), "evaluated": run.evaluated,
                       "reused": run.reused, "proposals": run.asks, "status": run.counts,
                       "executor": ex.description, "wall_s": round(wall, 2),
                       "pareto": sum(r["pareto"] for r in rows)}
            if run.store.skipped:  # unusable lines of points.jsonl (their points re-evaluated)
                summary["skipped_lines"] = run.store.skipped[:100]
                summary["skipped_count"] = len(run.store.skipped)
            if len(visited) < budget:
                summary["note"] = (f"the search stopped at {len(visited)} distinct points: "
                                   "the space is exhausted or the sampler kept repeating points")
            _write_json(out / "summary.json", summary)
            files["summary"] = out / "summary.json"
        finally:
            _unlock(out, lock)
    return StudyResult(out=out, rows=rows, evaluated=run.evaluated, reused=run.reused,
                       wall_s=wall, executor=ex.description, files=files)


def _search(study: Study, strategy, budget: int, run: _Run,
            visited: dict[str, dict[str, Any]]) -> None:
    """Propose, reuse or evaluate, tell: until ``budget`` distinct points are visited."""
    run.task_id = run.progress.add_task(f"dse {study.name}", total=budget,
                                        info=f"on {run.ex.description}")
    max_asks = 20 * budget + 100
    while len(visited) < budget and run.asks < max_asks:
        props = strategy.propose(strategy.batch)
        if not props:
            break
        run.asks += len(props)
        batch, new = [], []
        for prop in props:
            settings = study.point_settings(prop.values)
            key = settings_key(settings)
            if key not in visited:
                if len(visited) >= budget:
                    break
                visited[key] = settings
                rec = run.store.get(key)
                if rec is None:
                    new.append((key, settings))
                else:
                    run.reused += 1
                    run.count(rec)
            batch.append((prop, key))
        run.evaluate(new)
        strategy.tell([(prop, run.store.get(key)) for prop, key in batch])
