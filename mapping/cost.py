"""The tile cycle model: predicted cycles per time step of one tile, from measured spikes.

It extends the per-layer model of docs/HARDWARE.md to tiles. Per time step a
tile takes one packet per cycle at its input (an input spike reads one weight
row; a partial-sum packet adds into one accumulator), needs
``accept_overhead`` cycles to drain the last add and take the step's end,
updates its neurons ``neuron_lanes`` at a time, and sends one packet per cycle
(a spike, multicast by the router, or one partial sum) plus ``emit_overhead``
for the step's end. Accepting step ``t+1`` overlaps emitting step ``t``, so::

    cycles(t) = max(in(t) + accept_overhead, out(t) + emit_overhead) + ceil(neurons / lanes)

A partial-sum tile updates no neurons (its update term is 0). Everything here
works on per-(sample, step) rows of the reference simulator's spikes, so the
prediction uses the real distribution of work, not a mean rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_CYCLES",
    "TileCycleModel", "group_step_cycles", "nonzero_partials", "spikes_on"]


@dataclass(frozen=True)
class TileCycleModel:
    """Constants of the cycle model (see the module docstring)."""

    accept_overhead: int = 2
    emit_overhead: int = 1

    def step_cycles(self, packets_in: np.ndarray, packets_out: np.ndarray, neurons: int,
                    lanes: int) -> np.ndarray:
        """Cycles of every (sample, step) row; ``neurons`` is 0 for a partial-sum tile."""
        update = math.ceil(neurons / lanes) if neurons else 0
        return np.maximum(np.asarray(packets_in) + self.accept_overhead,
                          np.asarray(packets_out) + self.emit_overhead) + update


DEFAULT_CYCLES = TileCycleModel()


def spikes_on(spikes: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Spikes per row on the given lines: int64 ``[rows]`` from uint8 ``[rows, n]``."""
    if len(lines) == 0:
        return np.zeros(spikes.shape[0], dtype=np.int64)
    return spikes[:, lines].sum(axis=1, dtype=np.int64)


def nonzero_partials(spikes: np.ndarray, weights: np.ndarray, neurons: np.ndarray,
                     axons: np.ndarray) -> np.ndarray:
    """Partial-sum packets per row: neurons whose partial current over ``axons`` is nonzero.

    A partial-sum tile sends nothing for a neuron whose partial current is
    exactly zero in a step (no spike reached it, or the weights cancelled).
    The product is exact in float64 (every term is below 2^15 and there are
    far fewer than 2^37 of them).
    """
    if len(axons) == 0 or len(neurons) == 0:
        return np.zeros(spikes.shape[0], dtype=np.int64)
    s = spikes[:, axons].astype(np.float64)
    w = weights[np.ix_(neurons, axons)].astype(np.float64)
    return np.count_nonzero(s @ w.T, axis=1).astype(np.int64)


def group_step_cycles(model: TileCycleModel, weights: np.ndarray, spikes_in: np.ndarray,
                      spikes_out: np.ndarray, neurons: tuple[int, int],
                      chunks: tuple[np.ndarray, ...], lanes: int) -> np.ndarray:
    """Cycles per row of every tile of one neuron group: float64 ``[len(chunks), rows]``.

    Chunk 0 sits in the neuron tile, which also receives the partial sums of
    chunks 1.. and emits the group's spikes; every other chunk is a
    partial-sum tile.
    """
    idx = np.arange(*neurons)
    rows = spikes_in.shape[0]
    out = np.zeros((len(chunks), rows), dtype=np.float64)
    partials = [nonzero_partials(spikes_in, weights, idx, a) for a in chunks[1:]]
    for k, a in enumerate(chunks[1:], start=1):
        out[k] = model.step_cycles(spikes_on(spikes_in, a), partials[k - 1], 0, lanes)
    into_root = spikes_on(spikes_in, chunks[0]) + (sum(partials) if partials else 0)
    out[0] = model.step_cycles(into_root, spikes_on(spikes_out, idx), len(idx), lanes)
    return out
