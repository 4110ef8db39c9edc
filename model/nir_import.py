"""Import a NIR graph from another tool as a float spikeforge :class:`SNN`.

The import is three passes, each checking what it hands on:

1. :func:`node_chain` -- the graph must be one path ``Input -> ... -> Output``
   (no branches, recurrence or nested graphs); returns its nodes in order.
2. :func:`chain_layers` -- each node becomes a spikeforge layer. A neuron's
   input gain (``r dt / tau``; ``r`` for IF), its ``v_leak`` current and, when
   they differ between neurons, its thresholds are folded into the synapses
   before it, so every layer is a plain ``LIF(beta, theta)``.
3. the end of the chain picks the readout: a spiking last layer is read out by
   spike count, a last ``LI``/``I`` (or a last ``Affine``/``Linear``, whose
   output is then summed over the steps) becomes a :class:`DenseReadout`.

Whatever cannot be expressed raises :class:`~.nir_convention.NIRError` naming
the node and the reason. :func:`nir_to_qnet` quantizes the result through
:func:`spikeforge.model.lowering.snn_to_qnet`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikeforge.extras import require
from spikeforge.qnet import QNet, Reset

from .layers import LIF, Conv2d, Dense, DenseReadout, Flatten, Pool2d, PoolKind, SpikeCountReadout
from .lowering import LoweringError, snn_to_qnet
from .network import SNN
from .nir_convention import (
    DEFAULT_DT,
    RESET_METADATA,
    NIRError,
    beta_from_tau,
    reset_from_metadata,
    threshold_from_nir,
)

nir = require("nir", "nir", "NIR support")

__all__ = ["NIRNetwork", "chain_layers", "from_nir", "nir_to_qnet", "node_chain"]

# Why a node type cannot be imported, for the error message.
_UNSUPPORTED = {
    "CubaLIF": "a current-based LIF has a synaptic current state (tau_syn); spikeforge and "
               "QNet neurons have one state, the membrane",
    "CubaLI": "a current-based leaky integrator has a synaptic current state (tau_syn); "
              "spikeforge and QNet neurons have one state, the membrane",
    "Conv1d": "spikeforge has 2-D convolutions only",
    "Delay": "synaptic delays are not expressible (all spikes arrive in the step they leave)",
    "Threshold": "a stateless threshold (binarising a current without a membrane) is not a "
                 "spikeforge layer",
    "Scale": "an element-wise scale between layers is not a spikeforge layer",
    "NIRGraph": "nested graphs (recurrent layers such as snnTorch's RLeaky) are not "
                "expressible; QNet layers are feed-forward",
}

_LINEAR = (nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d, nir.Flatten)


@dataclass
class NIRNetwork:
    """What :func:`from_nir` returns.

    Attributes
    ----------
    snn : SNN
        The float network; input ``[T, B, *input_shape]`` of spikes.
    input_shape : tuple of int
        Per-sample input shape, from the graph's ``Input`` node.
    layer_nodes : tuple of str
        For each layer of ``snn``, the NIR node it came from.
    """

    snn: SNN
    input_shape: tuple[int, ...]
    layer_nodes: tuple[str, ...]


def _kind(node: nir.NIRNode) -> str:
    return type(node).__name__


def node_chain(graph: nir.NIRGraph) -> list[tuple[str, nir.NIRNode]]:
    """The nodes of ``graph`` from its ``Input`` to its ``Output``, in order.

    Raises
    ------
    NIRError
        If the graph is not a single path (names the first node that branches,
        merges, loops or lies off the path).
    """
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"graph must be a nir.NIRGraph, not {type(graph).__name__}")
    nodes = graph.nodes
    edges = list(dict.fromkeys((str(a), str(b)) for a, b in graph.edges))
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise NIRError(end, "?", "an edge names this node but the graph has no such node")
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(", ".join(inputs + outputs) or "graph", "Input/Output",
                       f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                       "spikeforge imports one input and one output")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    back = _back_edge(succ)
    if back is not None:
        a, b = back
        raise NIRError(b, _kind(nodes[b]), f"recurrent connection from {a!r}; QNet layers are "
                       "feed-forward")
    chain = [inputs[0]]
    while chain[-1] != outputs[0]:
        here = chain[-1]
        nxt = succ[here]
        if len(nxt) != 1:
            raise NIRError(here, _kind(nodes[here]),
                           f"it feeds {len(nxt)} nodes ({', '.join(nxt) or 'none'}); "
                           "spikeforge imports a feed-forward chain")
        b = nxt[0]
        if b in chain:
            raise NIRError(b, _kind(nodes[b]), f"recurrent connection from {here!r}; "
                           "QNet layers are feed-forward")
        if len(pred[b]) != 1:
            raise NIRError(b, _kind(nodes[b]), f"it has {len(pred[b])} inputs "
                           f"({', '.join(pred[b])}); spikeforge imports a feed-forward chain")
        chain.append(b)
    for k in nodes:
        if k not in chain:
            raise NIRError(k, _kind(nodes[k]), "the node is not on the path from the Input to "
                           "the Output")
    return [(k, nodes[k]) for k in chain]


def _back_edge(succ: dict[str, list[str]]) -> tuple[str, str] | None:
    """An edge that closes a cycle (depth-first search), or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in succ:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return node, nxt
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return None


