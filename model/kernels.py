"""Fused time loop of LIF/IF layers: one autograd node for all ``T`` steps.

:func:`lif_sequence` computes exactly what :func:`~spikeforge.model.neurons.run_steps`
over :func:`~spikeforge.model.neurons.lif_step` computes, spikes and
gradients, but as one :class:`torch.autograd.Function`:

* the forward loop runs without autograd, three in-place tensor operations per
  step, and keeps the pre-reset membranes ``u[t]`` and the spikes;
* the backward evaluates the surrogate for all steps in one vectorised call
  and then runs the adjoint recurrence (one fused multiply-add per step)::

      gu[t] = gs[t] * g(u[t] - theta) + c[t] * gu[t + 1]
      c[t]  = beta * (1 - s[t])   (reset to zero)   or   beta   (subtract, keep)

  The reset is detached from the graph, as in the step function
  (Zenke & Vogels 2021), so ``c[t]`` has no surrogate term. Every reset mode
  runs through its rule (``qnet.RESET_RULES``) and the float actions of
  ``neurons.FLOAT_AT_SPIKE``; the C kernels implement the modes of
  ``native.RESET_FLAGS`` and any other mode takes the torch loops.

A generic autograd graph over ``T`` steps has ~10 nodes per step; here the
Python and dispatcher overhead per batch is a few dozen small calls. Where a C
compiler is available (:mod:`.native`) each of the two loops is one C pass
over ``[T, N]`` instead (``Backend.AUTO``; ``Backend.TORCH`` forces the torch
loops). Layers with a refractory period go through the generic loop.
"""

from __future__ import annotations

import enum
import math

import torch

from spikeforge.qnet import RESET_RULES, Reset

from . import native
from .neurons import (
    FLOAT_AT_SPIKE,
    LIFParams,
    RefractoryState,
    lif_step,
    refractory_lif_step,
    run_steps,
)
from .surrogate import Surrogate

__all__ = ["Backend", "lif_sequence", "lif_sequence_reference"]


class Backend(enum.Enum):
    """Which implementation of the fused loop runs."""

    AUTO = "auto"  # the C kernels of :mod:`.native` where they build, else torch
    TORCH = "torch"  # torch tensor operations only


def _surrogate_grad_(x: torch.Tensor, kind: Surrogate, scale: float) -> torch.Tensor:
    """:func:`~spikeforge.model.surrogate.surrogate_grad` computed in place in ``x``.

    On ``[T, B, C, H, W]`` tensors the temporaries of the out-of-place formula
    cost more than the arithmetic (each is a fresh, page-faulted allocation).
    """
    if kind is Surrogate.EXPONENTIAL:
        return x.abs_().mul_(-scale).exp_()
    if kind is Surrogate.PIECEWISE_LINEAR:
        return x.abs_().neg_().add_(1.0).clamp_(min=0.0).mul_(scale)
    if kind is Surrogate.FAST_SIGMOID:
        return x.abs_().mul_(scale).add_(1.0).pow_(-2)
    if kind is Surrogate.ARCTAN:
        return x.mul_(math.pi * scale / 2.0).square_().add_(1.0).reciprocal_().mul_(scale / 2.0)
    if kind is Surrogate.STRAIGHT_THROUGH:
        return x.fill_(scale)
    raise ValueError(f"kind must be a Surrogate, not {kind!r}")


