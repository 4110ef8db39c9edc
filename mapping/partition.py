"""Partition every layer of a QNet into tile-sized fragments.

A layer's neurons are cut into contiguous **groups** of at most ``neurons``
per tile. A group's fan-in (its receptive field: the input lines with a
nonzero weight into the group) is cut into **chunks** of at most ``axons``
lines, so that ``chunk axons x group neurons x weight_bits`` fits the synapse
memory. Each chunk is one **fragment**, one tile: chunk 0 is the group's
*neuron* tile (it holds the membranes and emits the spikes), every further
chunk is a *partial-sum* tile that accumulates its slice of the fan-in; the
partial currents flow along the chain ``K-1 -> ... -> 1 -> 0`` each step,
every tile adding what it receives (:func:`.cost.chain_partials`).

:func:`partition_network` makes the fewest fragments the limits allow and
refuses, in one line, a network that does not fit;
:func:`.balance.balance_partition` then spends spare tiles on the busiest
groups. :func:`check_partition` verifies every limit and that every nonzero
synapse lives in exactly one fragment.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from spikeforge.contracts import weight_memory
from spikeforge.errors import SpikeforgeError
from spikeforge.qnet import QNet

from ._checks import require as _require
from .activity import Activity
from .cost import DEFAULT_CYCLES, TileCycleModel, group_step_cycles
from .hardware import HardwareSpec

__all__ = [
    "Fragment",
    "NeuronGroupPlan",
    "MappingError",
    "Partition",
    "Role",
    "check_partition",
    "group_load",
    "make_group",
    "partition_network",
    "row_bits",
    "split_axons",
]


class MappingError(SpikeforgeError):
    """The network cannot be mapped onto the hardware; ``str()`` says what and by how much."""


class Role(enum.Enum):
    """What a fragment's tile does."""

    NEURON = "neuron"  # holds the group's membranes, receives partial sums, emits spikes
    PARTIAL = "partial"  # accumulates a slice of the fan-in, sends partial currents


@dataclass(frozen=True, eq=False)
class NeuronGroupPlan:
    """Neurons ``[lo, hi)`` of layer ``layer`` and the chunks of their fan-in."""

    layer: int
    neurons: tuple[int, int]
    chunks: tuple[np.ndarray, ...]

    @property
    def n_neurons(self) -> int:
        return self.neurons[1] - self.neurons[0]


@dataclass(frozen=True, eq=False)
class Fragment:
    """One tile's share of a layer: a group's neurons and one chunk of their axons."""

    index: int
    layer: int
    layer_name: str
    group: int
    chunk: int
    neurons: tuple[int, int]
    axons: np.ndarray
    weight_bits: int

    @property
    def role(self) -> Role:
        return Role.NEURON if self.chunk == 0 else Role.PARTIAL

    @property
    def n_neurons(self) -> int:
        return self.neurons[1] - self.neurons[0]

    @property
    def n_axons(self) -> int:
        return len(self.axons)

    @property
    def memory_bits(self) -> int:
        """Weight memory used: one row of ``n_neurons`` weights per axon (the weight
        memory the hardware builds for this tile, :func:`spikeforge.contracts.weight_memory`)."""
        return weight_memory(f"{self.layer_name}.fragment{self.index}", self.n_axons,
                             self.n_neurons, self.weight_bits).bits


@dataclass(frozen=True, eq=False)
class Partition:
    """The groups of every layer, in layer order, and the fragments they make."""

    net_name: str
    layer_names: tuple[str, ...]
    weight_bits: tuple[int, ...]
    groups: tuple[NeuronGroupPlan, ...]

    @cached_property
    def fragments(self) -> tuple[Fragment, ...]:
        out = []
        for gi, g in enumerate(self.groups):
            for k, axons in enumerate(g.chunks):
                out.append(Fragment(index=len(out), layer=g.layer,
                                    layer_name=self.layer_names[g.layer], group=gi, chunk=k,
                                    neurons=g.neurons, axons=axons,
                                    weight_bits=self.weight_bits[g.layer]))
        return tuple(out)

    def tiles_per_layer(self) -> list[int]:
        counts = [0] * len(self.layer_names)
        for g in self.groups:
            counts[g.layer] += len(g.chunks)
        return counts


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    a.setflags(write=False)
    return a


def _fill(cum: np.ndarray, k: int, cap: int, room: np.ndarray) -> list[int] | None:
    """Greedy cut: chunk ``c`` takes lines while it holds at most ``cap`` lines and its
    mass stays within ``room[c]``; ``None`` when the lines do not fit ``k`` chunks.
    ``cum`` is the cumulative mass with a leading 0."""
    cuts, i, n = [], 0, len(cum) - 1
    for c in range(k):
        j = min(i + cap, n, int(np.searchsorted(cum, cum[i] + room[c], side="right")) - 1)
        j = max(j, i)
        if j == i and c > 0 and i < n:
            return None  # only the first chunk (the neuron tile) may hold no line
        cuts.append(j)
        i = j
    return cuts[:-1] if i == n else None


