"""A spiking layer built from tiles: crossbar chunks, neuron units with P lanes, an emitter.

Per time step: ``SPIKE`` events arrive on ``i``. A line table (one memory
word per input line) says, for every neuron group, which chunk holds the
line's weight row and at which address, or that the group has no nonzero
weight on that line (the row is skipped: no read, no cycle in that tile).
Every group reads at most one row per spike, all groups in parallel.

``STEP_END`` (taken once no read is in flight and the previous step's spikes
have left) starts the update: the neuron unit of every group reads ``P``
membranes per cycle from its membrane memory, adds the chunks' partial sums,
updates them in ``P`` lanes and writes them back; ``ceil(C/P) + 1`` cycles.
Then the layer emits its spikes on ``o`` in index order, closed by its own
``STEP_END``, while it already accumulates the next step. A readout layer
(``fire: false``) emits only ``STEP_END``.
"""

from __future__ import annotations

import math

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.hdl import signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from spikeforge.contracts import COUNTERS
from spikeforge.hw.crossbar import Crossbar
from spikeforge.hw.events import EventKind, event_stream, event_value
from spikeforge.hw.layout import LayerLayout, default_layer_layout
from spikeforge.hw.neuron import NeuronLane
from spikeforge.hw.params import LayerParams
from spikeforge.hw.trees import lowest_set_tree

__all__ = ["COUNTER_NAMES", "DenseLayer", "counter_layout"]

COUNTER_NAMES = COUNTERS  # spikeforge.contracts: the one definition (this name is kept)


def counter_layout(bits: int) -> data.StructLayout:
    """The counter probe: every counter of :data:`spikeforge.contracts.COUNTERS`, in order."""
    return data.StructLayout({name: unsigned(bits) for name in COUNTERS})


def _line_words(layout: LayerLayout) -> list[int]:
    """Line-table contents: per line and group, valid | chunk << 1 | row << (1 + chunk bits)."""
    words = [0] * layout.n_in
    for (off, cb, _), g in zip(layout.line_fields(), layout.groups):
        for ci, chunk in enumerate(g.chunks):
            for r, line in enumerate(chunk):
                words[line] |= (1 | (ci << 1) | (r << (1 + cb))) << off
    return words


def _select(index, values):
    """``values[index]`` as a balanced tree of 2:1 muxes on the bits of ``index``.

    Written as expressions, so Yosys emits continuous assigns: Icarus evaluates
    those at time 0, whereas an ``always @*`` case on an index that has not
    changed yet (what ``Array`` becomes) would leave its output X.
    """
    level, bit = list(values), 0
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [Mux(index[bit], hi, lo) for lo, hi in zip(level[::2], level[1::2])]
        bit += 1
    return level[0]


