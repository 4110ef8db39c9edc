"""Amaranth hardware for QNets: crossbar accumulate arrays, LIF lanes, network top.

Never imports torch: a QNet file is enough to generate hardware.
"""

from spikeforge.hw.crossbar import Crossbar
from spikeforge.hw.events import EventKind, event_layout, event_stream
from spikeforge.hw.export import TOP_NAME, to_verilog, write_verilog
from spikeforge.hw.layer import COUNTER_NAMES, DenseLayer
from spikeforge.hw.neuron import NeuronLane
from spikeforge.hw.params import LayerParams, NetworkParams
from spikeforge.hw.top import Network

__all__ = [
    "COUNTER_NAMES",
    "TOP_NAME",
    "Crossbar",
    "DenseLayer",
    "EventKind",
    "LayerParams",
    "Network",
    "NetworkParams",
    "NeuronLane",
    "event_layout",
    "event_stream",
    "to_verilog",
    "write_verilog",
]