def split_axons(lines: np.ndarray, k: int, cap: int, mass: np.ndarray | None = None,
                overhead: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Cut ``lines`` (sorted) into at most ``k`` contiguous chunks of at most ``cap`` lines.

    Without ``mass`` the chunks have equal line counts. With ``mass`` (spikes
    per line, indexed by line number) the cut minimizes the largest
    ``spike mass + overhead[c]`` of a chunk, ``overhead[c]`` being the other
    work of chunk ``c``'s tile in spike-equivalent cycles (bisection on that
    bound with a greedy fill, which is optimal for contiguous chunks). The
    first chunk may then hold no line; trailing chunks that get no line are dropped.
    """
    lines = np.asarray(lines, dtype=np.int64)
    if len(lines) == 0:
        return (_frozen(lines),)
    k = max(1, min(k, len(lines)))
    if mass is None or k == 1:
        return tuple(_frozen(p) for p in np.array_split(lines, k))
    m = np.asarray(mass, dtype=np.float64)[lines]
    cum = np.concatenate([[0.0], np.cumsum(m)])
    extra = np.zeros(k)
    if overhead is not None:
        ov = np.asarray(overhead, dtype=np.float64)[:k]
        extra[:len(ov)] = ov
    lo, hi = 0.0, float(m.sum() + extra.max()) + 1.0
    best = _fill(cum, k, cap, hi - extra)
    if best is None:  # the cap alone needs every chunk full: equal counts
        return tuple(_frozen(p) for p in np.array_split(lines, k))
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        cuts = _fill(cum, k, cap, mid - extra)
        if cuts is None:
            lo = mid
        else:
            hi, best = mid, cuts
    parts = [p for i, p in enumerate(np.split(lines, best)) if i == 0 or len(p)]
    return tuple(_frozen(p) for p in parts)


def _receptive_field(weights: np.ndarray, neurons: tuple[int, int]) -> np.ndarray:
    return np.flatnonzero(np.any(weights[neurons[0]:neurons[1]] != 0, axis=0))


def row_bits(n_neurons: int, wb: int) -> int:
    """Bits of one weight row of a tile of ``n_neurons`` (its weight memory's word)."""
    return weight_memory("row", 1, n_neurons, wb).bits


def _axon_cap(hw: HardwareSpec, n_neurons: int, wb: int) -> int:
    return min(hw.tile.axons, hw.tile.synapse_memory_bits // row_bits(n_neurons, wb))


def group_load(net: QNet, hw: HardwareSpec, activity: Activity, g: NeuronGroupPlan,
               model: TileCycleModel = DEFAULT_CYCLES) -> float:
    """Mean cycles per step of the busiest tile of ``g`` (memoized on ``activity``)."""
    # the activity belongs to one network; the load depends on the lanes, not other limits
    key = ("group_load", model, hw.tile.neuron_lanes, g.layer, g.neurons,
           tuple(len(c) for c in g.chunks), tuple(int(c[0]) if len(c) else -1 for c in g.chunks))
    cache = activity.memo
    if key not in cache:
        cyc = group_step_cycles(model, net.layers[g.layer].weights, activity.inputs[g.layer],
                                activity.outputs[g.layer], g.neurons, g.chunks,
                                hw.tile.neuron_lanes)
        cache[key] = float(cyc.mean(axis=1).max())
    return cache[key]


def make_group(net: QNet, hw: HardwareSpec, l: int, neurons: tuple[int, int],
                k: int = 1, activity: Activity | None = None,
                model: TileCycleModel = DEFAULT_CYCLES) -> NeuronGroupPlan:
    """A group with at least ``k`` chunks (more when the limits need them).

    Without activity the chunks have equal line counts. With it they are cut
    by spike mass, and cuts that give busier tiles (the neuron tile, tiles that
    take partial sums) less spike mass are kept when their busiest tile is lighter.
    """
    layer = net.layers[l]
    rf = _receptive_field(layer.weights, neurons)
    cap = _axon_cap(hw, neurons[1] - neurons[0], layer.weight_bits)
    k = max(k, math.ceil(len(rf) / cap), 1)
    if activity is None:
        return NeuronGroupPlan(l, neurons, split_axons(rf, k, cap))
    key = ("make_group", model, hw.tile, l, neurons, k)
    if key not in activity.memo:
        activity.memo[key] = _cut_group(net, hw, l, neurons, k, activity, model, rf, cap)
    return activity.memo[key]


def _cut_group(net: QNet, hw: HardwareSpec, l: int, neurons: tuple[int, int], k: int,
               activity: Activity, model: TileCycleModel, rf: np.ndarray,
               cap: int) -> NeuronGroupPlan:
    layer = net.layers[l]
    mass = activity.in_counts(l)
    lanes = hw.tile.neuron_lanes

    def busiest(chunks: tuple[np.ndarray, ...]) -> float:
        return group_load(net, hw, activity, NeuronGroupPlan(l, neurons, chunks), model)

    best = split_axons(rf, k, cap, mass)
    cur = best
    for _ in range(3 if len(best) > 1 else 0):
        # A tile's other work (partial sums in and out, neuron update, overheads) under
        # the current cut, in spike-equivalent cycles per sample: the next cut gives
        # busier tiles less spike mass. A few rounds of this fixed point suffice.
        cyc = group_step_cycles(model, layer.weights, activity.inputs[l], activity.outputs[l],
                                neurons, cur, lanes).mean(axis=1) * activity.timesteps
        own = np.array([mass[c].sum() for c in cur])
        cur = split_axons(rf, k, cap, mass, overhead=np.maximum(cyc - own, 0.0))
        if busiest(cur) < busiest(best):
            best = cur
    return NeuronGroupPlan(l, neurons, best)


def partition_network(net: QNet, hw: HardwareSpec, activity: Activity | None = None
                      ) -> Partition:
    """The fewest fragments that respect every tile limit.

    With ``activity`` a group's fan-in is cut by spike mass (see :func:`_make_group`).

    Raises
    ------
    MappingError
        If a weight does not fit a tile's memory or the network needs more
        tiles than the hardware has; the message says by how much.
    """
    groups: list[NeuronGroupPlan] = []
    for l, layer in enumerate(net.layers):
        wb = layer.weight_bits
        mem = hw.tile.synapse_memory_bits
        if mem < wb:
            raise MappingError(
                f"layer {layer.name}: one {wb}-bit weight does not fit a tile's synapse memory "
                f"of {mem} bits ({wb - mem} bit{'s' if wb - mem != 1 else ''} short)"
            )
        g_max = min(hw.tile.neurons, layer.n_out, mem // wb)
        n_groups = math.ceil(layer.n_out / g_max)
        edges = np.linspace(0, layer.n_out, n_groups + 1).round().astype(int)
        for lo, hi in zip(edges[:-1], edges[1:]):
            groups.append(make_group(net, hw, l, (int(lo), int(hi)), activity=activity))
    part = Partition(net.name, tuple(x.name for x in net.layers),
                     tuple(x.weight_bits for x in net.layers), tuple(groups))
    need = len(part.fragments)
    if need > hw.n_tiles:
        per_layer = ", ".join(f"{n}: {c}" for n, c in zip(part.layer_names,
                                                         part.tiles_per_layer()))
        raise MappingError(
            f"network {net.name} needs {need} tiles ({per_layer}) but hardware {hw.name} has "
            f"{hw.n_tiles}: {need - hw.n_tiles} too many"
        )
    return part


def check_partition(part: Partition, net: QNet, hw: HardwareSpec) -> None:
    """Raise ``AssertionError`` unless every limit holds and every synapse lives in one tile."""
    frags = part.fragments
    _require(len(frags) <= hw.n_tiles, f"{len(frags)} fragments for {hw.n_tiles} tiles")
    for f in frags:
        _require(1 <= f.n_neurons <= hw.tile.neurons, f"fragment {f.index}: neurons {f.n_neurons}")
        _require(f.n_axons <= hw.tile.axons, f"fragment {f.index}: axons {f.n_axons}")
        _require(f.memory_bits <= hw.tile.synapse_memory_bits, f"fragment {f.index}: memory")
        _require(np.all(np.diff(f.axons) > 0), f"fragment {f.index}: axons not sorted/unique")
    for l, layer in enumerate(net.layers):
        cover = np.zeros(layer.weights.shape, dtype=np.int64)
        owned = np.zeros(layer.n_out, dtype=np.int64)
        for g in (g for g in part.groups if g.layer == l):
            owned[g.neurons[0]:g.neurons[1]] += 1
            for a in g.chunks:
                cover[g.neurons[0]:g.neurons[1], a] += 1
        _require(np.all(owned == 1), f"layer {layer.name}: a neuron is in {owned.max()} groups")
        _require(np.all(cover <= 1), f"layer {layer.name}: a synapse is in two fragments")
        _require(np.all(cover[layer.weights != 0] == 1), f"layer {layer.name}: a synapse is lost")
