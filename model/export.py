"""Quantize a trained :class:`~spikeforge.model.mlp.LIFMLP` into a QNet (SPEC.md §1).

Each layer ``l`` gets its own scale ``s_l = (2^(wb-1) - 1) / max|W_l|``, so its
largest weight uses the full signed range. Integer weights are
``round(W_l * s_l)``, the threshold ``round(theta * s_l)`` (at least 1) and the
bias ``round(b_l * s_l)``. Scaling a layer's weights, bias and threshold by the
same factor leaves its spikes unchanged (the leak is linear), and a positive
scale of the readout leaves the argmax unchanged, so the only differences from
the float model are rounding, the floor shifts of the integer leak and
saturation.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeforge.qnet import InputSpec, Layer, QNet, Reset, signed_range

from .mlp import LIFMLP

__all__ = ["layer_scales", "to_qnet"]


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
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or weight_bits < 2:
        raise ValueError(f"weight_bits must be an integer >= 2, not {weight_bits!r}")
    wmax = (1 << (weight_bits - 1)) - 1
    scales = []
    for l, layer in enumerate(model.layers):
        m = float(layer.weight.detach().abs().max())
        if not m > 0.0:
            raise ValueError(f"layer {l} has only zero weights; it cannot be scaled")
        scales.append(wmax / m)
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
    n_layers = len(model.layers)
    layers = []
    for l, (layer, s) in enumerate(zip(model.layers, scales)):
        lname = f"fc{l + 1}"
        readout = l == n_layers - 1
        with torch.no_grad():
            w = np.round(layer.weight.double().numpy() * s).astype(np.int64)
            b = (np.round(layer.bias.double().numpy() * s).astype(np.int64)
                 if layer.bias is not None else None)
        # A readout never compares; its threshold field is unused but must be valid.
        theta = 1 if readout else max(1, int(round(model.threshold * s)))
        _check_fits(lname, w, b if b is not None else np.zeros(w.shape[0], np.int64),
                    theta, membrane_bits)
        layers.append(Layer(
            name=lname,
            n_in=layer.in_features,
            n_out=layer.out_features,
            weight_bits=weight_bits,
            weights=w,
            threshold=theta,
            membrane_bits=membrane_bits,
            leak_shifts=model.readout_leak_shifts if readout else model.leak_shifts,
            reset=Reset.NONE if readout else model.reset,
            fire=not readout,
            bias=b,
        ))
    meta = {"scales": [float(s) for s in scales], "threshold_float": float(model.threshold)}
    return QNet(layers=tuple(layers), timesteps=timesteps,
                input=InputSpec(size=model.sizes[0], shape=input_shape), name=name, meta=meta)
