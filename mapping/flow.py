"""The mapping flow: a visible sequence of small named passes, each checking what it hands on.

::

    activity   reference simulator on the sample inputs -> spikes of every layer
    partition  fewest tile-sized fragments (or a one-line refusal)
    balance    spare tiles to the busiest groups while the busiest tile gets lighter
    traffic    packets per sample between fragments, counted from the spikes
    place      fragments onto mesh tiles (in-order | greedy | anneal), never worse than in-order
    analyze    tile loads, hops, links, predicted cycles and throughput

Passes are listed in :data:`PASSES` explicitly; :func:`run_mapping` runs them in
order and :func:`write_mapping` writes ``mapping.yaml``, ``report.json`` and
``mesh.png``.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.qnet import QNet

from ._checks import require
from .activity import Activity, ActivitySource, measure_activity
from .analysis import Analysis, analyze
from .balance import balance_partition
from .hardware import HardwareSpec
from .output import mapping_document, plot_mesh, write_json, write_yaml
from .partition import Partition, check_partition, partition_network
from .placement import Placement, PlacementProblem, PlaceMethod, check_placement, place
from .traffic import Traffic, check_traffic, measure_traffic

__all__ = [
    "PASSES",
    "MapOptions",
    "MapState",
    "Pass",
    "report_document",
    "run_mapping",
    "write_mapping",
]


@dataclass(frozen=True)
class MapOptions:
    """Choices of one mapping run.

    Attributes
    ----------
    method : PlaceMethod
        Placement method.
    seed : int
        Seed of the annealer.
    balance : bool
        Spend spare tiles on the busiest groups.
    moves : int, optional
        Annealing moves (the method's default when omitted).
    """

    method: PlaceMethod = PlaceMethod.ANNEAL
    seed: int = 0
    balance: bool = True
    moves: int | None = None


@dataclass
class MapState:
    """What the passes read and fill in, in order."""

    net: QNet
    hw: HardwareSpec
    spikes_in: np.ndarray
    source: ActivitySource
    options: MapOptions
    activity: Activity | None = None
    partition: Partition | None = None
    traffic: Traffic | None = None
    problem: PlacementProblem | None = None
    placement: Placement | None = None
    analysis: Analysis | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pass:
    """A named step: ``run`` fills part of the state, ``check`` verifies it."""

    name: str
    run: Callable[[MapState], None]
    check: Callable[[MapState], None]


# --- activity
def _activity(st: MapState) -> None:
    st.activity = measure_activity(st.net, st.spikes_in, st.source)


def _check_activity(st: MapState) -> None:
    a = st.activity
    for l, layer in enumerate(st.net.layers):
        rows = a.samples * a.timesteps
        require(a.inputs[l].shape == (rows, layer.n_in), f"activity.inputs[{l}] shape")
        require(a.outputs[l].shape == (rows, layer.n_out), f"activity.outputs[{l}] shape")
        if l:
            require(np.array_equal(a.inputs[l], a.outputs[l - 1]), f"layer {l} input != output")


# --- partition
def _partition(st: MapState) -> None:
    st.partition = partition_network(st.net, st.hw, st.activity)


def _check_partition(st: MapState) -> None:
    check_partition(st.partition, st.net, st.hw)


def _balance(st: MapState) -> None:
    if st.options.balance:
        before = len(st.partition.fragments)
        st.partition = balance_partition(st.partition, st.net, st.hw, st.activity)
        st.notes.append(f"balance: {before} -> {len(st.partition.fragments)} tiles")


# --- traffic
def _traffic(st: MapState) -> None:
    st.traffic = measure_traffic(st.partition, st.net, st.activity, st.hw.tile.neuron_lanes)


def _check_traffic(st: MapState) -> None:
    check_traffic(st.traffic, st.partition)


# --- place
def _place(st: MapState) -> None:
    st.problem = PlacementProblem(st.traffic.total, st.hw)
    st.placement = place(st.problem, st.options.method, st.options.seed, st.options.moves)


def _check_place(st: MapState) -> None:
    check_placement(st.placement, st.problem)
    base = st.problem.cost(np.arange(st.problem.n_frag))
    require(st.placement.cost <= base + 1e-9, "placement is worse than in-order")


# --- analyze
def _analyze(st: MapState) -> None:
    st.analysis = analyze(st.partition, st.net, st.hw, st.activity, st.traffic, st.problem,
                          st.placement)


def _check_analyze(st: MapState) -> None:
    a = st.analysis
    require(len(a.tile_load) == len(st.partition.fragments), "one load per tile")
    require(np.isfinite(a.predicted_cycles_per_sample) and a.predicted_cycles_per_sample > 0,
            "predicted cycles must be positive")
    require(abs(a.hops - st.placement.cost) < 1e-6 * max(1.0, a.hops), "hops != objective")


PASSES: tuple[Pass, ...] = (
    Pass("activity", _activity, _check_activity),
    Pass("partition", _partition, _check_partition),
    Pass("balance", _balance, _check_partition),
    Pass("traffic", _traffic, _check_traffic),
    Pass("place", _place, _check_place),
    Pass("analyze", _analyze, _check_analyze),
)


def run_mapping(net: QNet, hw: HardwareSpec, spikes_in: np.ndarray,
                options: MapOptions = MapOptions(),
                source: ActivitySource = ActivitySource.GIVEN,
                on_pass: Callable[[str, float], None] | None = None) -> MapState:
    """Run :data:`PASSES` in order and return the filled state.

    Parameters
    ----------
    net : QNet
        Network to map.
    hw : HardwareSpec
        Target hardware.
    spikes_in : numpy.ndarray
        Sample input spikes ``[N, T, n_in]`` whose activity the mapping optimizes for.
    options : MapOptions
        Method, seed, balancing.
    source : ActivitySource
        Whether ``spikes_in`` is real data or synthetic (recorded in the report).
    on_pass : callable, optional
        Called with the pass name and its seconds after each pass.

    Raises
    ------
    MappingError
        If the network does not fit (one line).
    """
    st = MapState(net=net, hw=hw, spikes_in=spikes_in, source=source, options=options)
    with _one_blas_thread():
        for p in PASSES:
            t0 = time.perf_counter()
            p.run(st)
            p.check(st)
            st.timings_s[p.name] = time.perf_counter() - t0
            if on_pass is not None:
                on_pass(p.name, st.timings_s[p.name])
    return st


def _one_blas_thread() -> contextlib.AbstractContextManager:
    # The products here are small (hundreds of rows); BLAS threads cost more than they
    # give, and on a busy machine they made the flow several times slower. threadpoolctl
    # comes with scikit-learn; without it the BLAS keeps its own setting.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def report_document(st: MapState) -> dict[str, Any]:
    """``report.json`` content: options, activity, per-tile figures, analysis, timings."""
    part, a = st.partition, st.analysis
    tiles = [{
        "fragment": f.index, "slot": int(st.placement.slots[f.index]),
        "position": list(st.hw.position(int(st.placement.slots[f.index]))),
        "layer": f.layer_name, "role": f.role.value, "neurons": list(f.neurons),
        "n_axons": f.n_axons, "memory_bits": f.memory_bits,
        "cycles_per_step": a.tile_load[f.index],
    } for f in part.fragments]
    return {
        "qnet": st.net.name,
        "hardware": st.hw.name,
        "options": {"method": st.options.method.value, "seed": st.options.seed,
                    "balance": st.options.balance, "moves": st.options.moves},
        "activity": {"source": st.source.value, "samples": st.activity.samples,
                     "timesteps": st.activity.timesteps},
        "tiles_used": len(part.fragments),
        "tiles_available": st.hw.n_tiles,
        "tiles_per_layer": dict(zip(part.layer_names, part.tiles_per_layer())),
        "analysis": a.as_dict(),
        "tiles": tiles,
        "notes": st.notes,
        "timings_s": st.timings_s,
        "mapping_time_s": sum(st.timings_s.values()),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
    }


def mapping_yaml(st: MapState) -> dict[str, Any]:
    """The content of ``mapping.yaml`` for a finished flow (plain data)."""
    a = st.analysis
    extra = {"predicted": {
        "cycles_per_sample": a.predicted_cycles_per_sample,
        "rtl_cycles_per_sample": a.rtl_cycles_per_sample,
        "busiest_tile_cycles_per_step": a.busiest_cycles_per_step,
        "throughput_samples_per_s": a.throughput_samples_per_s,
    }}
    return mapping_document(st.partition, st.hw, st.traffic, st.placement, extra)


def write_mapping(st: MapState, out: Path) -> dict[str, Path]:
    """Write ``mapping.yaml``, ``report.json`` and ``mesh.png`` into ``out``."""
    out = Path(out)
    a = st.analysis
    paths = {"mapping": out / "mapping.yaml", "report": out / "report.json",
             "mesh": out / "mesh.png"}
    write_yaml(paths["mapping"], mapping_yaml(st))
    write_json(paths["report"], report_document(st))
    plot_mesh(paths["mesh"], st.partition, st.hw, st.traffic, st.placement, a)
    return paths
