"""Hardware contracts: one definition of every layout that two sides of a wire must share.

Every producer and consumer imports these; none re-codes a bit position, a
counter name or a format string by hand:

* **events**: the spike-event payload (``kind`` at bit :data:`KIND_OFFSET`, the axon
  ``index`` above it): the Amaranth layout (:mod:`spikeforge.hw.events`), the
  on-chip encoder, the plain-Verilog testbench (:mod:`spikeforge.sim.fast`), the
  cocotb driver, the board protocol and top;
* **counters**: docs/QNET.md §5's counters, their order in the hardware's counter struct and
  their width rule (:func:`counter_bits`);
* **probes**: how a layer's membrane and counter probe ports pack their values;
* **memories**: the record (:class:`Memory`) in which the hardware layout lists every
  memory it builds; ``hw.json``, the fits check, the energy model, the DSE and the
  mapper all read those records;
* **file formats**: the version of the mapping files (the QNet's is
  ``spikeforge.qnet.FORMAT``, a checkpoint's ``spikeforge.model.checkpoint.FORMAT``).

Plain Python and numpy only (no amaranth, no torch): the reference, the mapper,
the board host and the fits check import it too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COUNTERS",
    "INDEX_OFFSET",
    "KIND_BITS",
    "KIND_OFFSET",
    "MAPPING_FORMAT",
    "MEMORY_KINDS",
    "EventKind",
    "Memory",
    "counter_bits",
    "counter_probe_bits",
    "event_bits",
    "event_fields",
    "membrane_probe_bits",
    "pack_counters",
    "pack_event",
    "pack_events",
    "pack_membranes",
    "sample_events",
    "unpack_counters",
    "unpack_event",
    "unpack_events",
    "unpack_membranes",
    "verilog_event",
    "verilog_event_index",
    "verilog_event_kind",
    "weight_memory",
]

# ------------------------------------------------------------------------- file formats

#: ``mapping.yaml`` written by ``spikeforge map`` and read by every ``--mapping`` option.
MAPPING_FORMAT = "mapping/1"

# ------------------------------------------------------------------------------- events


class EventKind(enum.IntEnum):
    """What an event says: a spike on axon ``index``, or the end of a time step."""

    SPIKE = 0
    STEP_END = 1


#: Bit of the payload that holds the kind, and its width.
KIND_OFFSET = 0
KIND_BITS = 1
#: Lowest bit of the axon index (it fills the payload above the kind).
INDEX_OFFSET = KIND_OFFSET + KIND_BITS


def event_fields(index_width: int) -> tuple[tuple[str, int, int], ...]:
    """The payload's fields, lowest bit first: ``(name, offset, width)``."""
    return (("kind", KIND_OFFSET, KIND_BITS), ("index", INDEX_OFFSET, index_width))


def event_bits(index_width: int) -> int:
    """Width of an event payload whose axon index is ``index_width`` bits."""
    return INDEX_OFFSET + index_width


def pack_event(kind: int, index: int = 0) -> int:
    """Payload integer of one event."""
    return (int(index) << INDEX_OFFSET) | (int(kind) << KIND_OFFSET)


def unpack_event(value: int) -> tuple[int, int]:
    """``(kind, index)`` of one payload integer."""
    value = int(value)
    return (value >> KIND_OFFSET) & ((1 << KIND_BITS) - 1), value >> INDEX_OFFSET


def pack_events(kinds, indices) -> np.ndarray:
    """Payload integers (uint64) of arrays of kinds and indices."""
    k = np.asarray(kinds, dtype=np.uint64)
    i = np.asarray(indices, dtype=np.uint64)
    return (i << np.uint64(INDEX_OFFSET)) | (k << np.uint64(KIND_OFFSET))


def unpack_events(values) -> tuple[np.ndarray, np.ndarray]:
    """``(kinds, indices)`` (int64) of an array of payload integers."""
    v = np.asarray(values, dtype=np.uint64)
    kinds = (v >> np.uint64(KIND_OFFSET)) & np.uint64((1 << KIND_BITS) - 1)
    return kinds.astype(np.int64), (v >> np.uint64(INDEX_OFFSET)).astype(np.int64)


