"""A feed-forward spiking network over time-major inputs, with activity counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .layers import LIF, Conv2d, Dense, DenseReadout, SpikeCountReadout, fold_batchnorm

__all__ = ["SNN", "LayerActivity", "SNNOutput"]


@dataclass
class SNNOutput:
    """What :meth:`SNN.run` returns.

    Attributes
    ----------
    scores : torch.Tensor
        Readout scores ``[B, n_out]``.
    spikes : list of torch.Tensor
        Spikes ``[T, B, ...]`` of every :class:`~spikeforge.model.layers.LIF` layer.
    """

    scores: torch.Tensor
    spikes: list[torch.Tensor]


@dataclass(frozen=True)
class LayerActivity:
    """Counters of one layer over a set of samples.

    Attributes
    ----------
    name : str
        Layer name (``"3:lif"``: index and kind).
    neurons : int
        Neurons (outputs) per sample.
    spikes : float
        Spikes emitted per sample (LIF layers; 0 otherwise).
    rate : float
        Spikes per neuron per step.
    synops : float
        Synaptic operations per sample: (non-zero input, synapse) pairs
        accumulated, summed over steps (synaptic layers; 0 otherwise).
    """

    name: str
    neurons: int
    spikes: float
    rate: float
    synops: float


class SNN(nn.Module):
    """Layers applied in order to a time-major input; the last layer is a readout.

    Parameters
    ----------
    layers : sequence of nn.Module
        Time-major layers from :mod:`spikeforge.model.layers`, ending in a
        :class:`~spikeforge.model.layers.DenseReadout` or
        :class:`~spikeforge.model.layers.SpikeCountReadout`.
    """

    def __init__(self, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        layers = list(layers)
        if not layers or not isinstance(layers[-1], DenseReadout | SpikeCountReadout):
            raise ValueError("the last layer must be a DenseReadout or a SpikeCountReadout")
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``[B, n_out]`` of the input ``x`` ``[T, B, ...]``."""
        for layer in self.layers:
            x = layer(x)
        return x

    def folded(self) -> SNN:
        """This network with its BatchNorm layers merged into the layers before them.

        Computes what this network computes in evaluation mode; shares the
        other layers (not copies). See :func:`~spikeforge.model.layers.fold_batchnorm`.
        """
        return SNN(fold_batchnorm(list(self.layers)))

    def run(self, x: torch.Tensor) -> SNNOutput:
        """Scores and the spikes of every LIF layer."""
        spikes = []
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, LIF):
                spikes.append(x)
        return SNNOutput(scores=x, spikes=spikes)

    @torch.no_grad()
    def activity(self, x: torch.Tensor) -> tuple[torch.Tensor, list[LayerActivity]]:
        """Scores and per-layer counters (summed over the batch) of input ``x``.

        Returns
        -------
        scores : torch.Tensor
            ``[B, n_out]``.
        counters : list of LayerActivity
            One per layer, per-sample averages over the batch.
        """
        t, b = x.shape[:2]
        out = []
        for i, layer in enumerate(self.layers):
            synops = 0.0
            if isinstance(layer, Dense | DenseReadout):
                synops = float((x != 0).sum()) * layer.out_features
            elif isinstance(layer, Conv2d):
                synops = _conv_synops(layer, x)
            y = layer(x)
            spikes = float(y.sum()) if isinstance(layer, LIF) else 0.0
            neurons = int(y[0].numel() // b) if y.ndim > 2 else int(y.shape[1])
            out.append(LayerActivity(
                name=f"{i}:{type(layer).__name__.lower()}", neurons=neurons,
                spikes=spikes / b, rate=spikes / (b * t * neurons) if neurons else 0.0,
                synops=synops / b))
            x = y
        return x, out


def _conv_synops(layer: Conv2d, x: torch.Tensor) -> float:
    """Exact count of (non-zero input, synapse) pairs a convolution visits."""
    nz = (x != 0).to(torch.float32).flatten(0, 1)  # [T*B, C, H, W]
    if layer.groups != 1:
        raise ValueError("synaptic-operation counts need groups=1")
    ones = torch.ones(1, 1, *layer.kernel_size)
    hits = F.conv2d(nz.sum(1, keepdim=True), ones, stride=layer.stride,
                    padding=layer.padding, dilation=layer.dilation)
    return float(hits.sum()) * layer.out_channels
