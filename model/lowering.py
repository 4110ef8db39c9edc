"""Lower a float :class:`SNN` (dense, conv, pooling) to a QNet of dense layers.

A QNet layer is ``dense`` (SPEC.md §1: "a conv is lowered to dense with its
weights unrolled"). Every run of stateless layers between two neuron layers
(``Dense``, ``Conv2d``, ``Pool2d``, ``Flatten``; ``Dropout`` is the identity at
inference) is linear in its input spikes, so it is one dense layer: its
weights are the run applied to the unit vectors, its bias the run applied to
zero (computed in float64). Each layer's weights and bias are then divided by
its threshold (the same spikes with threshold 1), the layers are put in a
:class:`~spikeforge.model.mlp.LIFMLP` and quantized by
:func:`~spikeforge.model.export.to_qnet`; the per-layer leak, the reset and a
spiking last layer (read out by spike count, SPEC.md §3) are then set on its
layers. A spiking layer of scale ``s`` gets the integer threshold ``ceil(s)``
(where ``to_qnet`` rounds): an integer membrane ``v`` reaches ``s`` exactly
when ``v >= ceil(s)``, so a float membrane that lands exactly on its
threshold (as with the small weights of hand-made graphs) is compared the same
way in both.

The neurons of a convolution's layer are numbered position-major (``(y, x, c)``,
the channels of one position together; the next layer's columns follow), not
in PyTorch's channel-major order: a contiguous range of neurons -- what one
neuron tile of the hardware holds -- then covers a small patch of the image and
reads a small receptive field, so its weight memory is shallow (``neuron_order
= "channel"`` keeps PyTorch's order). ``meta["neuron_order"]`` records it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from spikeforge.qnet import QNet, Reset

from .export import _check_fits, to_qnet
from .layers import LIF, Conv2d, Dense, DenseReadout, Dropout, Flatten, Pool2d, SpikeCountReadout
from .mlp import LIFMLP
from .network import SNN
from .nir_convention import leak_shifts_for, nearest_leak

__all__ = ["LoweringError", "dense_equivalent", "snn_to_qnet"]

_STATELESS = (Dense, Conv2d, Pool2d, Flatten)


class LoweringError(ValueError):
    """A layer of the SNN that a QNet cannot express, and why."""

    def __init__(self, layer: str, kind: str, reason: str) -> None:
        self.layer = layer
        self.kind = kind
        self.reason = reason
        super().__init__(f"layer {layer!r} ({kind}): {reason}")


def dense_equivalent(
    modules: Sequence[nn.Module], input_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Weights ``[n_out, n_in]`` and bias of a run of linear layers, and its output shape.

    Parameters
    ----------
    modules : sequence of nn.Module
        Time-major stateless layers (``Dense``, ``Conv2d``, ``Pool2d``,
        ``Flatten``, ``DenseReadout`` last), applied in order.
    input_shape : tuple of int
        Per-sample input shape.

    Returns
    -------
    weight : numpy.ndarray
        float64 ``[n_out, n_in]`` with ``y = weight @ x.ravel() + bias``.
    bias : numpy.ndarray
        float64 ``[n_out]`` (the output for a zero input).
    out_shape : tuple of int
        Per-sample output shape.
    """
    n_in = int(np.prod(input_shape))
    run = [copy.deepcopy(m).double() for m in modules]

    def apply(x: torch.Tensor) -> torch.Tensor:
        for m in run:
            if isinstance(m, DenseReadout):
                x = nn.functional.linear(x, m.weight, m.bias)
            else:
                x = m(x)
        return x

    with torch.no_grad():
        zero = apply(torch.zeros(1, 1, *input_shape, dtype=torch.float64))
        unit = torch.eye(n_in, dtype=torch.float64).reshape(1, n_in, *input_shape)
        out = apply(unit)
    bias = zero.reshape(-1).numpy()
    weight = (out.reshape(n_in, -1) - zero.reshape(1, -1)).numpy().T.copy()
    return weight, bias, tuple(zero.shape[2:])


