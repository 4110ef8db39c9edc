"""The tile cycle model: predicted cycles per time step of one tile, from measured spikes.

It extends the per-layer model of docs/HARDWARE.md to tiles. Per time step a
tile takes one packet per cycle at its input (an input spike reads one weight
row; a partial-sum packet adds into ``neuron_lanes`` accumulators), needs
``accept_overhead`` cycles to drain the last add and take the step's end,
updates its neurons ``neuron_lanes`` at a time, and sends one packet per cycle
(a spike, multicast by the router, or one partial-sum packet) plus ``emit_overhead``
for the step's end. Accepting step ``t+1`` overlaps emitting step ``t``, so::

    cycles(t) = max(in(t) + accept_overhead, out(t) + emit_overhead) + ceil(neurons / lanes)

A partial-sum tile updates no neurons (its update term is 0). The partial
sums of a group flow along a chain of its tiles to the neuron tile
(:func:`chain_partials`), so no tile receives more than one partial stream.
A tile reads its accumulators out ``neuron_lanes`` at a time, so one
partial-sum packet carries the partial currents of ``neuron_lanes``
consecutive neurons (the width of the neuron tile's update lanes, which add
them in one cycle); a packet whose currents are all zero is not sent
(:func:`lane_packets`).

Everything here works on per-(sample, step) rows of the reference
simulator's spikes, so the prediction uses the real distribution of work,
not a mean rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_CYCLES",
    "TileCycleModel",
    "chain_partials",
    "group_step_cycles",
    "lane_packets",
    "spikes_on",
]


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


def lane_packets(currents: np.ndarray, lanes: int) -> np.ndarray:
    """Packets per row for partial currents ``[rows, n]``: runs of ``lanes`` neurons with
    any nonzero current (an all-zero run is not sent)."""
    nz = currents != 0
    pad = (-nz.shape[1]) % lanes
    if pad:
        nz = np.concatenate([nz, np.zeros((nz.shape[0], pad), dtype=bool)], axis=1)
    return nz.reshape(nz.shape[0], -1, lanes).any(axis=2).sum(axis=1, dtype=np.int64)


def chain_partials(spikes: np.ndarray, weights: np.ndarray, neurons: tuple[int, int],
                   chunks: tuple[np.ndarray, ...], lanes: int) -> list[np.ndarray]:
    """Partial-sum packets per row sent by chunk ``k`` (``k >= 1``) down the group's chain.

    Partial sums flow along a chain: chunk ``K-1`` sends to ``K-2``, ..., chunk
    1 to the neuron tile (chunk 0). Each tile adds what it receives into its
    own accumulators, so chunk ``k`` sends the partial current over chunks
    ``k..K-1``; entry ``k - 1`` of the result holds chunk ``k``'s packets.
    """
    if len(chunks) < 2:
        return []
    idx = np.arange(*neurons)
    rows = spikes.shape[0]
    # float32 sums integers exactly below 2^24; use it when no partial current can reach that
    w_max = int(np.abs(weights[idx]).max()) if len(idx) and weights.size else 0
    dtype = np.float32 if w_max * weights.shape[1] < (1 << 24) else np.float64
    acc = np.zeros((rows, len(idx)), dtype=dtype)
    out: list[np.ndarray] = []
    for k in range(len(chunks) - 1, 0, -1):  # accumulate from the chain's far end
        a = chunks[k]
        if len(a):
            # exact: every partial current is an integer below 2^24 (float32) or 2^53
            acc = acc + spikes[:, a].astype(dtype) @ weights[np.ix_(idx, a)].T.astype(dtype)
        out.append(lane_packets(acc, lanes))
    return out[::-1]


def group_step_cycles(model: TileCycleModel, weights: np.ndarray, spikes_in: np.ndarray,
                      spikes_out: np.ndarray, neurons: tuple[int, int],
                      chunks: tuple[np.ndarray, ...], lanes: int) -> np.ndarray:
    """Cycles per row of every tile of one neuron group: float64 ``[len(chunks), rows]``.

    Chunk 0 sits in the neuron tile, which emits the group's spikes; every
    other chunk is a partial-sum tile in the chain of :func:`chain_partials`.
    Each tile takes its own input spikes plus the packets of the next chunk.
    """
    idx = np.arange(*neurons)
    k_n = len(chunks)
    out = np.zeros((k_n, spikes_in.shape[0]), dtype=np.float64)
    sent = chain_partials(spikes_in, weights, neurons, chunks, lanes)
    for k in range(k_n):
        packets_in = spikes_on(spikes_in, chunks[k]) + (sent[k] if k + 1 < k_n else 0)
        if k == 0:
            out[0] = model.step_cycles(packets_in, spikes_on(spikes_out, idx), len(idx), lanes)
        else:
            out[k] = model.step_cycles(packets_in, sent[k - 1], 0, lanes)
    return out
