"""Balance tile loads: spend spare tiles where the busiest tile is, take back idle ones.

The load of a tile is its mean predicted cycles per time step (:mod:`.cost`,
from the measured spikes); the aim is to lower the busiest tile's load within
the hardware's tile budget. Rounds alternate two greedy steps:

* **spend** -- take the group holding the busiest tile and try two cuts:
  halve its neurons, or cut its fan-in into one more chunk (by spike mass).
  A cut that lowers the group's busiest tile and fits the budget is kept.
  Greedy steps are myopic, so two policies run (:class:`Policy`) and the
  lighter result is kept;
* **shift** -- move the boundary between the busiest group and a neighbour
  of the same layer by a few lane widths, when that lowers the busier of the
  two without using more tiles;
* **reclaim** -- with the busiest load reached as the bar, give a group one
  chunk fewer, or merge neighbouring groups of a layer, wherever the result
  stays under the bar. The freed tiles go to the next spend step.

Rounds stop when the busiest load no longer falls. Everything is
deterministic; group loads are memoized on the activity.
"""

from __future__ import annotations

import enum

from spikeforge.qnet import QNet

from .activity import Activity
from .cost import DEFAULT_CYCLES, TileCycleModel
from .hardware import HardwareSpec
from .partition import NeuronGroupPlan, Partition, group_load, make_group, row_bits

__all__ = ["Policy", "balance_partition"]

_ROUNDS = 4


class Policy(enum.Enum):
    """How a spend step picks between the two cuts of the busiest group."""

    DEEPEST = "deepest"  # the cut that lowers the group's busiest tile most
    THRIFTY = "thrifty"  # reach the overall busiest load with the fewest tiles


def balance_partition(part: Partition, net: QNet, hw: HardwareSpec, activity: Activity,
                      model: TileCycleModel = DEFAULT_CYCLES,
                      budget: int | None = None) -> Partition:
    """Lower the busiest tile's load using at most ``budget`` tiles (default: all).

    Parameters
    ----------
    part : Partition
        A valid partition (e.g. from :func:`.partition.partition_network`).
    net, hw, activity
        The network, the hardware and the measured spikes.
    model : TileCycleModel
        Cycle model of the loads.
    budget : int, optional
        Tiles that may be used; at most the hardware's.

    Returns
    -------
    Partition
        A partition whose busiest tile is no busier than ``part``'s.
    """
    budget = hw.n_tiles if budget is None else min(budget, hw.n_tiles)

    def load(g: NeuronGroupPlan) -> float:
        return group_load(net, hw, activity, g, model)

    groups = list(part.groups)
    best = (max(load(g) for g in groups), _tiles(groups), groups)
    for _ in range(_ROUNDS):
        spent = [_spend(groups, net, hw, activity, model, budget, p, load) for p in Policy]
        groups = min(spent, key=lambda gs: (max(load(g) for g in gs), _tiles(gs)))
        groups = _shift(groups, net, hw, activity, model, load)
        bar = max(load(g) for g in groups)
        if (bar, _tiles(groups)) < best[:2]:
            best = (bar, _tiles(groups), groups)
        elif bar >= best[0]:
            break
        groups = _reclaim(groups, net, hw, activity, model, bar, load)
    return Partition(part.net_name, part.layer_names, part.weight_bits, tuple(best[2]))


def _tiles(groups: list[NeuronGroupPlan]) -> int:
    return sum(len(g.chunks) for g in groups)


def _spend(groups: list[NeuronGroupPlan], net: QNet, hw: HardwareSpec, activity: Activity,
           model: TileCycleModel, budget: int, policy: Policy, load) -> list[NeuronGroupPlan]:
    groups = list(groups)
    loads = [load(g) for g in groups]
    used = _tiles(groups)
    while used < budget:
        gi = max(range(len(groups)), key=lambda i: (loads[i], -i))
        g = groups[gi]
        cands: list[list[NeuronGroupPlan]] = []
        if g.n_neurons >= 2:
            mid = (g.neurons[0] + g.neurons[1]) // 2
            cands.append([make_group(net, hw, g.layer, (g.neurons[0], mid), 1, activity, model),
                          make_group(net, hw, g.layer, (mid, g.neurons[1]), 1, activity, model)])
        if len(g.chunks) < sum(len(c) for c in g.chunks):
            cands.append([make_group(net, hw, g.layer, g.neurons, len(g.chunks) + 1, activity,
                                     model)])
        # After a cut the busiest tile is at least the second busiest group's.
        second = max((x for i, x in enumerate(loads) if i != gi), default=0.0)
        best, best_key = None, None
        for cand in cands:
            extra = _tiles(cand) - len(g.chunks)
            if used + extra > budget:
                continue
            cl = [load(c) for c in cand]
            if max(cl) >= loads[gi] - 1e-9:
                continue
            top = max(max(cl), second) if policy is Policy.THRIFTY else max(cl)
            if best is None or (top, extra) < best_key:
                best, best_key, best_loads, best_extra = cand, (top, extra), cl, extra
        if best is None:
            break
        groups[gi:gi + 1] = best
        loads[gi:gi + 1] = best_loads
        used += best_extra
    return groups