def sample_events(spikes) -> list[int]:
    """Packed events of one sample ``[T, n_in]``: each step's spike indices, then STEP_END."""
    events: list[int] = []
    for row in np.asarray(spikes):
        events.extend(pack_event(EventKind.SPIKE, int(i)) for i in np.flatnonzero(row))
        events.append(pack_event(EventKind.STEP_END))
    return events


def verilog_event_kind(signal: str) -> str:
    """Verilog expression of an event payload's kind bit."""
    return f"{signal}[{KIND_OFFSET}]"


def verilog_event_index(signal: str, index_width: int) -> str:
    """Verilog expression of an event payload's axon index."""
    return f"{signal}[{INDEX_OFFSET + index_width - 1}:{INDEX_OFFSET}]"


def verilog_event(kind: EventKind, index: str | None, index_width: int) -> str:
    """Verilog concatenation of a payload: ``index`` (a Verilog expression; ``None``: zero)."""
    assert KIND_OFFSET == 0 and INDEX_OFFSET == KIND_BITS, "concatenation order"
    idx = f"{{{index_width}{{1'b0}}}}" if index is None else index
    return f"{{{idx}, {KIND_BITS}'d{int(kind)}}}"


# ----------------------------------------------------------------------------- counters

#: docs/QNET.md §5's counters, in the order of the hardware's counter struct (lowest bits first).
COUNTERS = ("synaptic_events", "neuron_updates", "weight_reads", "spikes_out")


def counter_bits(timesteps: int, n_in: int, n_out: int) -> int:
    """Width of every counter of a layer: the largest count of a sample (synaptic events)."""
    return max(1, int(timesteps * n_in * n_out).bit_length())


# ------------------------------------------------------------------------------- probes


def counter_probe_bits(bits: int) -> int:
    """Width of a layer's counter probe: every counter of ``bits`` bits, in :data:`COUNTERS`
    order from bit 0."""
    return len(COUNTERS) * bits


def pack_counters(values: dict[str, int], bits: int) -> int:
    """The counter probe's integer of one sample's counters (each taken modulo ``2**bits``)."""
    mask = (1 << bits) - 1
    return sum((int(values[name]) & mask) << (k * bits) for k, name in enumerate(COUNTERS))


def unpack_counters(value: int, bits: int) -> dict[str, int]:
    """Counter values of a counter probe's integer."""
    mask = (1 << bits) - 1
    return {name: (int(value) >> (k * bits)) & mask for k, name in enumerate(COUNTERS)}


def membrane_probe_bits(n_out: int, bits: int) -> int:
    """Width of a layer's membrane probe: neuron ``j``'s signed membrane at bits ``j*bits``."""
    return n_out * bits


def pack_membranes(values, bits: int) -> int:
    """The membrane probe's integer of one sample's membranes (two's complement)."""
    mask = (1 << bits) - 1
    return sum((int(v) & mask) << (j * bits) for j, v in enumerate(np.asarray(values)))


def unpack_membranes(value: int, n_out: int, bits: int) -> np.ndarray:
    """Signed membranes (int64 ``[n_out]``) of a membrane probe's integer."""
    value = int(value)
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    out = []
    for j in range(n_out):
        v = (value >> (j * bits)) & mask
        out.append(v - (1 << bits) if v & sign else v)
    return np.array(out, dtype=np.int64)


# ----------------------------------------------------------------------------- memories

#: What a memory holds: a tile's weight rows, a neuron tile's membranes (and reset
#: state), a layer's line table, the encoder's pixels, a board's input buffer.
MEMORY_KINDS = ("weights", "membranes", "line_table", "pixels", "input_buffer")


@dataclass(frozen=True)
class Memory:
    """One memory (or ``count`` identical ones) the hardware builds: ``depth`` words of
    ``width`` bits."""

    name: str
    kind: str
    width: int
    depth: int
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in MEMORY_KINDS:
            raise ValueError(f"memory kind {self.kind!r} is not one of {MEMORY_KINDS}")

    @property
    def bits(self) -> int:
        return self.width * self.depth * self.count

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "width": self.width,
                "depth": self.depth, "count": self.count, "bits": self.bits}


def weight_memory(name: str, rows: int, neurons: int, weight_bits: int) -> Memory:
    """A tile's weight memory: one row of ``neurons`` weights per input line it holds."""
    return Memory(name, "weights", neurons * weight_bits, rows)
