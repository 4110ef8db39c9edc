"""Export a spikeforge network (:class:`SNN` or :class:`LIFMLP`) to a NIR graph.

The network is laid out as a ``torch.nn.Sequential`` of its own layers (named
``fc1``, ``lif1``, ``conv1``, ``pool1``, ``flatten1``, ...) and traced by
``nirtorch.torch_to_nir`` with one mapping function per layer type:

==========================  ==========================================================
spikeforge layer            NIR node(s)
==========================  ==========================================================
``Dense``                   ``Affine`` (``Linear`` without bias)
``Conv2d``                  ``Conv2d`` (with its input's ``(H, W)``)
``Pool2d`` sum / average    ``SumPool2d`` / ``AvgPool2d`` (kernel = stride = size)
``Flatten``                 ``Flatten`` (``start_dim=0``: the whole per-sample tensor)
``LIF`` (beta < 1)          ``LIF`` with ``tau = dt/(1-beta)``, ``r = tau/dt``, ``v_leak = 0``
``LIF`` (beta = 1)          ``IF`` with ``r = 1``
``DenseReadout``            ``Affine`` then ``LI`` (beta < 1) or ``I`` (beta = 1), node ``readout``
``SpikeCountReadout``       nothing: the graph's output is the last layer's spikes
``Dropout``                 nothing (identity at inference)
==========================  ==========================================================

Every neuron parameter is an array of the neuron tensor's shape. Thresholds
are written as the float32 just below ``theta`` (NIR fires on ``>``). Reset by
subtraction and refractory periods have no NIR form and are refused (reset by
subtraction can be written as node metadata with ``allow_subtract=True``;
spikeforge reads it back, other tools ignore it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from spikeforge.extras import require

from .layers import (
    LIF,
    Conv2d,
    Dense,
    DenseReadout,
    Dropout,
    Flatten,
    Pool2d,
    PoolKind,
    SpikeCountReadout,
)
from .mlp import LIFMLP
from .network import SNN
from .neurons import beta_from_shifts
from .nir_convention import (
    DEFAULT_DT,
    RESET_METADATA,
    NIRError,
    reset_metadata,
    tau_from_beta,
    threshold_to_nir,
)

nir = require("nir", "nir", "NIR support")
nirtorch = require("nirtorch", "nir", "NIR support")

__all__ = ["lifmlp_to_snn", "to_nir"]


class _ReadoutNeuron(nn.Module):
    """Marker for the non-firing neurons of a :class:`DenseReadout` (export only)."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x


def lifmlp_to_snn(model: LIFMLP) -> SNN:
    """The :class:`SNN` that computes the same spikes and scores as ``model``.

    Hidden layers become ``Dense, LIF`` pairs and the last layer a
    :class:`DenseReadout`; the weights are copied.

    Parameters
    ----------
    model : LIFMLP
        Trained model.

    Returns
    -------
    SNN
        Input ``[T, B, n_in]`` (time-major, where ``LIFMLP`` takes ``[B, T, n_in]``).
    """
    if not isinstance(model, LIFMLP):
        raise ValueError(f"model must be a LIFMLP, not {type(model).__name__}")
    p = model.lif
    layers: list[nn.Module] = []
    n = len(model.layers)
    for l, src in enumerate(model.layers):
        bias = src.bias is not None
        if l < n - 1:
            dst = Dense(src.in_features, src.out_features, bias=bias)
        else:
            dst = DenseReadout(src.in_features, src.out_features, bias=bias,
                               beta=beta_from_shifts(model.readout_leak_shifts))
        with torch.no_grad():
            dst.weight.copy_(src.weight)
            if bias:
                dst.bias.copy_(src.bias)
        layers.append(dst)
        if l < n - 1:
            layers.append(LIF(p.beta, float(p.threshold), reset=p.reset, surrogate=p.surrogate,
                              scale=p.scale, refractory=p.refractory))
    return SNN(layers)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _affine(m: nn.Linear) -> nir.NIRNode:
    if m.bias is None:
        return nir.Linear(weight=_numpy(m.weight))
    return nir.Affine(weight=_numpy(m.weight), bias=_numpy(m.bias))


def _pair(v: int | Sequence[int]) -> np.ndarray:
    return np.array(v if isinstance(v, tuple | list) else (v, v), dtype=np.int64)


def _lif_node(name: str, m: LIF, shape: tuple[int, ...], dt: float,
              allow_subtract: bool) -> nir.NIRNode:
    p = m.step_params()
    if p.refractory:
        raise NIRError(name, "LIF", f"a refractory period ({p.refractory} steps) has no NIR "
                       "equivalent")
    metadata = reset_metadata(p.reset)
    if metadata and not allow_subtract:
        raise NIRError(name, "LIF", f"reset {p.reset.value!r} has no NIR equivalent (NIR "
                       "neurons reset to v_reset); pass allow_subtract=True to write it as "
                       f"node metadata {RESET_METADATA!r}, which only spikeforge reads")
    theta = np.full(shape, threshold_to_nir(float(p.threshold)), dtype=np.float32)
    zeros = np.zeros(shape, dtype=np.float32)
    if p.beta == 1.0:
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=theta, v_reset=zeros,
                      metadata=metadata)
    tau, r = tau_from_beta(p.beta, dt)
    return nir.LIF(tau=np.full(shape, tau), r=np.full(shape, r), v_leak=zeros.astype(np.float64),
                   v_threshold=theta, v_reset=zeros, metadata=metadata)


