"""Balance tile loads: spend spare tiles where the busiest tile is, take back idle ones.

The load of a tile is its mean predicted cycles per time step (:mod:`.cost`,
from the measured spikes); the aim is to lower the busiest tile's load within
the hardware's tile budget. Rounds alternate two greedy steps:

* **spend** -- take the group holding the busiest tile and try two cuts:
  halve its neurons, or cut its fan-in into one more chunk (by spike mass).
  A cut that lowers the group's busiest tile and fits the budget is kept.
  Greedy steps are myopic, so two policies run (:class:`Policy`) and the
  lighter result is kept;
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
from .partition import Group, Partition, group_load, make_group

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

    def load(g: Group) -> float:
        return group_load(net, hw, activity, g, model)

    groups = list(part.groups)
    best = (max(load(g) for g in groups), _tiles(groups), groups)
    for _ in range(_ROUNDS):
        spent = [_spend(groups, net, hw, activity, model, budget, p, load) for p in Policy]
        groups = min(spent, key=lambda gs: (max(load(g) for g in gs), _tiles(gs)))
        bar = max(load(g) for g in groups)
        if (bar, _tiles(groups)) < best[:2]:
            best = (bar, _tiles(groups), groups)
        elif bar >= best[0]:
            break
        groups = _reclaim(groups, net, hw, activity, model, bar, load)
    return Partition(part.net_name, part.layer_names, part.weight_bits, tuple(best[2]))


def _tiles(groups: list[Group]) -> int:
    return sum(len(g.chunks) for g in groups)


def _spend(groups: list[Group], net: QNet, hw: HardwareSpec, activity: Activity,
           model: TileCycleModel, budget: int, policy: Policy, load) -> list[Group]:
    groups = list(groups)
    loads = [load(g) for g in groups]
    used = _tiles(groups)
    while used < budget:
        gi = max(range(len(groups)), key=lambda i: (loads[i], -i))
        g = groups[gi]
        cands: list[list[Group]] = []
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


def _reclaim(groups: list[Group], net: QNet, hw: HardwareSpec, activity: Activity,
             model: TileCycleModel, bar: float, load) -> list[Group]:
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
            fits = (width <= hw.tile.neurons and width * net.layers[a.layer].weight_bits
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
