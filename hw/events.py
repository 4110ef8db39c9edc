"""Spike event streams: the payload every layer consumes and produces.

A time step is a run of ``SPIKE`` events (one per spiking axon, by index)
closed by one ``STEP_END`` event; a step with no spikes is a lone ``STEP_END``.

The bit layout is :mod:`spikeforge.contracts`' (shared with the testbenches,
the board protocol and the host); this module builds the Amaranth view of it.
"""

from __future__ import annotations

from amaranth import Cat, Const, Value
from amaranth.hdl import unsigned
from amaranth.lib import data, enum, stream

from spikeforge import contracts

__all__ = ["EventKind", "event_layout", "event_stream", "event_value"]


class EventKind(enum.Enum, shape=contracts.KIND_BITS):
    SPIKE = contracts.EventKind.SPIKE.value
    STEP_END = contracts.EventKind.STEP_END.value


_SHAPES = {"kind": lambda w: EventKind, "index": unsigned}


def event_layout(index_width: int) -> data.StructLayout:
    """Payload layout: the event kind and, for a spike, the axon index."""
    layout = data.StructLayout({name: _SHAPES[name](width)
                                for name, _, width in contracts.event_fields(index_width)})
    for name, offset, _ in contracts.event_fields(index_width):
        assert layout[name].offset == offset, "StructLayout places fields lowest first"
    return layout


def event_stream(index_width: int) -> stream.Signature:
    return stream.Signature(event_layout(index_width))


def event_value(kind, index, index_width: int):
    """A payload value of ``kind`` (an :class:`EventKind`, or a 1-bit value) and ``index``.

    For a ``.eq()`` into a payload; the fields are placed as the contract says.
    """
    if isinstance(kind, (EventKind, contracts.EventKind)):
        kind = Const(kind.value, contracts.KIND_BITS)
    parts = {"kind": Value.cast(kind)[:contracts.KIND_BITS],
             "index": Value.cast(index)[:index_width]}
    fields = sorted(contracts.event_fields(index_width), key=lambda f: f[1])
    return Cat(*(parts[name] for name, _, _ in fields))
