"""ANN-to-SNN conversion: ReLU networks to IF networks, then to QNets.

A :class:`ReLUNet` is a bias-free ReLU network described as a flat list of
operations (``nn.Conv2d``, ``nn.Linear``, ``nn.AvgPool2d``, ``nn.Flatten``); a
ReLU follows every weighted operation (conv or linear) but the last, which is
the readout. Conversion keeps the weights and replaces each ReLU by IF neurons
(no leak, reset by subtraction) whose threshold makes the firing rate track the
ReLU output:

* :func:`balance_thresholds` -- threshold balancing (Sengupta et al. 2019):
  layer by layer, with the earlier layers already converted and spiking on
  rate-coded training images, a layer's threshold is the largest input current
  any of its neurons receives at any step;
* :func:`norm_thresholds` -- data-based normalization (Rueckauer et al. 2017):
  with ``lambda_k`` the 99.9th percentile of the non-zero ReLU outputs of hidden
  layer ``k`` on training images (``lambda_0 = 1``: pixels are rates), the
  threshold is ``lambda_k / lambda_(k-1)``. This is the paper's weight
  normalization ``W_k <- W_k lambda_(k-1) / lambda_k`` with threshold 1,
  expressed as a threshold so that shared weights can have one value per use.

Thresholds are a list with one entry per *use* of a weighted operation: an
operation that appears several times in the list (a weight-shared block
unrolled ``n`` times, as in BackRes) gets ``n`` thresholds, one per unrolling
step.

:func:`to_snn` builds the float IF network (:class:`~spikeforge.model.network.SNN`
of the time-major layers); :meth:`Conversion.to_qnet` lowers it with the one
SNN lowering, :func:`spikeforge.model.lowering.snn_to_qnet`: the linear
operations between two spiking layers (conv, pooling, flatten, linear) become
one dense layer (pooling of spikes is linear, so it folds into the next layer's
weights), each layer gets its own weight scale and the threshold
``max(1, round(theta s))`` (``threshold_rounding="nearest"``), and the membrane
widths are then chosen from data
(:func:`spikeforge.model.quantize.calibrate_membranes`).

The SNN reads rate-coded pixels made by the numpy coders of the hardware
chain (:func:`rate_code`): Bernoulli spikes (:func:`spikeforge.encoding.bernoulli`)
or the deterministic regular code (:func:`spikeforge.encoding.regular`), so the
float SNN, the QNet in the reference and the RTL see the same bits.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spikeforge.encoding import bernoulli, regular
from spikeforge.mapping.lowering import NeuronOrder
from spikeforge.qnet import QNet, Reset

from .encoders import Encoding
from .layers import LIF, Conv2d, Dense, DenseReadout, Flatten, Pool2d, PoolKind
from .lowering import snn_to_qnet
from .network import SNN
from .quantize import calibrate_membranes

__all__ = [
    "Method",
    "ReLUNet",
    "balance_thresholds",
    "convert",
    "evaluate_ann",
    "mlp",
    "norm_thresholds",
    "rate_code",
    "scores_per_steps",
    "small_cnn",
    "to_snn",
    "train_ann",
]

_WEIGHTED = (nn.Conv2d, nn.Linear)


class Method(enum.Enum):
    """How conversion sets the thresholds."""

    BALANCE = "balance"  # Sengupta 2019, max input current, layer by layer, spiking
    NORM = "norm"  # Rueckauer 2017, percentile of the ReLU activations


class ReLUNet(nn.Module):
    """Bias-free ReLU network: ``ops`` in order, a ReLU after every weighted op but the last.

    Parameters
    ----------
    ops : sequence of nn.Module
        ``nn.Conv2d`` and ``nn.Linear`` without bias, ``nn.AvgPool2d`` with
        stride equal to the kernel and no padding, ``nn.Flatten``. The same
        module may appear more than once (shared weights); the last weighted
        operation must be the last op and a ``nn.Linear`` (the readout).
    in_shape : tuple of int
        Shape of one input, ``(C, H, W)`` or ``(n,)``.
    """

    def __init__(self, ops: Sequence[nn.Module], in_shape: tuple[int, ...]) -> None:
        super().__init__()
        ops = list(ops)
        for i, op in enumerate(ops):
            if isinstance(op, _WEIGHTED) and op.bias is not None:
                raise ValueError(f"op {i} ({type(op).__name__}) has a bias; conversion needs "
                                 "bias-free layers (fold a bias into the weights first)")
            if isinstance(op, nn.Conv2d) and (op.groups != 1 or op.dilation != (1, 1)
                                              or op.padding_mode != "zeros"):
                raise ValueError(f"op {i}: only plain convolutions (groups 1, dilation 1, zero "
                                 "padding) can be lowered")
            if isinstance(op, nn.AvgPool2d) and (op.stride not in (op.kernel_size, None)
                                                 or op.padding != 0 or op.ceil_mode):
                raise ValueError(f"op {i}: average pooling needs stride = kernel and no padding")
            if not isinstance(op, _WEIGHTED + (nn.AvgPool2d, nn.Flatten)):
                raise ValueError(f"op {i} is a {type(op).__name__}; a ReLUNet holds Conv2d, "
                                 "Linear, AvgPool2d and Flatten (the ReLUs are implied)")
        if not ops or not isinstance(ops[-1], nn.Linear):
            raise ValueError("the last op must be the nn.Linear readout")
        self.ops = nn.ModuleList(ops)
        self.in_shape = tuple(int(n) for n in in_shape)
        self.n_hidden = sum(isinstance(op, _WEIGHTED) for op in ops) - 1

    def _run(self, x: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = x.reshape(x.shape[0], *self.in_shape)
        acts = []
        for i, op in enumerate(self.ops):
            x = op(x)
            if isinstance(op, _WEIGHTED) and i < len(self.ops) - 1:
                x = F.relu(x)
                if keep:
                    acts.append(x)
        return x, acts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, classes]`` of images ``[B, ...]`` (reshaped to ``in_shape``)."""
        return self._run(x, keep=False)[0]

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """ReLU outputs of every hidden layer (one per use of a weighted op but the last)."""
        return self._run(x, keep=True)[1]


