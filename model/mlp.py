"""A multilayer perceptron of LIF neurons with a non-firing readout.

Thin :class:`torch.nn.Module` over the pure steps of :mod:`spikeforge.model.neurons`:
hidden layers fire (LIF), the last layer integrates (readout) and its
membrane after the last step is the score vector (docs/QNET.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from spikeforge.qnet import Reset

from .neurons import LIFParams, beta_from_shifts, lif_step, readout_step
from .surrogate import Surrogate

__all__ = ["LIFMLP", "MLPOutput"]


@dataclass
class MLPOutput:
    """What :meth:`LIFMLP.run` returns.

    Attributes
    ----------
    scores : torch.Tensor
        Readout membrane after the last step, ``[B, n_out]``.
    spikes : list of torch.Tensor
        Spikes of each hidden layer, ``[B, T, n]`` each.
    """

    scores: torch.Tensor
    spikes: list[torch.Tensor]


class LIFMLP(nn.Module):
    """Dense LIF network ``sizes[0] -> ... -> sizes[-1]``; the last layer is a readout.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths including the input, e.g. ``[64, 128, 10]``.
    leak_shifts : sequence of int
        Hardware leak shifts of the hidden layers (``beta = 1 - sum(2^-k)``);
        ``()`` makes them IF neurons.
    readout_leak_shifts : sequence of int
        Leak shifts of the readout layer; ``()`` (default) integrates without leak.
    threshold : float
        Firing threshold of the hidden layers.
    reset : Reset
        A spiking mode (``qnet.SPIKING_RESETS``) for the hidden layers.
    surrogate : Surrogate
        Pseudo-derivative of the spikes.
    scale : float, optional
        Its parameter; the surrogate's default when omitted.
    bias : bool
        Whether the layers have a (constant-current) bias.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        leak_shifts: Sequence[int] = (3, 4),
        readout_leak_shifts: Sequence[int] = (),
        threshold: float = 1.0,
        reset: Reset = Reset.ZERO,
        surrogate: Surrogate = Surrogate.FAST_SIGMOID,
        scale: float | None = None,
        bias: bool = False,
    ) -> None:
        super().__init__()
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2 or any(n < 1 for n in sizes):
            raise ValueError(f"sizes must hold at least two positive widths, not {sizes!r}")
        self.sizes = tuple(sizes)
        self.leak_shifts = tuple(sorted(leak_shifts))
        self.readout_leak_shifts = tuple(sorted(readout_leak_shifts))
        self.lif = LIFParams(beta=beta_from_shifts(self.leak_shifts), threshold=float(threshold),
                             reset=reset, surrogate=surrogate, scale=scale)
        self.readout_beta = beta_from_shifts(self.readout_leak_shifts)
        self.use_bias = bool(bias)
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=self.use_bias) for a, b in zip(sizes[:-1], sizes[1:])
        )

    @property
    def threshold(self) -> float:
        """Firing threshold of the hidden layers."""
        return self.lif.threshold

    @property
    def reset(self) -> Reset:
        """Reset mode of the hidden layers."""
        return self.lif.reset

    def run(self, spikes: torch.Tensor) -> MLPOutput:
        """Run a batch of spike trains and keep the hidden spikes.

        Parameters
        ----------
        spikes : torch.Tensor
            Input spikes ``[B, T, n_in]`` (0/1, floating point).

        Returns
        -------
        MLPOutput
            Final readout membrane and the hidden layers' spikes.
        """
        if spikes.ndim != 3 or spikes.shape[2] != self.sizes[0]:
            raise ValueError(f"spikes must be [B, T, {self.sizes[0]}], not {list(spikes.shape)}")
        b, t_steps, _ = spikes.shape
        # The first layer's input does not depend on the dynamics: one matmul for all steps.
        current0 = self.layers[0](spikes)
        v = [torch.zeros(b, layer.out_features, dtype=current0.dtype, device=current0.device)
             for layer in self.layers]
        hidden = self.layers[:-1]
        recorded: list[list[torch.Tensor]] = [[] for _ in hidden]
        for t in range(t_steps):
            x = current0[:, t]
            for l, layer in enumerate(self.layers):
                if l > 0:
                    x = layer(x)
                if l < len(hidden):
                    x, v[l] = lif_step(x, v[l], self.lif)
                    recorded[l].append(x)
                else:
                    v[l] = readout_step(x, v[l], self.readout_beta)
        return MLPOutput(scores=v[-1], spikes=[torch.stack(r, dim=1) for r in recorded])

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        """Readout membrane after the last step, ``[B, n_out]`` (the class scores)."""
        return self.run(spikes).scores
