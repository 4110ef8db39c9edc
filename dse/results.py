"""Results of a study: a table of every point, its Pareto front, and plots.

Files written into the study folder:

* ``results.csv``: one row per point in the order the search visited them:
  key, status, the parameters, every metric, ``pareto`` (on the front of all the
  objectives), seconds and CPU seconds of its evaluation, worker, message;
* ``pareto.csv``: the front's rows only;
* ``<y>_vs_<x>.png``: the first objective against each other objective (and
  accuracy against energy and cycles whenever they were measured), every
  feasible point in grey, infeasible ones as crosses, the front of that pair
  as a line and the front of all the objectives outlined.

Each file is written beside its final name and renamed into place
(:func:`atomic_write`), so an interrupted study never leaves a half-written
table or plot: the previous version stays until the new one is complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from spikeforge.staging import file_mode

from .metrics import METRICS, Goal

__all__ = ["atomic_write", "pareto_mask", "plot_names", "plot_pairs", "result_rows",
           "write_csv"]


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then rename it.

    On any exception (Ctrl-C and SIGTERM included) the temporary file is
    removed and ``path`` keeps its previous contents.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def pareto_mask(values: np.ndarray, goals: list[Goal]) -> np.ndarray:
    """Non-dominated rows of ``values`` (``[N, K]``), each column to its goal."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    v = np.where([g is Goal.MAX for g in goals], -values, values)  # all to minimize
    keep = np.ones(len(v), dtype=bool)
    for i in range(len(v)):
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        keep[i] = not dominated.any()
    return keep


def _feasible_values(rows: list[dict[str, Any]], names: list[str]) -> tuple[list[int], np.ndarray]:
    idx, vals = [], []
    for i, r in enumerate(rows):
        if r["status"] != "ok":
            continue
        v = [r.get(n) for n in names]
        if all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
            idx.append(i)
            vals.append(v)
    return idx, np.asarray(vals, dtype=np.float64).reshape(len(idx), len(names))


def result_rows(points: list[dict[str, Any]], parameters: list[str], metrics: list[str],
                objectives: dict[str, Goal]) -> list[dict[str, Any]]:
    """Flat rows (parameters and metrics as columns) with the ``pareto`` flag set."""
    rows = []
    for p in points:
        row = {"key": p["key"], "status": p["status"]}
        row |= {n: p["settings"][n] for n in parameters}
        row |= {m: p.get("metrics", {}).get(m) for m in metrics}
        sec = p.get("seconds", {})
        row |= {"pareto": False, "seconds": sec.get("total"), "cpu_seconds": sec.get("cpu"),
                "worker": p.get("worker", ""), "message": p.get("message", "")}
        rows.append(row)
    names = list(objectives)
    idx, vals = _feasible_values(rows, names)
    for i, on in zip(idx, pareto_mask(vals, list(objectives.values()))):
        rows[i]["pareto"] = bool(on)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` as CSV (lists as JSON text), written atomically."""
    text = io.StringIO(newline="")
    if rows:
        w = csv.DictWriter(text, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    data = text.getvalue().encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def _pairs(objectives: dict[str, Goal], metrics: list[str]) -> list[tuple[str, str]]:
    names = list(objectives)
    pairs = [(names[0], n) for n in names[1:]]
    if "accuracy" in metrics:
        energy = next((m for m in ("energy_hw_pj", "energy_panda_pj") if m in metrics), None)
        cycles = next((m for m in ("cycles_rtl", "cycles_mapped") if m in metrics), None)
        for x in (energy, cycles, "luts" if "luts" in metrics else None):
            if x and ("accuracy", x) not in pairs:
                pairs.append(("accuracy", x))
    if "luts" in metrics and "cycles_rtl" in metrics:
        pairs.append(("cycles_rtl", "luts"))
    return pairs


def plot_names(objectives: dict[str, Goal], metrics: list[str]) -> list[str]:
    """The file names :func:`plot_pairs` writes for these objectives and metrics."""
    return [f"{y}_vs_{x}.png" for y, x in _pairs(objectives, metrics)]


def plot_pairs(folder: Path, rows: list[dict[str, Any]], objectives: dict[str, Goal],
               metrics: list[str], title: str) -> list[Path]:
    """One PNG per metric pair (see the module docstring); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for y, x in _pairs(objectives, metrics):
        idx, vals = _feasible_values(rows, [x, y])
        goals = [objectives.get(x, METRICS[x].goal), objectives.get(y, METRICS[y].goal)]
        fig, ax = plt.subplots(figsize=(6.4, 4.6))
        if len(idx):
            ax.scatter(vals[:, 0], vals[:, 1], s=18, color="0.6", label="feasible points")
            front = pareto_mask(vals, goals)
            f = vals[front]
            f = f[np.argsort(f[:, 0])]
            ax.plot(f[:, 0], f[:, 1], "-o", color="tab:red", ms=5,
                    label=f"front of {y} vs {x} ({len(f)})")
            full = np.array([rows[i]["pareto"] for i in idx], dtype=bool)
            if full.any():
                ax.scatter(vals[full, 0], vals[full, 1], s=70, facecolors="none",
                           edgecolors="tab:blue", linewidths=1.2,
                           label=f"front of all objectives ({int(full.sum())})")
        bad = [(r.get(x), r.get(y)) for r in rows if r["status"] == "infeasible"
               and isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
        if bad:
            b = np.asarray(bad, dtype=np.float64)
            ax.scatter(b[:, 0], b[:, 1], marker="x", s=20, color="0.8", label="infeasible")
        if x.endswith("_pj") or x.startswith("cycles") or x.endswith("_bits"):
            if len(idx) and (vals[:, 0] > 0).all() and vals[:, 0].max() > 10 * vals[:, 0].min():
                ax.set_xscale("log")
        ax.set(xlabel=f"{x} ({goals[0].value})", ylabel=f"{y} ({goals[1].value})",
               title=f"{title}: {y} vs {x}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no feasible point measured both", ha="center",
                    transform=ax.transAxes)
        fig.tight_layout()
        path = folder / f"{y}_vs_{x}.png"
        try:
            atomic_write(path, lambda f, fig=fig: fig.savefig(f, dpi=110, format="png"))
        finally:
            plt.close(fig)
        paths.append(path)
    return paths
