"""On-chip rate encoder: 8-bit pixels in, spike events out (xorshift32 generator).

The host streams a sample's ``n_in`` pixels (one per transfer) into a pixel
memory; the encoder then runs ``T`` steps, visiting pixels ``0 .. n_in-1`` in
order each step. Each visit advances ``state = xorshift32(state)`` once and
emits ``SPIKE(i)`` when ``pixel[i] > state >> 24``; each step ends with
``STEP_END``. ``clear`` reloads ``state`` from the ``seed`` input (0 counts as 1).
:func:`spikeforge.encoding.onchip_rate_encode` reproduces the bits exactly.

One pixel per cycle unless the output stalls (a spike waits for ``ready``);
plus one cycle per step for ``STEP_END`` and one to prime the pixel memory.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hw.events import EventKind, event_stream, event_value
from spikeforge.hw.params import index_bits

__all__ = ["RateEncoder", "xorshift32_next"]


def xorshift32_next(x):
    """xorshift32 (13, 17, 5) as an Amaranth expression on a 32-bit value."""
    x = (x ^ (x << 13))[:32]
    x = x ^ (x >> 17)
    return (x ^ (x << 5))[:32]


class RateEncoder(wiring.Component):
    """Pixels of one sample in, ``T`` steps of spike events out.

    Parameters
    ----------
    n_in : int
        Pixels (input lines) per sample.
    timesteps : int
        Steps to generate per sample.
    """

    def __init__(self, n_in: int, timesteps: int):
        if not isinstance(n_in, int) or n_in < 1:
            raise ValueError(f"n_in must be a positive integer, not {n_in!r}")
        if not isinstance(timesteps, int) or timesteps < 1:
            raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
        self._n_in = n_in
        self._timesteps = timesteps
        super().__init__({
            "px": In(stream.Signature(unsigned(8))),
            "o": Out(event_stream(index_bits(n_in))),
            "seed": In(32),
            "clear": In(1),
        })

    @property
    def n_in(self) -> int:
        return self._n_in

    @property
    def timesteps(self) -> int:
        return self._timesteps

    def elaborate(self, platform):
        m = Module()
        n_in, t_steps = self._n_in, self._timesteps
        m.submodules.pixels = mem = memory.Memory(shape=unsigned(8), depth=n_in, init=[])
        wr = mem.write_port()
        rd = mem.read_port()  # synchronous; keeps its data while en is low

        ib = index_bits(n_in)
        load = Signal(range(n_in + 1))
        cur = Signal(ib)
        step = Signal(range(t_steps + 1))
        state = Signal(32, init=1)
        nxt = Signal(32)
        m.d.comb += nxt.eq(xorshift32_next(state))
        fires = Signal()
        m.d.comb += fires.eq(rd.data > nxt[24:])

        # A read port's `en` resets to 1: hold the pixel unless a state asks for the next.
        m.d.comb += [wr.addr.eq(load), wr.data.eq(self.px.payload), rd.en.eq(0)]

        def restart_on_clear():
            # Inside every state, so that `clear` wins over that state's own `m.next`.
            with m.If(self.clear):
                m.next = "LOAD"

        with m.FSM(init="LOAD"):
            with m.State("LOAD"):
                m.d.comb += self.px.ready.eq(~self.clear)
                with m.If(self.px.valid & ~self.clear):
                    m.d.comb += wr.en.eq(1)
                    m.d.sync += load.eq(load + 1)
                    with m.If(load == n_in - 1):
                        m.next = "PRIME"
                restart_on_clear()
            with m.State("PRIME"):
                m.d.comb += [rd.addr.eq(0), rd.en.eq(1)]
                m.d.sync += cur.eq(0)
                m.next = "RUN"
                restart_on_clear()
            with m.State("RUN"):
                m.d.comb += [
                    self.o.valid.eq(fires & ~self.clear),
                    self.o.payload.eq(event_value(EventKind.SPIKE, cur, ib)),
                ]
                with m.If(Mux(fires, self.o.ready, 1) & ~self.clear):
                    m.d.sync += state.eq(nxt)
                    with m.If(cur == n_in - 1):
                        m.next = "END"
                    with m.Else():
                        m.d.comb += [rd.addr.eq(cur + 1), rd.en.eq(1)]
                        m.d.sync += cur.eq(cur + 1)
                restart_on_clear()
            with m.State("END"):
                m.d.comb += [
                    self.o.valid.eq(~self.clear),
                    self.o.payload.eq(event_value(EventKind.STEP_END, 0, ib)),
                ]
                with m.If(self.o.ready & ~self.clear):
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == t_steps - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "PRIME"
                restart_on_clear()
            with m.State("DONE"):
                restart_on_clear()
        # clear wins over the sync statements above (later statements take priority)
        with m.If(self.clear):
            m.d.sync += [load.eq(0), step.eq(0), state.eq(Mux(self.seed == 0, 1, self.seed))]
        return m
