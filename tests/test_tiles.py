"""Tiled hardware (issue 5): layouts from mappings, lanes, zero rows, bounds, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from spikeforge.cli import main
from spikeforge.hw import to_verilog
from spikeforge.hw.cycles import cycle_bounds, predicted_cycles
from spikeforge.hw.layout import Group, HardwareLayout, LayerLayout, LayoutError, load_layout
from spikeforge.mapping import MapOptions, hardware_from_dict, run_mapping, write_mapping
from spikeforge.qnet import InputSpec, Layer, QNet, Reset, save_qnet
from spikeforge.reference import simulate
from spikeforge.sim.amaranth_sim import run_amaranth
from spikeforge.sim.fast import run_fast
from spikeforge.sim.fuzz import random_layout, random_qnet, random_spikes
from spikeforge.sim.protocol import compare, expected
from spikeforge.sim.tools import simulator_available


def _net(sizes=(20, 12, 5), seed=1, timesteps=4, zero_lines=()) -> QNet:
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        fire = i < len(sizes) - 2
        w = rng.integers(-8, 8, size=(b, a))
        if i == 0:
            w[:, list(zero_lines)] = 0
        layers.append(Layer(name=f"fc{i + 1}", n_in=a, n_out=b, weight_bits=4, weights=w,
                            threshold=6, membrane_bits=12, leak_shifts=(3,),
                            reset=Reset.SUBTRACT if fire else Reset.NONE, fire=fire))
    return QNet(layers=tuple(layers), timesteps=timesteps, input=InputSpec(sizes[0]))


def _map(net: QNet, out: Path, axons=8, neurons=6, lanes=2) -> Path:
    hw = hardware_from_dict({"name": "t", "mesh": {"rows": 6, "cols": 6},
                             "tile": {"axons": axons, "neurons": neurons,
                                      "synapse_memory_bits": axons * neurons * 4,
                                      "neuron_lanes": lanes}})
    x = random_spikes(0, net, 8)
    write_mapping(run_mapping(net, hw, x, MapOptions()), out)
    return out / "mapping.yaml"


def test_layout_from_a_mapping_spans_several_tiles_and_matches_the_reference(tmp_path):
    net = _net(zero_lines=(3, 4))
    layout = load_layout(_map(net, tmp_path / "map"), net)
    fc1 = layout.layer("fc1")
    assert len(fc1.groups) >= 2 and max(len(g.chunks) for g in fc1.groups) >= 2
    assert fc1.lanes == 2 and all(g.size <= 6 for g in fc1.groups)
    for g in fc1.groups:  # every chunk fits 8 axons; the zero lines have no row
        assert all(len(c) <= 8 for c in g.chunks)
        assert not {3, 4} & set(g.lines.tolist())
    x = random_spikes(2, net, 4)
    x[:, :, [3, 4]] = 1  # spikes on skipped rows must change nothing but cost nothing
    rtl = run_amaranth(net, x, layout=layout, stall_seed=5)
    ref = expected(net, x, layout)
    assert not compare(ref, rtl)
    plain = simulate(net, x)  # without the layout the reference counts every row
    skipped = 2 * net.layers[0].n_out * net.timesteps  # lines 3 and 4 spike at every step
    np.testing.assert_array_equal(ref.counters["fc1"]["synaptic_events"],
                                  plain.counters["fc1"]["synaptic_events"] - skipped)
    np.testing.assert_array_equal(ref.membrane["fc2"], plain.membrane["fc2"])


@pytest.mark.parametrize("lanes", [1, 3, 5, 12])
def test_lanes_not_dividing_the_group_give_identical_results(lanes):
    net = _net(sizes=(9, 12, 4), seed=4)
    x = random_spikes(4, net, 3)
    layout = HardwareLayout.default(net, lanes)
    rtl = run_amaranth(net, x, layout=layout)
    assert not compare(expected(net, x, layout), rtl)
    # fewer lanes: more update cycles per step, never fewer
    if lanes < 12:
        full = run_amaranth(net, x)
        assert (rtl.cycles > full.cycles).all()


@pytest.mark.parametrize("seed", range(6))
def test_pipelined_and_unpipelined_networks_agree(seed):
    net = random_qnet(50 + seed, max_layers=3, max_width=9)
    x = random_spikes(seed, net, 3)
    layout = random_layout(seed, net)
    ref = expected(net, x, layout)
    piped = run_amaranth(net, x, layout=layout)
    locked = run_amaranth(net, x, layout=layout, lockstep=True)
    assert not compare(ref, piped) and not compare(ref, locked)
    if len(net.layers) > 1:
        assert (locked.cycles >= piped.cycles).all()


def test_cycles_respect_the_lower_bounds():
    net = _net(sizes=(16, 10, 6), seed=2, timesteps=5)
    x = random_spikes(3, net, 6)
    for lanes in (1, 4):
        layout = HardwareLayout.default(net, lanes)
        rtl = run_amaranth(net, x, layout=layout)
        b = cycle_bounds(net, layout, x)
        assert (rtl.cycles >= b.per_step).all() and (b.per_step >= b.pipelined).all()
        assert (rtl.cycles >= b.link).all()


def test_layout_json_round_trip_and_deterministic_verilog():
    net = random_qnet(12)
    layout = random_layout(3, net)
    again = HardwareLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert again == layout
    assert to_verilog(net, layout=layout) == to_verilog(net, layout=again)


@pytest.mark.skipif(simulator_available("icarus") is not None, reason="needs iverilog")
def test_tiled_network_on_icarus(tmp_path):
    net = _net(zero_lines=(0,))
    layout = load_layout(_map(net, tmp_path / "map"), net, lanes=3)
    x = random_spikes(7, net, 5)
    run = run_fast(net, x, simulator="icarus", build_dir=tmp_path / "b", layout=layout)
    assert not run.result.errors and not compare(expected(net, x, layout), run.result)


def test_rtl_command_with_a_mapping_writes_hw_json(tmp_path):
    net = _net()
    qpath, _ = save_qnet(net, tmp_path / "net")
    mapping = _map(net, tmp_path / "map")
    out = tmp_path / "rtl"
    assert main(["rtl", str(qpath), "--mapping", str(mapping), "--lanes", "3",
                 "--out", str(out)]) == 0
    desc = json.loads((out / "hw.json").read_text())
    layout = load_layout(mapping, net, lanes=3)
    assert desc["tiles"] == sum(lay.tiles() for lay in layout.layers)
    assert desc["layout"] == str(mapping)
    fc1 = desc["layers"][0]
    biggest = max(g.size for g in layout.layer("fc1").groups)
    assert fc1["neuron_lanes"] == layout.layer("fc1").lanes == min(3, biggest)
    rows = sum(t["rows"] for t in fc1["tiles"])
    assert fc1["memory_bits"]["weights"] == sum(
        t["weight_memory"]["bits"] for t in fc1["tiles"]) and rows >= 20
    assert desc["max_cycles_per_sample"] >= desc["min_cycles_per_sample"] > 0


def _mapping_doc(tmp_path, net):
    return yaml.safe_load(_map(net, tmp_path / "map").read_text())


@pytest.mark.parametrize("problem, message", [
    ("format", "format: must be mapping/1"),
    ("lanes", "neuron_lanes"),
    ("missing_layer", "no tile holds layer fc2"),
    ("extra_layer", "layer zz is not in the QNet"),
    ("lost_line", "nonzero weights into neurons"),
    ("neurons", "is not a [lo, hi) range"),
    ("axons", "is not a [lo, hi) range"),
])
def test_bad_mapping_is_one_line_and_writes_nothing(tmp_path, capsys, problem, message):
    net = _net()
    qpath, _ = save_qnet(net, tmp_path / "net")
    doc = _mapping_doc(tmp_path, net)
    if problem == "format":
        doc["format"] = "mapping/0"
    elif problem == "lanes":
        del doc["hardware"]["tile"]["neuron_lanes"]
    elif problem == "missing_layer":
        doc["tiles"] = [t for t in doc["tiles"] if t["layer"] != "fc2"]
    elif problem == "extra_layer":
        doc["tiles"][0] = dict(doc["tiles"][0], layer="zz")
    elif problem == "lost_line":
        t = next(t for t in doc["tiles"] if t["layer"] == "fc1")
        t["axons"] = [[t["axons"][0][0], t["axons"][0][1] - 1]] + t["axons"][1:]
    elif problem == "neurons":
        doc["tiles"][0]["neurons"] = [3]
    elif problem == "axons":
        doc["tiles"][0]["axons"] = [[5, 2]]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    out = tmp_path / "never"
    assert main(["rtl", str(qpath), "--mapping", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "bad.yaml" in err
    assert not out.exists()


def test_mapping_of_another_network_is_refused(tmp_path, capsys):
    net = _net()
    other = _net(sizes=(20, 14, 5))
    qpath, _ = save_qnet(other, tmp_path / "other")
    mapping = _map(net, tmp_path / "map")
    assert main(["rtl", str(qpath), "--mapping", str(mapping), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mapping.yaml" in err and "fc1" in err
    with pytest.raises(LayoutError, match="groups end at 12, not at 14"):
        load_layout(mapping, other)


def test_bad_lanes_and_bad_groups_are_refused(tmp_path, capsys):
    net = _net()
    qpath, _ = save_qnet(net, tmp_path / "net")
    assert main(["rtl", str(qpath), "--lanes", "0", "--out", str(tmp_path / "o")]) == 2
    assert "lanes" in capsys.readouterr().err
    lay = HardwareLayout.default(net)
    gap = LayerLayout("fc1", 20, 12, (Group(0, 5, (tuple(range(20)),)),
                                      Group(6, 12, (tuple(range(20)),))), 2)
    with pytest.raises(LayoutError, match="in order"):
        HardwareLayout((gap, lay.layers[1])).check(net)
    twice = LayerLayout("fc1", 20, 12, (Group(0, 12, (tuple(range(20)), (0,))),), 2)
    with pytest.raises(LayoutError, match="two chunks"):
        HardwareLayout((twice, lay.layers[1])).check(net)


@pytest.mark.parametrize("seed", range(12))
def test_cycle_model_predicts_the_rtl_exactly(seed):
    net = random_qnet(200 + seed)
    x = random_spikes(seed, net, 3)
    layout = random_layout(seed, net) if seed % 2 else HardwareLayout.default(net)
    rtl = run_amaranth(net, x, layout=layout)
    np.testing.assert_array_equal(predicted_cycles(net, layout, x), rtl.cycles)


def test_mapping_predicts_the_cycles_of_the_rtl_it_builds(tmp_path):
    net = _net(sizes=(20, 12, 5), seed=3, timesteps=5)
    hw = hardware_from_dict({"name": "t", "mesh": {"rows": 6, "cols": 6},
                             "tile": {"axons": 8, "neurons": 6, "synapse_memory_bits": 8 * 6 * 4,
                                      "neuron_lanes": 2}})
    x = random_spikes(1, net, 6)
    st = run_mapping(net, hw, x, MapOptions())
    write_mapping(st, tmp_path)
    rtl = run_amaranth(net, x, layout=load_layout(tmp_path / "mapping.yaml", net))
    assert st.analysis.rtl_cycles_per_sample == pytest.approx(rtl.cycles.mean())
    doc = yaml.safe_load((tmp_path / "mapping.yaml").read_text())
    assert doc["predicted"]["rtl_cycles_per_sample"] == pytest.approx(rtl.cycles.mean())


def test_synthesis_top_without_probes_keeps_spikes_counters_and_prediction():
    net = _net(sizes=(10, 8, 3), seed=5)
    x = random_spikes(5, net, 3)
    ref = expected(net, x)
    full = run_amaranth(net, x)
    assert not compare(ref, full)
    # the ports stay; the firing layer's membrane copy is gone from the Verilog
    lean = to_verilog(net, probes=False)
    assert lean != to_verilog(net) and len(lean) < len(to_verilog(net))


@pytest.mark.parametrize("seed", range(3))
def test_on_chip_encoder_in_front_of_random_tiles(seed):
    from spikeforge.encoding import onchip_rate_encode, sample_seeds

    net = random_qnet(600 + seed)
    layout = random_layout(seed, net)
    rng = np.random.default_rng(seed)
    px = rng.integers(0, 256, (3, net.n_in)).astype(np.uint8)
    seeds = sample_seeds(3, base=seed + 1)
    rtl = run_amaranth(net, px, seeds=seeds, layout=layout, stall_seed=seed)
    ref = expected(net, onchip_rate_encode(px, net.timesteps, seeds), layout)
    assert not rtl.errors and not compare(ref, rtl)
