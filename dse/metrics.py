"""What a design point can be measured by: metrics, the stage that computes each, and whether
the tools to compute it are installed.

Stages run in cost order, so a point that fails a constraint on a cheap metric
never pays for the expensive ones::

    static     from the settings alone (dense weight bits), no training
    train      surrogate-gradient training of the float network
    reference  quantize to a QNet and run the bit-exact reference on the test images;
               memory and energy of the hardware the point builds (the mapping's
               layout when the mapping stage runs, else one tile per layer)
    mapping    partition and place the QNet on a mesh of tiles (predicted cycles)
    rtl        the generated Verilog under Icarus/Verilator (sim.fast): measured cycles
    synthesis  yosys + nextpnr: LUT/FF/BRAM, Fmax (not a DSE stage yet: always refused;
               ``spikeforge build`` synthesizes one design, the DSE does not call it)
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["METRICS", "Goal", "Metric", "Stage", "unavailable_reason"]


class Stage(enum.IntEnum):
    """Evaluation stages, in the order (and roughly the cost) they run."""

    STATIC = 0
    TRAIN = 1
    REFERENCE = 2
    MAPPING = 3
    RTL = 4
    SYNTHESIS = 5


class Goal(enum.Enum):
    MIN = "min"
    MAX = "max"


@dataclass(frozen=True)
class Metric:
    """One measurable figure of a design point.

    Attributes
    ----------
    name : str
        Column name in the results.
    stage : Stage
        The stage that computes it.
    goal : Goal
        The usual direction (an objective may state its own).
    doc : str
        One line for the docs and ``--help``.
    """

    name: str
    stage: Stage
    goal: Goal
    doc: str


_LIST = [
    Metric("dense_weight_bits", Stage.STATIC, Goal.MIN,
           "weights of the dense network from the settings alone (sum n_in*n_out*wb)"),
    Metric("memory_bits", Stage.REFERENCE, Goal.MIN,
           "bits of every memory of the hardware the point builds (hw.json's memory_bits: "
           "weights without zero rows, membranes, line tables)"),
    Metric("float_accuracy", Stage.TRAIN, Goal.MAX, "test accuracy of the float network"),
    Metric("accuracy", Stage.REFERENCE, Goal.MAX,
           "test accuracy of the bit-exact QNet (reference simulator)"),
    Metric("energy_panda_pj", Stage.REFERENCE, Goal.MIN,
           "Panda et al. 2020 E_SNN per sample (ACs x 0.1 pJ)"),
    Metric("energy_hw_pj", Stage.REFERENCE, Goal.MIN,
           "hardware-aware energy per sample (adds, neuron updates, weight reads) of the "
           "hardware the point builds"),
    Metric("ee", Stage.REFERENCE, Goal.MAX, "E_ANN / E_SNN (Panda convention)"),
    Metric("spikes_per_sample", Stage.REFERENCE, Goal.MIN, "hidden spikes per sample"),
    Metric("tiles", Stage.MAPPING, Goal.MIN, "crossbar tiles the mapping uses"),
    Metric("cycles_mapped", Stage.MAPPING, Goal.MIN,
           "cycles per sample predicted by the mapping's tile cycle model"),
    Metric("cycles_generated", Stage.MAPPING, Goal.MIN,
           "cycles per sample of the RTL spikeforge generates from the mapping "
           "(cycle-exact control model, on the mapping samples)"),
    Metric("cycles_rtl", Stage.RTL, Goal.MIN,
           "cycles per sample measured on the RTL built from the mapping (or one tile "
           "per layer without a mapping stage; sim.fast), mean over rtl_samples"),
    Metric("rtl_mismatches", Stage.RTL, Goal.MIN,
           "samples whose RTL spikes, membranes or counters differ from the reference"),
    Metric("luts", Stage.SYNTHESIS, Goal.MIN, "LUTs after place and route"),
    Metric("ffs", Stage.SYNTHESIS, Goal.MIN, "flip-flops after place and route"),
    Metric("brams", Stage.SYNTHESIS, Goal.MIN, "block RAMs after place and route"),
    Metric("fmax_mhz", Stage.SYNTHESIS, Goal.MAX, "maximum clock after place and route"),
]
METRICS: dict[str, Metric] = {m.name: m for m in _LIST}


def _rtl_reason(simulator: str) -> str | None:
    from spikeforge.sim.tools import simulator_available

    why = simulator_available(simulator)
    return f"simulator {simulator}: {why}" if why else None


def _synthesis_reason(_: str) -> str | None:
    # `spikeforge build` (spikeforge.boards.flow) synthesizes one design; the DSE has no
    # synthesis stage that calls it yet.
    return ("needs synthesis, which is not a DSE stage yet "
            "(spikeforge build synthesizes a single design)")


_REASONS: dict[Stage, Callable[[str], str | None]] = {
    Stage.RTL: _rtl_reason,
    Stage.SYNTHESIS: _synthesis_reason,
}


def unavailable_reason(metric: Metric, simulator: str) -> str | None:
    """``None`` when ``metric`` can be computed here, else why not (one clause)."""
    check = _REASONS.get(metric.stage)
    return check(simulator) if check else None