def _shape_of(name: str, node: nir.NIRNode) -> tuple[int, ...]:
    t = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if t is None or np.size(t) == 0:
        raise NIRError(name, "Input", "the input shape is not given (input_type)")
    return tuple(int(n) for n in np.asarray(t).ravel())


def _param(name: str, node: nir.NIRNode, field: str, shape: tuple[int, ...]) -> np.ndarray:
    """Neuron parameter ``field`` broadcast to the neuron tensor's ``shape`` (float64)."""
    value = np.asarray(getattr(node, field), dtype=np.float64)
    try:
        return np.broadcast_to(value, shape)
    except ValueError:
        raise NIRError(name, _kind(node), f"{field} has shape {list(value.shape)}, which does "
                       f"not fit the {list(shape)} neurons it feeds") from None


def _uniform(a: np.ndarray) -> bool:
    return bool(np.allclose(a, a.flat[0], rtol=1e-6, atol=0.0))


def _reset(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> Reset:
    v_reset = _param(name, node, "v_reset", shape)
    if np.any(v_reset != 0.0):
        raise NIRError(name, _kind(node), "v_reset is not 0; spikeforge and QNet neurons reset "
                       "to zero (or by subtraction)")
    try:
        return reset_from_metadata(node.metadata.get(RESET_METADATA) if node.metadata else None)
    except ValueError as e:
        raise NIRError(name, _kind(node), str(e)) from None


def _dynamics(name: str, node: nir.NIRNode, shape: tuple[int, ...],
              dt: float) -> tuple[float, np.ndarray, np.ndarray]:
    """``(beta, gain, constant current)`` of a neuron node's discrete step."""
    r = _param(name, node, "r", shape)
    if isinstance(node, nir.IF | nir.I):
        return 1.0, r, np.zeros(shape)
    tau = _param(name, node, "tau", shape)
    if not _uniform(tau):
        raise NIRError(name, _kind(node), "tau differs between neurons; spikeforge and QNet "
                       "layers have one leak for all their neurons")
    if not tau.flat[0] >= dt:
        raise NIRError(name, _kind(node), f"tau = {tau.flat[0]:g} is below dt = {dt:g}: the step "
                       "would remove more than the whole membrane (pass the dt the graph was "
                       "made with)")
    beta = float(beta_from_tau(tau.flat[0], dt))
    v_leak = _param(name, node, "v_leak", shape)
    return beta, r * dt / tau, v_leak * dt / tau


def _fold(layers: list[nn.Module], names: list[str], start: int, name: str, node: nir.NIRNode,
          gain: np.ndarray, constant: np.ndarray) -> None:
    """Multiply the synapses before neuron ``name`` by ``gain`` and add ``constant``.

    ``layers[start:]`` is the linear segment that feeds the neurons. A uniform
    gain without a constant may go into any synaptic layer of it (pooling and
    flattening are linear); anything per-neuron needs the synapses right before.
    """
    g0 = float(gain.flat[0])
    if _uniform(gain) and not np.any(constant) and g0 == 1.0:
        return
    synaptic = [i for i in range(start, len(layers)) if isinstance(layers[i], Dense | Conv2d)]
    if not synaptic:
        raise NIRError(name, _kind(node), "its input gain or leak current needs synapses "
                       "(Affine, Linear or Conv2d) between it and the previous neuron layer")
    if _uniform(gain) and not np.any(constant):
        target = layers[synaptic[-1]]
        with torch.no_grad():
            target.weight.mul_(g0)
            if target.bias is not None:
                target.bias.mul_(g0)
        return
    last = layers[-1]
    if not isinstance(last, Dense | Conv2d):
        raise NIRError(name, _kind(node), f"per-neuron gains, leak currents or thresholds need "
                       f"the synapses right before it, not {names[-1]!r}")
    if isinstance(last, Conv2d):
        per_channel = gain.reshape(gain.shape[0], -1), constant.reshape(constant.shape[0], -1)
        if not all(np.allclose(a, a[:, :1], rtol=1e-6, atol=0.0) for a in per_channel):
            raise NIRError(name, _kind(node), "per-neuron gains, leak currents or thresholds "
                           "after a convolution must be the same within each channel")
        gain, constant = per_channel[0][:, 0], per_channel[1][:, 0]
    g = torch.as_tensor(np.ascontiguousarray(gain), dtype=torch.float64)
    c = torch.as_tensor(np.ascontiguousarray(constant), dtype=torch.float64)
    with torch.no_grad():
        w = last.weight.double()
        last.weight.copy_(w * g.reshape(-1, *([1] * (w.ndim - 1))))
        b = last.bias.double() if last.bias is not None else torch.zeros(w.shape[0],
                                                                           dtype=torch.float64)
        if last.bias is None:
            last.bias = nn.Parameter(torch.zeros(w.shape[0], dtype=last.weight.dtype))
        last.bias.copy_(b * g + c)


def _synapses(name: str, node: nir.NIRNode, shape: tuple[int, ...]) -> tuple[nn.Module,
                                                                               tuple[int, ...]]:
    """The stateless layer of a linear node and its output shape."""
    kind = _kind(node)
    if isinstance(node, nir.Affine | nir.Linear):
        w = np.asarray(node.weight, dtype=np.float64)
        if len(shape) != 1 or w.ndim != 2 or w.shape[1] != shape[0]:
            raise NIRError(name, kind, f"weight {list(w.shape)} does not fit its input of shape "
                           f"{list(shape)} (a multi-dimensional input needs a Flatten first)")
        has_bias = isinstance(node, nir.Affine)
        layer = Dense(w.shape[1], w.shape[0], bias=has_bias)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(w))
            if has_bias:
                layer.bias.copy_(torch.as_tensor(np.asarray(node.bias, dtype=np.float64)))
        return layer, (w.shape[0],)
    if isinstance(node, nir.Conv2d):
        w = np.asarray(node.weight, dtype=np.float64)
        groups = int(node.groups)
        if len(shape) != 3 or w.ndim != 4 or w.shape[1] * groups != shape[0]:
            raise NIRError(name, kind, f"weight {list(w.shape)} (groups {groups}) does not fit "
                           f"its input of shape {list(shape)} ([C, H, W])")
        padding = node.padding if isinstance(node.padding, str) else tuple(
            int(p) for p in np.broadcast_to(node.padding, (2,)))
        layer = Conv2d(shape[0], w.shape[0], tuple(w.shape[2:]),
                       stride=tuple(int(s) for s in np.broadcast_to(node.stride, (2,))),
                       padding=padding,
                       dilation=tuple(int(d) for d in np.broadcast_to(node.dilation, (2,))),
                       groups=groups, bias=True)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(w))
            bias = node.bias if node.bias is not None else np.zeros(w.shape[0])
            layer.bias.copy_(torch.as_tensor(np.broadcast_to(
                np.asarray(bias, dtype=np.float64), (w.shape[0],)).copy()))
    elif isinstance(node, nir.SumPool2d | nir.AvgPool2d):
        k = np.broadcast_to(np.asarray(node.kernel_size), (2,))
        s = np.broadcast_to(np.asarray(node.stride), (2,))
        p = np.broadcast_to(np.asarray(node.padding), (2,))
        if len(shape) != 3 or k[0] != k[1] or np.any(s != k) or np.any(p != 0):
            raise NIRError(name, kind, f"kernel {k.tolist()}, stride {s.tolist()}, padding "
                           f"{p.tolist()} on input {list(shape)}: spikeforge pools "
                           "non-overlapping square windows without padding over [C, H, W]")
        layer = Pool2d(int(k[0]), PoolKind.SUM if isinstance(node, nir.SumPool2d)
                       else PoolKind.AVERAGE)
    else:  # nir.Flatten: NIR tools disagree whether start_dim counts a batch dimension
        layer = Flatten()
    with torch.no_grad():
        out = layer(torch.zeros(1, 1, *shape))
    return layer, tuple(out.shape[2:])


