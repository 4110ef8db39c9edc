"""Spike function with a selectable surrogate gradient.

The forward pass is the Heaviside step of the hardware comparator: a neuron
fires when ``x = v - theta >= 0``. The step has no useful derivative, so the
backward pass replaces it with a smooth pseudo-derivative ``g(x)`` chosen by
:class:`Surrogate`; ``scale`` sets its sharpness or height (see
:func:`surrogate_grad` for the exact formulas).
"""

from __future__ import annotations

import math

import torch

from spikeforge.trainconfig import Surrogate  # torch-free, so configs name it

__all__ = ["DEFAULT_SCALE", "SpikeFunction", "Surrogate", "spike", "surrogate_grad"]


#: Scale used when none is given, per surrogate (the values of the cited papers).
DEFAULT_SCALE: dict[Surrogate, float] = {
    Surrogate.EXPONENTIAL: 1.0,  # Bondarev 2022: exp(-|x|)
    Surrogate.PIECEWISE_LINEAR: 0.3,  # Bellec et al. 2018: gamma = 0.3
    Surrogate.FAST_SIGMOID: 10.0,  # Zenke & Ganguli 2018 (SuperSpike) slope
    Surrogate.ARCTAN: 2.0,  # Fang et al. 2021 (SpikingJelly ATan) alpha
    Surrogate.STRAIGHT_THROUGH: 1.0,
}


def surrogate_grad(x: torch.Tensor, kind: Surrogate, scale: float) -> torch.Tensor:
    """Pseudo-derivative ``g(x)`` of the spike step at ``x = v - theta``.

    Parameters
    ----------
    x : torch.Tensor
        Membrane minus threshold.
    kind : Surrogate
        Which pseudo-derivative.
    scale : float
        Its parameter ``a``:

        - ``EXPONENTIAL``: ``exp(-a |x|)`` (slope ``a``),
        - ``PIECEWISE_LINEAR``: ``a * max(0, 1 - |x|)`` (height ``gamma = a``),
        - ``FAST_SIGMOID``: ``1 / (1 + a |x|)^2`` (slope ``a``),
        - ``ARCTAN``: ``(a / 2) / (1 + (pi a x / 2)^2)``, the derivative of
          ``arctan(pi a x / 2) / pi``,
        - ``STRAIGHT_THROUGH``: ``a`` everywhere.

    Returns
    -------
    torch.Tensor
        ``g(x)``, same shape and dtype as ``x``.
    """
    if kind is Surrogate.EXPONENTIAL:
        return torch.exp(-scale * x.abs())
    if kind is Surrogate.PIECEWISE_LINEAR:
        return scale * torch.clamp(1.0 - x.abs(), min=0.0)
    if kind is Surrogate.FAST_SIGMOID:
        return 1.0 / (1.0 + scale * x.abs()) ** 2
    if kind is Surrogate.ARCTAN:
        return (scale / 2.0) / (1.0 + (math.pi * scale * x / 2.0) ** 2)
    if kind is Surrogate.STRAIGHT_THROUGH:
        return torch.full_like(x, scale)
    raise ValueError(f"kind must be a Surrogate, not {kind!r}")


class SpikeFunction(torch.autograd.Function):
    """Heaviside ``x >= 0`` forward, :func:`surrogate_grad` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, kind: Surrogate, scale: float) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.kind = kind
        ctx.scale = scale
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad_out * surrogate_grad(x, ctx.kind, ctx.scale), None, None


def spike(x: torch.Tensor, kind: Surrogate = Surrogate.FAST_SIGMOID,
          scale: float | None = None) -> torch.Tensor:
    """Spikes ``1.0 where x >= 0 else 0.0`` with a surrogate gradient.

    Parameters
    ----------
    x : torch.Tensor
        Membrane minus threshold.
    kind : Surrogate
        Pseudo-derivative of the backward pass.
    scale : float, optional
        Its parameter; ``DEFAULT_SCALE[kind]`` when omitted.

    Returns
    -------
    torch.Tensor
        0/1 tensor of the dtype of ``x``.
    """
    if not isinstance(kind, Surrogate):
        raise ValueError(f"kind must be a Surrogate, not {kind!r}")
    a = DEFAULT_SCALE[kind] if scale is None else float(scale)
    if not a > 0:
        raise ValueError(f"scale must be positive, not {scale!r}")
    return SpikeFunction.apply(x, kind, a)
