"""Operation counts and Panda-convention energy of a float network (docs/ENERGY.md).

Panda et al. (2020) count, per sample, an accumulate (AC, ``E_AC``) for every
(input spike, synapse) pair and a multiply-accumulate (MAC, ``E_MAC``) for
every synapse of a layer fed real values (a first layer on direct input, the
ReLU layers of a hybrid network and the layer after them). The ANN baseline is
the same architecture run once with MACs everywhere. The constants are
:data:`spikeforge.energy.E_AC_PJ` and :data:`spikeforge.energy.E_MAC_PJ`.

:func:`count_ops` runs a batch through an :class:`~spikeforge.model.network.SNN`
(including :class:`~spikeforge.model.backres.BackRes` blocks, counted per
unrolling step) and classifies each synaptic layer by what it actually
received: 0/1 input counts ACs over all steps, real input counts MACs once
per distinct step (once when the input is constant in time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spikeforge.energy import E_AC_PJ, E_MAC_PJ

from .backres import BackRes
from .layers import LIF, Conv2d, Dense, DenseReadout, _constant_in_time
from .network import SNN, _conv_synops

__all__ = ["LayerOps", "OpCount", "count_ops"]


@dataclass(frozen=True)
class LayerOps:
    """Per-sample operations of one synaptic layer (or unrolling step).

    Attributes
    ----------
    name : str
        ``"3:dense"``; an unrolling step of a BackRes block is ``"2:backres.1"``.
    spiking_input : bool
        Whether the layer received 0/1 spikes (ACs) or real values (MACs).
    acs, macs : float
        Accumulates and multiply-accumulates per sample.
    ann_macs : float
        MACs of the same layer in the ANN baseline (one pass).
    spikes_out : float
        Spikes per sample of the neurons after it (0 for ReLU or a readout).
    neurons : int
        Those neurons, per sample and step.
    """

    name: str
    spiking_input: bool
    acs: float
    macs: float
    ann_macs: float
    spikes_out: float
    neurons: int


@dataclass(frozen=True)
class OpCount:
    """Operation counts of a network over a batch, per sample.

    Attributes
    ----------
    layers : tuple of LayerOps
        One per synaptic layer or unrolling step, in order.
    timesteps : int
        Steps ``T``.
    """

    layers: tuple[LayerOps, ...]
    timesteps: int

    @property
    def snn_pj(self) -> float:
        """``sum(ACs) E_AC + sum(MACs) E_MAC``, per sample."""
        return sum(l.acs * E_AC_PJ + l.macs * E_MAC_PJ for l in self.layers)

    @property
    def ann_pj(self) -> float:
        """``sum(ANN MACs) E_MAC``, per sample."""
        return sum(l.ann_macs * E_MAC_PJ for l in self.layers)

    @property
    def ee(self) -> float:
        """Energy efficiency ``E_ANN / E_SNN``."""
        return self.ann_pj / self.snn_pj if self.snn_pj else float("inf")

    @property
    def spikes(self) -> float:
        """Spikes per sample, all layers."""
        return sum(l.spikes_out for l in self.layers)

    @property
    def spike_rate(self) -> float:
        """Spikes per spiking neuron per step."""
        n = sum(l.neurons for l in self.layers)
        return self.spikes / (n * self.timesteps) if n else 0.0


def _dense_macs(layer: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """MACs of one step of one sample."""
    if isinstance(layer, Dense | DenseReadout):
        return float(layer.in_features * layer.out_features)
    k = layer.kernel_size
    return float(y[0, 0].numel() * layer.in_channels * k[0] * k[1])


def _synaptic(name: str, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    t, b = x.shape[:2]
    y = layer(x)
    binary = bool(((x == 0) | (x == 1)).all())
    per_step = _dense_macs(layer, x, y)
    acs = macs = 0.0
    if binary:
        if isinstance(layer, Conv2d):
            acs = _conv_synops(layer, x) / b
        else:
            acs = float((x != 0).sum()) * layer.out_features / b
    else:
        macs = per_step * (1 if _constant_in_time(x) else t)
    return y, {"name": name, "spiking_input": binary, "acs": acs, "macs": macs,
               "ann_macs": per_step}


def _neurons(y: torch.Tensor) -> int:
    return int(y[0, 0].numel())


@torch.no_grad()
def count_ops(model: SNN, x: torch.Tensor) -> OpCount:
    """Count the operations of ``model`` on the time-major input ``x`` ``[T, B, ...]``.

    Parameters
    ----------
    model : SNN
        Layers from :mod:`spikeforge.model.layers`, :class:`~spikeforge.model.hybrid.ReLU`
        and :class:`~spikeforge.model.backres.BackRes` blocks.
    x : torch.Tensor
        Input as the model receives it (encoded).

    Returns
    -------
    OpCount
        Per-sample counts averaged over the batch.
    """
    was = model.training
    model.eval()
    t, b = x.shape[:2]
    rows: list[dict] = []
    for i, layer in enumerate(model.layers):
        kind = type(layer).__name__.lower()
        if isinstance(layer, BackRes):
            for k, lif in enumerate(layer.neurons):
                y, row = _synaptic(f"{i}:{kind}.{k + 1}", layer.body, x)
                x = lif(y)
                row.update(spikes_out=float(x.sum()) / b, neurons=_neurons(x))
                rows.append(row)
            continue
        if isinstance(layer, Dense | DenseReadout | Conv2d):
            x, row = _synaptic(f"{i}:{kind}", layer, x)
            row.update(spikes_out=0.0, neurons=0)
            rows.append(row)
            continue
        x = layer(x)
        if isinstance(layer, LIF) and rows:
            rows[-1].update(spikes_out=float(x.sum()) / b, neurons=_neurons(x))
    model.train(was)
    return OpCount(layers=tuple(LayerOps(**r) for r in rows), timesteps=t)
