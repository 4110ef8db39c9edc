"""The serial protocol between a host and the on-board top, shared by both sides.

One frozen :class:`LinkFormat`, derived from the network's parameters, fixes
every byte; the gateware (:mod:`spikeforge.boards.top`) builds its result frame
from it and the host (:mod:`spikeforge.boards.host`) encodes and decodes with it,
so the two cannot drift apart. No amaranth here.

Host to board, per sample (all integers little-endian)::

    'C'                      start a sample
    seed (4 bytes)           encoder builds only: the rate encoder's seed
    input                    spikes: 2-byte event words (the event payload of
                             spikeforge.contracts: kind, axon index), each step's
                             spikes then its STEP_END, T steps; encoder builds:
                             n_in 8-bit pixels

The board stores the whole input in its buffer, clears the network, feeds the
buffer back to back (so ``cycles`` is the compute latency the cycle model
predicts, not the UART's), waits for ``done`` and answers with one frame::

    0xA5                     magic
    status (1 byte)          bit 0: a received byte was lost (overrun),
                             bit 1: a stop bit was missing (framing error),
                             bit 2: more input words than the buffer holds
    prediction (2 bytes)     argmax class (ties to the lowest index)
    cycles (cycle_bytes)     clock cycles from the first input event to the last output
    counters                 per layer: every counter of spikeforge.contracts.COUNTERS
                             (synaptic_events, neuron_updates, weight_reads,
                             spikes_out), counter_bytes each

Bytes other than ``'C'`` between samples are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeforge.contracts import (
    COUNTERS,
    EventKind,
    event_bits,
    sample_events,
    unpack_events,
)
from spikeforge.errors import SpikeforgeError
from spikeforge.hw.params import NetworkParams

__all__ = ["COMMAND_START", "MAGIC", "BoardResult", "LinkFormat", "STATUS_FRAMING",
           "STATUS_OVERFLOW", "STATUS_OVERRUN"]

COMMAND_START = ord("C")
MAGIC = 0xA5
STATUS_OVERRUN = 1
STATUS_FRAMING = 2
STATUS_OVERFLOW = 4


def _bytes_for(bits: int) -> int:
    return (bits + 7) // 8


@dataclass(frozen=True)
class BoardResult:
    """One sample's answer from the board."""

    status: int
    prediction: int
    cycles: int
    counters: dict[str, dict[str, int]]  # layer -> counter -> value


