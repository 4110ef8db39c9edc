"""Hybrid networks: ReLU layers first, LIF layers after, trained end to end.

Panda, Aketi & Roy (2020) put rectified-linear (ANN) neurons in the first
layers, which extract features from the real-valued input without the loss of
rate coding, and spiking LIF neurons in the later layers; the whole stack is
trained by backpropagation, surrogate gradients in the spiking part.

Here the network is an ordinary :class:`~spikeforge.model.network.SNN` with
:class:`ReLU` layers. Fed the real-valued input at every step
(:attr:`~spikeforge.model.encoders.Encoding.DIRECT`, a stride-0 view), the ReLU
layers and the first synaptic layer of the spiking block are computed once per
sample, and the spiking block receives the same real-valued ANN output as its
input current at every step. Energy-wise these layers count multiply-accumulates
(see :mod:`spikeforge.model.opcount`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spikeforge.qnet import Reset

from .layers import LIF, Dense, DenseReadout, _per_step
from .network import SNN
from .surrogate import Surrogate

__all__ = ["ReLU", "hybrid_mlp"]


class ReLU(nn.Module):
    """Rectified linear units on a time-major ``[T, B, ...]`` tensor (kept stride-0 in time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return _per_step(torch.relu, x)


def hybrid_mlp(sizes: Sequence[int], relu_layers: int, *, beta: float, threshold: float = 1.0,
               reset: Reset = Reset.ZERO, surrogate: Surrogate = Surrogate.FAST_SIGMOID,
               scale: float | None = None, readout_beta: float = 1.0) -> SNN:
    """A dense network whose first ``relu_layers`` hidden layers are ReLU, the rest LIF.

    Parameters
    ----------
    sizes : sequence of int
        Widths from the input to the classes, e.g. ``[784, 256, 128, 10]``.
    relu_layers : int
        Hidden layers with ReLU neurons, ``0 .. len(sizes) - 2``; ``0`` is an
        all-LIF network of the same depth, ``len(sizes) - 2`` an ANN with an
        integrating readout.
    beta, threshold, reset, surrogate, scale
        The LIF neurons (:class:`~spikeforge.model.layers.LIF`).
    readout_beta : float
        Leak of the readout.

    Returns
    -------
    SNN
        ``Dense, ReLU|LIF, ..., DenseReadout``.
    """
    sizes = [int(n) for n in sizes]
    hidden = len(sizes) - 2
    if hidden < 1 or any(n < 1 for n in sizes):
        raise ValueError(f"sizes must hold an input, at least one hidden and an output width, "
                         f"not {sizes!r}")
    if isinstance(relu_layers, bool) or not isinstance(relu_layers, int) or not (
            0 <= relu_layers <= hidden):
        raise ValueError(f"relu_layers must be an integer in 0..{hidden}, not {relu_layers!r}")
    layers: list[nn.Module] = []
    for i in range(hidden):
        layers.append(Dense(sizes[i], sizes[i + 1]))
        layers.append(ReLU() if i < relu_layers else
                      LIF(beta, threshold, reset=reset, surrogate=surrogate, scale=scale))
    layers.append(DenseReadout(sizes[-2], sizes[-1], beta=readout_beta))
    return SNN(layers)