def snn_to_qnet(snn: SNN, input_shape: Sequence[int], *, weight_bits: int, membrane_bits: int,
                timesteps: int, name: str = "snn", leak_tolerance: float = 1e-5,
                layer_names: Sequence[str] | None = None,
                neuron_order: str = "position") -> QNet:
    """Quantize a float :class:`SNN` into a QNet of dense layers.

    Parameters
    ----------
    snn : SNN
        Layers from :mod:`spikeforge.model.layers`: runs of ``Dense``,
        ``Conv2d``, ``Pool2d``, ``Flatten``, ``Dropout``, each followed by a
        ``LIF`` (reset to zero or by subtraction, no refractory period), ending
        in a ``DenseReadout`` or a ``SpikeCountReadout``.
    input_shape : sequence of int
        Per-sample input shape (``(n,)`` or ``(C, H, W)``).
    weight_bits, membrane_bits : int
        Signed widths of every layer.
    timesteps : int
        ``T`` of the QNet.
    name : str
        QNet name; layers are ``fc1``, ``fc2``, ...
    leak_tolerance : float
        Largest accepted gap between a layer's ``beta`` and the nearest hardware
        leak ``1 - sum(2^-k)``.
    layer_names : sequence of str, optional
        A name for each layer of ``snn`` used in error messages and recorded in
        ``meta["source_layers"]`` (default: ``"index:Type"``).
    neuron_order : {"position", "channel"}
        Numbering of a hidden layer with a ``[C, H, W]`` output: ``(y, x, c)``
        (default) or ``(c, y, x)`` as PyTorch flattens it.

    Returns
    -------
    QNet
        ``meta`` holds the float scales (from ``to_qnet``) and the source layer
        behind each QNet layer.

    Raises
    ------
    LoweringError
        Naming the first layer a QNet cannot express, and why.
    """
    if neuron_order not in ("position", "channel"):
        raise ValueError(f"neuron_order must be 'position' or 'channel', not {neuron_order!r}")
    mods = list(snn.layers)
    names = (list(layer_names) if layer_names is not None
             else [f"{i}:{type(m).__name__}" for i, m in enumerate(mods)])
    if len(names) != len(mods):
        raise ValueError(f"layer_names has {len(names)} names for {len(mods)} layers")
    shape = tuple(int(n) for n in input_shape)
    weights, biases, lifs, sources, shapes = [], [], [], [], []
    run: list[nn.Module] = []
    readout_beta: float | None = None
    for i, (m, lname) in enumerate(zip(mods, names)):
        kind = type(m).__name__
        if isinstance(m, Dropout):
            continue
        if isinstance(m, _STATELESS):
            run.append(m)
            continue
        if isinstance(m, LIF | DenseReadout):
            if isinstance(m, DenseReadout):
                run.append(m)
            if not any(isinstance(r, Dense | Conv2d | Pool2d | DenseReadout) for r in run):
                raise LoweringError(lname, kind, "a QNet layer reads spikes through synapses; "
                                    "this neuron layer has none before it")
            w, b, shape = dense_equivalent(run, shape)
            run = []
            shapes.append(shape)
            weights.append(w)
            biases.append(b)
            sources.append(lname)
            if isinstance(m, DenseReadout):
                readout_beta = m.beta
                if i != len(mods) - 1:
                    raise LoweringError(lname, kind, "only the last layer may be a readout")
            else:
                lifs.append((lname, m))
            continue
        if isinstance(m, SpikeCountReadout):
            if run:
                raise LoweringError(lname, kind, "the spike counts must be read from a neuron "
                                    "layer directly")
            continue
        raise LoweringError(lname, kind, "no QNet equivalent for this layer")
    if not weights:
        raise LoweringError(names[-1] if names else "snn", "SNN", "the network has no layer")

    order: dict[int, list[int]] = {}
    if neuron_order == "position":
        for l in range(len(weights) - 1):  # hidden layers; the last one's are the classes
            if len(shapes[l]) == 3:
                c, h, w_ = shapes[l]
                perm = np.arange(c * h * w_).reshape(c, h, w_).transpose(1, 2, 0).ravel()
                weights[l], biases[l] = weights[l][perm], biases[l][perm]
                weights[l + 1] = weights[l + 1][:, perm]
                order[l] = list(shapes[l])

    shifts, resets = [], []
    for l, (lname, m) in enumerate(lifs):
        p = m.step_params()
        if p.refractory:
            raise LoweringError(lname, "LIF", "a QNet has no refractory period")
        k = leak_shifts_for(p.beta, tolerance=leak_tolerance, max_shift=membrane_bits - 1)
        if k is None:
            raise LoweringError(lname, "LIF", _no_leak(p.beta, leak_tolerance, membrane_bits))
        theta = float(p.threshold)
        weights[l], biases[l] = weights[l] / theta, biases[l] / theta
        shifts.append(k)
        resets.append(p.reset)
    spiking_last = readout_beta is None
    if not spiking_last:
        ro = leak_shifts_for(readout_beta, tolerance=leak_tolerance, max_shift=membrane_bits - 1)
        if ro is None:
            raise LoweringError(sources[-1], "DenseReadout",
                                _no_leak(readout_beta, leak_tolerance, membrane_bits))
    else:
        ro = shifts[-1]

    sizes = [weights[0].shape[1]] + [w.shape[0] for w in weights]
    mlp = LIFMLP(sizes, leak_shifts=shifts[0] if shifts else (), readout_leak_shifts=ro,
                 threshold=1.0, reset=resets[0] if resets else Reset.ZERO, bias=True)
    with torch.no_grad():
        for layer, w, b in zip(mlp.layers, weights, biases):
            layer.weight.copy_(torch.as_tensor(w))
            layer.bias.copy_(torch.as_tensor(b))
    q = to_qnet(mlp, weight_bits=weight_bits, membrane_bits=membrane_bits, timesteps=timesteps,
                name=name, input_shape=tuple(int(n) for n in input_shape))
    scales = q.meta["scales"]
    layers = []
    for l, layer in enumerate(q.layers):
        bias = layer.bias if layer.bias is not None and np.any(layer.bias) else None
        if l < len(lifs):
            # v >= 1 in float is s*v >= s; for the integer v ~ s*v that is v >= ceil(s).
            theta = max(1, math.ceil(scales[l]))
            _check_fits(layer.name, np.asarray(layer.weights), layer.biases, theta,
                        membrane_bits)
            layer = dataclasses.replace(layer, leak_shifts=shifts[l], reset=resets[l],
                                        fire=True, threshold=theta, bias=bias)
        else:
            layer = dataclasses.replace(layer, bias=bias)
        layers.append(layer)
    meta = dict(q.meta, source_layers=sources)
    if order:
        # hidden layers numbered (y, x, c): neuron (y * W + x) * C + c of a [C, H, W] output
        meta["neuron_order"] = {q.layers[l].name: {"order": "yxc", "shape": shp}
                                for l, shp in order.items()}
    return dataclasses.replace(q, layers=tuple(layers), meta=meta)


def _no_leak(beta: float, tolerance: float, membrane_bits: int) -> str:
    shifts, gap = nearest_leak(beta, max_shift=membrane_bits - 1)
    near = 1.0 - sum(2.0**-k for k in shifts)
    return (f"beta = {beta:.8g} is not a hardware leak 1 - sum(2^-k) (at most 4 shifts k < "
            f"membrane_bits = {membrane_bits}) within {tolerance:g}; the nearest is {near:.8g} "
            f"(shifts {list(shifts)}, {gap:.2g} away). Train with leak shifts, or raise "
            "leak_tolerance to accept the nearest")
