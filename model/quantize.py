"""Quantization-aware training (QAT) and post-training quantization (PTQ) into QNets.

:class:`QuantSNN` is a dense spiking network whose forward pass *is* the
integer arithmetic of a QNet (docs/QNET.md §2), carried in float64 (exact for every
membrane a QNet allows, ``membrane_bits <= 48``):

* weights are fake-quantized per layer with the scale of
  :func:`~spikeforge.model.export.weight_scale`, ``W_int = clip(round(W s))``,
  and the gradient passes the rounding and the clipping straight through
  (straight-through estimator); bias ``round(b s)``;
* the threshold is the integer ``max(1, round(theta s))`` (``theta`` may be
  learned; its gradient passes the rounding straight through);
* the membrane lives in integer units: ``v = sat(v - sum(floor(v / 2^k)) + I)``
  (the exact hardware leak, :func:`~spikeforge.model.neurons.shift_leak`),
  saturated to the layer's ``membrane_bits`` once those are set, then compared
  and reset exactly as the reference does. The surrogate gradient sees
  ``(v - theta_int) / s``, the distance to the threshold in float units, so it
  has the same width as in the float model.

So the exported QNet (:meth:`QuantSNN.to_qnet`, which quantizes through
:func:`~spikeforge.model.export.quantize_dense`, the same arithmetic) gives the
reference the same spikes and scores as :meth:`QuantSNN.run`, bit for bit
(tested). Membrane widths are chosen from data (:meth:`QuantSNN.calibrate`):
the smallest signed width that holds every membrane value seen on calibration
inputs, the threshold included, plus ``margin_bits``.

Post-training quantization (:func:`post_training_quantize`) is the same
without training: describe the float network (:func:`~spikeforge.model.export.float_layers`),
calibrate, export. QAT trains a :class:`QuantSNN` built from the float network
with any loop that maps ``[T, B, n_in]`` spikes to scores
(:func:`~spikeforge.model.engine.train_epoch`).

Weight scales follow a :class:`ClipRule`: ``MAX`` maps the largest weight to the
largest integer (as :func:`~spikeforge.model.export.to_qnet`); ``MSE`` clips at
the fraction of ``max|W|`` that minimises the squared rounding error (chosen
once, when the layer is built), which is what makes 2- to 4-bit weights usable.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikeforge.qnet import (
    RESET_RULES,
    AtSpike,
    InputSpec,
    QNet,
    bits_for_signed,
    signed_range,
)

from .export import FloatDense, float_layers, quantize_dense, weight_scale
from .mlp import LIFMLP
from .network import SNN
from .neurons import FLOAT_AT_SPIKE, shift_leak
from .surrogate import Surrogate, spike

__all__ = [
    "ClipRule",
    "QuantDense",
    "QuantRun",
    "QuantSNN",
    "calibrate_membranes",
    "mse_clip",
    "post_training_quantize",
]


class ClipRule(enum.Enum):
    """How a layer's weight scale is chosen."""

    MAX = "max"  # largest |W| -> largest integer
    MSE = "mse"  # clip fraction of max|W| with the least squared rounding error


def mse_clip(weight: np.ndarray, weight_bits: int, steps: int = 40) -> float:
    """Fraction ``c`` of ``max|W|`` mapped to the largest integer that minimises ``|W - Q(W)|^2``.

    Parameters
    ----------
    weight : numpy.ndarray
        Float weights of one layer.
    weight_bits : int
        Signed weight width.
    steps : int
        Candidates ``c = 1, 1 - 1/steps, ..., 1/steps``.

    Returns
    -------
    float
        The best ``c`` in ``(0, 1]``.
    """
    w = np.asarray(weight, dtype=np.float64).ravel()
    lo, hi = signed_range(weight_bits)
    best, best_err = 1.0, np.inf
    for c in np.linspace(1.0, 1.0 / steps, steps):
        s = weight_scale(w, weight_bits, float(c))
        err = float(np.square(np.clip(np.round(w * s), lo, hi) / s - w).sum())
        if err < best_err:
            best, best_err = float(c), err
    return best


