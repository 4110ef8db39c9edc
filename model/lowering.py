"""Lower a float :class:`SNN` (dense, conv, pooling, BackRes) to a QNet of dense layers.

A QNet layer is ``dense`` (docs/QNET.md §1: "a conv is lowered to dense with its
weights unrolled"). Every run of stateless layers between two neuron layers
(``Dense``, ``Conv2d``, ``Pool2d``, ``Flatten``; ``Dropout`` is the identity at
inference) is linear in its input spikes, so it is one dense layer: its
weights are the run applied to the unit vectors, its bias the run applied to
zero (computed in float64). Each layer's weights and bias are then divided by
its threshold (the same spikes with threshold 1) and each layer is quantized
by :func:`~spikeforge.model.export.quantize_dense` with its own scale (its
float32 weights, the per-layer leak and reset; a spiking last layer is read
out by spike count, docs/QNET.md §3). A spiking layer of scale ``s`` gets the
integer threshold ``ceil(s)`` (where ``quantize_dense`` rounds a threshold):
an integer membrane ``v`` reaches ``s`` exactly
when ``v >= ceil(s)``, so a float membrane that lands exactly on its
threshold (as with the small weights of hand-made graphs) is compared the same
way in both. ``threshold_rounding="nearest"`` is the other rule, that of
:func:`~spikeforge.model.export.quantize_dense` (PTQ, QAT) and of ANN
conversion: the weights are not divided, the layer's scale is that of its own
weights, and the threshold is ``max(1, round(theta s))``.

A ``Conv2d`` becomes its matrix by
:func:`spikeforge.mapping.lowering.conv2d_to_dense` (the one conv lowering, also
used by ANN conversion and the mapper); other stateless layers by their effect
on unit vectors. The neurons of a convolution's layer are numbered
position-major (``(y, x, c)``, the channels of one position together; the next
layer's columns follow), not in PyTorch's channel-major order: a contiguous
range of neurons -- what one neuron tile of the hardware holds -- then covers a
small patch of the image and reads a small receptive field, so its weight
memory is shallow (``neuron_order = "channel"`` keeps PyTorch's order). The
numbering is :func:`spikeforge.mapping.lowering.neuron_permutation`
(``"position"`` is ``NeuronOrder.HWC``, ``"channel"`` ``NeuronOrder.CHW``);
``meta["neuron_order"]`` records it.

A :class:`~spikeforge.model.backres.BackRes` block is unrolled
(:func:`backres_to_qnet`): its ``n`` steps become ``n`` consecutive QNet
layers with the same integer weights and one threshold per step. A ReLU layer
(:mod:`spikeforge.model.hybrid`) is refused: it sends real values, and a QNet
layer reads spikes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from spikeforge.leak import leak_shifts_for, nearest_leak
from spikeforge.mapping.lowering import NeuronOrder as Order
from spikeforge.mapping.lowering import conv2d_output_shape, conv2d_to_dense, neuron_permutation
from spikeforge.qnet import InputSpec, QNet

from .backres import BackRes
from .export import FloatDense, _check_fits, quantize_dense, weight_scale
from .hybrid import ReLU
from .layers import LIF, Conv2d, Dense, DenseReadout, Dropout, Flatten, Pool2d, SpikeCountReadout
from .network import SNN

__all__ = ["LoweringError", "backres_to_qnet", "dense_equivalent", "snn_to_qnet"]

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
    shape = tuple(int(n) for n in input_shape)
    weight: np.ndarray | None = None
    bias = np.zeros(int(np.prod(shape)))
    for m in modules:
        mw, mb, shape = _module_matrix(m, shape)
        weight = mw if weight is None else mw @ weight
        bias = mw @ bias + mb
    if weight is None:
        weight = np.eye(bias.size)
    return weight, bias, shape


def _module_matrix(m: nn.Module, shape: tuple[int, ...]
                   ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """One stateless layer as ``(weight, bias, out_shape)``, channel-major, float64."""
    if (isinstance(m, nn.Conv2d) and len(shape) == 3 and m.groups == 1
            and m.dilation == (1, 1) and m.padding_mode == "zeros"
            and isinstance(m.padding, tuple) and m.padding[0] == m.padding[1]
            and m.kernel_size[0] == m.kernel_size[1] and m.stride[0] == m.stride[1]):
        w = m.weight.detach().double().cpu().numpy()
        out = conv2d_output_shape(shape, m.kernel_size[0], m.stride[0], m.padding[0],
                                  m.out_channels)
        mat = conv2d_to_dense(w, shape, stride=m.stride[0], padding=m.padding[0],
                              order=Order.CHW)
        b = (np.repeat(m.bias.detach().double().cpu().numpy(), out[1] * out[2])
             if m.bias is not None else np.zeros(mat.shape[0]))
        return mat, b, out
    # any other linear layer: its effect on zero and on the unit vectors
    n_in = int(np.prod(shape))
    mod = copy.deepcopy(m).double()

    def apply(x: torch.Tensor) -> torch.Tensor:
        if isinstance(mod, DenseReadout):
            return nn.functional.linear(x, mod.weight, mod.bias)
        return mod(x)

    with torch.no_grad():
        zero = apply(torch.zeros(1, 1, *shape, dtype=torch.float64))
        out = apply(torch.eye(n_in, dtype=torch.float64).reshape(1, n_in, *shape))
    bias = zero.reshape(-1).cpu().numpy().copy()
    weight = (out.reshape(n_in, -1) - zero.reshape(1, -1)).cpu().numpy().T.copy()
    return weight, bias, tuple(zero.shape[2:])


def _order(neuron_order: str | Order) -> Order:
    """``"position"`` (``NeuronOrder.HWC``) or ``"channel"`` (``NeuronOrder.CHW``) as an order."""
    if isinstance(neuron_order, Order):
        return neuron_order
    named = {"position": Order.HWC, "channel": Order.CHW}
    if neuron_order not in named:
        raise ValueError(f"neuron_order must be 'position' or 'channel', not {neuron_order!r}")
    return named[neuron_order]


def snn_to_qnet(snn: SNN, input_shape: Sequence[int], *, weight_bits: int, membrane_bits: int,
                timesteps: int, name: str = "snn", leak_tolerance: float = 1e-5,
                layer_names: Sequence[str] | None = None,
                neuron_order: str | Order = "position",
                threshold_rounding: str = "ceil") -> QNet:
    """Quantize a float :class:`SNN` into a QNet of dense layers.

    Parameters
    ----------
    snn : SNN
        Layers from :mod:`spikeforge.model.layers`: runs of ``Dense``,
        ``Conv2d``, ``Pool2d``, ``Flatten``, ``Dropout``, each followed by a
        ``LIF`` (reset to zero or by subtraction, no refractory period), ending
        in a ``DenseReadout`` or a ``SpikeCountReadout``. A network with a
        ``BackRes`` block is handed to :func:`backres_to_qnet`.
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
    neuron_order : {"position", "channel"} or spikeforge.mapping.lowering.NeuronOrder
        Numbering of a hidden layer with a ``[C, H, W]`` output: ``(y, x, c)``
        (default, ``NeuronOrder.HWC``) or ``(c, y, x)`` as PyTorch flattens it
        (``NeuronOrder.CHW``); see :func:`~spikeforge.mapping.lowering.neuron_permutation`.
    threshold_rounding : {"ceil", "nearest"}
        ``"ceil"`` (default): a spiking layer's weights and bias are divided by
        its threshold and the integer threshold is ``ceil(s)`` (see the module
        doc). ``"nearest"``: the weights keep their values, ``s`` is the scale
        of the layer's own weights and the integer threshold ``max(1,
        round(theta s))``, as :func:`~spikeforge.model.export.quantize_dense`
        rounds it; ANN conversion (:meth:`spikeforge.model.convert.Conversion.to_qnet`)
        uses it. The integer weights are the same in both but for float32 ties.

    Returns
    -------
    QNet
        ``meta`` holds the float scales and the source layer behind each QNet layer.

    Raises
    ------
    LoweringError
        Naming the first layer a QNet cannot express, and why.
    """
    order_kind = _order(neuron_order)
    if threshold_rounding not in ("ceil", "nearest"):
        raise ValueError(f"threshold_rounding must be 'ceil' or 'nearest', not "
                         f"{threshold_rounding!r}")
    if any(isinstance(m, BackRes) for m in snn.layers):
        return backres_to_qnet(snn, input_shape, weight_bits=weight_bits,
                               membrane_bits=membrane_bits, timesteps=timesteps, name=name,
                               leak_tolerance=leak_tolerance, layer_names=layer_names,
                               neuron_order=neuron_order, threshold_rounding=threshold_rounding)
    mods = list(snn.layers)
    names = _layer_names(mods, layer_names)
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
        if isinstance(m, ReLU):
            raise LoweringError(lname, kind, _RELU_REASON)
        raise LoweringError(lname, kind, "no QNet equivalent for this layer")
    if not weights:
        raise LoweringError(names[-1] if names else "snn", "SNN", "the network has no layer")

    order: dict[int, list[int]] = {}
    if order_kind is not Order.CHW:
        for l in range(len(weights) - 1):  # hidden layers; the last one's are the classes
            if len(shapes[l]) == 3:
                perm = neuron_permutation(shapes[l], order_kind)
                weights[l], biases[l] = weights[l][perm], biases[l][perm]
                weights[l + 1] = weights[l + 1][:, perm]
                order[l] = list(shapes[l])

    shifts, resets, thetas = [], [], []
    for l, (lname, m) in enumerate(lifs):
        p = m.step_params()
        if p.refractory:
            raise LoweringError(lname, "LIF", "a QNet has no refractory period")
        k = leak_shifts_for(p.beta, tolerance=leak_tolerance, max_shift=membrane_bits - 1)
        if k is None:
            raise LoweringError(lname, "LIF", _no_leak(p.beta, leak_tolerance, membrane_bits))
        # a learnable threshold is a tensor that requires grad
        theta = float(p.threshold.detach() if torch.is_tensor(p.threshold) else p.threshold)
        if threshold_rounding == "ceil":
            weights[l], biases[l] = weights[l] / theta, biases[l] / theta
            theta = 1.0
        thetas.append(theta)
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

    # Per-layer quantization (export.quantize_dense) of the float32 weights (the precision
    # the network trained in): with "ceil" a hidden layer's threshold is 1 after the division
    # above.
    n_spiking = len(lifs)
    scales, layers = [], []
    for l, (w, b) in enumerate(zip(weights, biases)):
        w32 = np.asarray(w, np.float32).astype(np.float64)
        b32 = np.asarray(b, np.float32).astype(np.float64)
        try:
            scale = weight_scale(w32, weight_bits)
        except ValueError as e:
            if "zero weights" not in str(e):
                raise
            raise ValueError(f"layer {l} has only zero weights; it cannot be scaled") from None
        scales.append(float(scale))
        qname = f"fc{l + 1}"
        if l < n_spiking:
            fl = FloatDense(qname, w32, thetas[l], shifts[l], resets[l], bias=b32)
            layer = quantize_dense(fl, scale, weight_bits=weight_bits,
                                   membrane_bits=membrane_bits)
            # v >= 1 in float is s*v >= s; for the integer v ~ s*v that is v >= ceil(s).
            # ("nearest": quantize_dense's max(1, round(theta s)).)
            theta = (max(1, math.ceil(scale)) if threshold_rounding == "ceil"
                     else int(layer.threshold))
            _check_fits(qname, np.asarray(layer.weights), layer.biases, theta, membrane_bits)
            layer = dataclasses.replace(layer, threshold=theta)
        else:
            fl = FloatDense(qname, w32, None, ro, bias=b32)
            layer = quantize_dense(fl, scale, weight_bits=weight_bits,
                                   membrane_bits=membrane_bits, check_fits=True)
        if layer.bias is not None and not np.any(layer.bias):
            layer = dataclasses.replace(layer, bias=None)
        layers.append(layer)
    q = QNet(layers=tuple(layers), timesteps=timesteps,
             input=InputSpec(size=weights[0].shape[1],
                             shape=tuple(int(n) for n in input_shape)),
             name=name, meta={"scales": scales})
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


_RELU_REASON = ("ReLU neurons send real values and a QNet layer reads spikes (0/1), so a hybrid "
                "network cannot run as a QNet; compute its ReLU layers off-chip, or convert "
                "them to IF neurons (spikeforge.model.convert)")


def backres_to_qnet(snn: SNN, input_shape: Sequence[int], *, weight_bits: int,
                    membrane_bits: int, timesteps: int, name: str = "snn",
                    leak_tolerance: float = 1e-5, layer_names: Sequence[str] | None = None,
                    neuron_order: str | Order = "position",
                    threshold_rounding: str = "ceil") -> QNet:
    """Quantize an SNN with weight-shared layers (BackRes blocks) into a QNet of dense layers.

    A :class:`~spikeforge.model.backres.BackRes` block of ``n`` steps is
    unrolled into ``body, LIF_1, body, LIF_2, ..., body, LIF_n`` (the same body
    module every time) and the network is lowered by :func:`snn_to_qnet`: the
    block becomes ``n`` consecutive QNet layers, one threshold per step. Step
    ``k`` has the float weights ``W / theta_k``, which per-layer scaling maps to
    the same integers ``round(W (2^(wb-1) - 1) / max|W|)`` whatever ``theta_k``,
    with the integer threshold ``ceil(theta_k (2^(wb-1) - 1) / max|W|)``; the
    float32 arithmetic of that scaling can round a tie differently in one step,
    so the integers of a shared module's first use are written to all its uses
    (they differ by at most 1, checked) and the unrolled layers are equal.

    Sharing is found by module identity: every synaptic module (``Dense`` or
    ``Conv2d``) that makes up a QNet layer on its own and is used more than
    once -- a BackRes body, or the reused op of a converted
    :class:`~spikeforge.model.convert.ReLUNet` (``convert(...).snn``) -- gets
    identical integers in every use. A use that a preceding ``Pool2d``,
    ``Flatten`` or ``Dense`` was folded into has other weights and is left as
    lowered. With ``neuron_order="position"`` the equality holds in the
    position-major numbering of each layer; a conv block that reads the
    network's input directly has its first step's columns in the input's
    channel-major order (the same integers, permuted).

    Parameters
    ----------
    snn, input_shape, weight_bits, membrane_bits, timesteps, name, leak_tolerance, layer_names,
    neuron_order, threshold_rounding
        As for :func:`snn_to_qnet`.

    Returns
    -------
    QNet
        ``meta["backres"]`` maps each block (by its layer name) to the names
        of its step layers; ``meta["shared_weights"]`` maps each later use of
        a shared module to the layer of its first use.

    Raises
    ------
    LoweringError
        Naming the first layer a QNet cannot express, and why.
    """
    mods = list(snn.layers)
    names = _layer_names(mods, layer_names)
    flat, flat_names, blocks = [], [], {}
    for m, lname in zip(mods, names):
        if not isinstance(m, BackRes):
            flat.append(m)
            flat_names.append(lname)
            continue
        blocks[lname] = []
        for k, lif in enumerate(m.neurons, 1):
            flat += [m.body, lif]
            flat_names += [f"{lname}/body", f"{lname}/step{k}"]
            blocks[lname].append(f"{lname}/step{k}")
    q = snn_to_qnet(SNN(flat), input_shape, weight_bits=weight_bits,
                    membrane_bits=membrane_bits, timesteps=timesteps, name=name,
                    leak_tolerance=leak_tolerance, layer_names=flat_names,
                    neuron_order=neuron_order, threshold_rounding=threshold_rounding)
    layers = list(q.layers)
    shared: dict[str, str] = {}
    for uses in _shared_uses(flat, q):
        w0, b0 = _canonical(q, uses[0])
        for l in uses[1:]:
            w, b = _canonical(q, l)
            gap = max(int(np.abs(w - w0).max()), int(np.abs(b - b0).max()))
            if gap > 1:  # the same float weights and scale; only a tie may round apart
                raise LoweringError(layers[l].name, "shared", "a use of a shared module "
                                    f"differs from {layers[uses[0]].name} by {gap}")
            w, b = _numbered(q, l, w0, b0)
            _check_fits(layers[l].name, w, b, int(layers[l].threshold), membrane_bits)
            layers[l] = dataclasses.replace(layers[l], weights=w,
                                            bias=b if np.any(b) else None)
            shared[layers[l].name] = layers[uses[0]].name
    meta = dict(q.meta)
    if blocks:
        qname = {src: layer.name for src, layer in zip(q.meta["source_layers"], q.layers)}
        meta["backres"] = {b: [qname[s] for s in steps] for b, steps in blocks.items()}
    if shared:
        meta["shared_weights"] = shared
    return dataclasses.replace(q, layers=tuple(layers), meta=meta)


def _shared_uses(flat: Sequence[nn.Module], q: QNet) -> list[list[int]]:
    """QNet layer indices of each synaptic module that alone makes up two or more layers."""
    runs: list[list[nn.Module]] = []
    run: list[nn.Module] = []
    for m in flat:  # the runs of snn_to_qnet, one per QNet layer (it has checked them)
        if isinstance(m, _STATELESS):
            run.append(m)
        elif isinstance(m, LIF | DenseReadout):
            runs.append(run + [m] if isinstance(m, DenseReadout) else run)
            run = []
    uses: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for l, r in enumerate(runs):
        if len(r) == 1 and isinstance(r[0], Dense | Conv2d):
            # a conv applied to inputs of different sizes has different matrices
            uses.setdefault((id(r[0]), np.shape(q.layers[l].weights)), []).append(l)
    return [u for u in uses.values() if len(u) > 1]


def _layer_names(mods: list[nn.Module], layer_names: Sequence[str] | None) -> list[str]:
    """``layer_names``, or ``"index:Type"`` for each module; their counts must agree."""
    names = (list(layer_names) if layer_names is not None
             else [f"{i}:{type(m).__name__}" for i, m in enumerate(mods)])
    if len(names) != len(mods):
        raise ValueError(f"layer_names has {len(names)} names for {len(mods)} layers")
    return names


def _orders(q: QNet, l: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Position-major permutations of layer ``l``'s rows and columns (None: channel-major)."""
    order = q.meta.get("neuron_order", {})
    rows = order.get(q.layers[l].name)
    cols = order.get(q.layers[l - 1].name) if l > 0 else None
    def perm(rec: dict | None) -> np.ndarray | None:
        return neuron_permutation(rec["shape"], Order.HWC) if rec else None

    return perm(rows), perm(cols)


def _canonical(q: QNet, l: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer ``l``'s integer weights and bias with rows and columns channel-major."""
    w, b = np.asarray(q.layers[l].weights), q.layers[l].biases
    rows, cols = _orders(q, l)
    if rows is not None:
        inv = np.argsort(rows)
        w, b = w[inv], b[inv]
    if cols is not None:
        w = w[:, np.argsort(cols)]
    return w, b


def _numbered(q: QNet, l: int, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel-major weights and bias in layer ``l``'s numbering (inverse of :func:`_canonical`)."""
    rows, cols = _orders(q, l)
    if rows is not None:
        w, b = w[rows], b[rows]
    if cols is not None:
        w = w[:, cols]
    return w.copy(), b.copy()
