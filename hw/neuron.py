"""LIF neuron update lane: shift-add leak, add the current, saturate, compare, reset.

Purely combinational; the layer registers its outputs. Implements docs/QNET.md §2 for
any reset rule of ``qnet.RESET_RULES``::

    v' = sat_vb(v - sum(v >> k) + I + bias [- theta * s_prev]);  s = fire and v' >= theta
    v'' = AT_SPIKE[rule.at_spike](v', theta) when s, else v'

``s_prev`` (the neuron's spike of the previous step, kept by the layer beside
the membrane) is a port only when the rule subtracts at the next update.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hw.params import LayerParams
from spikeforge.qnet import AtSpike

__all__ = ["AT_SPIKE", "NeuronLane"]

# The membrane written back after a spike, per action of the reset rules (qnet.RESET_RULES).
AT_SPIKE = {
    AtSpike.ZERO: lambda sat, theta: 0,
    AtSpike.SUBTRACT: lambda sat, theta: sat - theta,
    AtSpike.KEEP: lambda sat, theta: sat,
}


class NeuronLane(wiring.Component):
    """One neuron update; threshold and bias are inputs so lanes can be shared later."""

    def __init__(self, params: LayerParams):
        if not isinstance(params, LayerParams):
            raise TypeError(f"params must be LayerParams, not {params!r}")
        self._p = params
        vb = params.membrane_bits
        ports = {
            "v": In(signed(vb)),
            "current": In(signed(params.acc_bits)),
            "bias": In(signed(vb)),
            "threshold": In(signed(vb)),
            "v_next": Out(signed(vb)),
            "spike": Out(1),
        }
        if params.reset_rule.subtract_next:
            ports["s_prev"] = In(1)  # this neuron's spike of the previous step
        super().__init__(ports)

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
        rule = p.reset_rule
        total = Signal(signed(max(p.membrane_bits, p.acc_bits) + 3 + rule.subtract_next))
        summed = leaked + self.current + self.bias
        if rule.subtract_next:
            summed = summed - Mux(self.s_prev, self.threshold, 0)
        m.d.comb += total.eq(summed)
        sat = Signal(signed(p.membrane_bits))
        m.d.comb += sat.eq(Mux(total > hi, hi, Mux(total < lo, lo, total)))
        if not p.fire:
            m.d.comb += [self.v_next.eq(sat), self.spike.eq(0)]
            return m
        m.d.comb += self.spike.eq(sat >= self.threshold)
        after = AT_SPIKE[rule.at_spike](sat, self.threshold)
        m.d.comb += self.v_next.eq(Mux(self.spike, after, sat))
        return m
