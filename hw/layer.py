"""A dense spiking layer: crossbar accumulate array + neuron lanes + spike emitter.

Protocol, per time step: ``SPIKE`` events arrive on ``i`` and are accumulated;
``STEP_END`` (taken once no row read is in flight and the previous step's spikes
have left) updates every membrane at once, then the layer emits its spikes on
``o`` in index order, closed by its own ``STEP_END``. A readout layer
(``fire: false``) emits only ``STEP_END``. While the layer emits step ``t``, it
already accumulates the spikes of step ``t+1``.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hw.crossbar import Crossbar
from spikeforge.hw.events import EventKind, event_stream
from spikeforge.hw.neuron import NeuronLane
from spikeforge.hw.params import LayerParams

__all__ = ["COUNTER_NAMES", "DenseLayer", "counter_layout"]

COUNTER_NAMES = ("synaptic_events", "neuron_updates", "weight_reads", "spikes_out")


def counter_layout(bits: int) -> data.StructLayout:
    return data.StructLayout({name: unsigned(bits) for name in COUNTER_NAMES})


class DenseLayer(wiring.Component):
    """One QNet dense layer in hardware; all widths come from ``LayerParams``.

    Ports
    -----
    i, o : event streams (input axons, output neurons)
    clear : In(1) — start a new sample: membranes, accumulators and counters to zero
    membrane : Out — every neuron's membrane (final after the last step)
    counters : Out — SPEC §5 counters of this sample
    """

    def __init__(self, params: LayerParams):
        if not isinstance(params, LayerParams):
            raise TypeError(f"params must be LayerParams, not {params!r}")
        self._p = params
        super().__init__({
            "i": In(event_stream(params.in_index_bits)),
            "o": Out(event_stream(params.out_index_bits)),
            "clear": In(1),
            "membrane": Out(data.ArrayLayout(signed(params.membrane_bits), params.n_out)),
            "counters": Out(counter_layout(params.counter_bits)),
        })

    @property
    def params(self) -> LayerParams:
        return self._p

    def elaborate(self, platform):
        p = self._p
        m = Module()
        m.submodules.crossbar = xbar = Crossbar(p)

        pending = Signal(p.n_out)  # spikes of the last updated step still to emit
        emitting = Signal()
        is_spike = self.i.payload.kind == EventKind.SPIKE
        can_update = ~emitting & ~xbar.busy
        m.d.comb += [
            self.i.ready.eq(is_spike | can_update),
            xbar.axon.valid.eq(self.i.valid & is_spike & ~self.clear),
            xbar.axon.payload.eq(self.i.payload.index),
        ]
        take_spike = self.i.valid & is_spike
        take_end = self.i.valid & ~is_spike & can_update

        # Neuron lanes: one per neuron (P = C) in this generation.
        thresholds = p.layer.thresholds
        biases = p.layer.biases
        v_next = []
        spikes = []
        for j in range(p.n_out):
            lane = NeuronLane(p)
            m.submodules[f"lane{j}"] = lane
            m.d.comb += [
                lane.v.eq(self.membrane[j]),
                lane.current.eq(xbar.acc[j]),
                lane.bias.eq(Const(int(biases[j]), signed(p.membrane_bits))),
                lane.threshold.eq(Const(int(thresholds[j]), signed(p.membrane_bits))),
            ]
            v_next.append(lane.v_next)
            spikes.append(lane.spike)

        # Emitter: lowest pending index first, then STEP_END.
        # A priority chain written as one expression: Yosys emits a continuous
        # assign, which Icarus evaluates at time 0 (an `always @*` block whose
        # inputs never change would stay X there).
        lowest = Signal(p.out_index_bits)
        chain = Const(0, p.out_index_bits)
        for j in reversed(range(p.n_out)):
            chain = Mux(pending[j], j, chain)
        m.d.comb += lowest.eq(chain)
        has_spike = pending.any()
        # One whole-payload assignment: Yosys turns driving a signal's bits from
        # separate statements into `always @*` blocks that Icarus may not run at
        # time 0, leaving them X until their inputs change.
        kind = Mux(has_spike, EventKind.SPIKE.value, EventKind.STEP_END.value)
        m.d.comb += [
            self.o.valid.eq(emitting),
            self.o.payload.eq(Cat(kind[:1], lowest)),
        ]
        sent = self.o.valid & self.o.ready

        cnt = self.counters
        with m.If(self.clear):
            m.d.comb += xbar.clear.eq(1)
            m.d.sync += [pending.eq(0), emitting.eq(0)]
            m.d.sync += [self.membrane[j].eq(0) for j in range(p.n_out)]
            m.d.sync += [getattr(cnt, name).eq(0) for name in COUNTER_NAMES]
        with m.Else():
            with m.If(take_spike):
                m.d.sync += [
                    cnt.synaptic_events.eq(cnt.synaptic_events + p.n_out),
                    cnt.weight_reads.eq(cnt.weight_reads + 1),
                ]
            with m.If(take_end):
                m.d.comb += xbar.clear.eq(1)
                m.d.sync += [self.membrane[j].eq(v_next[j]) for j in range(p.n_out)]
                m.d.sync += [
                    emitting.eq(1),
                    cnt.neuron_updates.eq(cnt.neuron_updates + p.n_out),
                ]
                if p.fire:
                    m.d.sync += pending.eq(Cat(*spikes))
            with m.If(sent):
                with m.If(has_spike):
                    m.d.sync += [
                        pending.bit_select(lowest, 1).eq(0),
                        cnt.spikes_out.eq(cnt.spikes_out + 1),
                    ]
                with m.Else():
                    m.d.sync += emitting.eq(0)
        return m
