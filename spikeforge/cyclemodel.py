"""Cycle-exact model of the generated network's control (docs/HARDWARE.md#cycle-model).

The data path does not decide timing; only how many spikes enter and leave each
layer at each step, whether a spike's line has a weight row anywhere in the
layer (a line with none skips the read), and each layer's update length
``ceil(C/P) + 1`` do. This module replays the layers' handshakes cycle by
cycle from those numbers, so it predicts the RTL's ``cycles`` counter exactly
for spike inputs presented back to back (the fast testbench, and cocotb
without stalls); the tests check that against the RTL.

Numpy only: the mapper and the design-space explorer use it without the
hardware packages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LayerTiming", "predict_cycles", "predict_sample_cycles"]


@dataclass(frozen=True)
class LayerTiming:
    """What timing needs from one layer of the hardware.

    Attributes
    ----------
    batches : int
        ``ceil(C / P)`` of the layer's largest neuron group.
    has_row : numpy.ndarray
        bool ``[n_in]``: the line has a weight row in at least one group.
    fire : bool
        The layer emits spikes (a readout emits only step ends).
    """

    batches: int
    has_row: np.ndarray
    fire: bool


def predict_sample_cycles(layers: list[LayerTiming], spikes: list[np.ndarray]) -> int:
    """The RTL's ``cycles`` for one sample.

    ``spikes[l]`` is uint8 ``[T, n_in_l]``: the spikes into layer ``l`` at each
    step (``spikes[L]``, for a firing last layer, its output spikes).
    """
    n_layers = len(layers)
    t_steps = spikes[0].shape[0]
    # per layer and step: has-row flags of the incoming spikes, in index order
    hits = [[layers[l].has_row[np.flatnonzero(spikes[l][t])] for t in range(t_steps)]
            for l in range(n_layers)]
    outs = [[int(spikes[l + 1][t].sum()) if layers[l].fire else 0 for t in range(t_steps)]
            for l in range(n_layers)]
    upd = [False] * n_layers
    count = [0] * n_layers
    emitting = [False] * n_layers
    pending = [0] * n_layers
    estep = [0] * n_layers  # step being emitted
    nstep = [0] * n_layers  # next step to update
    looked = [False] * n_layers
    lhit = [False] * n_layers
    xpend = [False] * n_layers
    tb_t = tb_k = 0
    steps_out = 0
    cycle = 0
    first = None
    limit = 64 * t_steps * sum(s.shape[1] + 8 + lay.batches for s, lay in zip(spikes, layers))
    while steps_out < t_steps:
        ready = [False] * n_layers
        take = [None] * n_layers  # "spike", "end" or None
        hit_now = [False] * n_layers
        for l in range(n_layers):
            kind = None
            if l == 0:
                if tb_t < t_steps:
                    if tb_k < len(hits[0][tb_t]):
                        kind, hit = "spike", bool(hits[0][tb_t][tb_k])
                    else:
                        kind = "end"
            elif emitting[l - 1]:
                if pending[l - 1] > 0:
                    row = hits[l][estep[l - 1]]
                    kind, hit = "spike", bool(row[len(row) - pending[l - 1]])
                else:
                    kind = "end"
            busy = looked[l] or xpend[l]
            can_update = not emitting[l] and not busy and not upd[l]
            ready[l] = not upd[l] and (kind == "spike" or can_update)
            if kind is not None and ready[l]:
                take[l] = kind
                hit_now[l] = kind == "spike" and hit
        if first is None and take[0] is not None:
            first = cycle
        last_out = False
        for l in range(n_layers):
            consumer_ready = True if l == n_layers - 1 else take[l + 1] is not None
            sent = emitting[l] and consumer_ready
            xpend[l] = looked[l] and lhit[l]
            looked[l] = take[l] == "spike"
            lhit[l] = hit_now[l]
            if upd[l]:
                if count[l] == layers[l].batches:
                    upd[l] = False
                    emitting[l] = True
                    pending[l] = outs[l][nstep[l]]
                    estep[l] = nstep[l]
                    nstep[l] += 1
                else:
                    count[l] += 1
            elif take[l] == "end":
                upd[l], count[l] = True, 0
            if sent:
                if pending[l] > 0:
                    pending[l] -= 1
                else:
                    emitting[l] = False
                    if l == n_layers - 1:
                        steps_out += 1
                        last_out = True
        if take[0] == "spike":
            tb_k += 1
        elif take[0] == "end":
            tb_t, tb_k = tb_t + 1, 0
        if last_out and steps_out == t_steps:
            return cycle - first + 1
        cycle += 1
        if cycle > limit:
            raise RuntimeError("cycle model did not finish: a bug in the model")
    raise RuntimeError("unreachable")


def predict_cycles(layers: list[LayerTiming], spikes: list[np.ndarray]) -> np.ndarray:
    """:func:`predict_sample_cycles` for a batch: ``spikes[l]`` is ``[N, T, n_in_l]``."""
    n = spikes[0].shape[0]
    return np.array([predict_sample_cycles(layers, [s[i] for s in spikes]) for i in range(n)],
                     dtype=np.int64)