def chain_layers(chain: Sequence[tuple[str, nir.NIRNode]], *,
                 dt: float = DEFAULT_DT) -> NIRNetwork:
    """Turn the path of :func:`node_chain` into an :class:`SNN` (passes 2 and 3)."""
    in_name, in_node = chain[0]
    input_shape = _shape_of(in_name, in_node)
    shape = input_shape
    layers: list[nn.Module] = []
    names: list[str] = []
    segment = 0  # index of the first layer after the last neuron layer
    body = list(chain[1:-1])
    for pos, (name, node) in enumerate(body):
        kind = _kind(node)
        if isinstance(node, _LINEAR):
            layer, shape = _synapses(name, node, shape)
        elif isinstance(node, nir.LIF | nir.IF):
            beta, gain, constant = _dynamics(name, node, shape, dt)
            reset = _reset(name, node, shape)
            theta = _param(name, node, "v_threshold", shape)
            if np.any(theta <= 0.0):
                raise NIRError(name, kind, "thresholds must be positive")
            if _uniform(theta):
                theta0 = float(theta.flat[0])
            else:  # v/theta_j has the same spikes with threshold 1
                gain, constant, theta0 = gain / theta, constant / theta, 1.0
            _fold(layers, names, segment, name, node, gain, constant)
            layer = LIF(beta, threshold_from_nir(theta0), reset=reset)
            segment = len(layers) + 1
        elif isinstance(node, nir.LI | nir.I):
            if pos != len(body) - 1:
                raise NIRError(name, kind, "a non-spiking integrator inside the network passes "
                               "membranes, not spikes; only the last node may be one (a readout)")
            beta, gain, constant = _dynamics(name, node, shape, dt)
            if not layers or type(layers[-1]) is not Dense or segment == len(layers):
                raise NIRError(name, kind, "a readout needs an Affine or Linear node right "
                               "before it")
            _fold(layers, names, segment, name, node, gain, constant)
            layers[-1] = _as_readout(layers[-1], beta)
            names[-1] = name
            continue
        else:
            raise NIRError(name, kind, _UNSUPPORTED.get(kind, "no spikeforge layer for this "
                                                        "node type"))
        layers.append(layer)
        names.append(name)
    last_name = body[-1][0] if body else chain[-1][0]
    if layers and isinstance(layers[-1], LIF):
        layers.append(SpikeCountReadout())
        names.append(chain[-1][0])
    elif layers and type(layers[-1]) is Dense:
        layers[-1] = _as_readout(layers[-1], 1.0)
    elif not (layers and isinstance(layers[-1], DenseReadout)):
        raise NIRError(last_name, _kind(body[-1][1]) if body else "Output",
                       "the graph must end in a spiking layer (read out by spike count), a "
                       "leaky integrator LI/I, or an Affine/Linear node (summed over the steps)")
    return NIRNetwork(snn=SNN(layers), input_shape=input_shape, layer_nodes=tuple(names))