@dataclass(frozen=True)
class LinkFormat:
    """Every width and length of the serial protocol for one network build.

    Parameters
    ----------
    params : NetworkParams
        The network (its encoder flag selects pixel or spike input).
    buffer_depth : int
        Input words the board's buffer holds (events, or pixels with the encoder).
    """

    params: NetworkParams
    buffer_depth: int

    def __post_init__(self) -> None:
        if not isinstance(self.buffer_depth, int) or self.buffer_depth < 2:
            raise ValueError(f"buffer_depth must be an integer >= 2, not {self.buffer_depth!r}")
        if self.encoder and self.buffer_depth < self.params.qnet.n_in:
            raise SpikeforgeError(f"buffer of {self.buffer_depth} words cannot hold the "
                                  f"{self.params.qnet.n_in} pixels of a sample")
        if self.payload_bits > 16:
            raise SpikeforgeError(f"the serial protocol carries events of at most 16 bits; "
                                  f"{self.params.qnet.n_in} inputs need {self.payload_bits}")
        if self.params.layers[-1].out_index_bits > 16:
            raise SpikeforgeError("the serial protocol carries predictions of at most 16 bits")

    @property
    def encoder(self) -> bool:
        return self.params.encoder

    @property
    def payload_bits(self) -> int:
        """Bits of one input word: an event (kind + index) or an 8-bit pixel."""
        return 8 if self.encoder else event_bits(self.params.layers[0].in_index_bits)

    @property
    def word_bytes(self) -> int:
        return 1 if self.encoder else 2

    @property
    def cycle_bytes(self) -> int:
        return _bytes_for(self.params.cycle_bits)

    def counter_bytes(self, layer: int) -> int:
        return _bytes_for(self.params.layers[layer].counter_bits)

    def fields(self) -> list[tuple[str, int]]:
        """The result frame, in order: (name, bytes). Counters are ``layer.counter``."""
        out = [("magic", 1), ("status", 1), ("prediction", 2), ("cycles", self.cycle_bytes)]
        for k, p in enumerate(self.params.layers):
            out += [(f"{p.name}.{c}", self.counter_bytes(k)) for c in COUNTERS]
        return out

    @property
    def frame_bytes(self) -> int:
        return sum(n for _, n in self.fields())

    # --- host side -------------------------------------------------------------------
    def encode_spikes(self, spikes: np.ndarray) -> bytes:
        """The bytes of one sample of spikes ``[T, n_in]`` (start command included)."""
        if self.encoder:
            raise SpikeforgeError("this build takes pixels (it has the on-chip encoder)")
        x = np.asarray(spikes)
        q = self.params.qnet
        if x.shape != (q.timesteps, q.n_in):
            raise SpikeforgeError(f"a sample must be [{q.timesteps}, {q.n_in}] spikes, "
                                  f"not {list(x.shape)}")
        words = sample_events(x)
        if len(words) > self.buffer_depth:
            raise SpikeforgeError(f"a sample of {len(words)} events does not fit the board's "
                                  f"buffer of {self.buffer_depth}")
        return bytes([COMMAND_START]) + np.asarray(words, dtype="<u2").tobytes()

    def decode_spikes(self, data: bytes) -> np.ndarray:
        """The spikes ``[T, n_in]`` (uint8) of one sample's bytes (:meth:`encode_spikes`)."""
        q = self.params.qnet
        if self.encoder or not data or data[0] != COMMAND_START or len(data) % 2 != 1:
            raise SpikeforgeError("not the bytes of one sample of spikes")
        kinds, indices = unpack_events(np.frombuffer(data[1:], dtype="<u2"))
        out = np.zeros((q.timesteps, q.n_in), dtype=np.uint8)
        t = 0
        for kind, index in zip(kinds.tolist(), indices.tolist()):
            if t >= q.timesteps or (kind == EventKind.SPIKE and index >= q.n_in):
                raise SpikeforgeError(f"event ({kind}, {index}) outside the sample")
            if kind == EventKind.STEP_END:
                t += 1
            else:
                out[t, index] = 1
        if t != q.timesteps:
            raise SpikeforgeError(f"{t} steps, not {q.timesteps}")
        return out

    def encode_pixels(self, pixels: np.ndarray, seed: int) -> bytes:
        """The bytes of one sample of 8-bit pixels ``[n_in]`` and its encoder seed."""
        if not self.encoder:
            raise SpikeforgeError("this build takes spikes (it has no on-chip encoder)")
        px = np.asarray(pixels)
        if px.shape != (self.params.qnet.n_in,):
            raise SpikeforgeError(f"a sample must be {self.params.qnet.n_in} pixels, "
                                  f"not {list(px.shape)}")
        return (bytes([COMMAND_START]) + int(seed).to_bytes(4, "little")
                + px.astype(np.uint8).tobytes())

    def decode(self, frame: bytes) -> BoardResult:
        """Parse one result frame; :class:`SpikeforgeError` when it is not one."""
        if len(frame) != self.frame_bytes:
            raise SpikeforgeError(f"result frame of {len(frame)} bytes, expected "
                                  f"{self.frame_bytes} (timeout or wrong build?)")
        values, off = {}, 0
        for name, n in self.fields():
            values[name] = int.from_bytes(frame[off:off + n], "little")
            off += n
        if values["magic"] != MAGIC:
            raise SpikeforgeError(f"result frame starts with {values['magic']:#04x}, "
                                  f"not {MAGIC:#04x}")
        counters = {p.name: {c: values[f"{p.name}.{c}"] for c in COUNTERS}
                    for p in self.params.layers}
        return BoardResult(status=values["status"], prediction=values["prediction"],
                           cycles=values["cycles"], counters=counters)
