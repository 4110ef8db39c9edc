"""Map a QNet onto a mesh of crossbar tiles: partition, place, predict throughput.

No torch here: a QNet file and a hardware description are enough. The flow is
:data:`~spikeforge.mapping.flow.PASSES`; ``spikeforge map`` runs it
(:func:`~spikeforge.mapping.cli.add_parser`).
"""

from .activity import Activity, ActivitySource, measure_activity, synthetic_inputs
from .analysis import Analysis, analyze
from .balance import balance_partition
from .cost import TileCycleModel
from .flow import PASSES, MapOptions, MapState, Pass, run_mapping, write_mapping
from .hardware import HardwareSpec, hardware_from_dict, load_hardware
from .lowering import NeuronOrder, conv2d_to_dense
from .partition import (
    Fragment,
    MappingError,
    NeuronGroupPlan,
    Partition,
    Role,
    check_partition,
    partition_network,
)
from .placement import Placement, PlacementProblem, PlaceMethod, place
from .traffic import Traffic, measure_traffic

__all__ = [
    "PASSES",
    "Activity",
    "ActivitySource",
    "Analysis",
    "NeuronOrder",
    "Fragment",
    "NeuronGroupPlan",
    "HardwareSpec",
    "MapOptions",
    "MapState",
    "MappingError",
    "Partition",
    "Pass",
    "PlaceMethod",
    "Placement",
    "PlacementProblem",
    "Role",
    "TileCycleModel",
    "Traffic",
    "analyze",
    "balance_partition",
    "check_partition",
    "conv2d_to_dense",
    "hardware_from_dict",
    "load_hardware",
    "measure_activity",
    "measure_traffic",
    "partition_network",
    "place",
    "run_mapping",
    "synthetic_inputs",
    "write_mapping",
]