def _ste(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``q`` in the forward pass, the gradient of ``x`` in the backward pass."""
    return x + (q - x).detach()


def _exact_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` of 0/1 spikes and integer weights, exactly, as float64.

    When no sum can reach 2^24 (every row's ``sum |w|`` below it) float32 is
    exact too and about twice as fast; the result is cast back to float64.
    """
    if float(w.detach().abs().sum(1).max()) < 2.0**24:
        return (x.to(torch.float32) @ w.to(torch.float32).t()).to(torch.float64)
    return x @ w.t()


class QuantDense(nn.Module):
    """One dense layer of a :class:`QuantSNN` (fake-quantized weights, integer neurons).

    Parameters
    ----------
    layer : FloatDense
        Float layer to start from (weights, bias, threshold, leak, reset).
    weight_bits : int
        Signed weight width (2..16).
    clip : ClipRule
        How the weight scale is chosen.
    learn_threshold : bool
        Make the (float) threshold a trainable parameter.
    surrogate : Surrogate
        Pseudo-derivative of the spikes.
    scale : float, optional
        Its parameter.
    """

    def __init__(self, layer: FloatDense, weight_bits: int, *, clip: ClipRule = ClipRule.MAX,
                 learn_threshold: bool = False, surrogate: Surrogate = Surrogate.FAST_SIGMOID,
                 scale: float | None = None) -> None:
        super().__init__()
        if not isinstance(clip, ClipRule):
            raise ValueError(f"clip must be a ClipRule, not {clip!r}")
        weight_scale(layer.weight, weight_bits)  # validates the width and the weights
        self.name = layer.name
        self.weight_bits = weight_bits
        self.clip = mse_clip(layer.weight, weight_bits) if clip is ClipRule.MSE else 1.0
        self.weight = nn.Parameter(torch.tensor(layer.weight, dtype=torch.float64))
        self.bias = (None if layer.bias is None
                     else nn.Parameter(torch.tensor(layer.bias, dtype=torch.float64)))
        self.fire = layer.fire
        if self.fire:
            th = torch.tensor(float(layer.threshold), dtype=torch.float64)
            self.threshold = nn.Parameter(th) if learn_threshold else nn.Buffer(th)
        else:
            self.threshold = None
        self.leak_shifts = layer.leak_shifts
        self.reset = layer.reset
        self.surrogate = surrogate
        self.surrogate_scale = scale
        self.membrane_bits: int | None = None  # None: no saturation (until calibrated)

    @property
    def n_out(self) -> int:
        """Neurons of the layer."""
        return self.weight.shape[0]

    def scale(self) -> float:
        """Current weight scale ``(2^(wb-1) - 1) / (clip * max|W|)``."""
        return weight_scale(self.weight.detach().numpy(), self.weight_bits, self.clip)

    def float_layer(self) -> FloatDense:
        """The layer's current float parameters as a :class:`FloatDense`."""
        return FloatDense(
            name=self.name, weight=self.weight.detach().numpy(),
            bias=None if self.bias is None else self.bias.detach().numpy(),
            threshold=float(self.threshold.detach()) if self.fire else None,
            leak_shifts=self.leak_shifts, reset=self.reset)

    def integer_parameters(self, s: float) -> tuple[torch.Tensor, torch.Tensor | None,
                                                    torch.Tensor | None]:
        """Fake-quantized ``(W_int, b_int, theta_int)`` at scale ``s`` (straight-through)."""
        lo, hi = signed_range(self.weight_bits)
        ws = self.weight * s
        w = _ste(ws, torch.round(ws.detach()).clamp(lo, hi))
        b = None
        if self.bias is not None:
            bs = self.bias * s
            b = _ste(bs, torch.round(bs.detach()))
        th = None
        if self.fire:
            ts = self.threshold * s
            th = _ste(ts, torch.round(ts.detach()).clamp(min=1.0))
        return w, b, th


@dataclass
class QuantRun:
    """What :meth:`QuantSNN.run` returns (integer values in float64 tensors).

    Attributes
    ----------
    spikes : list of torch.Tensor
        ``[T, B, n]`` of every spiking layer.
    readout : torch.Tensor
        Readout membrane after every step, ``[T, B, n_out]``; ``readout[-1]``
        is the score vector (docs/QNET.md §3).
    v_min, v_max : list of float
        Smallest and largest membrane value of each layer after the add (before
        the reset), over all steps and samples.
    """

    spikes: list[torch.Tensor]
    readout: torch.Tensor
    v_min: list[float]
    v_max: list[float]


class QuantSNN(nn.Module):
    """A dense spiking network computing a QNet's integer arithmetic (see module doc).

    Parameters
    ----------
    layers : sequence of FloatDense
        The float network, readout last.
    weight_bits : int or sequence of int
        Signed weight width, for all layers or per layer.
    clip, learn_threshold, surrogate, scale
        As in :class:`QuantDense`.
    """

    def __init__(self, layers: Sequence[FloatDense], weight_bits: int | Sequence[int], *,
                 clip: ClipRule = ClipRule.MAX, learn_threshold: bool = False,
                 surrogate: Surrogate = Surrogate.FAST_SIGMOID,
                 scale: float | None = None) -> None:
        super().__init__()
        layers = list(layers)
        if not layers or any(l.fire for l in layers[-1:]) or any(not l.fire for l in layers[:-1]):
            raise ValueError("layers must be spiking layers followed by one readout")
        for a, b in zip(layers[:-1], layers[1:]):
            if a.weight.shape[0] != b.weight.shape[1]:
                raise ValueError(f"layer {b.name} reads {b.weight.shape[1]} inputs but "
                                 f"{a.name} has {a.weight.shape[0]} neurons")
        wbs = [weight_bits] * len(layers) if isinstance(weight_bits, int) else list(weight_bits)
        if len(wbs) != len(layers):
            raise ValueError(f"weight_bits needs {len(layers)} entries, not {len(wbs)}")
        self.n_in = layers[0].weight.shape[1]
        self.layers = nn.ModuleList(
            QuantDense(l, wb, clip=clip, learn_threshold=learn_threshold, surrogate=surrogate,
                       scale=scale) for l, wb in zip(layers, wbs))

    @classmethod
    def from_float(cls, model: LIFMLP | SNN, weight_bits: int | Sequence[int],
                   **kwargs) -> QuantSNN:
        """A :class:`QuantSNN` with the weights of a dense float model (:func:`float_layers`)."""
        return cls(float_layers(model), weight_bits, **kwargs)

    def _forward(self, x: torch.Tensor, record: bool) -> tuple[QuantRun, float]:
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise ValueError(f"input spikes must be [T, B, {self.n_in}], not {list(x.shape)}")
        x = x.to(torch.float64)
        spikes, v_min, v_max = [], [], []
        for layer in self.layers:
            s = layer.scale()
            w, b, th = layer.integer_parameters(s)
            current = _exact_matmul(x, w)
            if b is not None:
                current = current + b
            lo, hi = (signed_range(layer.membrane_bits) if layer.membrane_bits is not None
                      else (None, None))
            rule = RESET_RULES[layer.reset] if layer.fire else None
            v = current.new_zeros(current.shape[1:])
            out, lows, highs = [], [], []
            for t in range(current.shape[0]):
                v = (shift_leak(v, layer.leak_shifts) if layer.leak_shifts else v) + current[t]
                if rule is not None and rule.subtract_next and t > 0:
                    v = v - th * out[-1].detach()  # subtract_next: the previous spikes
                if lo is not None:
                    v = _ste(v, v.detach().clamp(lo, hi))
                if record:
                    lows.append(v.detach().min())
                    highs.append(v.detach().max())
                if layer.fire:
                    o = spike((v - th) / s, layer.surrogate, layer.surrogate_scale)
                    od = o.detach()
                    v = FLOAT_AT_SPIKE[rule.at_spike].apply(v, od, th)
                    out.append(o)
                else:
                    out.append(v)
            if record:
                v_min.append(float(torch.stack(lows).min()))
                v_max.append(float(torch.stack(highs).max()))
            x = torch.stack(out)
            if layer.fire:
                spikes.append(x)
        return QuantRun(spikes=spikes, readout=x, v_min=v_min, v_max=v_max), s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, n_out]`` in float units (final readout membrane / its scale).

        Parameters
        ----------
        x : torch.Tensor
            Input spikes ``[T, B, n_in]``.
        """
        run, s = self._forward(x, record=False)
        return run.readout[-1] / s

    @torch.no_grad()
    def run(self, x: torch.Tensor) -> QuantRun:
        """Integer spikes, readout membranes and membrane ranges of input ``[T, B, n_in]``."""
        return self._forward(x, record=True)[0]

    @torch.no_grad()
    def calibrate(self, batches: Iterable[torch.Tensor], margin_bits: int = 0) -> list[int]:
        """Set every layer's ``membrane_bits`` from the membranes seen on ``batches``.

        Each width is the smallest that holds every observed membrane value
        (after the add, before the reset) and the threshold, plus
        ``margin_bits``; saturation is off while measuring.

        Parameters
        ----------
        batches : iterable of torch.Tensor
            Input spikes ``[T, B, n_in]``, at the step count the network will run.
        margin_bits : int
            Extra bits beyond the observed range.

        Returns
        -------
        list of int
            The widths, one per layer.
        """
        for layer in self.layers:
            layer.membrane_bits = None
        lo = [0.0] * len(self.layers)
        hi = [0.0] * len(self.layers)
        seen = False
        for xb in batches:
            r = self.run(xb)
            lo = [min(a, b) for a, b in zip(lo, r.v_min)]
            hi = [max(a, b) for a, b in zip(hi, r.v_max)]
            seen = True
        if not seen:
            raise ValueError("calibration needs at least one batch")
        bits = []
        for layer, a, b in zip(self.layers, lo, hi):
            top = int(b)
            if layer.fire:
                top = max(top, int(layer.integer_parameters(layer.scale())[2]))
            bits.append(min(48, max(2, bits_for_signed(int(a), top) + margin_bits)))
        for layer, vb in zip(self.layers, bits):
            layer.membrane_bits = vb
        return bits

    def to_qnet(self, *, timesteps: int, name: str = "qnet",
                input_shape: tuple[int, ...] | None = None) -> QNet:
        """Export the network as a QNet with the integers of the forward pass.

        Raises ValueError unless every layer's ``membrane_bits`` is set
        (:meth:`calibrate`).
        """
        layers, scales = [], []
        for layer in self.layers:
            if layer.membrane_bits is None:
                raise ValueError(f"layer {layer.name}: membrane_bits is not set; "
                                 "call calibrate() first")
            s = layer.scale()
            scales.append(s)
            layers.append(quantize_dense(layer.float_layer(), s, weight_bits=layer.weight_bits,
                                         membrane_bits=layer.membrane_bits))
        meta = {"scales": scales, "clip": [layer.clip for layer in self.layers]}
        return QNet(layers=tuple(layers), timesteps=timesteps,
                    input=InputSpec(size=self.n_in, shape=input_shape), name=name, meta=meta)


def post_training_quantize(model: LIFMLP | SNN | Sequence[FloatDense],
                           weight_bits: int | Sequence[int],
                           calibration: Iterable[torch.Tensor], *, timesteps: int,
                           clip: ClipRule = ClipRule.MAX, margin_bits: int = 0,
                           name: str = "qnet",
                           input_shape: tuple[int, ...] | None = None) -> QNet:
    """Quantize a float spiking network into a QNet with membrane widths chosen from data.

    Parameters
    ----------
    model : LIFMLP, SNN or sequence of FloatDense
        The float network (an SNN must be dense; see :func:`float_layers`).
    weight_bits : int or sequence of int
        Signed weight width, for all layers or per layer.
    calibration : iterable of torch.Tensor
        Input spikes ``[T, B, n_in]`` whose membranes set the widths.
    timesteps : int
        Steps ``T`` recorded in the QNet.
    clip : ClipRule
        Weight-scale rule.
    margin_bits : int
        Extra membrane bits beyond the observed range.
    name : str
        QNet name.
    input_shape : tuple of int, optional
        Informative input shape.

    Returns
    -------
    QNet
    """
    layers = list(model) if isinstance(model, Sequence) else float_layers(model)
    q = QuantSNN(layers, weight_bits, clip=clip)
    q.calibrate(calibration, margin_bits=margin_bits)
    return q.to_qnet(timesteps=timesteps, name=name, input_shape=input_shape)


def calibrate_membranes(qnet: QNet, batches: Iterable[torch.Tensor | np.ndarray],
                        margin_bits: int = 0) -> QNet:
    """``qnet`` with every layer's ``membrane_bits`` chosen from the membranes seen on ``batches``.

    The rule of :meth:`QuantSNN.calibrate`, on a QNet: each layer runs its
    integer arithmetic (docs/QNET.md §2) without saturation, and its width is
    the smallest signed width holding every membrane value seen (after the add,
    before the reset), 0 and a spiking layer's threshold, plus ``margin_bits``
    (2..48). ANN conversion lowers with wide membranes
    (:func:`spikeforge.model.lowering.snn_to_qnet`), then narrows them here.

    Parameters
    ----------
    qnet : QNet
        The network; its widths only need to hold the threshold.
    batches : iterable of torch.Tensor or numpy.ndarray
        Time-major input spikes ``[T, B, ...]`` (``B * prod(...)`` = ``B * n_in``), at
        the step count the network will run.
    margin_bits : int
        Extra bits beyond the observed range.

    Returns
    -------
    QNet
    """
    n = len(qnet.layers)
    lo, hi = [0] * n, [0] * n
    seen = False
    for xb in batches:
        x = xb.detach().cpu().numpy() if torch.is_tensor(xb) else np.asarray(xb)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        for l, layer in enumerate(qnet.layers):
            w = np.asarray(layer.weights, np.int64)
            # exact: 0/1 spikes times integers, every sum within the float type's integers
            dt = np.float32 if int(np.abs(w).sum(1).max()) < 2**24 else np.float64
            current = np.rint(x.astype(dt) @ w.T.astype(dt)).astype(np.int64)
            current += layer.biases
            rule, th = RESET_RULES[layer.reset], layer.thresholds
            v = np.zeros(current.shape[1:], dtype=np.int64)
            out = []
            for t in range(current.shape[0]):
                v = v - sum(v >> k for k in layer.leak_shifts) + current[t]
                if rule.subtract_next and t > 0:
                    v = v - th * out[-1]
                lo[l], hi[l] = min(lo[l], int(v.min())), max(hi[l], int(v.max()))
                if layer.fire:
                    s = (v >= th).astype(np.int64)
                    if rule.at_spike is AtSpike.ZERO:
                        v = np.where(s > 0, 0, v)
                    elif rule.at_spike is AtSpike.SUBTRACT:
                        v = v - th * s
                    out.append(s)
            x = np.stack(out) if layer.fire else x
        seen = True
    if not seen:
        raise ValueError("calibration needs at least one batch")
    layers = []
    for layer, a, b in zip(qnet.layers, lo, hi):
        top = max(b, int(np.max(layer.thresholds))) if layer.fire else b
        bits = min(48, max(2, bits_for_signed(a, top) + margin_bits))
        layers.append(dataclasses.replace(layer, membrane_bits=bits))
    return dataclasses.replace(qnet, layers=tuple(layers))
