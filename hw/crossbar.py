"""Spike-driven crossbar tile: one input spike, one weight-row read, C adds.

Adders only, no multipliers: a spike on row ``r`` reads word ``r`` of the
tile's weight memory (the weights of row ``r``'s input line into each of the
tile's C neurons, packed) and adds it to the C accumulators the next cycle.
The tile holds only the rows its layout gives it (nonzero rows of its input
lines); the layer's line table turns an input line into a row, or skips it.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hw.params import LayerParams, current_bits, index_bits

__all__ = ["Crossbar"]


class Crossbar(wiring.Component):
    """R rows x C neurons accumulate array of one layer.

    Parameters
    ----------
    params : LayerParams
        The layer (weights, widths).
    lines : sequence of int
        The input line of each row (row ``r`` holds line ``lines[r]``); default all lines.
    neurons : (lo, hi)
        The layer's neurons this tile accumulates for; default all.

    Ports
    -----
    row : In(stream of row index), always ready: one row read per cycle.
    clear : In(1) — zero the accumulators; must not be asserted while ``busy``.
    busy : Out(1) — a row read is in flight: ``acc`` is not final yet.
    acc : Out(array of C signed accumulators).
    """

    def __init__(self, params: LayerParams, lines=None, neurons=None):
        if not isinstance(params, LayerParams):
            raise TypeError(f"params must be LayerParams, not {params!r}")
        self._p = params
        self._lines = tuple(range(params.n_in)) if lines is None else tuple(lines)
        self._lo, self._hi = (0, params.n_out) if neurons is None else neurons
        if not 0 <= self._lo < self._hi <= params.n_out:
            raise ValueError(f"neurons {neurons!r} outside [0, {params.n_out})")
        super().__init__({
            "row": In(stream.Signature(unsigned(index_bits(max(1, len(self._lines)))),
                                       always_ready=True)),
            "clear": In(1),
            "busy": Out(1),
            "acc": Out(data.ArrayLayout(signed(self.acc_bits), self._hi - self._lo)),
        })

    @property
    def params(self) -> LayerParams:
        return self._p

    @property
    def acc_bits(self) -> int:
        """Exact width of this tile's partial sums (its rows and neurons only)."""
        w = self._p.layer.weights[self._lo:self._hi][:, list(self._lines)]
        return current_bits(w)

    @property
    def rows(self) -> int:
        return len(self._lines)

    @property
    def memory_bits(self) -> int:
        return self.rows * (self._hi - self._lo) * self._p.weight_bits

    def packed_rows(self) -> list[int]:
        """Weight memory contents: row ``r`` packs ``W[lo + j][lines[r]]`` at bits ``j*wb``."""
        wb = self._p.weight_bits
        mask = (1 << wb) - 1
        w = self._p.layer.weights
        rows = []
        for i in self._lines:
            word = 0
            for j in range(self._hi - self._lo):
                word |= (int(w[self._lo + j, i]) & mask) << (j * wb)
            rows.append(word)
        return rows

    def elaborate(self, platform):
        p = self._p
        m = Module()
        n = self._hi - self._lo
        with m.If(self.clear):
            m.d.sync += [self.acc[j].eq(0) for j in range(n)]
        if not self._lines:  # a tile with no rows never adds anything
            return m
        m.submodules.weights = mem = memory.Memory(
            shape=unsigned(n * p.weight_bits), depth=self.rows, init=self.packed_rows())
        rd = mem.read_port(domain="sync")
        pending = Signal()  # the row read issued last cycle arrives now
        m.d.comb += [rd.addr.eq(self.row.payload), self.busy.eq(pending)]
        m.d.sync += pending.eq(self.row.valid)
        wb = p.weight_bits
        with m.If(~self.clear & pending):
            m.d.sync += [self.acc[j].eq(self.acc[j] + rd.data[j * wb:(j + 1) * wb].as_signed())
                         for j in range(n)]
        return m
