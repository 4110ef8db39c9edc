"""Inter-tile traffic counted from measured spikes.

Packets per sample between fragments (and the I/O port, the last index):

* an input spike on line ``a`` goes from the I/O port to every fragment whose
  axons hold ``a``;
* a spike of neuron ``j`` of layer ``l`` goes from the neuron tile of ``j``'s
  group to every fragment of layer ``l+1`` whose axons hold ``j`` (the source
  router replicates it: one packet per destination tile);
* partial sums flow along each group's chain of tiles (chunk ``k`` to chunk
  ``k-1``, chunk 0 being the neuron tile): every step, one packet per run of
  ``neuron_lanes`` neurons with a nonzero partial current over chunks
  ``k..K-1`` (see :func:`.cost.chain_partials`);
* the last layer's spikes (or, for a readout, its scores, one packet per
  neuron at the end of a sample) go to the I/O port.

A packet from a fragment to itself never occurs (a fragment holds one layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.qnet import QNet

from ._checks import require
from .activity import Activity
from .cost import chain_partials
from .partition import Partition

__all__ = ["Traffic", "check_traffic", "measure_traffic"]


@dataclass(frozen=True, eq=False)
class Traffic:
    """Packets per sample, ``[F+1, F+1]`` float64, from row to column; index ``F`` is I/O.

    ``spikes + partials + readout == total``.
    """

    spikes: np.ndarray
    partials: np.ndarray
    readout: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.spikes + self.partials + self.readout

    @property
    def io(self) -> int:
        return self.spikes.shape[0] - 1


def measure_traffic(part: Partition, net: QNet, activity: Activity, lanes: int) -> Traffic:
    """Count the packets of :class:`Traffic` from ``activity`` (see the module docstring)."""
    frags = part.fragments
    n_f = len(frags)
    io = n_f
    spikes = np.zeros((n_f + 1, n_f + 1))
    partials = np.zeros_like(spikes)
    readout = np.zeros_like(spikes)
    # owner[l][j]: the fragment that emits line j of layer l's input (io for layer 0)
    owners = []
    for l, layer in enumerate(net.layers):
        owners.append(np.full(layer.n_in, io, dtype=np.int64))
        if l > 0:
            for f in frags:
                if f.layer == l - 1 and f.chunk == 0:
                    owners[l][f.neurons[0]:f.neurons[1]] = f.index
    for f in frags:
        counts = activity.in_counts(f.layer)[f.axons]
        np.add.at(spikes[:, f.index], owners[f.layer][f.axons], counts)
    first = 0  # fragment index of each group's neuron tile; its chunks follow it
    for g in part.groups:
        if len(g.chunks) > 1:
            sent = chain_partials(activity.inputs[g.layer], net.layers[g.layer].weights,
                                  g.neurons, g.chunks, lanes)
            for k, packets in enumerate(sent, start=1):
                partials[first + k, first + k - 1] += packets.sum() / activity.samples
        first += len(g.chunks)
    last = len(net.layers) - 1
    for f in frags:
        if f.layer == last and f.chunk == 0:
            if net.layers[last].fire:
                spikes[f.index, io] += activity.out_counts(last)[f.neurons[0]:f.neurons[1]].sum()
            else:
                readout[f.index, io] += f.n_neurons
    return Traffic(spikes=spikes, partials=partials, readout=readout)


def check_traffic(traffic: Traffic, part: Partition) -> None:
    """Raise ``AssertionError`` unless the matrices are well formed."""
    n = len(part.fragments) + 1
    for name in ("spikes", "partials", "readout"):
        m = getattr(traffic, name)
        require(m.shape == (n, n), f"traffic.{name} has shape {m.shape}, expected {(n, n)}")
        require(np.all(np.isfinite(m)) and np.all(m >= 0), f"traffic.{name} is negative")
        require(np.all(np.diag(m) == 0), f"traffic.{name}: a fragment sends to itself")
