"""Backward residual (BackRes) blocks: one layer unrolled ``n`` times with shared weights.

Panda, Aketi & Roy (2020, after Kubilius et al.'s CORnet): a block's synaptic
layer is applied ``n`` times in a row, each unrolling step feeding the output
of the previous one back into the same weights::

    x_1 = LIF_1(W x_0)     # the block's input is processed once
    x_k = LIF_k(W x_(k-1)) # k = 2 .. n, the same W

so the block has the *logical* depth of ``n`` layers and the parameters of one.
Surrogate-gradient training unrolls the block like any feed-forward stack: the
shared weights receive the sum of ``n`` different gradients. Each unrolling
step has its own neurons and threshold ``theta_k`` because the activity (and,
after ANN-to-SNN conversion, the balanced threshold) differs per step; the
paper finds ``theta_1 < theta_2 < ... < theta_n`` after threshold balancing.
:meth:`BackRes.forward_relu` is the ANN twin (ReLU instead of LIF) and returns
the pre-activations of every step, so a converter can balance one threshold
per step and write them back with :meth:`BackRes.set_thresholds`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from spikeforge.qnet import Reset

from .layers import LIF, Conv2d, Dense
from .surrogate import Surrogate

__all__ = ["BackRes"]


class BackRes(nn.Module):
    """A shape-preserving synaptic layer and LIF neurons, unrolled ``unroll`` times.

    Time-major like :mod:`spikeforge.model.layers`: spikes (or currents)
    ``[T, B, ...]`` in, spikes of the last unrolling step ``[T, B, ...]`` out.

    Parameters
    ----------
    body : Dense or Conv2d
        The shared synaptic layer; its output shape must equal its input shape
        (a square ``Dense``; a ``Conv2d`` with as many output as input channels,
        stride 1 and padding ``kernel // 2`` for an odd kernel).
    unroll : int
        Unrolling steps ``n >= 1`` (the block's logical depth).
    beta : float
        Leak factor of the neurons, in ``(0, 1]``.
    threshold : float or sequence of float
        One threshold for every step, or one per step.
    reset, surrogate, scale, learn_threshold
        As for :class:`~spikeforge.model.layers.LIF`; a learnable threshold is
        one parameter per unrolling step.
    """

    def __init__(self, body: Dense | Conv2d, unroll: int, *, beta: float,
                 threshold: float | Sequence[float] = 1.0, reset: Reset = Reset.ZERO,
                 surrogate: Surrogate = Surrogate.FAST_SIGMOID, scale: float | None = None,
                 learn_threshold: bool = False) -> None:
        super().__init__()
        _check_body(body)
        if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
            raise ValueError(f"unroll must be a positive integer, not {unroll!r}")
        thresholds = ([float(threshold)] * unroll if isinstance(threshold, int | float)
                      else [float(t) for t in threshold])
        if len(thresholds) != unroll:
            raise ValueError(f"threshold must be one value or {unroll} values, not "
                             f"{len(thresholds)}")
        self.body = body
        self.neurons = nn.ModuleList(
            LIF(beta, th, reset=reset, surrogate=surrogate, scale=scale,
                learn_threshold=learn_threshold) for th in thresholds)

    @property
    def unroll(self) -> int:
        """Unrolling steps ``n`` (the logical depth)."""
        return len(self.neurons)

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The threshold of every unrolling step."""
        return tuple(float(lif.threshold.detach()) if lif.learn_threshold
                     else float(lif.params.threshold) for lif in self.neurons)

    @torch.no_grad()
    def set_thresholds(self, values: Sequence[float]) -> None:
        """Give unrolling step ``k`` the threshold ``values[k]`` (e.g. from threshold balancing).

        Parameters
        ----------
        values : sequence of float
            ``unroll`` positive thresholds.
        """
        values = [float(v) for v in values]
        if len(values) != self.unroll or not all(v > 0.0 for v in values):
            raise ValueError(f"need {self.unroll} positive thresholds, not {values!r}")
        for lif, v in zip(self.neurons, values):
            lif.params = dataclasses.replace(lif.params, threshold=v)
            if lif.learn_threshold:
                lif.threshold.fill_(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        for lif in self.neurons:
            x = lif(self.body(x))
        return x

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Spikes ``[T, B, ...]`` of every unrolling step, in order."""
        out = []
        for lif in self.neurons:
            x = lif(self.body(x))
            out.append(x)
        return out

    def forward_relu(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The ANN twin: ``x_k = relu(W x_(k-1))`` on real-valued ``[B, ...]`` input.

        Returns
        -------
        y : torch.Tensor
            Output of the last step, ``[B, ...]``.
        pre : list of torch.Tensor
            Pre-activations ``W x_(k-1)`` of every step (what threshold
            balancing takes the maximum of, one threshold per step).
        """
        pre = []
        for _ in range(self.unroll):
            z = self.body(x.unsqueeze(0)).squeeze(0)  # the layers are time-major
            pre.append(z)
            x = torch.relu(z)
        return x, pre

    def extra_repr(self) -> str:  # noqa: D102
        return f"unroll={self.unroll}, thresholds={list(self.thresholds)}"


def _check_body(body: nn.Module) -> None:
    if isinstance(body, Dense):
        if body.in_features != body.out_features:
            raise ValueError(f"a BackRes Dense body must be square, not {body.in_features} -> "
                             f"{body.out_features}")
    elif isinstance(body, Conv2d):
        k = body.kernel_size
        if (body.in_channels != body.out_channels or body.stride != (1, 1)
                or body.padding != (k[0] // 2, k[1] // 2) or k[0] % 2 == 0 or k[1] % 2 == 0
                or body.dilation != (1, 1) or body.groups != 1):
            raise ValueError("a BackRes Conv2d body must keep its shape: as many output as "
                             "input channels, an odd kernel, stride 1, padding kernel // 2")
    else:
        raise ValueError(f"body must be a Dense or Conv2d layer, not {type(body).__name__}")
