"""Predicted performance of a placed mapping: tile loads, traffic, links, throughput.

Per tile, the cycle model of :mod:`.cost` gives the cycles of every (sample,
step) of the measured activity. Tiles are decoupled by FIFOs and work on
different steps at once (as the layers of docs/HARDWARE.md do), so a sample
costs about its busiest tile's cycles plus the pipeline fill::

    cycles/sample = mean over samples of max over tiles (sum over steps of cycles)
                    * (T - 1) / T
                  + fill,   fill = sum over layers of (busiest tile's mean step cycles
                                                      + hop_cycles * longest hop into it)

A mesh link moves one packet per cycle. Routers multicast: a spike travels
the union of the XY routes to the tiles that need it (a dimension-ordered
tree), crossing each link of it once; partial sums and readout go unicast.
When the busiest link carries more packets per sample than the busiest tile
spends cycles, the link bounds the throughput instead, and the report says so.
(The placement objective counts unicast hops, an upper bound of the tree's.)

The hardware spikeforge generates today has no mesh router: a layer's tiles
share its input stream and its emitter (docs/HARDWARE.md). Its cycles are
predicted exactly by :mod:`spikeforge.cyclemodel` from the same activity,
the groups of the partition and the lanes: ``rtl_cycles_per_sample``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from spikeforge.cyclemodel import LayerTiming, predict_cycles
from spikeforge.qnet import QNet

from .activity import Activity
from .cost import DEFAULT_CYCLES, TileCycleModel, group_step_cycles
from .hardware import HardwareSpec
from .partition import Partition
from .placement import Placement, PlacementProblem
from .traffic import Traffic

__all__ = [
    "Analysis",
    "analyze",
    "fragment_step_cycles",
    "multicast_link_loads",
    "xy_links",
]


@dataclass(frozen=True)
class Analysis:
    """Figures of one mapping; every count is per sample unless it says per step."""

    tile_load: list[float]  # mean cycles per step of each fragment's tile
    busiest_tile: int  # fragment index
    busiest_cycles_per_step: float
    mean_cycles_per_step: float
    load_ratio: float  # busiest / mean
    spikes_between_tiles: float  # inter-tile spike packets (I/O excluded)
    spikes_from_io: float
    partial_packets: float
    readout_packets: float
    hops: float  # packet hops, I/O included (the placement objective)
    hops_in_order: float
    traffic_reduction: float  # 1 - hops / hops_in_order
    inter_tile_hops: float  # packet hops between tiles only (no I/O)
    inter_tile_hops_in_order: float
    inter_tile_reduction: float  # 1 - inter_tile_hops / inter_tile_hops_in_order
    hop_energy_pj: float
    busiest_link: tuple[tuple[int, int], tuple[int, int]] | None
    busiest_link_packets: float
    fill_cycles: float
    predicted_cycles_per_sample: float
    rtl_cycles_per_sample: float  # the generated RTL (no mesh router), cycle-exact model
    bound: str  # "tile" or "link"
    throughput_samples_per_s: float

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["busiest_link"] = [list(p) for p in self.busiest_link] if self.busiest_link else None
        return d


def fragment_step_cycles(part: Partition, net: QNet, hw: HardwareSpec, activity: Activity,
                         model: TileCycleModel = DEFAULT_CYCLES) -> np.ndarray:
    """Cycles of every fragment's tile on every (sample, step): ``[F, N*T]``."""
    rows = []
    for g in part.groups:
        layer = net.layers[g.layer]
        rows.append(group_step_cycles(model, layer.weights, activity.inputs[g.layer],
                                      activity.outputs[g.layer], g.neurons, g.chunks,
                                      hw.tile.neuron_lanes))
    return np.concatenate(rows, axis=0)


def xy_links(src: tuple[int, int], dst: tuple[int, int]) -> list[tuple[tuple[int, int],
                                                                       tuple[int, int]]]:
    """Directed links of the XY route from ``src`` to ``dst`` (columns first, then rows)."""
    (r, c), (r2, c2) = src, dst
    links = []
    while c != c2:
        n = c + (1 if c2 > c else -1)
        links.append(((r, c), (r, n)))
        c = n
    while r != r2:
        n = r + (1 if r2 > r else -1)
        links.append(((r, c), (n, c)))
        r = n
    return links


def multicast_link_loads(part: Partition, net: QNet, activity: Activity, traffic: Traffic,
                         where: list[tuple[int, int]]) -> dict:
    """Packets per sample on every directed link: spikes on XY multicast trees, the rest unicast.

    ``where[i]`` is the mesh position of fragment ``i`` (the last entry: the I/O port).
    """
    frags = part.fragments
    io = len(frags)
    load: dict = defaultdict(float)
    for l, layer in enumerate(net.layers):
        dests = [f for f in frags if f.layer == l]
        member = np.zeros((len(dests), layer.n_in), dtype=bool)
        for i, f in enumerate(dests):
            member[i, f.axons] = True
        source = np.full(layer.n_in, io, dtype=np.int64)
        if l > 0:
            for f in frags:
                if f.layer == l - 1 and f.chunk == 0:
                    source[f.neurons[0]:f.neurons[1]] = f.index
        mass = activity.in_counts(l)
        keys = np.concatenate([source[None].astype(np.int64), member.astype(np.int64)])
        uniq, inv = np.unique(keys, axis=1, return_inverse=True)
        per_key = np.bincount(inv.ravel(), weights=mass, minlength=uniq.shape[1])
        for u in range(uniq.shape[1]):
            if per_key[u] <= 0:
                continue
            src = int(uniq[0, u])
            tree = set()
            for i in np.flatnonzero(uniq[1:, u]):
                tree.update(xy_links(where[src], where[dests[i].index]))
            for link in tree:
                load[link] += per_key[u]
    unicast = traffic.partials + traffic.readout
    unicast[:io, io] += traffic.spikes[:io, io]  # the last layer's spikes to the I/O port
    for i, j in zip(*np.nonzero(unicast)):
        for link in xy_links(where[i], where[j]):
            load[link] += unicast[i, j]
    return dict(load)


