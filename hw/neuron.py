"""LIF neuron update lane: shift-add leak, add the current, saturate, compare, reset.

Purely combinational; the layer registers its outputs. Implements SPEC §2::

    v' = sat_vb(v - sum(v >> k) + I + bias);  s = fire and v' >= theta
    v'' = 0 (zero) | v' - theta (subtract) when s, else v'
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hw.params import LayerParams
from spikeforge.qnet import Reset

__all__ = ["NeuronLane"]


class NeuronLane(wiring.Component):
    """One neuron update; threshold and bias are inputs so lanes can be shared later."""

    def __init__(self, params: LayerParams):
        if not isinstance(params, LayerParams):
            raise TypeError(f"params must be LayerParams, not {params!r}")
        self._p = params
        vb = params.membrane_bits
        super().__init__({
            "v": In(signed(vb)),
            "current": In(signed(params.acc_bits)),
            "bias": In(signed(vb)),
            "threshold": In(signed(vb)),
            "v_next": Out(signed(vb)),
            "spike": Out(1),
        })

    @property
    def params(self) -> LayerParams:
        return self._p

    def elaborate(self, platform):
        p = self._p
        m = Module()
        lo, hi = p.layer.membrane_range
        leaked = self.v
        for k in p.layer.leak_shifts:
            leaked = leaked - (self.v >> k)
        total = Signal(signed(max(p.membrane_bits, p.acc_bits) + 3))
        m.d.comb += total.eq(leaked + self.current + self.bias)
        sat = Signal(signed(p.membrane_bits))
        m.d.comb += sat.eq(Mux(total > hi, hi, Mux(total < lo, lo, total)))
        if not p.fire:
            m.d.comb += [self.v_next.eq(sat), self.spike.eq(0)]
            return m
        m.d.comb += self.spike.eq(sat >= self.threshold)
        after = 0 if p.reset is Reset.ZERO else sat - self.threshold
        m.d.comb += self.v_next.eq(Mux(self.spike, after, sat))
        return m