class _LIFSequence(torch.autograd.Function):
    """Spikes ``[T, ...]`` of LIF neurons driven by ``currents [T, ...]``, state starting at 0."""

    @staticmethod
    def forward(ctx, currents: torch.Tensor, threshold: torch.Tensor, beta: float,
                reset: Reset, kind: Surrogate, scale: float,
                backend: Backend) -> torch.Tensor:  # noqa: D102
        theta = float(threshold.detach())
        ctx.beta, ctx.reset, ctx.kind, ctx.scale = beta, reset, kind, scale
        ctx.use_native = (backend is Backend.AUTO and native.supports(reset)
                          and native.usable(currents))
        if ctx.use_native:
            u, out = native.lif_forward(currents, beta, theta, reset)
            ctx.save_for_backward(u, out, threshold)  # the backward reads the spikes
            return out
        rule = RESET_RULES[reset]
        act = FLOAT_AT_SPIKE[rule.at_spike]
        u = torch.empty_like(currents)
        # flag: the spikes, or for the zero reset keep = 1 - s (what survives the reset,
        # and the backward's c / beta)
        flag = torch.empty_like(currents)
        vbuf = v = torch.zeros_like(currents[0])  # the reset writes into vbuf (or keeps u[t])
        for t in range(currents.shape[0]):
            ut = torch.add(currents[t], v, alpha=beta, out=u[t])
            if rule.subtract_next and t > 0:
                ut.sub_(_spikes(flag[t - 1], act.flag_is_keep), alpha=theta)
            v = act.fused(ut, theta, flag[t], vbuf)
        ctx.save_for_backward(u, flag, threshold)
        return _spikes(flag, act.flag_is_keep)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):  # noqa: D102
        u, flag, threshold = ctx.saved_tensors
        theta = float(threshold.detach())
        if ctx.use_native:
            gu, g = native.lif_backward(grad_spikes, u, flag, ctx.beta, theta, ctx.reset,
                                        ctx.kind, ctx.scale)
            grad_theta = None
            if ctx.needs_input_grad[1]:
                grad_theta = torch.tensor(g, dtype=threshold.dtype).reshape(threshold.shape)
            return gu.view(grad_spikes.shape), grad_theta, None, None, None, None, None
        rule = RESET_RULES[ctx.reset]
        act = FLOAT_AT_SPIKE[rule.at_spike]
        a = _surrogate_grad_(u - theta, ctx.kind, ctx.scale).mul_(grad_spikes)
        c = flag.mul(ctx.beta) if act.flag_is_keep else None
        gu = torch.empty_like(u)
        t_last = u.shape[0] - 1
        gu[t_last] = a[t_last]
        for t in range(t_last - 1, -1, -1):
            if c is None:
                torch.add(a[t], gu[t + 1], alpha=ctx.beta, out=gu[t])
            else:
                torch.addcmul(a[t], c[t], gu[t + 1], out=gu[t])
        grad_theta = None
        if ctx.needs_input_grad[1]:
            # theta enters through the spike (s = H(u - theta)), through a reset
            # v = u - theta * s (gv[t] = beta * gu[t + 1]) and through a subtraction at the
            # next update, u[t + 1] -= theta * s[t].
            g = -a.sum()
            coef = ctx.beta * act.theta_in_v + rule.subtract_next
            if coef:
                s = _spikes(flag, act.flag_is_keep)
                g = g - coef * (s[:-1] * gu[1:]).sum()
            grad_theta = g.reshape(threshold.shape).to(threshold.dtype)
        return gu, grad_theta, None, None, None, None, None


def _spikes(flag: torch.Tensor, flag_is_keep: bool) -> torch.Tensor:
    """The spikes from the fused loop's flag (``1 - keep`` for the zero reset)."""
    return torch.sub(1.0, flag) if flag_is_keep else flag


def lif_sequence(currents: torch.Tensor, params: LIFParams,
                 backend: Backend = Backend.AUTO) -> torch.Tensor:
    """Spikes of a layer of LIF neurons over all steps, membranes starting at zero.

    Parameters
    ----------
    currents : torch.Tensor
        Input currents, time-major ``[T, B, ...]``.
    params : LIFParams
        Layer parameters; the threshold may be a learnable 0-d tensor.
    backend : Backend
        ``AUTO`` uses the C kernels of :mod:`.native` where available.

    Returns
    -------
    torch.Tensor
        0/1 spikes ``[T, B, ...]`` of the dtype of ``currents``, with surrogate
        gradients. Equal to :func:`lif_sequence_reference`.
    """
    if params.refractory > 0:
        return lif_sequence_reference(currents, params)
    theta = params.threshold
    if not isinstance(theta, torch.Tensor):
        theta = torch.tensor(float(theta), dtype=currents.dtype)
    return _LIFSequence.apply(currents, theta, float(params.beta), params.reset,
                              params.surrogate, float(params.scale), backend)


def lif_sequence_reference(currents: torch.Tensor, params: LIFParams) -> torch.Tensor:
    """:func:`lif_sequence` as the generic loop over the step functions (the reference)."""
    zeros = torch.zeros_like(currents[0])
    if params.refractory > 0:
        spikes, _ = run_steps(refractory_lif_step, currents,
                              RefractoryState(v=zeros, left=zeros.clone()), params)
    else:
        spikes, _ = run_steps(lif_step, currents, zeros, params)
    return spikes
