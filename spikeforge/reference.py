"""Bit-exact integer reference simulator of a QNet (docs/QNET.md §2, §3, §5), in numpy.

Vectorised over a batch of samples. The hardware is checked against this, so
it follows the spec literally: floor shifts, saturation, then compare and reset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.contracts import COUNTERS
from spikeforge.qnet import RESET_RULES, AtSpike, Layer, QNet

__all__ = ["COUNTERS", "RefResult", "layer_step", "predict", "simulate"]



@dataclass
class RefResult:
    """What the reference reports for a batch of ``N`` samples of ``T`` steps.

    ``spikes[name]`` is uint8 ``[N, T, n_out]`` (spiking layers only),
    ``membrane[name]`` the final membrane int64 ``[N, n_out]`` for every layer,
    ``counters[name][counter]`` int64 ``[N]``.
    """

    spikes: dict[str, np.ndarray]
    membrane: dict[str, np.ndarray]
    counters: dict[str, dict[str, np.ndarray]]
    scores: np.ndarray
    predictions: np.ndarray


# What a spike does to the membrane at once, per action of the reset rules (qnet.RESET_RULES).
AT_SPIKE = {
    AtSpike.ZERO: lambda v, theta: np.zeros_like(v),
    AtSpike.SUBTRACT: lambda v, theta: v - theta,
    AtSpike.KEEP: lambda v, theta: v,
}


def layer_step(layer: Layer, v: np.ndarray, s_in: np.ndarray,
               s_prev: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One time step of one layer for a batch.

    ``v`` is int64 ``[N, n_out]`` and ``s_in`` is ``[N, n_in]`` of 0/1; returns the new
    membrane and the output spikes (uint8; all zero for a readout layer)::

        I = W @ s_in ; v = sat(v - sum(v >> k) + I + bias [- theta * s_prev]) ;
        s = v >= theta ; reset

    ``s_prev`` is the layer's own spikes of the previous step (``None``: none, as at
    the start of a sample); only a reset rule with ``subtract_next`` reads it.
    """
    rule = RESET_RULES[layer.reset]
    current = s_in.astype(np.int64) @ layer.weights.T
    leaked = v.copy()
    for k in layer.leak_shifts:
        leaked -= v >> k
    lo, hi = layer.membrane_range
    total = leaked + current + layer.biases
    if rule.subtract_next and s_prev is not None:
        total = total - layer.thresholds * s_prev.astype(np.int64)
    v = np.clip(total, lo, hi)
    if not layer.fire:
        return v, np.zeros(v.shape, dtype=np.uint8)
    spikes = v >= layer.thresholds
    v = np.where(spikes, AT_SPIKE[rule.at_spike](v, layer.thresholds), v)
    return v, spikes.astype(np.uint8)


def simulate(net: QNet, spikes_in: np.ndarray,
             visits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> RefResult:
    """Run ``spikes_in`` (0/1, ``[N, T, n_in]`` or ``[T, n_in]``) through ``net``.

    ``visits[layer]`` = (weight rows read, synapses visited) per input line, for
    hardware that skips zero rows or splits a layer into tiles (docs/QNET.md §5 counts
    what the hardware reads; ``HardwareLayout.visits()`` gives it). Without it
    a spike reads one row and visits all ``n_out`` synapses.
    """
    x = np.asarray(spikes_in)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ValueError(f"input spikes must be [N, T, {net.n_in}], not {list(x.shape)}")
    if x.size and not np.isin(x, (0, 1)).all():
        raise ValueError("input spikes must be 0 or 1")
    n, t_steps, _ = x.shape
    v = {l.name: np.zeros((n, l.n_out), dtype=np.int64) for l in net.layers}
    prev: dict[str, np.ndarray | None] = {l.name: None for l in net.layers}  # last spikes
    out = {l.name: np.zeros((n, t_steps, l.n_out), dtype=np.uint8) for l in net.layers if l.fire}
    syn = {l.name: np.zeros(n, dtype=np.int64) for l in net.layers}
    reads = {l.name: np.zeros(n, dtype=np.int64) for l in net.layers}
    for t in range(t_steps):
        s = x[:, t, :]
        for layer in net.layers:
            if visits is None:  # one row read and n_out adds per spiking axon
                n_spk = s.sum(axis=1, dtype=np.int64)
                reads[layer.name] += n_spk
                syn[layer.name] += n_spk * layer.n_out
            else:
                r, a = visits[layer.name]
                reads[layer.name] += s.astype(np.int64) @ r
                syn[layer.name] += s.astype(np.int64) @ a
            v[layer.name], s = layer_step(layer, v[layer.name], s, prev[layer.name])
            prev[layer.name] = s
            if layer.fire:
                out[layer.name][:, t, :] = s
    counters = {}
    for layer in net.layers:
        counters[layer.name] = {
            "synaptic_events": syn[layer.name],
            "neuron_updates": np.full(n, t_steps * layer.n_out, dtype=np.int64),
            "weight_reads": reads[layer.name],
            "spikes_out": (out[layer.name].sum(axis=(1, 2), dtype=np.int64) if layer.fire
                           else np.zeros(n, dtype=np.int64)),
        }
    last = net.layers[-1]
    scores = v[last.name] if not last.fire else out[last.name].sum(axis=1, dtype=np.int64)
    return RefResult(spikes=out, membrane=v, counters=counters, scores=scores,
                     predictions=predict(scores))


def predict(scores: np.ndarray) -> np.ndarray:
    """Index of the largest score per row; ties go to the lowest index (np.argmax does)."""
    return np.argmax(scores, axis=-1)
