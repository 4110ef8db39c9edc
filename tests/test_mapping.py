"""spikeforge.mapping: hardware YAML, partition limits, traffic by brute force, placement, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from spikeforge.errors import ConfigError, SpikeforgeError
from spikeforge.mapping import (
    ActivitySource,
    MapOptions,
    MappingError,
    NeuronOrder,
    PlacementProblem,
    PlaceMethod,
    balance_partition,
    check_partition,
    conv2d_to_dense,
    hardware_from_dict,
    load_hardware,
    measure_activity,
    measure_traffic,
    partition_network,
    place,
    run_mapping,
    write_mapping,
)
from spikeforge.mapping.analysis import xy_links
from spikeforge.mapping.cli import add_parser
from spikeforge.mapping.cost import TileCycleModel
from spikeforge.qnet import InputSpec, Layer, QNet, Reset, save_qnet
from spikeforge.sim.fuzz import random_qnet, random_spikes

ROOT = Path(__file__).resolve().parents[1]


def hw_dict(axons=8, neurons=6, memory=400, lanes=2, rows=6, cols=6, **extra) -> dict:
    return {"name": "t", "mesh": {"rows": rows, "cols": cols},
            "tile": {"axons": axons, "neurons": neurons, "synapse_memory_bits": memory,
                     "neuron_lanes": lanes}, **extra}


def dense_net(sizes, seed=0, fire_last=False, timesteps=4) -> QNet:
    rng = np.random.default_rng(seed)
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        fire = fire_last or not last
        layers.append(Layer(name=f"fc{i + 1}", n_in=a, n_out=b, weight_bits=4,
                            weights=rng.integers(-8, 8, size=(b, a)), threshold=6,
                            membrane_bits=12, leak_shifts=(3,),
                            reset=Reset.ZERO if fire else Reset.NONE, fire=fire))
    return QNet(layers=tuple(layers), timesteps=timesteps, input=InputSpec(sizes[0]))


# ------------------------------------------------------------------ hardware description

@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "hw").glob("*.yaml")))
def test_example_hardware_loads(path):
    hw = load_hardware(path)
    assert hw.n_tiles <= hw.mesh.rows * hw.mesh.cols


@pytest.mark.parametrize("change, field", [
    (lambda d: d.pop("tile"), "tile"),
    (lambda d: d["tile"].update(axons=0), "tile.axons"),
    (lambda d: d["tile"].update(neurons="many"), "tile.neurons"),
    (lambda d: d["tile"].update(neuron_lanes=7), "tile"),  # more lanes than neurons
    (lambda d: d.update(tiles=37), "-"),  # more tiles than mesh positions
    (lambda d: d.update(io={"row": 2, "col": 2}), "-"),  # inside the mesh
    (lambda d: d["mesh"].update(rows=-1), "mesh.rows"),
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d.update(noc={"hop_cycles": -1}), "noc.hop_cycles"),
])
def test_bad_hardware_is_one_line(tmp_path, change, field):
    doc = hw_dict()
    change(doc)
    p = tmp_path / "hw.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as e:
        load_hardware(p)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg
    if field != "-":
        assert f"field {field}" in msg


def test_hardware_file_problems(tmp_path):
    for text in ("mesh: [1, 2", "- a list", ""):
        p = tmp_path / "bad.yaml"
        p.write_text(text)
        with pytest.raises(ConfigError):
            load_hardware(p)
    with pytest.raises(ConfigError, match="does not exist"):
        load_hardware(tmp_path / "missing.yaml")
    msg = str(pytest.raises(ConfigError, hardware_from_dict, hw_dict(tiles=40)).value)
    assert "by 4" in msg  # says by how much


# ------------------------------------------------------------------ partition

def _random_hw(rng, net) -> dict:
    wb = max(layer.weight_bits for layer in net.layers)
    neurons = int(rng.integers(1, 10))
    return hw_dict(axons=int(rng.integers(1, 12)), neurons=neurons,
                   memory=int(rng.integers(wb, 8 * 12 * wb)), lanes=int(rng.integers(1,
                                                                                    neurons + 1)),
                   rows=16, cols=16)


@pytest.mark.parametrize("seed", range(30))
def test_partition_respects_every_limit(seed):
    rng = np.random.default_rng(seed)
    net = random_qnet(seed, max_layers=3, max_width=30)
    hw = hardware_from_dict(_random_hw(rng, net))
    act = measure_activity(net, random_spikes(seed, net, 6))
    for part in (partition_network(net, hw), partition_network(net, hw, act)):
        part = balance_partition(part, net, hw, act) if seed % 2 else part
        check_partition(part, net, hw)
        assert len(part.fragments) <= hw.n_tiles
        for f in part.fragments:  # checked here again, independently of check_partition
            layer = net.layers[f.layer]
            assert 1 <= f.n_neurons <= hw.tile.neurons
            assert f.n_axons <= hw.tile.axons
            assert f.n_axons * f.n_neurons * layer.weight_bits <= hw.tile.synapse_memory_bits
        for l, layer in enumerate(net.layers):
            held = np.zeros(layer.weights.shape, dtype=int)
            for f in (f for f in part.fragments if f.layer == l):
                held[f.neurons[0]:f.neurons[1], f.axons] += 1
            assert held.max() <= 1 and np.all(held[layer.weights != 0] == 1)


def test_balance_never_raises_the_busiest_load():
    net = dense_net([40, 24, 10])
    hw = hardware_from_dict(hw_dict(axons=16, neurons=8, memory=16 * 8 * 4, lanes=2))
    act = measure_activity(net, random_spikes(1, net, 8))
    from spikeforge.mapping.analysis import fragment_step_cycles

    before = partition_network(net, hw, act)
    after = balance_partition(before, net, hw, act)
    load = [fragment_step_cycles(p, net, hw, act).mean(axis=1).max() for p in (before, after)]
    assert load[1] <= load[0] and len(after.fragments) >= len(before.fragments)


def test_refusal_names_what_does_not_fit_and_by_how_much():
    net = dense_net([40, 30, 10])
    hw = hardware_from_dict(hw_dict(axons=8, neurons=6, memory=400, rows=2, cols=2))
    with pytest.raises(MappingError) as e:
        partition_network(net, hw)
    msg = str(e.value)
    assert "\n" not in msg and "has 4" in msg and "too many" in msg and "fc1:" in msg
    tiny = hardware_from_dict(hw_dict(memory=3))  # a 4-bit weight needs 4 bits
    with pytest.raises(MappingError, match=r"fc1: .*\(1 bit short\)"):
        partition_network(net, tiny)


# ------------------------------------------------------------------ traffic

def brute_force_traffic(part, net, spikes_in, lanes):
    """Count packets one spike (and one partial sum) at a time."""
    frags = part.fragments
    io = len(frags)
    res = measure_activity(net, spikes_in)
    n, t = spikes_in.shape[:2]
    spikes = np.zeros((io + 1, io + 1))
    partials = np.zeros_like(spikes)

    def neuron_tile(l, j):
        return next(f.index for f in frags if f.layer == l and f.chunk == 0
                    and f.neurons[0] <= j < f.neurons[1])

    for l, layer in enumerate(net.layers):
        s_in = res.inputs[l].reshape(n, t, layer.n_in)
        for smp in range(n):
            for step in range(t):
                for j in np.flatnonzero(s_in[smp, step]):
                    src = io if l == 0 else neuron_tile(l - 1, j)
                    for f in frags:
                        if f.layer == l and j in set(f.axons.tolist()):
                            spikes[src, f.index] += 1
                for f in frags:
                    if f.layer != l or f.chunk == 0:
                        continue
                    # the partial current over this chunk and every later chunk of the group
                    later = [g for g in frags if g.group == f.group and g.chunk >= f.chunk]
                    for lo in range(f.neurons[0], f.neurons[1], lanes):
                        sent = False
                        for j in range(lo, min(lo + lanes, f.neurons[1])):
                            cur = sum(int(layer.weights[j, a]) for g in later for a in g.axons
                                      if s_in[smp, step, a])
                            sent = sent or cur != 0
                        partials[f.index, f.index - 1] += sent
        if l == len(net.layers) - 1 and layer.fire:
            out = res.outputs[l].reshape(n, t, layer.n_out)
            for j in np.flatnonzero(out.sum(axis=(0, 1))):
                spikes[neuron_tile(l, j), io] += out[:, :, j].sum()
    return spikes / n, partials / n


@pytest.mark.parametrize("seed", range(6))
def test_traffic_equals_brute_force_count(seed):
    net = dense_net([14, 11, 9, 5], seed=seed, fire_last=seed % 2 == 0)
    hw = hardware_from_dict(hw_dict(axons=5, neurons=4, memory=5 * 4 * 4, lanes=1 + seed % 3,
                                    rows=8, cols=8))
    x = random_spikes(seed, net, 5)
    act = measure_activity(net, x)
    part = balance_partition(partition_network(net, hw, act), net, hw, act)
    traffic = measure_traffic(part, net, act, hw.tile.neuron_lanes)
    spikes, partials = brute_force_traffic(part, net, x, hw.tile.neuron_lanes)
    np.testing.assert_allclose(traffic.spikes, spikes)
    np.testing.assert_allclose(traffic.partials, partials)
    assert traffic.partials.sum() > 0  # the case exercises fan-in chains


# ------------------------------------------------------------------ placement

@pytest.mark.parametrize("seed", range(12))
def test_placement_never_worse_than_in_order(seed):
    rng = np.random.default_rng(seed)
    hw = hardware_from_dict(hw_dict(rows=int(rng.integers(1, 5)), cols=int(rng.integers(1, 5))))
    n_f = int(rng.integers(1, hw.n_tiles + 1))
    traffic = rng.random((n_f + 1, n_f + 1)) * (rng.random((n_f + 1, n_f + 1)) < 0.4)
    np.fill_diagonal(traffic, 0)
    pb = PlacementProblem(traffic, hw)
    base = pb.cost(np.arange(n_f))
    for method in PlaceMethod:
        pl = place(pb, method, seed=seed, moves=3000)
        assert pl.cost <= base + 1e-9
        assert len(set(pl.slots.tolist())) == n_f
        assert pl.cost == pytest.approx(pb.cost(pl.slots))


def test_placement_finds_the_obvious_layout():
    # a chain io -> 0 -> 1 -> 2 -> 3 laid out backwards is fixed by every optimizing method
    hw = hardware_from_dict(hw_dict(rows=1, cols=4))
    t = np.zeros((5, 5))
    for a, b in ((4, 3), (3, 2), (2, 1), (1, 0)):
        t[a, b] = 10.0
    pb = PlacementProblem(t, hw)
    for method in (PlaceMethod.GREEDY, PlaceMethod.ANNEAL):
        assert pb.cost(place(pb, method, moves=2000).slots) == pytest.approx(40.0)


def test_xy_route():
    assert xy_links((0, 0), (1, 2)) == [((0, 0), (0, 1)), ((0, 1), (0, 2)), ((0, 2), (1, 2))]
    assert xy_links((2, 2), (2, 2)) == []


# ------------------------------------------------------------------ flow, determinism, output

def test_flow_is_deterministic_under_a_seed(tmp_path):
    net = dense_net([30, 20, 12, 6], seed=3)
    hw = hardware_from_dict(hw_dict(axons=12, neurons=6, memory=12 * 6 * 4, lanes=2))
    x = random_spikes(2, net, 8)
    runs = [run_mapping(net, hw, x, MapOptions(PlaceMethod.ANNEAL, seed=5, moves=4000))
            for _ in range(2)]
    a, b = runs
    assert np.array_equal(a.placement.slots, b.placement.slots)
    assert a.analysis.as_dict() == b.analysis.as_dict()
    paths = [write_mapping(r, tmp_path / str(i)) for i, r in enumerate(runs)]
    assert paths[0]["mapping"].read_bytes() == paths[1]["mapping"].read_bytes()


def test_analysis_figures_are_consistent():
    net = dense_net([30, 20, 6], seed=4)
    hw = hardware_from_dict(hw_dict(axons=12, neurons=6, memory=12 * 6 * 4, lanes=3))
    st = run_mapping(net, hw, random_spikes(3, net, 6), MapOptions(PlaceMethod.GREEDY))
    a = st.analysis
    assert a.busiest_cycles_per_step == max(a.tile_load)
    assert a.load_ratio == pytest.approx(max(a.tile_load) / np.mean(a.tile_load))
    assert a.hops <= a.hops_in_order
    # every step costs at least the overheads and the neuron update of its tile
    upd = min(-(-f.n_neurons // 3) for f in st.partition.fragments if f.chunk == 0)
    assert min(a.tile_load) >= TileCycleModel().accept_overhead
    assert a.busiest_cycles_per_step >= upd + TileCycleModel().accept_overhead
    assert a.predicted_cycles_per_sample >= a.busiest_cycles_per_step
    assert a.throughput_samples_per_s == pytest.approx(
        hw.clock_mhz * 1e6 / a.predicted_cycles_per_sample)


def test_conv_lowering_matches_a_direct_convolution():
    rng = np.random.default_rng(0)
    w = rng.integers(-4, 5, size=(3, 2, 3, 3))
    x = rng.integers(0, 2, size=(2, 7, 6))
    for stride, pad in ((1, 0), (2, 1)):
        ho, wo = (7 + 2 * pad - 3) // stride + 1, (6 + 2 * pad - 3) // stride + 1
        xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
        ref = np.array([[[np.sum(w[o] * xp[:, y * stride:y * stride + 3,
                                            c * stride:c * stride + 3])
                          for c in range(wo)] for y in range(ho)] for o in range(3)])
        chw = conv2d_to_dense(w, (2, 7, 6), stride, pad, NeuronOrder.CHW)
        hwc = conv2d_to_dense(w, (2, 7, 6), stride, pad, NeuronOrder.HWC)
        assert np.array_equal(chw @ x.ravel(), ref.ravel())
        assert np.array_equal(hwc @ x.ravel(), ref.transpose(1, 2, 0).ravel())


# ------------------------------------------------------------------ command line

def _cli(argv):
    parser = argparse.ArgumentParser(prog="spikeforge")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_map_command_writes_mapping_report_and_picture(tmp_path, capsys):
    net = dense_net([20, 12, 5], seed=1)
    qpath, _ = save_qnet(net, tmp_path / "net")
    hw = tmp_path / "hw.yaml"
    hw.write_text(yaml.safe_dump(hw_dict(axons=8, neurons=6, memory=8 * 6 * 4)))
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.random.default_rng(0).random((10, 20)))  # intensities, rate coded
    out = tmp_path / "out"
    assert _cli(["map", str(qpath), "--hw", str(hw), "--out", str(out), "--inputs",
                 str(inputs), "--moves", "2000"]) == 0
    doc = yaml.safe_load((out / "mapping.yaml").read_text())
    assert doc["format"] == "mapping/1" and doc["qnet"] == net.name
    report = json.loads((out / "report.json").read_text())
    assert report["activity"]["source"] == ActivitySource.GIVEN.value
    assert len(doc["tiles"]) == report["tiles_used"]
    slots = [t["slot"] for t in doc["tiles"]]
    assert len(set(slots)) == len(slots)
    for layer in net.layers:  # every neuron has exactly one neuron tile
        owned = sorted(tuple(t["neurons"]) for t in doc["tiles"]
                       if t["layer"] == layer.name and t["role"] == "neuron")
        assert owned[0][0] == 0 and owned[-1][1] == layer.n_out
        assert all(a[1] == b[0] for a, b in zip(owned[:-1], owned[1:]))
    assert (out / "mesh.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("problem", ["hw", "fit", "inputs"])
def test_map_command_bad_input_is_one_line(tmp_path, problem):
    net = dense_net([20, 12, 5], seed=1)
    qpath, _ = save_qnet(net, tmp_path / "net")
    hw = tmp_path / "hw.yaml"
    doc = hw_dict(axons=8, neurons=6, memory=8 * 6 * 4, rows=1 if problem == "fit" else 6)
    if problem == "hw":
        doc["tile"]["axons"] = -3
    hw.write_text(yaml.safe_dump(doc))
    argv = ["map", str(qpath), "--hw", str(hw), "--out", str(tmp_path / "o")]
    if problem == "inputs":
        np.save(tmp_path / "x.npy", np.zeros((3, 7)))
        argv += ["--inputs", str(tmp_path / "x.npy")]
    with pytest.raises(SpikeforgeError) as e:
        _cli(argv)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "o").exists()


def test_map_is_wired_into_the_spikeforge_cli(tmp_path, capsys):
    from spikeforge import cli

    if "map" not in cli.build_parser()._subparsers._group_actions[0].choices:
        pytest.skip("`spikeforge map` is not wired into spikeforge/cli.py yet")
    hw = tmp_path / "hw.yaml"
    hw.write_text("mesh: {rows: 0, cols: 2}\ntile: {axons: 1, neurons: 1, "
                  "synapse_memory_bits: 8}\n")
    qpath, _ = save_qnet(dense_net([4, 3]), tmp_path / "n")
    assert cli.main(["map", str(qpath), "--hw", str(hw), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mesh.rows" in err


def test_map_command_without_inputs_says_activity_is_synthetic(tmp_path):
    qpath, _ = save_qnet(dense_net([12, 8, 4], seed=2), tmp_path / "net")
    hw = tmp_path / "hw.yaml"
    hw.write_text(yaml.safe_dump(hw_dict(axons=8, neurons=6, memory=8 * 6 * 4)))
    out = tmp_path / "out"
    assert _cli(["map", str(qpath), "--hw", str(hw), "--out", str(out), "--samples", "4",
                 "--method", "greedy"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["activity"] == {"source": "synthetic", "samples": 4, "timesteps": 4}
