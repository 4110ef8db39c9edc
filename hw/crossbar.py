"""Spike-driven crossbar accumulate array: one input spike, one weight-row read, C adds.

Adders only, no multipliers: a spike on axon ``i`` reads row ``i`` of the weight
memory (every neuron's weight for that axon, packed) and adds it to the C
column accumulators the next cycle.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hw.params import LayerParams

__all__ = ["Crossbar"]


class Crossbar(wiring.Component):
    """R axons x C neurons accumulate array for one dense layer.

    Ports
    -----
    axon : In(stream of axon index)
        Input spikes; always ready (one row read per cycle).
    clear : In(1)
        Zero the accumulators (after the neuron unit consumed them). Must not be
        asserted while ``busy``.
    busy : Out(1)
        A row read is in flight: ``acc`` is not final yet.
    acc : Out(array of C signed accumulators)
    """

    def __init__(self, params: LayerParams):
        if not isinstance(params, LayerParams):
            raise TypeError(f"params must be LayerParams, not {params!r}")
        self._p = params
        super().__init__({
            "axon": In(stream.Signature(unsigned(params.in_index_bits), always_ready=True)),
            "clear": In(1),
            "busy": Out(1),
            "acc": Out(data.ArrayLayout(signed(params.acc_bits), params.n_out)),
        })

    @property
    def params(self) -> LayerParams:
        return self._p

    def elaborate(self, platform):
        p = self._p
        m = Module()
        m.submodules.weights = mem = memory.Memory(
            shape=unsigned(p.row_bits), depth=p.n_in, init=p.packed_rows())
        rd = mem.read_port(domain="sync")
        pending = Signal()  # the row read issued last cycle arrives now
        m.d.comb += [rd.addr.eq(self.axon.payload), rd.en.eq(1), self.busy.eq(pending)]
        m.d.sync += pending.eq(self.axon.valid)
        wb = p.weight_bits
        for j in range(p.n_out):
            w = rd.data[j * wb:(j + 1) * wb].as_signed()
            with m.If(self.clear):
                m.d.sync += self.acc[j].eq(0)
            with m.Elif(pending):
                m.d.sync += self.acc[j].eq(self.acc[j] + w)
        return m