def _readout_node(m: _ReadoutNeuron, n: int, dt: float) -> nir.NIRNode:
    if m.beta == 1.0:
        return nir.I(r=np.ones(n))
    tau, r = tau_from_beta(m.beta, dt)
    return nir.LI(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.zeros(n))


def _sequential(model: SNN) -> nn.Sequential:
    """The network as named modules in order, readout split into synapses and neurons."""
    named: OrderedDict[str, nn.Module] = OrderedDict()
    count: dict[str, int] = {}

    def add(prefix: str, module: nn.Module) -> None:
        count[prefix] = count.get(prefix, 0) + 1
        named[f"{prefix}{count[prefix]}"] = module

    prefixes = {Dense: "fc", Conv2d: "conv", Pool2d: "pool", Flatten: "flatten", LIF: "lif"}
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dropout | SpikeCountReadout):
            continue
        if isinstance(layer, DenseReadout):
            add("fc", layer)
            named["readout"] = _ReadoutNeuron(layer.beta)
        elif type(layer) in prefixes:
            add(prefixes[type(layer)], layer)
        else:
            raise NIRError(f"layer {i}", type(layer).__name__,
                           "no NIR mapping for this spikeforge layer")
    return nn.Sequential(named)


def _input_shapes(model: SNN, input_shape: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """Per-sample input shape of every layer, keyed by ``id(layer)``."""
    shapes = {}
    x = torch.zeros(1, 1, *input_shape)
    with torch.no_grad():
        for layer in model.layers:
            shapes[id(layer)] = tuple(x.shape[2:])
            x = layer(x)
    return shapes


def to_nir(model: SNN | LIFMLP, input_shape: Sequence[int], *, dt: float = DEFAULT_DT,
           allow_subtract: bool = False) -> nir.NIRGraph:
    """Export ``model`` as a NIR graph (traced with ``nirtorch.torch_to_nir``).

    Parameters
    ----------
    model : SNN or LIFMLP
        Trained network (a ``LIFMLP`` is first turned into its :class:`SNN`).
    input_shape : sequence of int
        Per-sample input shape, ``(n,)`` or ``(C, H, W)``.
    dt : float
        Step length used to write ``tau`` (see :mod:`.nir_convention`).
    allow_subtract : bool
        Write reset by subtraction as node metadata instead of refusing it.

    Returns
    -------
    nir.NIRGraph
        Nodes ``input``, the layers in order, ``output``; types checked.

    Raises
    ------
    NIRError
        If a layer has no NIR equivalent (names the layer and why).
    """
    if isinstance(model, LIFMLP):
        model = lifmlp_to_snn(model)
    if not isinstance(model, SNN):
        raise ValueError(f"model must be an SNN or a LIFMLP, not {type(model).__name__}")
    if not dt > 0.0:
        raise ValueError(f"dt must be positive, not {dt!r}")
    input_shape = tuple(int(n) for n in input_shape)
    shapes = _input_shapes(model, input_shape)
    seq = _sequential(model)
    names = {id(m): k for k, m in seq.named_children()}

    def neuron_shape(m: nn.Module) -> tuple[int, ...]:
        # A LIF's neurons have its input's shape; a readout's, its synapses' outputs.
        return shapes[id(m)]

    module_map: dict[type, Callable[[nn.Module], nir.NIRNode]] = {
        Dense: _affine,
        DenseReadout: _affine,
        Conv2d: lambda m: nir.Conv2d(
            input_shape=np.array(shapes[id(m)][1:]), weight=_numpy(m.weight),
            stride=_pair(m.stride), padding=m.padding if isinstance(m.padding, str)
            else _pair(m.padding), dilation=_pair(m.dilation), groups=m.groups,
            bias=_numpy(m.bias) if m.bias is not None
            else np.zeros(m.out_channels, np.float32)),
        Pool2d: lambda m: (nir.SumPool2d if m.kind is PoolKind.SUM else nir.AvgPool2d)(
            kernel_size=_pair(m.size), stride=_pair(m.size), padding=_pair(0)),
        Flatten: lambda m: nir.Flatten(input_type={"input": np.array(shapes[id(m)])},
                                       start_dim=0, end_dim=-1),
        LIF: lambda m: _lif_node(names[id(m)], m, neuron_shape(m), dt, allow_subtract),
        _ReadoutNeuron: lambda m: _readout_node(m, seq[-2].out_features, dt),
    }
    return nirtorch.torch_to_nir(seq, module_map, default_dict=None)