def small_cnn(in_shape: tuple[int, int, int] = (1, 28, 28), channels: tuple[int, int] = (8, 16),
              kernel: int = 5, classes: int = 10) -> ReLUNet:
    """``conv-relu-avgpool2-conv-relu-avgpool2-linear`` without padding or bias.

    On 28x28 images with the defaults: 8x24x24 -> 8x12x12 -> 16x8x8 -> 16x4x4 -> 10.
    """
    c, h, w = in_shape
    for _ in channels:
        h, w = (h - kernel + 1) // 2, (w - kernel + 1) // 2
    if h < 1 or w < 1:
        raise ValueError(f"input {in_shape} is too small for {len(channels)} conv+pool stages")
    ops: list[nn.Module] = []
    for c_out in channels:
        ops += [nn.Conv2d(c, c_out, kernel, bias=False), nn.AvgPool2d(2)]
        c = c_out
    ops += [nn.Flatten(), nn.Linear(c * h * w, classes, bias=False)]
    return ReLUNet(ops, in_shape)


def mlp(sizes: Sequence[int]) -> ReLUNet:
    """Bias-free ReLU MLP ``sizes[0] -> ... -> sizes[-1]``."""
    sizes = [int(n) for n in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must hold at least two positive widths, not {sizes!r}")
    return ReLUNet([nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:])],
                   (sizes[0],))


def train_ann(net: ReLUNet, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 1e-3,
              batch_size: int = 64, seed: int = 0) -> list[float]:
    """Train ``net`` with Adam (cosine schedule) on cross-entropy; mean loss per epoch.

    Deterministic for a given ``seed`` (batch order from a seeded generator).
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"epochs and batch_size must be positive and lr > 0, not "
                         f"{epochs}, {batch_size}, {lr}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * -(-x.shape[0] // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    losses = []
    net.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        total = 0.0
        for i in range(0, x.shape[0], batch_size):
            idx = order[i:i + batch_size]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / x.shape[0])
    net.eval()
    return losses


@torch.no_grad()
def evaluate_ann(net: ReLUNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Accuracy of ``net`` on ``(x, y)``."""
    pred = torch.cat([net(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0],
                                                                        batch_size)])
    return float((pred == y).double().mean())


def rate_code(x: np.ndarray | torch.Tensor, timesteps: int, seed: int,
              shape: tuple[int, ...] | None = None,
              coding: Encoding = Encoding.BERNOULLI) -> torch.Tensor:
    """Spikes of intensities ``[N, n]`` as a time-major float tensor ``[T, N, *shape]``.

    The bits are those of :func:`spikeforge.encoding.bernoulli` ``(x, timesteps, seed)``
    (``coding`` BERNOULLI) or :func:`spikeforge.encoding.regular` ``(x, timesteps)``
    (REGULAR; ``seed`` unused), which the reference and the RTL read as ``[N, T, n]``.
    """
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if coding is Encoding.BERNOULLI:
        bits = bernoulli(x, timesteps, seed)
    elif coding is Encoding.REGULAR:
        bits = regular(x, timesteps)
    else:
        raise ValueError(f"coding must be Encoding.BERNOULLI or Encoding.REGULAR (a QNet reads "
                         f"bits made by the numpy coders), not {coding!r}")
    s = torch.from_numpy(bits).to(torch.float32).transpose(0, 1)
    return s.reshape(timesteps, len(x), *(shape or (x.shape[1],)))


