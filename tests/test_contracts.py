"""One source of truth: every side of a hardware contract reads the same definition.

The event payload round-trips between the contract's packer and every decoder
(Amaranth layout, plain-Verilog testbench, cocotb recorder, board protocol);
probe and counter words between the contract and the fast testbench's parser
and the board frame; and one resource model (the layout's memory records) gives
``hw.json``'s ``memory_bits``, the fits check's memories, the DSE's
``memory_bits`` and the energy model's weight memories.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
from amaranth import Const

from spikeforge import contracts
from spikeforge.boards.fit import estimate
from spikeforge.boards.fit import memories as board_memories
from spikeforge.boards.protocol import MAGIC, LinkFormat
from spikeforge.boards.target import get_target
from spikeforge.cli import main
from spikeforge.contracts import (
    COUNTERS,
    EventKind,
    pack_counters,
    pack_event,
    pack_events,
    pack_membranes,
    sample_events,
    unpack_event,
    unpack_events,
)
from spikeforge.energy import energy_report, weight_memories
from spikeforge.hw.events import EventKind as HwEventKind
from spikeforge.hw.events import event_layout, event_value
from spikeforge.hw.layout import HardwareLayout, load_layout
from spikeforge.hw.params import NetworkParams
from spikeforge.mapping import MapOptions, hardware_from_dict, run_mapping, write_mapping
from spikeforge.qnet import InputSpec, Layer, QNet, Reset, save_qnet
from spikeforge.reference import simulate
from spikeforge.sim import fast
from spikeforge.sim.fuzz import random_layout, random_qnet, random_spikes
from spikeforge.sim.protocol import SampleRecorder

# ----------------------------------------------------------------------------- events


def test_pack_and_unpack_are_inverse_for_ints_and_arrays():
    rng = np.random.default_rng(0)
    kinds = rng.integers(0, 2, size=200)
    idx = rng.integers(0, 1 << 14, size=200)
    packed = pack_events(kinds, idx)
    assert packed.tolist() == [pack_event(k, i) for k, i in zip(kinds, idx)]
    k2, i2 = unpack_events(packed)
    assert k2.tolist() == kinds.tolist() and i2.tolist() == idx.tolist()
    assert [unpack_event(v) for v in packed.tolist()] == list(zip(kinds.tolist(), idx.tolist()))
    assert contracts.event_bits(5) == 6


@pytest.mark.parametrize("width", [1, 3, 10])
def test_amaranth_layout_places_fields_where_the_contract_says(width):
    layout = event_layout(width)
    assert layout.size == contracts.event_bits(width)
    for name, offset, bits in contracts.event_fields(width):
        assert (layout[name].offset, layout[name].width) == (offset, bits)
    for kind in EventKind:
        for index in (0, 1, (1 << width) - 1):
            want = pack_event(kind, index)
            hw_kind = HwEventKind(kind.value)
            const = layout.const({"kind": hw_kind, "index": index}).as_value().value
            assert const == want
            assert Const.cast(event_value(hw_kind, Const(index, width), width)).value == want


def test_sample_events_decode_in_the_cocotb_recorder_and_the_board_protocol():
    net = random_qnet(5)
    x = random_spikes(3, net, 1)[0]
    events = sample_events(x)
    assert events.count(pack_event(EventKind.STEP_END)) == net.timesteps
    # the board's bytes are the same words, little-endian, after the start command
    link = LinkFormat(NetworkParams(net), 4096)
    data = link.encode_spikes(x)
    assert np.frombuffer(data[1:], dtype="<u2").tolist() == events
    np.testing.assert_array_equal(link.decode_spikes(data), x)
    # the testbench recorder decodes a layer's tap events back into spikes
    params = NetworkParams(net)
    rec = SampleRecorder(params)
    first = params.layers[0]
    if first.fire:
        out = random_spikes(4, net, 1)[0][:, :first.n_out]
        for e in sample_events(out):
            rec.on_tap(first.name, e)
        assert not rec.errors
        np.testing.assert_array_equal(rec.spikes[first.name], out)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_verilog_helpers_pack_and_unpack_like_the_contract(tmp_path):
    ib = 6
    pairs = [(EventKind.SPIKE, 0), (EventKind.SPIKE, 37), (EventKind.SPIKE, 63),
             (EventKind.STEP_END, 0)]
    w = contracts.event_bits(ib)
    lines = []
    for k, (kind, index) in enumerate(pairs):
        idx = None if kind == EventKind.STEP_END else f"i{k}[{ib - 1}:0]"
        lines.append(f"  reg [31:0] i{k} = {index};")
        lines.append(f"  wire [{w - 1}:0] e{k} = {contracts.verilog_event(kind, idx, ib)};")
        lines.append(f"  wire [{w - 1}:0] p{k} = {w}'d{pack_event(kind, index)};")
    shows = "\n".join(
        f'    $display("%0d %0d %0d", e{k}, {contracts.verilog_event_kind(f"p{k}")}, '
        f'{contracts.verilog_event_index(f"p{k}", ib)});' for k in range(len(pairs)))
    (tmp_path / "t.v").write_text(f"module t;\n{chr(10).join(lines)}\n  initial begin\n"
                                  f"    #1;\n{shows}\n  end\nendmodule\n")
    subprocess.run(["iverilog", "-g2005", "-o", str(tmp_path / "t.vvp"), str(tmp_path / "t.v")],
                   check=True)
    out = subprocess.run(["vvp", "-n", str(tmp_path / "t.vvp")], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    for (kind, index), line in zip(pairs, out):
        packed, k, i = (int(v) for v in line.split())
        assert packed == pack_event(kind, index)  # Verilog packs as the contract
        assert (k, i) == (kind, index)  # and unpacks the contract's integers


# ----------------------------------------------------------------------------- probes


def test_fast_testbench_parser_reads_probe_words_packed_by_the_contract(tmp_path):
    net = random_qnet(7)
    params = NetworkParams(net)
    rng = np.random.default_rng(1)
    want_v, want_c, parts = {}, {}, ["E", "123", "1"]
    for p in params.layers:
        lo, hi = -(1 << (p.membrane_bits - 1)), (1 << (p.membrane_bits - 1)) - 1
        v = rng.integers(lo, hi + 1, size=p.n_out)
        c = {name: int(rng.integers(0, 1 << p.counter_bits)) for name in COUNTERS}
        want_v[p.name], want_c[p.name] = v, c
        parts += [f"{pack_membranes(v, p.membrane_bits):x}",
                  f"{pack_counters(c, p.counter_bits):x}"]
    lines = [f"P{k} 0" for k, p in enumerate(params.layers) if p.fire
             for _ in range(net.timesteps)]
    (tmp_path / "r.txt").write_text("\n".join([*lines, " ".join(parts)]) + "\n")
    res = fast._parse(tmp_path / "r.txt", params, 1)
    assert not res.errors and res.cycles.tolist() == [123]
    for p in params.layers:
        np.testing.assert_array_equal(res.membrane[p.name][0], want_v[p.name])
        assert {c: int(v[0]) for c, v in res.counters[p.name].items()} == want_c[p.name]


@pytest.mark.parametrize("seed", [1, 6])
def test_amaranth_probe_ports_pack_like_the_contract(seed):
    from spikeforge.hw.top import probe_signature

    net = random_qnet(seed)
    rng = np.random.default_rng(seed)
    for p in NetworkParams(net).layers:
        sig = probe_signature(p)
        mem, cnt = sig.members["membrane"].shape, sig.members["counters"].shape
        assert mem.size == contracts.membrane_probe_bits(p.n_out, p.membrane_bits)
        assert cnt.size == contracts.counter_probe_bits(p.counter_bits)
        lo = -(1 << (p.membrane_bits - 1))
        v = rng.integers(lo, -lo, size=p.n_out)
        assert mem.const(v.tolist()).as_value().value == pack_membranes(v, p.membrane_bits)
        np.testing.assert_array_equal(
            contracts.unpack_membranes(pack_membranes(v, p.membrane_bits), p.n_out,
                                       p.membrane_bits), v)
        c = {name: int(rng.integers(0, 1 << p.counter_bits)) for name in COUNTERS}
        assert cnt.const(c).as_value().value == pack_counters(c, p.counter_bits)
        assert contracts.unpack_counters(pack_counters(c, p.counter_bits), p.counter_bits) == c
        assert p.counter_bits == contracts.counter_bits(net.timesteps, p.n_in, p.n_out)


def test_board_frame_decodes_the_counters_it_lists():
    net = random_qnet(9)
    link = LinkFormat(NetworkParams(net), 64)
    values = {name: k + 3 for k, (name, _) in enumerate(link.fields())}
    values["magic"] = MAGIC
    frame = b"".join(values[name].to_bytes(n, "little") for name, n in link.fields())
    got = link.decode(frame)
    for layer in net.layers:
        assert list(got.counters[layer.name]) == list(COUNTERS)
        assert got.counters[layer.name] == {c: values[f"{layer.name}.{c}"] for c in COUNTERS}


# ----------------------------------------------------------------------------- resources


def _dense_net(seed=1, zero_every: int = 0) -> QNet:
    """A net without zero weights (every layout visits the same synapses) whose first
    layer's weights (16 KB) are above the energy model's smallest SRAM (8 KB)."""
    rng = np.random.default_rng(seed)
    sizes = (256, 64, 10)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        fire = i < len(sizes) - 2
        w = rng.integers(-100, 100, size=(b, a))
        w[w == 0] = 1
        if zero_every:  # all-zero rows (input lines), which no layout keeps
            w[:, ::zero_every] = 0
        layers.append(Layer(name=f"fc{i + 1}", n_in=a, n_out=b, weight_bits=8, weights=w,
                            threshold=300, membrane_bits=16, leak_shifts=(3,),
                            reset=Reset.SUBTRACT if fire else Reset.NONE, fire=fire))
    return QNet(layers=tuple(layers), timesteps=3, input=InputSpec(sizes[0]))


@pytest.mark.parametrize("seed", [0, 3, 11])
@pytest.mark.parametrize("encoder", [False, True])
def test_one_resource_model_for_hw_json_fits_dse_and_energy(seed, encoder, monkeypatch):
    net = random_qnet(seed)
    layout = random_layout(seed, net)
    params = NetworkParams(net, encoder=encoder, layout=layout)
    records = layout.memories(net, encoder=encoder)
    total = sum(m.bits for m in records)
    desc = params.describe()
    assert desc["memory_bits"] == total == layout.memory_bits(net, encoder=encoder)
    by_layer = {}
    for m in records:
        if m.kind != "pixels":
            d = by_layer.setdefault(m.name.split(".")[0], {})
            d[m.kind] = d.get(m.kind, 0) + m.bits
    for layer in desc["layers"]:
        assert {k: v for k, v in layer["memory_bits"].items() if v} == by_layer[layer["name"]]
    # the fits check lists the same memories, and the board's input buffer
    link = LinkFormat(params, 64)
    mems = board_memories(params, link)
    assert mems[:-1] == records and mems[-1].kind == "input_buffer"
    rep = estimate(params, link, get_target("ulx3s-85f"))
    assert sum(m.bits for m in rep.memories) == total + link.buffer_depth * link.payload_bits
    assert [m.name for m in rep.memories[:-1]] == [m.name for m in records]
    # the energy model costs the layout's weight memories
    for layer, lay in zip(net.layers, layout.layers):
        assert sorted(weight_memories(layer, lay)) == sorted(
            (m.width, m.depth) for m in lay.memories(layer.weight_bits, layer.membrane_bits)
            if m.kind == "weights")
    if encoder:
        return
    # the DSE reports hw.json's memory_bits for the layout its point builds
    from spikeforge.dse import evaluate

    x = random_spikes(seed, net, 4)
    monkeypatch.setattr(evaluate, "_spikes", lambda s: (None, None, x, None))
    point = evaluate._Point("k", {}, ["memory_bits", "energy_hw_pj"], [], None)
    point.layout = layout
    point._hardware(net, simulate(net, x))
    assert point.values["memory_bits"] == total
    ref = simulate(net, x, layout.visits())
    want = energy_report(net, ref.counters, source="reference simulator", layout=layout)
    assert point.values["energy_hw_pj"] == pytest.approx(want["hardware_pj"], rel=1e-12)


def test_hw_json_of_spikeforge_rtl_lists_the_layout_records(tmp_path, capsys):
    net = random_qnet(12)
    qpath, _ = save_qnet(net, tmp_path / "net")
    hw = hardware_from_dict({"name": "t", "mesh": {"rows": 6, "cols": 6},
                             "tile": {"axons": 4, "neurons": 3, "synapse_memory_bits": 4 * 3 * 8,
                                      "neuron_lanes": 2}})
    write_mapping(run_mapping(net, hw, random_spikes(0, net, 4), MapOptions()), tmp_path / "map")
    mapping = tmp_path / "map" / "mapping.yaml"
    assert main(["rtl", str(qpath), "--mapping", str(mapping), "--out",
                 str(tmp_path / "rtl")]) == 0
    capsys.readouterr()
    desc = json.loads((tmp_path / "rtl" / "hw.json").read_text())
    layout = load_layout(mapping, net)
    records = layout.memories(net)
    assert desc["memories"] == [m.to_dict() for m in records]
    assert desc["memory_bits"] == sum(m.bits for m in records) == layout.memory_bits(net)
    params = NetworkParams(net, layout=layout)
    link = LinkFormat(params, 64)
    rep = estimate(params, link, get_target("ulx3s-85f"))
    assert sum(m.bits for m in rep.memories[:-1]) == desc["memory_bits"]


def test_mapper_tiles_report_the_weight_memories_of_the_layout_built():
    from spikeforge.hw.layout import layout_from_document
    from spikeforge.mapping.flow import mapping_yaml

    net = _dense_net(zero_every=7)  # the mapper leaves zero rows out, as the layout does
    hw = hardware_from_dict({"name": "t", "mesh": {"rows": 6, "cols": 6},
                             "tile": {"axons": 64, "neurons": 16,
                                      "synapse_memory_bits": 64 * 16 * 8, "neuron_lanes": 4}})
    st = run_mapping(net, hw, random_spikes(0, net, 4), MapOptions())
    doc = mapping_yaml(st)
    layout = layout_from_document(doc, net)
    for layer, lay in zip(net.layers, layout.layers):
        tiles = sum(t["memory_bits"] for t in doc["tiles"] if t["layer"] == layer.name)
        assert tiles == lay.memory_bits(layer.weight_bits, layer.membrane_bits)["weights"]


@pytest.mark.parametrize("seed", [2, 4])
def test_dse_recounts_the_reference_for_the_layout_exactly(seed):
    from spikeforge.dse.evaluate import layout_counters

    net = random_qnet(seed)
    layout = random_layout(seed, net)
    x = random_spikes(seed, net, 5)
    got = layout_counters(net, x, simulate(net, x), layout)
    want = simulate(net, x, layout.visits()).counters
    for name, cs in want.items():
        for c, v in cs.items():
            np.testing.assert_array_equal(got[name][c], v, err_msg=f"{name}.{c}")


def test_memory_records_match_what_the_generator_builds():
    from amaranth.hdl import Module
    from amaranth.lib import memory

    from spikeforge.hw.top import Network

    built = []

    def walk(obj):
        obj._MustUse__used = True  # elaborated here by hand, not through a Fragment
        if isinstance(obj, memory.Memory):
            built.append((obj.depth, obj.shape.width))
        elif isinstance(obj, Module):  # (submodule, source location) pairs
            for sub, _ in [*obj._named_submodules.values(), *obj._anon_submodules]:
                walk(sub)
        elif hasattr(obj, "elaborate"):
            walk(obj.elaborate(None))

    for seed in (3, 8):
        net = random_qnet(seed)
        layout = random_layout(seed, net)
        built.clear()
        walk(Network(net, layout=layout, encoder=True, probes=False))
        records = layout.memories(net, encoder=True)
        assert sorted(built) == sorted((m.depth, m.width) for m in records
                                       for _ in range(m.count))


# ----------------------------------------------------------------------------- energy


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="needs Icarus Verilog")
def test_verify_with_a_mapping_reports_the_energy_of_the_tiled_hardware(tmp_path, capsys):
    net = _dense_net()
    qpath, _ = save_qnet(net, tmp_path / "net")
    x = random_spikes(2, net, 3)
    np.savez(tmp_path / "in.npz", spikes=x)
    hw = hardware_from_dict({"name": "t", "mesh": {"rows": 6, "cols": 6},
                             "tile": {"axons": 64, "neurons": 16,
                                      "synapse_memory_bits": 64 * 16 * 8, "neuron_lanes": 4}})
    write_mapping(run_mapping(net, hw, random_spikes(0, net, 8), MapOptions()), tmp_path / "map")
    mapping = tmp_path / "map" / "mapping.yaml"
    args = ["verify", str(qpath), "--inputs", str(tmp_path / "in.npz"), "--simulator", "icarus"]
    assert main([*args, "--out", str(tmp_path / "flat")]) == 0
    assert main([*args, "--mapping", str(mapping), "--out", str(tmp_path / "tiled")]) == 0
    capsys.readouterr()
    flat = json.loads((tmp_path / "flat" / "energy.json").read_text())
    tiled = json.loads((tmp_path / "tiled" / "energy.json").read_text())
    assert flat["layout"] == tiled["layout"] == "as built"
    diff = 0.0
    for a, b in zip(flat["layers"], tiled["layers"]):
        ha, hb = a["hardware"], b["hardware"]
        assert a["counts"]["synaptic_events"] == b["counts"]["synaptic_events"]
        assert ha["accumulate_pj"] == hb["accumulate_pj"]
        assert ha["neuron_update_pj"] == hb["neuron_update_pj"]
        assert a["panda"] == b["panda"]
        diff += hb["weight_read_pj"] - ha["weight_read_pj"]
    assert tiled["snn_pj"] == flat["snn_pj"]
    assert tiled["hardware_pj"] - flat["hardware_pj"] == pytest.approx(diff, rel=1e-9, abs=1e-9)
    assert abs(diff) > 1e-6, "the tiled hardware reads other memories"
    # and that term is the tiled layout's own: its reads, at its memories
    layout = load_layout(mapping, net)
    ref = simulate(net, x, layout.visits())
    want = energy_report(net, ref.counters, source="reference", layout=layout)
    for got, exp in zip(tiled["layers"], want["layers"]):
        assert got["hardware"]["weight_read_pj"] == pytest.approx(
            exp["hardware"]["weight_read_pj"], rel=1e-12)
        assert got["hardware"]["memories"] == exp["hardware"]["memories"]
    assert tiled["layers"][0]["hardware"]["memories"] > flat["layers"][0]["hardware"]["memories"]
    default = energy_report(net, simulate(net, x, HardwareLayout.default(net).visits()).counters,
                            source="reference", layout=HardwareLayout.default(net))
    assert flat["hardware_pj"] == pytest.approx(default["hardware_pj"], rel=1e-12)
