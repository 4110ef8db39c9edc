"""Spike event streams: the payload every layer consumes and produces.

A time step is a run of ``SPIKE`` events (one per spiking axon, by index)
closed by one ``STEP_END`` event; a step with no spikes is a lone ``STEP_END``.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, enum, stream

__all__ = ["EventKind", "event_layout", "event_stream"]


class EventKind(enum.Enum, shape=1):
    SPIKE = 0
    STEP_END = 1


def event_layout(index_width: int) -> data.StructLayout:
    """Payload layout: the event kind and, for a spike, the axon index."""
    return data.StructLayout({"kind": EventKind, "index": unsigned(index_width)})


def event_stream(index_width: int) -> stream.Signature:
    return stream.Signature(event_layout(index_width))