def rtl_cycles(part: Partition, net: QNet, hw: HardwareSpec, activity: Activity) -> np.ndarray:
    """Cycles per sample of the RTL that ``spikeforge rtl --mapping`` builds (int64 ``[N]``)."""
    timings = []
    for l, layer in enumerate(net.layers):
        sizes = [f.n_neurons for f in part.fragments if f.layer == l and f.chunk == 0]
        lanes = min(hw.tile.neuron_lanes, max(sizes))
        timings.append(LayerTiming(max(-(-s // lanes) for s in sizes),
                                   np.any(layer.weights != 0, axis=0), layer.fire))
    n, t = activity.samples, activity.timesteps
    trains = [activity.inputs[0].reshape(n, t, -1)]
    trains += [activity.outputs[l].reshape(n, t, -1) for l, layer in enumerate(net.layers)
               if layer.fire]
    return predict_cycles(timings, trains)


def analyze(part: Partition, net: QNet, hw: HardwareSpec, activity: Activity,
            traffic: Traffic, pb: PlacementProblem, placement: Placement,
            model: TileCycleModel = DEFAULT_CYCLES) -> Analysis:
    """Compute the :class:`Analysis` of a placed partition."""
    frags = part.fragments
    n_f = len(frags)
    io = n_f
    n, t = activity.samples, activity.timesteps
    cyc = fragment_step_cycles(part, net, hw, activity, model)
    per_step = cyc.mean(axis=1)
    per_sample = cyc.reshape(n_f, n, t).sum(axis=2)  # [F, N]
    busiest = int(np.argmax(per_step))
    mean = float(per_step.mean())

    coords = pb.coords
    pos = pb.with_io(placement.slots)
    where = [tuple(coords[p].tolist()) for p in pos]
    link_load = multicast_link_loads(part, net, activity, traffic, where)
    longest_into = np.zeros(len(net.layers))
    for i, j in zip(*np.nonzero(traffic.total)):
        if j != io:
            hops = int(pb.dist[pos[i], pos[j]])
            longest_into[frags[j].layer] = max(longest_into[frags[j].layer], hops)
    if link_load:
        busiest_link, link_packets = max(link_load.items(), key=lambda kv: (kv[1], kv[0]))
    else:
        busiest_link, link_packets = None, 0.0

    steady = float(per_sample.max(axis=0).mean()) * (t - 1) / t
    layer_step = [max(per_step[f.index] for f in frags if f.layer == l)
                  for l in range(len(net.layers))]
    fill = float(sum(layer_step) + hw.noc.hop_cycles * longest_into.sum())
    cycles = steady + fill
    bound = "tile"
    if link_packets * (t - 1) / t > steady:
        bound, cycles = "link", link_packets * (t - 1) / t + fill

    between = traffic.spikes[:io, :io].sum()
    hops_base = pb.cost(np.arange(n_f))
    inner = traffic.total[:io, :io]

    def inter_tile(slots: np.ndarray) -> float:
        return float(np.sum(inner * pb.dist[np.ix_(slots, slots)]))

    inter, inter_base = inter_tile(placement.slots), inter_tile(np.arange(n_f))
    return Analysis(
        tile_load=[float(x) for x in per_step],
        busiest_tile=busiest,
        busiest_cycles_per_step=float(per_step[busiest]),
        mean_cycles_per_step=mean,
        load_ratio=float(per_step[busiest] / mean) if mean > 0 else 1.0,
        spikes_between_tiles=float(between),
        spikes_from_io=float(traffic.spikes[io].sum()),
        partial_packets=float(traffic.partials.sum()),
        readout_packets=float(traffic.readout.sum()),
        hops=float(placement.cost),
        hops_in_order=float(hops_base),
        traffic_reduction=float(1.0 - placement.cost / hops_base) if hops_base > 0 else 0.0,
        inter_tile_hops=inter,
        inter_tile_hops_in_order=inter_base,
        inter_tile_reduction=float(1.0 - inter / inter_base) if inter_base > 0 else 0.0,
        hop_energy_pj=float(placement.cost * hw.noc.hop_energy_pj),
        busiest_link=busiest_link,
        busiest_link_packets=float(link_packets),
        fill_cycles=fill,
        predicted_cycles_per_sample=float(cycles),
        rtl_cycles_per_sample=float(rtl_cycles(part, net, hw, activity).mean()),
        bound=bound,
        throughput_samples_per_s=float(hw.clock_mhz * 1e6 / cycles) if cycles > 0 else 0.0,
    )
