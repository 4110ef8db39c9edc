"""Network top: QNet layers chained by event streams, with probes and counters.

Ports (Verilog names in brackets come from Amaranth's flattening)::

    i        [i__valid, i__ready, i__payload]   input spike events (see events.py), or
                                                with the on-chip encoder 8-bit pixels
    seed     (encoder only) the rate encoder's seed, loaded at clear
    o        [o__valid, o__ready, o__payload]   last layer's events (STEP_END per step)
    clear    start a new sample
    done     all T steps have left the last layer
    prediction  the class with the largest score (readout membrane or spike count)
    cycles   clock cycles from the first input event to the last output event
    <layer>  [<layer>__membrane, <layer>__counters, <layer>__tap_valid, <layer>__tap_payload]

With ``probes=False`` (synthesis) a firing layer's ``membrane`` port is zero and
its register copy of the membranes is not built; a readout keeps it, since
``prediction`` reads the scores from it.

A probe's ``tap_valid`` marks a cycle in which that layer handed an event to the
next stage, so a monitor sees every spike of every layer at every step.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.errors import QNetError
from spikeforge.hw.encoder import RateEncoder
from spikeforge.hw.events import EventKind, event_layout, event_stream
from spikeforge.hw.layer import DenseLayer, counter_layout
from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.params import LayerParams, NetworkParams
from spikeforge.hw.trees import argmax_tree
from spikeforge.qnet import QNet

__all__ = ["Network", "probe_signature"]


def probe_signature(p: LayerParams) -> wiring.Signature:
    return wiring.Signature({
        "membrane": Out(data.ArrayLayout(signed(p.membrane_bits), p.n_out)),
        "counters": Out(counter_layout(p.counter_bits)),
        "tap_valid": Out(1),
        "tap_payload": Out(event_layout(p.out_index_bits)),
    })


class Network(wiring.Component):
    """The whole QNet as one component; every width derives from ``NetworkParams``."""

    def __init__(self, qnet: QNet, *, encoder: bool = False, layout: HardwareLayout | None = None,
                 probes: bool = True):
        if not isinstance(qnet, QNet):
            raise TypeError(f"qnet must be a spikeforge.qnet.QNet, not {qnet!r}")
        if not isinstance(encoder, bool):
            raise TypeError(f"encoder must be a bool, not {encoder!r}")
        self._np = NetworkParams(qnet, encoder=encoder, layout=layout)
        self._probes = probes  # membrane copies of firing layers (verification only)
        layers = self._np.layers
        members = {
            "i": In(stream.Signature(unsigned(8)) if encoder
                    else event_stream(layers[0].in_index_bits)),
            "o": Out(event_stream(layers[-1].out_index_bits)),
            "clear": In(1),
            "done": Out(1),
            "cycles": Out(unsigned(self._np.cycle_bits)),
            "prediction": Out(unsigned(layers[-1].out_index_bits)),
        }
        if encoder:
            members["seed"] = In(32)
        for p in layers:
            if p.name in members:
                raise QNetError(p.name, "name", "clashes with a port of the hardware top "
                                f"({', '.join(members)}); rename the layer")
            members[p.name] = Out(probe_signature(p))
        super().__init__(members)

    @property
    def params(self) -> NetworkParams:
        return self._np

    def _predict(self, m: Module, last: DenseLayer) -> None:
        """``prediction``: index of the largest score, ties to the lowest index (docs/QNET.md §4).

        Scores are the readout's membranes, or a firing last layer's spike counts.
        """
        p = last.params
        if p.fire:
            scores = [Signal(unsigned(self._np.step_bits), name=f"score{j}")
                      for j in range(p.n_out)]
            spike = (last.o.valid & last.o.ready
                     & (last.o.payload.kind == EventKind.SPIKE))
            for j, sc in enumerate(scores):
                with m.If(self.clear):
                    m.d.sync += sc.eq(0)
                with m.Elif(spike & (last.o.payload.index == j)):
                    m.d.sync += sc.eq(sc + 1)
        else:
            scores = [last.membrane[j] for j in range(p.n_out)]
        index = argmax_tree(m, scores, len(self.prediction), name="prediction")
        m.d.comb += self.prediction.eq(index)

    def elaborate(self, platform):
        m = Module()
        params = self._np.layers
        blocks = []
        for p, lay in zip(params, self._np.layout.layers):
            block = DenseLayer(p, lay, mirror=self._probes or not p.fire)
            m.submodules[p.name] = block
            blocks.append(block)
            probe = getattr(self, p.name)
            m.d.comb += [
                block.clear.eq(self.clear),
                probe.membrane.eq(block.membrane),
                probe.counters.eq(block.counters),
                probe.tap_valid.eq(block.o.valid & block.o.ready),
                probe.tap_payload.eq(block.o.payload),
            ]
        if self._np.encoder:
            m.submodules.encoder = enc = RateEncoder(self._np.qnet.n_in, self._np.timesteps)
            m.d.comb += [enc.seed.eq(self.seed), enc.clear.eq(self.clear)]
            wiring.connect(m, wiring.flipped(self.i), enc.px)
            wiring.connect(m, enc.o, blocks[0].i)
        else:
            wiring.connect(m, wiring.flipped(self.i), blocks[0].i)
        for a, b in zip(blocks, blocks[1:]):
            wiring.connect(m, a.o, b.i)
        wiring.connect(m, blocks[-1].o, wiring.flipped(self.o))

        self._predict(m, blocks[-1])

        steps = Signal(unsigned(self._np.step_bits))
        running = Signal()
        m.d.comb += self.done.eq(steps == self._np.timesteps)
        first_in = self.i.valid & self.i.ready
        step_out = self.o.valid & self.o.ready & (self.o.payload.kind == EventKind.STEP_END)
        with m.If(self.clear):
            m.d.sync += [steps.eq(0), running.eq(0), self.cycles.eq(0)]
        with m.Else():
            with m.If(first_in):
                m.d.sync += running.eq(1)
            with m.If((running | first_in) & ~self.done):
                m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(step_out & ~self.done):
                m.d.sync += steps.eq(steps + 1)
        return m
