"""Cycle lower bound of a tiled network on given inputs (docs/HARDWARE.md#cycle-model).

Per time step a tile can do no better than one weight-row read per input
spike that hits one of its rows, plus its group's neuron update,
``ceil(C / P)`` cycles. So for each step the busiest tile bounds the step::

    bound(t) = max over tiles of ( hits(tile, t) + ceil(C_group / P) )

and a sample needs at least ``sum_t bound(t)`` cycles when every step had to
finish before the next (the issue's definition). The layers are pipelined,
so the stricter bound ``max over tiles of sum_t (...)`` is also reported.
The serial input link of every layer (one spike per cycle) gives a third
bound, ``link(t) = max over layers of (spikes into the layer at t)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikeforge.cyclemodel import LayerTiming, predict_cycles
from spikeforge.hw.layout import HardwareLayout
from spikeforge.qnet import QNet
from spikeforge.reference import simulate

__all__ = ["CycleBounds", "cycle_bounds", "layer_timings", "predicted_cycles"]


@dataclass
class CycleBounds:
    """Per-sample lower bounds (int64 ``[N]``)."""

    per_step: np.ndarray  # sum over steps of the busiest tile's work that step
    pipelined: np.ndarray  # max over tiles of their total work over all steps
    link: np.ndarray  # sum over steps of the busiest layer input link


def cycle_bounds(qnet: QNet, layout: HardwareLayout, spikes: np.ndarray) -> CycleBounds:
    """Lower bounds for ``spikes`` (``[N, T, n_in]``) on the hardware of ``layout``."""
    layout.check(qnet)
    ref = simulate(qnet, spikes, layout.visits())
    x = np.asarray(spikes, dtype=np.int64)
    if x.ndim == 2:
        x = x[None]
    work = []  # per tile: [N, T] cycles
    links = []
    inputs = x
    for layer, lay in zip(qnet.layers, layout.layers):
        links.append(inputs.sum(axis=2))
        for g in lay.groups:
            update = math.ceil(g.size / lay.lanes)
            for chunk in g.chunks:
                hits = inputs[:, :, list(chunk)].sum(axis=2) if chunk else 0 * links[-1]
                work.append(hits + update)
        if layer.fire:
            inputs = ref.spikes[layer.name].astype(np.int64)
    w = np.stack(work)  # [tiles, N, T]
    return CycleBounds(per_step=w.max(axis=0).sum(axis=1), pipelined=w.sum(axis=2).max(axis=0),
                       link=np.stack(links).max(axis=0).sum(axis=1))


def layer_timings(layout: HardwareLayout, qnet: QNet) -> list[LayerTiming]:
    """What :mod:`spikeforge.cyclemodel` needs from each layer of ``layout``."""
    out = []
    for lay, layer in zip(layout.layers, qnet.layers):
        has_row = np.zeros(lay.n_in, dtype=bool)
        for g in lay.groups:
            has_row[g.lines] = True
        out.append(LayerTiming(lay.batches, has_row, layer.fire))
    return out


def predicted_cycles(qnet: QNet, layout: HardwareLayout, spikes: np.ndarray) -> np.ndarray:
    """The RTL's ``cycles`` per sample for spike inputs sent back to back (int64 ``[N]``)."""
    x = np.asarray(spikes)
    if x.ndim == 2:
        x = x[None]
    ref = simulate(qnet, x)
    trains = [x] + [ref.spikes[l.name] for l in qnet.layers if l.fire]
    return predict_cycles(layer_timings(layout, qnet), trains)
