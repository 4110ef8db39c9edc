"""Place fragments on mesh tiles to cut hop-weighted traffic.

The objective of a placement is the number of packet hops per sample::

    J = sum over fragment pairs (i, j) of traffic[i, j] * manhattan(slot(i), slot(j))

with the I/O port as one more, fixed, endpoint; a packet's hops are its
Manhattan distance under XY routing. Three methods:

* ``in-order``: fragment ``i`` on tile slot ``i`` (row-major) -- the naive baseline;
* ``greedy``: constructive -- repeatedly take the unplaced fragment with the
  most traffic to what is placed (the I/O port first) and put it on the free
  tile that adds the fewest hops;
* ``anneal``: simulated annealing from the greedy placement (moves and swaps,
  seeded), then a deterministic pairwise-swap descent (Kernighan--Lin style)
  until no swap helps.

Each method's result is compared with ``in-order`` and the better one is kept,
so a placement is never worse than the baseline. Everything is seeded and
deterministic.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from ._checks import require
from .hardware import HardwareSpec

__all__ = ["PlaceMethod", "Placement", "PlacementProblem", "check_placement", "place"]


class PlaceMethod(enum.Enum):
    IN_ORDER = "in-order"
    GREEDY = "greedy"
    ANNEAL = "anneal"


@dataclass(frozen=True, eq=False)
class Placement:
    """Tile slot of every fragment, and the objective ``J`` (packet hops per sample)."""

    slots: np.ndarray
    method: PlaceMethod
    cost: float
    fell_back: bool = False  # the method's own result was worse than in-order


class PlacementProblem:
    """Traffic and mesh distances of one placement problem.

    Parameters
    ----------
    traffic : numpy.ndarray
        Packets per sample ``[F+1, F+1]``; index ``F`` is the I/O port.
    hw : HardwareSpec
        The mesh.
    """

    def __init__(self, traffic: np.ndarray, hw: HardwareSpec) -> None:
        t = np.asarray(traffic, dtype=np.float64)
        self.n_frag = t.shape[0] - 1
        self.n_slots = hw.n_tiles
        if self.n_frag > self.n_slots:
            raise ValueError(f"{self.n_frag} fragments do not fit {self.n_slots} tiles")
        self.weights = t + t.T  # hops do not depend on direction
        coords = np.array([*hw.tile_positions, (hw.io.row, hw.io.col)], dtype=np.int64)
        self.coords = coords
        # row and column terms separately: no [n, n, 2] intermediate (see placement_bytes)
        r, c = coords[:, 0].astype(np.float64), coords[:, 1].astype(np.float64)
        self.dist = np.abs(r[:, None] - r[None, :])
        self.dist += np.abs(c[:, None] - c[None, :])
        self.io_slot = self.n_slots  # the I/O port's index in coords / dist

    def with_io(self, slots: np.ndarray) -> np.ndarray:
        return np.append(np.asarray(slots, dtype=np.int64), self.io_slot)

    def cost(self, slots: np.ndarray) -> float:
        """Objective ``J`` of a placement (packet hops per sample)."""
        p = self.with_io(slots)
        return float(0.5 * np.sum(self.weights * self.dist[np.ix_(p, p)]))


def _in_order(pb: PlacementProblem) -> np.ndarray:
    return np.arange(pb.n_frag, dtype=np.int64)


def _greedy(pb: PlacementProblem) -> np.ndarray:
    w, d = pb.weights, pb.dist
    slots = np.full(pb.n_frag, -1, dtype=np.int64)
    placed = np.zeros(pb.n_frag + 1, dtype=bool)
    placed[-1] = True  # the I/O port is fixed
    pos = pb.with_io(np.full(pb.n_frag, pb.io_slot))
    free = np.ones(pb.n_slots, dtype=bool)
    for _ in range(pb.n_frag):
        pull = np.where(placed[:-1], -1.0, w[:-1][:, placed].sum(axis=1))
        f = int(np.argmax(pull))  # ties: lowest index
        add = d[: pb.n_slots][:, pos[placed]] @ w[f, placed]
        add[~free] = np.inf
        s = int(np.argmin(add))  # ties: first slot in row-major order
        slots[f], pos[f] = s, s
        placed[f] = True
        free[s] = False
    return slots


def _anneal(pb: PlacementProblem, start: np.ndarray, rng: np.random.Generator,
            moves: int) -> np.ndarray:
    """Simulated annealing over moves to free tiles and swaps; returns the best seen."""
    w, d = pb.weights, pb.dist
    n_f, n_s = pb.n_frag, pb.n_slots
    pos = pb.with_io(start)
    occ = np.full(n_s, -1, dtype=np.int64)
    occ[pos[:-1]] = np.arange(n_f)
    if n_f < 1 or n_s < 2 or moves < 1:
        return pos[:-1].copy()

    def delta(f: int, s: int) -> float:
        a = int(pos[f])
        g = int(occ[s])
        dd = float(w[f] @ (d[s, pos] - d[a, pos]))
        if g >= 0:  # swap: the f-g distance is unchanged, undo its double count
            dd += float(w[g] @ (d[a, pos] - d[s, pos])) + 2.0 * w[f, g] * d[a, s]
        return dd

    fs = rng.integers(0, n_f, size=moves)
    ss = rng.integers(0, n_s, size=moves)
    us = rng.random(moves)
    probe = [abs(delta(int(f), int(s))) for f, s in zip(fs[:200], ss[:200])]
    t0 = float(np.mean([p for p in probe if p > 0])) if any(p > 0 for p in probe) else 0.0
    if t0 == 0.0:
        return pos[:-1].copy()
    t_end = t0 * 1e-3
    alpha = (t_end / t0) ** (1.0 / moves)
    temp = t0
    cur = pb.cost(pos[:-1])
    best, best_pos = cur, pos[:-1].copy()
    for f, s, u in zip(fs.tolist(), ss.tolist(), us.tolist()):
        temp *= alpha
        a = int(pos[f])
        if s == a:
            continue
        dd = delta(f, s)
        if dd <= 0.0 or u < math.exp(-dd / temp):
            g = int(occ[s])
            pos[f], occ[s], occ[a] = s, f, g
            if g >= 0:
                pos[g] = a
            cur += dd
            if cur < best - 1e-9:
                best, best_pos = cur, pos[:-1].copy()
    return best_pos


def _swap_descent(pb: PlacementProblem, start: np.ndarray, max_rounds: int = 100) -> np.ndarray:
    """Take the best improving move or swap of each fragment in turn until none helps."""
    w, d = pb.weights, pb.dist
    n_f, n_s = pb.n_frag, pb.n_slots
    pos = pb.with_io(start)
    occ = np.full(n_s, -1, dtype=np.int64)
    occ[pos[:-1]] = np.arange(n_f)
    slots_idx = np.arange(n_s)
    for _ in range(max_rounds):
        improved = False
        hops = w[:n_f] @ d[pos]  # hops[h, x]: hops of fragment h if it sat on position x
        for f in range(n_f):
            a = int(pos[f])
            gain = hops[f, :n_s] - hops[f, a]
            has = occ >= 0
            gs = occ[has]
            on = slots_idx[has]
            # the occupant g of slot s moves to a; the f-g distance is unchanged
            gain[has] += hops[gs, a] - hops[gs, on] + 2.0 * w[f, gs] * d[a, on]
            gain[a] = 0.0
            s = int(np.argmin(gain))
            if gain[s] < -1e-9:
                g = int(occ[s])
                pos[f], occ[s], occ[a] = s, f, g
                if g >= 0:
                    pos[g] = a
                hops = w[:n_f] @ d[pos]
                improved = True
        if not improved:
            break
    return pos[:-1].copy()


def place(pb: PlacementProblem, method: PlaceMethod, seed: int = 0,
          moves: int | None = None) -> Placement:
    """Place every fragment with ``method``; never worse than ``in-order``.

    Parameters
    ----------
    pb : PlacementProblem
        Traffic and mesh.
    method : PlaceMethod
        How to place.
    seed : int
        Seed of the annealer (``anneal`` only).
    moves : int, optional
        Annealing moves; default ``min(200_000, 20_000 + 2_000 * F)``.

    Returns
    -------
    Placement
    """
    base = _in_order(pb)
    base_cost = pb.cost(base)
    if method is PlaceMethod.IN_ORDER:
        return Placement(base, method, base_cost)
    slots = _greedy(pb)
    if method is PlaceMethod.ANNEAL:
        n = moves if moves is not None else min(200_000, 20_000 + 2_000 * pb.n_frag)
        slots = _anneal(pb, slots, np.random.default_rng(seed), n)
        slots = _swap_descent(pb, slots)
    cost = pb.cost(slots)
    if cost > base_cost:
        return Placement(base, method, base_cost, fell_back=True)
    return Placement(slots, method, cost)


def check_placement(pl: Placement, pb: PlacementProblem) -> None:
    """Raise ``AssertionError`` unless every fragment has its own tile and ``cost`` is right."""
    s = pl.slots
    require(s.shape == (pb.n_frag,), f"placement has {s.shape} slots for {pb.n_frag} fragments")
    require(np.all((s >= 0) & (s < pb.n_slots)), "placement uses a slot outside the mesh")
    require(len(np.unique(s)) == len(s), "two fragments share a tile")
    require(abs(pb.cost(s) - pl.cost) <= 1e-6 * max(1.0, pl.cost), "placement cost is stale")