class DenseLayer(wiring.Component):
    """One QNet dense layer in hardware; all widths come from ``LayerParams`` and the layout.

    Ports
    -----
    i, o : event streams (input axons, output neurons)
    clear : In(1) — start a new sample: membranes, accumulators and counters to zero
    membrane : Out — every neuron's membrane as last written (a probe for verification;
        zero when built with ``mirror=False``)
    counters : Out — docs/QNET.md §5 counters of this sample
    """

    def __init__(self, params: LayerParams, layout: LayerLayout | None = None, *,
                 mirror: bool = True):
        if not isinstance(params, LayerParams):
            raise TypeError(f"params must be LayerParams, not {params!r}")
        self._p = params
        self._lay = default_layer_layout(params.layer) if layout is None else layout
        self._mirror = mirror  # keep a register copy of every membrane (the probe)
        if (self._lay.n_in, self._lay.n_out) != (params.n_in, params.n_out):
            raise ValueError(f"layout of {self._lay.name} does not match layer {params.name}")
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

    @property
    def layout(self) -> LayerLayout:
        return self._lay

    def elaborate(self, platform):
        p, lay = self._p, self._lay
        m = Module()
        P = lay.lanes
        nb_max = lay.batches
        vb = p.membrane_bits
        nw = p.neuron_word_bits  # per neuron: the membrane, then its reset rule's state bits
        cnt = self.counters
        cb = p.counter_bits

        # --- line table and chunk tiles -------------------------------------------------
        fields = lay.line_fields()
        m.submodules.lines = lmem = memory.Memory(shape=unsigned(lay.line_word_bits),
                                                  depth=lay.line_table_depth,
                                                  init=_line_words(lay))
        lrd = lmem.read_port(domain="sync")
        looked = Signal()  # the line table answers this cycle for the spike taken last cycle
        is_spike = self.i.payload.kind == EventKind.SPIKE
        upd = Signal()  # update phase
        emitting = Signal()
        m.d.comb += lrd.addr.eq(self.i.payload.index)

        tiles = []  # per group: list of Crossbar
        reads_now = []
        syn_now = []
        for gi, g in enumerate(lay.groups):
            off, chb, rb = fields[gi]
            word = lrd.data[off:off + 1 + chb + rb]
            hit = looked & word[0]
            chunk = word[1:1 + chb]
            row = word[1 + chb:]
            group_tiles = []
            for ci, lines in enumerate(g.chunks):
                xbar = Crossbar(p, lines, (g.lo, g.hi))
                m.submodules[f"g{gi}c{ci}"] = xbar
                m.d.comb += [xbar.row.valid.eq(hit & (chunk == ci) & ~self.clear),
                             xbar.row.payload.eq(row[:len(xbar.row.payload)])]
                group_tiles.append(xbar)
            tiles.append(group_tiles)
            reads_now.append(hit)
            syn_now.append(Mux(hit, g.size, 0))
        busy = Signal()
        m.d.comb += busy.eq(looked | Cat(*(x.busy for gt in tiles for x in gt)).any())

        can_update = ~emitting & ~busy & ~upd
        m.d.comb += self.i.ready.eq(~upd & (is_spike | can_update))
        take_spike = self.i.valid & self.i.ready & is_spike & ~self.clear
        take_end = self.i.valid & ~is_spike & can_update & ~self.clear
        m.d.sync += looked.eq(take_spike)

        # --- neuron units: P lanes per group, membranes in memory ------------------------
        c = Signal(range(nb_max + 1))  # batch whose membranes are read this cycle
        b_d = Signal(range(nb_max + 1))  # batch whose membranes are written this cycle
        act_d = Signal()
        last = upd & (c == nb_max)
        m.d.sync += [b_d.eq(c), act_d.eq(upd & (c < nb_max))]
        sel = [Signal(name=f"sel{b}") for b in range(nb_max)]
        m.d.comb += [s.eq(act_d & (b_d == b)) for b, s in enumerate(sel)]

        pending = Signal(p.n_out)  # spikes of the last updated step still to emit
        thresholds = p.layer.thresholds
        biases = p.layer.biases
        new_pending = []  # (neuron, batch, spike signal)
        for gi, g in enumerate(lay.groups):
            nb = math.ceil(g.size / P)
            m.submodules[f"v{gi}"] = vmem = memory.Memory(
                shape=unsigned(P * nw), depth=nb, init=[])
            vrd = vmem.read_port(domain="sync")
            vwr = vmem.write_port()
            fresh = Signal(nb)  # membranes still zero since the last clear
            m.d.comb += vrd.addr.eq(c)
            words = []
            for lane_no in range(P):
                lane = NeuronLane(p)
                m.submodules[f"g{gi}lane{lane_no}"] = lane
                idx = [b * P + lane_no for b in range(nb)]

                def pick(values):
                    return _select(b_d, values)

                partials = []
                for xbar in tiles[gi]:
                    partials.append(pick([xbar.acc[j] if j < g.size else Const(0, signed(1))
                                          for j in idx]))
                current = partials[0]
                for q in partials[1:]:
                    current = current + q
                word = vrd.data[lane_no * nw:(lane_no + 1) * nw]
                is_fresh = fresh.bit_select(b_d, 1)
                if p.state_bits:  # the previous spike, zero like the membrane after a clear
                    m.d.comb += lane.s_prev.eq(~is_fresh & word[vb])
                m.d.comb += [
                    lane.v.eq(Mux(is_fresh, 0, word[:vb].as_signed())),
                    lane.current.eq(current),
                    lane.bias.eq(pick([Const(int(biases[g.lo + j]) if j < g.size else 0,
                                             signed(vb)) for j in idx])),
                    lane.threshold.eq(pick([Const(int(thresholds[g.lo + j]) if j < g.size
                                                  else 1, signed(vb)) for j in idx])),
                ]
                words.append(Cat(lane.v_next, lane.spike) if p.state_bits else lane.v_next)
                for b in range(nb):
                    j = b * P + lane_no
                    if j < g.size:
                        new_pending.append((g.lo + j, b, lane.spike, lane.v_next))
            m.d.comb += [vwr.addr.eq(b_d), vwr.data.eq(Cat(*words)),
                         vwr.en.eq(act_d & (b_d < nb))]
            with m.If(self.clear):
                m.d.sync += fresh.eq((1 << len(fresh)) - 1)
            with m.Elif(act_d):
                m.d.sync += fresh.bit_select(b_d, 1).eq(0)

        # --- emitter: lowest pending index first, then STEP_END ---------------------------
        # A tree of continuous assigns (see trees.py): log depth, and Icarus
        # evaluates it at time 0 (an `always @*` block would stay X there).
        has_spike, lowest = lowest_set_tree(m, pending, p.out_index_bits, name="emit")
        kind = Mux(has_spike, EventKind.SPIKE.value, EventKind.STEP_END.value)
        m.d.comb += [self.o.valid.eq(emitting),
                     self.o.payload.eq(event_value(kind, lowest, p.out_index_bits))]
        sent = self.o.valid & self.o.ready

        clear_acc = Signal()
        for gt in tiles:
            m.d.comb += [x.clear.eq(clear_acc) for x in gt]
        n_reads = sum(reads_now[1:], reads_now[0])
        n_syn = sum(syn_now[1:], syn_now[0])
        with m.If(self.clear):
            m.d.comb += clear_acc.eq(1)
            m.d.sync += [pending.eq(0), emitting.eq(0), upd.eq(0), c.eq(0)]
            if self._mirror:
                m.d.sync += [self.membrane[j].eq(0) for j in range(p.n_out)]
            m.d.sync += [getattr(cnt, name).eq(0) for name in COUNTERS]
        with m.Else():
            m.d.sync += [
                cnt.synaptic_events.eq((cnt.synaptic_events + n_syn)[:cb]),
                cnt.weight_reads.eq((cnt.weight_reads + n_reads)[:cb]),
            ]
            with m.If(take_end):
                m.d.sync += [upd.eq(1), c.eq(0)]
            with m.If(upd):
                m.d.sync += c.eq(c + 1)
            with m.If(last):
                m.d.comb += clear_acc.eq(1)
                m.d.sync += [upd.eq(0), emitting.eq(1),
                             cnt.neuron_updates.eq(cnt.neuron_updates + p.n_out)]
            for j, b, spike, v_next in new_pending:
                with m.If(sel[b]):
                    if self._mirror:
                        m.d.sync += self.membrane[j].eq(v_next)
                    if p.fire:
                        m.d.sync += pending[j].eq(spike)
            with m.If(sent):
                with m.If(has_spike):
                    m.d.sync += [
                        pending.bit_select(lowest, 1).eq(0),
                        cnt.spikes_out.eq(cnt.spikes_out + 1),
                    ]
                with m.Else():
                    m.d.sync += emitting.eq(0)
        return m