def _snn_layers(net: ReLUNet, thresholds: Sequence[float]) -> list[nn.Module]:
    """Time-major layers of the IF network; a shared op becomes one shared layer."""
    if len(thresholds) != net.n_hidden:
        raise ValueError(f"need {net.n_hidden} thresholds (one per hidden layer use), "
                         f"not {len(thresholds)}")
    made: dict[int, nn.Module] = {}
    layers: list[nn.Module] = []
    k = 0
    for i, op in enumerate(net.ops):
        if id(op) not in made:
            if isinstance(op, nn.Conv2d):
                m = Conv2d(op.in_channels, op.out_channels, op.kernel_size, stride=op.stride,
                           padding=op.padding, bias=False)
            elif isinstance(op, nn.Linear) and i < len(net.ops) - 1:
                m = Dense(op.in_features, op.out_features, bias=False)
            elif isinstance(op, nn.Linear):
                m = DenseReadout(op.in_features, op.out_features, bias=False)
            elif isinstance(op, nn.AvgPool2d):
                m = Pool2d(_pool_size(op), PoolKind.AVERAGE)
            else:
                m = Flatten()
            if isinstance(op, _WEIGHTED):
                m.weight.data.copy_(op.weight.detach())
            made[id(op)] = m
        layers.append(made[id(op)])
        if isinstance(op, _WEIGHTED) and i < len(net.ops) - 1:
            layers.append(LIF(1.0, float(thresholds[k]), reset=Reset.SUBTRACT))
            k += 1
    return layers


def _pool_size(op: nn.AvgPool2d) -> int:
    k = op.kernel_size
    if isinstance(k, tuple):
        if k[0] != k[1]:
            raise ValueError(f"only square pooling can be lowered, not {k}")
        k = k[0]
    return int(k)


def to_snn(net: ReLUNet, thresholds: Sequence[float]) -> SNN:
    """The float IF network (reset by subtraction) of ``net`` with ``thresholds``.

    Input ``[T, B, *in_shape]``; the score is the readout's weighted spike count.
    """
    for t in thresholds:
        if not float(t) > 0.0:
            raise ValueError(f"thresholds must be positive, not {list(thresholds)!r}")
    snn = SNN(_snn_layers(net, thresholds))
    snn.eval()
    return snn


def norm_thresholds(net: ReLUNet, x: torch.Tensor, percentile: float = 99.9,
                    batch_size: int = 500) -> list[float]:
    """Thresholds of data-based normalization (Rueckauer 2017), one per hidden layer use.

    Parameters
    ----------
    net : ReLUNet
        Trained network.
    x : torch.Tensor
        Training images ``[N, ...]`` in ``[0, 1]``.
    percentile : float
        Percentile of the non-zero ReLU outputs taken as each layer's maximum.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    list of float
        ``lambda_k / lambda_(k-1)`` with ``lambda_0 = 1``.
    """
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], not {percentile!r}")
    acts: list[list[np.ndarray]] = [[] for _ in range(net.n_hidden)]
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            for k, a in enumerate(net.activations(x[i:i + batch_size])):
                a = a.flatten().numpy()
                acts[k].append(a[a > 0])
    lam = [1.0]
    for k, parts in enumerate(acts):
        a = np.concatenate(parts)
        if a.size == 0:
            raise ValueError(f"hidden layer {k} is silent on the calibration images")
        lam.append(float(np.percentile(a, percentile)))
    return [lam[k + 1] / lam[k] for k in range(net.n_hidden)]


