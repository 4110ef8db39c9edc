"""On-board top: a UART, an input buffer, the network, and a result frame back to the host.

:class:`BoardCore` has two pins besides its clock, ``rx`` and ``tx``; the
protocol is :class:`spikeforge.boards.protocol.LinkFormat`'s. It takes one
sample's input into a buffer memory (the UART is far slower than the network),
then clears the network and feeds it the buffer back to back, so the ``cycles``
it reports are the network's own compute latency, the figure
:func:`spikeforge.hw.cycles.predicted_cycles` predicts. When ``done`` rises it
sends the frame: magic, status, prediction, cycles and every layer's counters.

:class:`BoardTop` binds a core to an amaranth-boards platform's clock and UART.
"""

from __future__ import annotations

from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import data, io, memory, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.boards.protocol import (
    COMMAND_START,
    MAGIC,
    STATUS_FRAMING,
    STATUS_OVERFLOW,
    STATUS_OVERRUN,
    LinkFormat,
)
from spikeforge.boards.uart import UARTRx, UARTTx
from spikeforge.contracts import COUNTERS
from spikeforge.hw.events import EventKind, event_layout
from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.params import NetworkParams
from spikeforge.hw.top import Network
from spikeforge.qnet import QNet

__all__ = ["BoardCore", "BoardTop", "default_buffer_depth", "frame_layout"]


def default_buffer_depth(params: NetworkParams) -> int:
    """Input words the buffer holds by default.

    With the encoder: one sample's pixels. With spikes: every input spiking at
    every step, capped at 2048 events (two 18 kbit blocks on an ECP5, six 4 kbit
    ones on an iCE40); ``--buffer`` changes it.
    """
    n_in, t = params.qnet.n_in, params.timesteps
    if params.encoder:
        return n_in
    return max(2, min(t * (n_in + 1), 2048))


def frame_layout(link: LinkFormat) -> data.StructLayout:
    """The result frame as a struct; byte ``k`` of the frame is bits ``8k … 8k+7``."""
    return data.StructLayout({name: unsigned(8 * n) for name, n in link.fields()})