def _as_readout(dense: Dense, beta: float) -> DenseReadout:
    out = DenseReadout(dense.in_features, dense.out_features, bias=dense.bias is not None,
                       beta=beta)
    with torch.no_grad():
        out.weight.copy_(dense.weight)
        if dense.bias is not None:
            out.bias.copy_(dense.bias)
    return out


def _graph(source: nir.NIRGraph | str | os.PathLike[str]) -> nir.NIRGraph:
    if isinstance(source, nir.NIRGraph):
        return source
    return nir.read(os.fspath(source))


def from_nir(source: nir.NIRGraph | str | os.PathLike[str], *,
             dt: float = DEFAULT_DT) -> NIRNetwork:
    """Import a NIR graph (or ``.nir`` file) as a float :class:`SNN`.

    Parameters
    ----------
    source : nir.NIRGraph or path
        The graph, or a file written by ``nir.write``.
    dt : float
        Step length the graph's time constants assume (snnTorch: 1e-4).

    Returns
    -------
    NIRNetwork
        The network, its input shape and the node behind each layer.

    Raises
    ------
    NIRError
        Naming the first node that spikeforge cannot express, and why.
    """
    if not dt > 0.0:
        raise ValueError(f"dt must be positive, not {dt!r}")
    return chain_layers(node_chain(_graph(source)), dt=dt)


def nir_to_qnet(source: nir.NIRGraph | str | os.PathLike[str], *, weight_bits: int,
                membrane_bits: int, timesteps: int, dt: float = DEFAULT_DT, name: str = "nir",
                leak_tolerance: float = 1e-5) -> QNet:
    """Import a NIR graph and quantize it into a QNet.

    :func:`from_nir`, then :func:`spikeforge.model.lowering.snn_to_qnet`
    (every linear run between neuron layers becomes one dense layer).

    Parameters
    ----------
    source : nir.NIRGraph or path
        The graph or file.
    weight_bits, membrane_bits : int
        Signed widths of the QNet.
    timesteps : int
        ``T`` of the QNet.
    dt : float
        Step length the graph's time constants assume.
    name : str
        QNet name.
    leak_tolerance : float
        Largest accepted gap between a layer's ``beta`` and its hardware leak
        ``1 - sum(2^-k)``.

    Returns
    -------
    QNet
        ``meta["nir_nodes"]`` lists the NIR neuron node of each QNet layer.
    """
    net = from_nir(source, dt=dt)
    try:
        return snn_to_qnet(net.snn, net.input_shape, weight_bits=weight_bits,
                           membrane_bits=membrane_bits, timesteps=timesteps, name=name,
                           leak_tolerance=leak_tolerance, layer_names=net.layer_nodes)
    except LoweringError as e:  # the layer names are the NIR nodes'
        raise NIRError(e.layer, e.kind, e.reason) from None