@torch.no_grad()
def balance_thresholds(net: ReLUNet, spikes: torch.Tensor, batch_size: int = 100) -> list[float]:
    """Thresholds of threshold balancing (Sengupta 2019), one per hidden layer use.

    Layer ``k``'s threshold is the largest input current any of its neurons
    receives at any step, with layers ``< k`` already converted (IF, reset by
    subtraction, their balanced thresholds) and driven by ``spikes``.

    Parameters
    ----------
    net : ReLUNet
        Trained network.
    spikes : torch.Tensor
        Rate-coded training images ``[T, N, *in_shape]`` (:func:`rate_code`).
    batch_size : int
        Samples per pass.

    Returns
    -------
    list of float
    """
    thresholds: list[float] = []
    for k in range(net.n_hidden):
        # Placeholders for the layers not balanced yet; they lie after the prefix we run.
        layers = _snn_layers(net, thresholds + [1.0] * (net.n_hidden - k))
        lif_seen, prefix = 0, []
        for layer in layers:
            if isinstance(layer, LIF):
                if lif_seen == k:
                    break
                lif_seen += 1
            prefix.append(layer)
        top = 0.0
        for i in range(0, spikes.shape[1], batch_size):
            h = spikes[:, i:i + batch_size]
            for layer in prefix:
                h = layer(h)
            top = max(top, float(h.max()))
        if not top > 0.0:
            raise ValueError(f"hidden layer {k} receives no positive current; cannot balance")
        thresholds.append(top)
    return thresholds


@torch.no_grad()
def scores_per_steps(snn: SNN, spikes: torch.Tensor, steps: Sequence[int]) -> list[torch.Tensor]:
    """Readout scores after each step count in ``steps`` from one run of ``spikes`` ``[T, B, ...]``.

    The network is causal and its readout sums over time, so the scores after
    ``t`` steps are those of a run of the first ``t`` steps of input.
    """
    if max(steps) > spikes.shape[0] or min(steps) < 1:
        raise ValueError(f"steps must lie in 1..{spikes.shape[0]}, not {list(steps)!r}")
    last = max(i for i, layer in enumerate(snn.layers) if isinstance(layer, LIF))
    h = spikes
    for layer in snn.layers[:last + 1]:
        h = layer(h)
    out = []
    for t in steps:
        x = h[:t]
        for layer in snn.layers[last + 1:]:
            x = layer(x)
        out.append(x)
    return out


@dataclass
class Conversion:
    """A converted network.

    Attributes
    ----------
    thresholds : list of float
        One per hidden layer use.
    snn : SNN
        The float IF network.
    input_shape : tuple of int
        Shape of one input (the ReLUNet's ``in_shape``).
    """

    thresholds: list[float]
    snn: SNN
    input_shape: tuple[int, ...]

    def to_qnet(self, *, weight_bits: int, timesteps: int,
                calibration: Iterable[torch.Tensor], margin_bits: int = 0,
                name: str = "conversion",
                neuron_order: str | NeuronOrder = "position") -> QNet:
        """The QNet of :attr:`snn`, with membrane widths chosen from ``calibration``.

        :func:`~spikeforge.model.lowering.snn_to_qnet` with
        ``threshold_rounding="nearest"`` (per-layer weight scale ``s``, integer
        threshold ``max(1, round(theta s))``) at the widest membranes, then
        :func:`~spikeforge.model.quantize.calibrate_membranes`.

        Parameters
        ----------
        weight_bits : int
            Signed weight width.
        timesteps : int
            ``T`` of the QNet.
        calibration : iterable of torch.Tensor
            Rate-coded images ``[T, B, ...]`` (:func:`rate_code`) at the step count
            the QNet will run; their membranes set the widths.
        margin_bits : int
            Extra membrane bits beyond the observed range.
        name : str
            QNet name; layers are ``fc1``, ``fc2``, ...
        neuron_order : {"position", "channel"} or NeuronOrder
            Numbering of a conv layer's neurons (as for ``snn_to_qnet``).
        """
        q = snn_to_qnet(self.snn, self.input_shape, weight_bits=weight_bits,
                        membrane_bits=_WIDEST, timesteps=timesteps, name=name,
                        neuron_order=neuron_order, threshold_rounding="nearest")
        return calibrate_membranes(q, calibration, margin_bits)


_WIDEST = 48  # lowering width; calibrate_membranes narrows it


def convert(net: ReLUNet, x: torch.Tensor, method: Method = Method.NORM, *,
            percentile: float = 99.9, timesteps: int = 32, seed: int = 0,
            coding: Encoding = Encoding.BERNOULLI) -> Conversion:
    """Convert ``net`` with thresholds from the training images ``x`` ``[N, ...]``.

    ``percentile`` is used by :attr:`Method.NORM`; ``timesteps``, ``seed`` and
    ``coding`` (the rate coding of ``x``, :func:`rate_code`) by :attr:`Method.BALANCE`.
    """
    if method is Method.NORM:
        th = norm_thresholds(net, x, percentile)
    elif method is Method.BALANCE:
        th = balance_thresholds(net, rate_code(x, timesteps, seed, net.in_shape, coding))
    else:
        raise ValueError(f"method must be a Method, not {method!r}")
    return Conversion(thresholds=th, snn=to_snn(net, th), input_shape=net.in_shape)