class BoardCore(wiring.Component):
    """The network behind a UART; everything but the clock comes from the QNet.

    Parameters
    ----------
    qnet : QNet
        The network.
    divisor : int
        Clock cycles per UART bit (``clock / baud``).
    encoder : bool
        Put the on-chip rate encoder in front (the host sends pixels and a seed).
    layout : HardwareLayout, optional
        The tiles (default: one per layer).
    buffer_depth : int, optional
        Input words the buffer holds (default :func:`default_buffer_depth`).

    Ports
    -----
    rx : In(1) — serial line from the host.
    tx : Out(1) — serial line to the host.
    """

    def __init__(self, qnet: QNet, *, divisor: int, encoder: bool = False,
                 layout: HardwareLayout | None = None, buffer_depth: int | None = None):
        self._np = NetworkParams(qnet, encoder=encoder, layout=layout)
        depth = default_buffer_depth(self._np) if buffer_depth is None else buffer_depth
        self._link = LinkFormat(self._np, depth)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    @property
    def params(self) -> NetworkParams:
        return self._np

    @property
    def link(self) -> LinkFormat:
        return self._link

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        link, params = self._link, self._np
        enc = params.encoder
        m.submodules.urx = urx = UARTRx(self._divisor)
        m.submodules.utx = utx = UARTTx(self._divisor)
        m.submodules.net = net = Network(params.qnet, encoder=enc, layout=params.layout,
                                         probes=False)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), net.o.ready.eq(1)]

        # input buffer: one sample's event words (or pixels)
        wb = link.payload_bits
        depth = link.buffer_depth
        m.submodules.buffer = buf = memory.Memory(shape=unsigned(wb), depth=depth, init=[])
        wr = buf.write_port()
        rd = buf.read_port()  # synchronous; holds its data while en is low
        count = Signal(range(depth + 1))  # words stored
        feed = Signal(range(depth + 1))  # words handed to the network
        steps = Signal(range(params.timesteps + 1))  # STEP_END words stored
        low = Signal(8)  # first byte of a 2-byte event word
        half = Signal()
        seed = Signal(32)
        seed_bytes = Signal(range(5))
        status = Signal(8)

        with m.If(urx.overrun):
            m.d.sync += status.eq(status | STATUS_OVERRUN)
        with m.If(urx.framing):
            m.d.sync += status.eq(status | STATUS_FRAMING)

        frame = Signal(frame_layout(link))
        shreg = Signal(len(frame.as_value()))
        left = Signal(range(link.frame_bytes + 1))
        # a 2-byte event word: its low byte arrived last time, its high byte now
        word = Cat(low, urx.o.payload)[:wb]
        event = None if enc else data.View(event_layout(params.layers[0].in_index_bits), word)
        m.d.comb += [wr.addr.eq(count), wr.data.eq(urx.o.payload if enc else word),
                     rd.en.eq(0), utx.i.payload.eq(shreg[:8])]
        if enc:
            m.d.comb += net.seed.eq(seed)

        byte = urx.o.valid & urx.o.ready
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += urx.o.ready.eq(1)
                with m.If(byte & (urx.o.payload == COMMAND_START)):
                    m.d.sync += [count.eq(0), steps.eq(0), half.eq(0), seed_bytes.eq(0)]
                    m.next = "SEED" if enc else "LOAD"
            if enc:
                with m.State("SEED"):
                    m.d.comb += urx.o.ready.eq(1)
                    with m.If(byte):
                        m.d.sync += [seed.eq(Cat(seed[8:], urx.o.payload)),
                                     seed_bytes.eq(seed_bytes + 1)]
                        with m.If(seed_bytes == 3):
                            m.next = "LOAD"
            with m.State("LOAD"):
                m.d.comb += urx.o.ready.eq(1)
                with m.If(byte):
                    if enc:
                        m.d.comb += wr.en.eq(1)
                        m.d.sync += count.eq(count + 1)
                        with m.If(count == params.qnet.n_in - 1):
                            m.next = "CLEAR"
                    else:
                        m.d.sync += [half.eq(~half), low.eq(urx.o.payload)]
                        with m.If(half & (count < depth)):
                            m.d.comb += wr.en.eq(1)
                            m.d.sync += count.eq(count + 1)
                        with m.If(half & (count == depth)):  # the host checks the depth first
                            m.d.sync += status.eq(status | STATUS_OVERFLOW)
                        with m.If(half):
                            with m.If(event.kind == EventKind.STEP_END):
                                m.d.sync += steps.eq(steps + 1)
                                with m.If(steps == params.timesteps - 1):
                                    m.next = "CLEAR"
            with m.State("CLEAR"):
                m.d.comb += [net.clear.eq(1), rd.addr.eq(0), rd.en.eq(1)]
                m.d.sync += feed.eq(0)
                m.next = "FEED"
            with m.State("FEED"):
                m.d.comb += [net.i.valid.eq(1), net.i.payload.eq(rd.data)]
                with m.If(net.i.ready):
                    m.d.comb += [rd.addr.eq(feed + 1), rd.en.eq(1)]
                    m.d.sync += feed.eq(feed + 1)
                    with m.If(feed == count - 1):
                        m.next = "WAIT"
            with m.State("WAIT"):
                # a new start command abandons a sample that can never finish
                # (one that overflowed the buffer and lost its last STEP_END)
                m.d.comb += urx.o.ready.eq(1)
                with m.If(byte & (urx.o.payload == COMMAND_START)):
                    m.d.sync += [count.eq(0), steps.eq(0), half.eq(0), seed_bytes.eq(0)]
                    m.next = "SEED" if enc else "LOAD"
                with m.Elif(net.done):
                    m.d.comb += [frame.magic.eq(MAGIC), frame.status.eq(status),
                                 frame.prediction.eq(net.prediction),
                                 frame.cycles.eq(net.cycles)]
                    for p in params.layers:
                        counters = getattr(net, p.name).counters
                        for c in COUNTERS:
                            m.d.comb += frame[f"{p.name}.{c}"].eq(getattr(counters, c))
                    m.d.sync += [shreg.eq(frame.as_value()), left.eq(link.frame_bytes),
                                 status.eq(0)]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += utx.i.valid.eq(1)
                with m.If(utx.i.ready):
                    m.d.sync += [shreg.eq(shreg >> 8), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "IDLE"
        return m


class BoardTop(Elaboratable):
    """A :class:`BoardCore` on an amaranth-boards platform: its default clock and UART 0."""

    def __init__(self, core: BoardCore):
        self.core = core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.core
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.d.comb += [self.core.rx.eq(rx.i), tx.o.eq(self.core.tx)]
        return m

