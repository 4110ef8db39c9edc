"""Search strategies: which points to evaluate next.

A strategy proposes a batch of parameter values and is told the records of
that batch, in the order it proposed them. Nothing depends on timing, so a
study gives the same sequence of points on one worker, on many, or on a Dask
cluster, and replaying it from the stored points after an interruption
reproduces exactly the proposals of the uninterrupted run (without evaluating
anything again).

* ``grid``: every combination (shuffled with the seed when the budget is smaller);
* ``random``: Optuna's ``RandomSampler``;
* ``nsga2``: Optuna's ``NSGAIISampler`` through ask/tell, one population per batch,
  with constrained domination from the study's constraints.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

import numpy as np

from .metrics import Goal
from .study import Method, Study, setting_kind

__all__ = ["GridSearch", "OptunaSearch", "Proposal", "Strategy", "make_strategy"]


class Proposal:
    """Parameter values proposed by a strategy, with its handle to tell the result."""

    __slots__ = ("handle", "values")

    def __init__(self, values: dict[str, Any], handle: Any = None):
        self.values = values
        self.handle = handle


class Strategy(Protocol):
    batch: int

    def propose(self, n: int) -> list[Proposal]:
        """Up to ``n`` proposals; an empty list when the space is exhausted."""
        ...

    def tell(self, told: list[tuple[Proposal, dict[str, Any]]]) -> None:
        """The records of the proposals, in the order they were proposed."""
        ...


class GridSearch:
    """Every combination of the parameters' values, in order (or shuffled to fit a budget)."""

    def __init__(self, study: Study):
        points = study.grid()
        budget = study.search.budget
        if budget is not None and budget < len(points):
            order = np.random.default_rng(study.seed).permutation(len(points))
            points = [points[i] for i in order]
        self._points = points
        self._next = 0
        self.batch = max(1, len(points))
        self.size = len(points)

    def propose(self, n: int) -> list[Proposal]:
        out = [Proposal(v) for v in self._points[self._next:self._next + n]]
        self._next += len(out)
        return out

    def tell(self, told: list[tuple[Proposal, dict[str, Any]]]) -> None:
        pass


def _objective_values(study: Study, rec: dict[str, Any]) -> list[float] | None:
    vals = []
    for m in study.objectives:
        v = rec.get("metrics", {}).get(m)
        if v is None or not math.isfinite(v):
            return None
        vals.append(float(v))
    return vals


class OptunaSearch:
    """Optuna's random or NSGA-II sampler driven through ``ask``/``tell``."""

    def __init__(self, study: Study):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = study
        s = study.search
        seed = study.seed % 2**32  # Optuna's samplers take 32-bit seeds (numpy RandomState)
        if s.method is Method.NSGA2:
            sampler = optuna.samplers.NSGAIISampler(population_size=s.population, seed=seed)
            self.batch = s.population
        else:
            sampler = optuna.samplers.RandomSampler(seed=seed)
            self.batch = s.batch
        directions = ["maximize" if g is Goal.MAX else "minimize"
                      for g in study.objectives.values()]
        self._ostudy = optuna.create_study(directions=directions, sampler=sampler,
                                           study_name=study.name)
        self._dists, self._decode = {}, {}
        D = optuna.distributions
        for name, p in study.parameters.items():
            if p.choices is not None:
                self._dists[name] = D.CategoricalDistribution(tuple(range(len(p.choices))))
                self._decode[name] = (lambda i, c=p.choices: c[i])
            elif setting_kind(study.base, name) == "int":
                self._dists[name] = D.IntDistribution(int(p.low), int(p.high), log=p.log,
                                                      step=p.step or 1)
                self._decode[name] = int
            else:
                self._dists[name] = D.FloatDistribution(float(p.low), float(p.high), log=p.log)
                self._decode[name] = float
        self.size = None

    def propose(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            trial = self._ostudy.ask(fixed_distributions=self._dists)
            out.append(Proposal({k: self._decode[k](v) for k, v in trial.params.items()},
                                handle=trial))
        return out

    def tell(self, told: list[tuple[Proposal, dict[str, Any]]]) -> None:
        from optuna.trial import TrialState

        for prop, rec in told:
            trial = prop.handle
            values = _objective_values(self.study, rec) if rec["status"] != "failed" else None
            if values is None:
                self._ostudy.tell(trial, state=TrialState.FAIL)
                continue
            for i, c in enumerate(self.study.constraints):
                v = rec["metrics"].get(c.metric)
                trial.set_constraint(f"c{i}", c.violation(v) if v is not None else 1.0)
            self._ostudy.tell(trial, values)


def make_strategy(study: Study) -> Strategy:
    """The strategy the study's ``search.method`` names."""
    logging.getLogger("optuna").setLevel(logging.WARNING)
    if study.search.method is Method.GRID:
        return GridSearch(study)
    return OptunaSearch(study)
