"""Random QNets and spike trains for checking the RTL against the reference.

Cases deliberately reach the corners: every spiking reset mode of
``qnet.RESET_RULES`` (a new mode is drawn without a change here), no leak and several shifts,
per-neuron thresholds, biases, weights large enough to saturate the membrane
at both ends, and empty and full spike trains.
"""

from __future__ import annotations

import numpy as np

from spikeforge.hw.layout import Group, HardwareLayout, LayerLayout
from spikeforge.qnet import SPIKING_RESETS, InputSpec, Layer, QNet, Reset, signed_range

__all__ = ["random_layout", "random_qnet", "random_spikes"]


def _layer(rng: np.random.Generator, name: str, n_in: int, n_out: int, last: bool) -> Layer:
    wb = int(rng.integers(2, 9))
    # Small membranes make saturation common; large ones keep long integrations exact.
    vb = int(rng.choice([wb + 1, wb + 2, wb + 4, 12, 16]))
    vb = max(vb, 4)
    lo, hi = signed_range(wb)
    weights = rng.integers(lo, hi + 1, size=(n_out, n_in))
    zrng = rng.spawn(1)[0]  # its own stream: the other draws stay as they were
    if zrng.random() < 0.3:  # some input lines with no weight at all: rows to skip
        weights[:, zrng.random(n_in) < 0.3] = 0
    skew = rng.random()
    if skew < 0.25:  # excitatory: drives the membrane into positive saturation
        weights = np.abs(weights).clip(0, hi)
    elif skew < 0.4:  # inhibitory: negative saturation
        weights = -np.abs(weights)
    shifts: tuple[int, ...] = ()
    if rng.random() < 0.7:
        pool = list(range(1, min(vb, 7)))
        k = int(rng.integers(1, min(3, len(pool)) + 1))
        shifts = tuple(sorted(rng.choice(pool, size=k, replace=False).tolist()))
        if sum(2.0**-s for s in shifts) >= 1.0:
            shifts = shifts[1:] or (2,)
    vlo, vhi = signed_range(vb)
    if rng.random() < 0.3:
        threshold: int | np.ndarray = rng.integers(1, vhi + 1, size=n_out)
    else:
        threshold = int(rng.integers(1, max(2, min(vhi, 4 * hi)) + 1))
    bias = rng.integers(max(vlo, -hi), min(vhi, hi) + 1, size=n_out) if rng.random() < 0.3 \
        else None
    fire = not (last and rng.random() < 0.6)
    # one draw, uniform over the spiking modes in table order (how many there are does
    # not change the stream)
    reset = Reset.NONE if not fire else SPIKING_RESETS[int(rng.random() * len(SPIKING_RESETS))]
    return Layer(name=name, n_in=n_in, n_out=n_out, weight_bits=wb, weights=weights,
                 threshold=threshold, membrane_bits=vb, leak_shifts=shifts, reset=reset,
                 fire=fire, bias=bias)


def random_qnet(seed: int, *, max_layers: int = 3, max_width: int = 12,
                max_timesteps: int = 6) -> QNet:
    """A small random, valid QNet (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(1, max_layers + 1))
    sizes = [int(rng.integers(1, max_width + 1)) for _ in range(n_layers + 1)]
    layers = tuple(
        _layer(rng, f"l{i}", sizes[i], sizes[i + 1], i == n_layers - 1) for i in range(n_layers)
    )
    return QNet(layers=layers, timesteps=int(rng.integers(1, max_timesteps + 1)),
                input=InputSpec(sizes[0]), name=f"random{seed}")


def random_spikes(seed: int, net: QNet, n: int) -> np.ndarray:
    """``n`` samples mixing empty, full and random trains at several rates."""
    rng = np.random.default_rng(seed)
    shape = (n, net.timesteps, net.n_in)
    rates = rng.choice([0.0, 0.1, 0.5, 0.9, 1.0], size=(n, 1, 1))
    return (rng.random(shape) < rates).astype(np.uint8)


def random_layout(seed: int, net: QNet) -> HardwareLayout:
    """Random tiles for ``net``: groups of neurons, chunks of lines in any order, any lanes.

    Lines with no nonzero weight into a group are left out of its chunks
    (skipped rows); a chunk may end up empty.
    """
    rng = np.random.default_rng(seed)
    layers = []
    for layer in net.layers:
        n_groups = int(rng.integers(1, min(3, layer.n_out) + 1))
        cuts = sorted(rng.choice(np.arange(1, layer.n_out), size=n_groups - 1, replace=False)
                      .tolist()) if n_groups > 1 else []
        edges = [0, *cuts, layer.n_out]
        groups = []
        for lo, hi in zip(edges, edges[1:]):
            used = np.flatnonzero(np.any(layer.weights[lo:hi] != 0, axis=0))
            k = int(rng.integers(1, 4))
            owner = rng.integers(0, k, size=len(used))
            chunks = tuple(tuple(int(i) for i in used[owner == c]) for c in range(k))
            groups.append(Group(lo, hi, chunks))
        lanes = int(rng.integers(1, layer.n_out + 1))
        layers.append(LayerLayout(layer.name, layer.n_in, layer.n_out, tuple(groups), lanes))
    out = HardwareLayout(tuple(layers), source=f"random layout {seed}")
    out.check(net)
    return out
