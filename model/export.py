"""Quantize a trained :class:`~spikeforge.model.mlp.LIFMLP` into a QNet (docs/QNET.md §1).

Each layer ``l`` gets its own scale ``s_l = (2^(wb-1) - 1) / max|W_l|``, so its
largest weight uses the full signed range. Integer weights are
``round(W_l * s_l)``, the threshold ``round(theta * s_l)`` (at least 1) and the
bias ``round(b_l * s_l)``. Scaling a layer's weights, bias and threshold by the
same factor leaves its spikes unchanged (the leak is linear), and a positive
scale of the readout leaves the argmax unchanged, so the only differences from
the float model are rounding, the floor shifts of the integer leak and
saturation.

The same per-layer quantization serves every dense spiking network: a network
is first described as a list of :class:`FloatDense` layers (:func:`float_layers`
does so for a :class:`LIFMLP` or a dense :class:`~spikeforge.model.network.SNN`),
and :func:`quantize_dense` turns one of them into a QNet layer.
:mod:`spikeforge.model.quantize` (QAT, data-chosen widths) and
:mod:`spikeforge.model.convert` (ANN-to-SNN conversion) build on these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikeforge.leak import shifts_from_beta
from spikeforge.qnet import InputSpec, Layer, QNet, Reset, signed_range

from .layers import LIF, Dense, DenseReadout, Dropout
from .mlp import LIFMLP
from .network import SNN

__all__ = ["FloatDense", "float_layers", "layer_scales", "quantize_dense", "shifts_from_beta",
           "to_qnet", "weight_scale"]


@dataclass(frozen=True, eq=False)
class FloatDense:
    """One dense layer of a float spiking network, in the terms of a QNet layer.

    Attributes
    ----------
    name : str
        Layer name in the QNet.
    weight : numpy.ndarray
        Float weights ``[n_out, n_in]``.
    threshold : float, optional
        Firing threshold; ``None`` makes the layer a readout (no spikes, no reset).
    leak_shifts : tuple of int
        Hardware leak shifts (``()``: IF neurons).
    reset : Reset
        Reset of a spiking layer (ignored for a readout, which gets ``Reset.NONE``).
    bias : numpy.ndarray, optional
        Float bias ``[n_out]`` (a constant current every step).
    """

    name: str
    weight: np.ndarray
    threshold: float | None
    leak_shifts: tuple[int, ...] = ()
    reset: Reset = Reset.SUBTRACT
    bias: np.ndarray | None = None

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        if w.ndim != 2:
            raise ValueError(
                f"layer {self.name}: weight must be [n_out, n_in], not {list(w.shape)}")
        object.__setattr__(self, "weight", w)
        if self.bias is not None:
            object.__setattr__(self, "bias", np.asarray(self.bias, dtype=np.float64))
        if self.threshold is not None and not float(self.threshold) > 0.0:
            raise ValueError(f"layer {self.name}: threshold must be positive, not "
                             f"{self.threshold!r}")
        object.__setattr__(self, "leak_shifts", tuple(sorted(self.leak_shifts)))

    @property
    def fire(self) -> bool:
        """Whether the layer spikes (it is a readout otherwise)."""
        return self.threshold is not None


def weight_scale(weight: np.ndarray, weight_bits: int, clip: float = 1.0) -> float:
    """Scale ``s = (2^(wb-1) - 1) / (clip * max|W|)`` mapping float weights to integers.

    Parameters
    ----------
    weight : numpy.ndarray
        Float weights of one layer.
    weight_bits : int
        Signed weight width (>= 2).
    clip : float
        Fraction of ``max|W|`` that maps to the largest integer (``< 1`` clips
        the largest weights to the range, see
        :func:`spikeforge.model.quantize.mse_clip`).

    Returns
    -------
    float
        The scale.
    """
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or weight_bits < 2:
        raise ValueError(f"weight_bits must be an integer >= 2, not {weight_bits!r}")
    if not 0.0 < clip <= 1.0:
        raise ValueError(f"clip must lie in (0, 1], not {clip!r}")
    m = float(np.abs(np.asarray(weight)).max()) if np.size(weight) else 0.0
    if not m > 0.0:
        raise ValueError("the layer has only zero weights; it cannot be scaled")
    return ((1 << (weight_bits - 1)) - 1) / (clip * m)


def quantize_dense(layer: FloatDense, scale: float, *, weight_bits: int,
                   membrane_bits: int, check_fits: bool = False) -> Layer:
    """The QNet layer of ``layer`` with its weights, bias and threshold times ``scale``.

    Weights are rounded and clipped to the signed ``weight_bits`` range, the
    bias rounded, the threshold rounded to at least 1. With ``check_fits`` a
    ValueError is raised unless the threshold plus one step's worst-case
    current fits ``membrane_bits``.
    """
    lo, hi = signed_range(weight_bits)
    w = np.clip(np.round(layer.weight * scale), lo, hi).astype(np.int64)
    b = np.round(layer.bias * scale).astype(np.int64) if layer.bias is not None else None
    # A readout never compares; its threshold field is unused but must be valid.
    theta = max(1, int(round(layer.threshold * scale))) if layer.fire else 1
    if check_fits:
        _check_fits(layer.name, w, b if b is not None else np.zeros(w.shape[0], np.int64),
                    theta, membrane_bits)
    return Layer(name=layer.name, n_in=w.shape[1], n_out=w.shape[0], weight_bits=weight_bits,
                 weights=w, threshold=theta, membrane_bits=membrane_bits,
                 leak_shifts=layer.leak_shifts,
                 reset=layer.reset if layer.fire else Reset.NONE, fire=layer.fire, bias=b)


def float_layers(model: LIFMLP | SNN) -> list[FloatDense]:
    """Describe a dense spiking network as :class:`FloatDense` layers ``fc1``, ``fc2``, ...

    Parameters
    ----------
    model : LIFMLP or SNN
        A :class:`LIFMLP`, or an :class:`SNN` of ``Dense, LIF`` pairs (with
        optional ``Dropout``) ending in a :class:`DenseReadout` whose leak is a
        hardware leak.

    Returns
    -------
    list of FloatDense
        One per dense layer; the last is a readout.
    """
    def arr(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t.detach().double().cpu().numpy()

    out = []
    if isinstance(model, LIFMLP):
        n = len(model.layers)
        for l, layer in enumerate(model.layers):
            last = l == n - 1
            out.append(FloatDense(
                name=f"fc{l + 1}", weight=arr(layer.weight), bias=arr(layer.bias),
                threshold=None if last else float(model.threshold),
                leak_shifts=model.readout_leak_shifts if last else model.leak_shifts,
                reset=model.reset))
        return out
    if not isinstance(model, SNN):
        raise ValueError(f"model must be a LIFMLP or an SNN, not {type(model).__name__}")
    mods = [m for m in model.layers if not isinstance(m, Dropout)]
    for i in range(0, len(mods) - 1, 2):
        dense, lif = mods[i], mods[i + 1]
        if type(dense) is not Dense or not isinstance(lif, LIF):
            raise ValueError(f"SNN layers {i}, {i + 1} are {type(dense).__name__}, "
                             f"{type(lif).__name__}; a QNet needs Dense, LIF pairs")
        p = lif.step_params()
        if p.refractory:
            raise ValueError(f"SNN layer {i + 1}: a QNet has no refractory period")
        out.append(FloatDense(name=f"fc{len(out) + 1}", weight=arr(dense.weight),
                              bias=arr(dense.bias), threshold=float(p.threshold),
                              leak_shifts=shifts_from_beta(p.beta), reset=p.reset))
    last = mods[-1]
    if len(mods) % 2 != 1 or not isinstance(last, DenseReadout):
        raise ValueError("a QNet needs an SNN that ends in a DenseReadout")
    out.append(FloatDense(name=f"fc{len(out) + 1}", weight=arr(last.weight), bias=arr(last.bias),
                          threshold=None, leak_shifts=shifts_from_beta(last.beta)))
    return out


def layer_scales(model: LIFMLP, weight_bits: int) -> list[float]:
    """Scale ``s_l = (2^(wb-1) - 1) / max|W_l|`` of every layer of ``model``.

    Parameters
    ----------
    model : LIFMLP
        Trained model.
    weight_bits : int
        Signed weight width.

    Returns
    -------
    list of float
        One scale per layer.
    """
    scales = []
    for l, layer in enumerate(model.layers):
        try:
            scales.append(weight_scale(layer.weight.detach().numpy(), weight_bits))
        except ValueError as e:
            if "zero weights" not in str(e):
                raise
            raise ValueError(f"layer {l} has only zero weights; it cannot be scaled") from None
    return scales


def _check_fits(name: str, w: np.ndarray, bias: np.ndarray, threshold: int,
                membrane_bits: int) -> None:
    """Raise ValueError unless one step's worst current plus the threshold fits the membrane.

    A membrane just below the threshold plus the largest single-step current
    must not saturate, or the integer layer would lose charge the float model
    keeps. A readout may still saturate after many steps of strong input; that
    is data dependent and shows in the QNet's accuracy, not here.
    """
    lo, hi = signed_range(membrane_bits)
    i_max = int((np.clip(w, 0, None).sum(axis=1) + bias).max())
    i_min = int((np.clip(w, None, 0).sum(axis=1) + bias).min())
    top = max(threshold - 1, 0) + max(i_max, 0)
    if top > hi or i_min < lo or threshold > hi:
        need = max(top, -i_min, threshold)
        bits = need.bit_length() + 1
        raise ValueError(
            f"layer {name}: membrane_bits={membrane_bits} (range [{lo}, {hi}]) is too small: "
            f"threshold {threshold} and one step's current in [{i_min}, {i_max}] need at "
            f"least {bits} bits"
        )


def to_qnet(
    model: LIFMLP,
    *,
    weight_bits: int,
    membrane_bits: int,
    timesteps: int,
    name: str = "digits",
    input_shape: tuple[int, ...] | None = None,
) -> QNet:
    """Quantize ``model`` into a :class:`~spikeforge.qnet.QNet`.

    Parameters
    ----------
    model : LIFMLP
        Trained float model.
    weight_bits : int
        Signed weight width (2..16).
    membrane_bits : int
        Signed membrane width of every layer.
    timesteps : int
        Steps per sample ``T`` the network is run for.
    name : str
        Network name; layers are named ``fc1``, ``fc2``, ...
    input_shape : tuple of int, optional
        Informative input shape, e.g. ``(8, 8)`` for digits.

    Returns
    -------
    QNet
        Hidden layers fire with the model's leak shifts and reset; the last
        layer is a readout (``fire=False``, ``Reset.NONE``). ``meta`` records
        the float scales and threshold.

    Raises
    ------
    ValueError
        If a width is invalid or ``membrane_bits`` cannot hold a layer's
        threshold plus one step's worst-case current.
    """
    if not isinstance(model, LIFMLP):
        raise ValueError(f"model must be a LIFMLP, not {type(model).__name__}")
    if isinstance(membrane_bits, bool) or not isinstance(membrane_bits, int) or membrane_bits < 2:
        raise ValueError(f"membrane_bits must be an integer >= 2, not {membrane_bits!r}")
    scales = layer_scales(model, weight_bits)
    layers = []
    for fl, s in zip(float_layers(model), scales):
        layers.append(quantize_dense(fl, s, weight_bits=weight_bits, membrane_bits=membrane_bits,
                                     check_fits=True))
    meta = {"scales": [float(s) for s in scales], "threshold_float": float(model.threshold)}
    return QNet(layers=tuple(layers), timesteps=timesteps,
                input=InputSpec(size=model.sizes[0], shape=input_shape), name=name, meta=meta)