def _shift(groups: list[NeuronGroupPlan], net: QNet, hw: HardwareSpec, activity: Activity,
           model: TileCycleModel, load, max_moves: int = 64) -> list[NeuronGroupPlan]:
    """Move neurons from the busiest group to a neighbour while the pair gets lighter."""
    groups = list(groups)
    lanes = hw.tile.neuron_lanes
    for _ in range(max_moves):
        loads = [load(g) for g in groups]
        gi = max(range(len(groups)), key=lambda i: (loads[i], -i))
        g = groups[gi]
        best, best_top = None, loads[gi] - 1e-9
        for ni in (gi - 1, gi + 1):
            if not 0 <= ni < len(groups) or groups[ni].layer != g.layer:
                continue
            nb = groups[ni]
            for step in (lanes, 2 * lanes, 4 * lanes, 8 * lanes):
                if step >= g.n_neurons or nb.n_neurons + step > hw.tile.neurons:
                    continue
                if ni < gi:
                    spans = ((nb.neurons[0], g.neurons[0] + step), (g.neurons[0] + step,
                                                                     g.neurons[1]))
                else:
                    spans = ((g.neurons[0], g.neurons[1] - step), (g.neurons[1] - step,
                                                                   nb.neurons[1]))
                if row_bits(spans[0][1] - spans[0][0], net.layers[g.layer].weight_bits) > \
                        hw.tile.synapse_memory_bits:
                    continue
                # the pair keeps its tiles; try moving one tile between its two sides
                old_tiles = len(g.chunks) + len(nb.chunks)
                k_first = len(groups[min(gi, ni)].chunks)
                for ka in (k_first - 1, k_first, k_first + 1):
                    if not 1 <= ka < old_tiles:
                        continue
                    pair = [make_group(net, hw, g.layer, spans[0], ka, activity, model),
                            make_group(net, hw, g.layer, spans[1], old_tiles - ka, activity,
                                       model)]
                    if _tiles(pair) > old_tiles:
                        continue
                    top = max(load(c) for c in pair)
                    if top < best_top:
                        best, best_top, where = pair, top, min(gi, ni)
        if best is None:
            break
        groups[where:where + 2] = best
    return groups


def _reclaim(groups: list[NeuronGroupPlan], net: QNet, hw: HardwareSpec, activity: Activity,
             model: TileCycleModel, bar: float, load) -> list[NeuronGroupPlan]:
    """Fewer chunks, or merged neighbours, wherever the busiest tile stays within ``bar``."""
    groups = list(groups)
    changed = True
    while changed:
        changed = False
        for i, g in enumerate(groups):
            if len(g.chunks) > 1:
                c = make_group(net, hw, g.layer, g.neurons, len(g.chunks) - 1, activity, model)
                if len(c.chunks) < len(g.chunks) and load(c) <= bar:
                    groups[i], changed = c, True
        i = 0
        while i + 1 < len(groups):
            a, b = groups[i], groups[i + 1]
            span = (a.neurons[0], b.neurons[1])
            width = span[1] - span[0]
            fits = (width <= hw.tile.neurons and row_bits(width, net.layers[a.layer].weight_bits)
                    <= hw.tile.synapse_memory_bits)
            if a.layer == b.layer and fits:
                for k in range(1, len(a.chunks) + len(b.chunks)):
                    c = make_group(net, hw, a.layer, span, k, activity, model)
                    if len(c.chunks) >= len(a.chunks) + len(b.chunks):
                        break
                    if load(c) <= bar:
                        groups[i:i + 2] = [c]
                        changed = True
                        break
            i += 1
    return groups
