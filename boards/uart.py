"""8N1 UART receiver and transmitter as amaranth streams of bytes.

Both count ``divisor = clock / baud`` cycles per bit. The receiver samples the
middle of every bit after a two-flop synchronizer and re-checks the start bit
half a bit after its falling edge, so a glitch does not start a byte.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.hdl import unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "divisor_for"]


def divisor_for(clock_hz: float, baud: int) -> int:
    """Clock cycles per bit, rounded; ``ValueError`` when the baud rate is off by > 2 %."""
    if baud <= 0 or clock_hz <= 0:
        raise ValueError(f"clock and baud must be positive, not {clock_hz!r} and {baud!r}")
    div = round(clock_hz / baud)
    if div < 4:
        raise ValueError(f"a {clock_hz / 1e6:g} MHz clock cannot make {baud} baud "
                         "(needs at least 4 cycles per bit)")
    if abs(clock_hz / div - baud) / baud > 0.02:
        raise ValueError(f"{baud} baud from {clock_hz / 1e6:g} MHz is off by more than 2 %")
    return div


def _check_divisor(divisor) -> None:
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor must be an integer >= 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """Serial line in, bytes out.

    Ports
    -----
    rx : In(1) — the line (idle high).
    o : Out(stream of 8-bit bytes) — a byte stays valid until taken.
    overrun : Out(1) — one-cycle pulse: a byte arrived while the last one was not taken
        (the new byte is dropped).
    framing : Out(1) — one-cycle pulse: a byte's stop bit was low (the byte is dropped).
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(unsigned(8))),
                          "overrun": Out(1), "framing": Out(1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(div))
        bits = Signal(range(9))
        shreg = Signal(8)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(div - 1), bits.eq(0)]
                    with m.If(line):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(div - 1), shreg.eq(Cat(shreg[1:], line)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(~line):
                        m.d.comb += self.framing.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.comb += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(shreg)]
                    # wait for the line to idle only half a bit: the next start bit
                    # may follow the stop bit's middle closely
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """Bytes in, serial line out (one start bit, 8 data bits LSB first, one stop bit).

    Ports
    -----
    i : In(stream of 8-bit bytes) — ready while no byte is being sent.
    tx : Out(1) — the line (idle high).
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__({"i": In(stream.Signature(unsigned(8))), "tx": Out(1, init=1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        div = self._divisor
        timer = Signal(range(div))
        left = Signal(range(11))  # bits still to send, the current one included
        shreg = Signal(10, init=1)
        m.d.comb += [self.tx.eq(shreg[0]), self.i.ready.eq(left == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq(Cat(0, self.i.payload, 1)), left.eq(10), timer.eq(div - 1)]
        with m.Elif(left != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [shreg.eq(Cat(shreg[1:], 1)), left.eq(left - 1),
                             timer.eq(div - 1)]
        return m
