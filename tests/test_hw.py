"""Each hardware block in Amaranth's simulator against the reference (docs/QNET.md §2, §5)."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import Value
from amaranth.sim import Simulator

from spikeforge.hw import Crossbar, LayerParams, NetworkParams, NeuronLane, to_verilog
from spikeforge.qnet import SPIKING_RESETS, InputSpec, Layer, QNet, Reset, signed_range
from spikeforge.reference import layer_step, simulate
from spikeforge.sim.amaranth_sim import run_amaranth
from spikeforge.sim.fuzz import random_layout, random_qnet, random_spikes
from spikeforge.sim.protocol import compare, expected

N_FUZZ = 60  # random QNets in the default suite (the slow marker runs thousands)


def _single_neuron_layer(shifts, reset, fire, vb=8, wb=4, n_in=3):
    return Layer(name="x", n_in=n_in, n_out=1, weight_bits=wb, weights=np.zeros((1, n_in)),
                 threshold=5, membrane_bits=vb, leak_shifts=shifts,
                 reset=reset if fire else Reset.NONE, fire=fire)


@pytest.mark.parametrize("shifts", [(), (1,), (3, 4), (2, 5, 6)])
@pytest.mark.parametrize("mode", [*(r.value for r in SPIKING_RESETS), "readout"])
def test_neuron_lane_matches_reference(shifts, mode):
    fire = mode != "readout"
    layer = _single_neuron_layer(shifts, Reset(mode) if fire else Reset.NONE, fire)
    p = LayerParams(layer, timesteps=1)
    lane = NeuronLane(p)
    rng = np.random.default_rng(len(shifts) * 7 + len(mode))
    vlo, vhi = signed_range(p.membrane_bits)
    alo, ahi = signed_range(p.acc_bits)
    # Random points plus the corners that saturate at both ends.
    cases = [(vhi, ahi, vhi, 1), (vlo, alo, vlo, vhi), (vhi, 0, 0, vhi), (-1, 0, 0, 1),
             (0, 0, 0, 1)]
    cases += [(int(rng.integers(vlo, vhi + 1)), int(rng.integers(alo, ahi + 1)),
               int(rng.integers(vlo, vhi + 1)), int(rng.integers(1, vhi + 1)))
              for _ in range(150)]
    got = []
    state = p.reset_rule.subtract_next  # the lane reads the previous spike
    prevs = [int(rng.integers(0, 2)) if state else 0 for _ in cases]

    async def bench(ctx):
        for (v, cur, bias, theta), prev in zip(cases, prevs):
            if state:
                ctx.set(lane.s_prev, prev)
            ctx.set(lane.v, v)
            ctx.set(lane.current, cur)
            ctx.set(lane.bias, bias)
            ctx.set(lane.threshold, theta)
            got.append((ctx.get(lane.v_next), ctx.get(lane.spike)))

    sim = Simulator(lane)
    sim.add_testbench(bench)
    sim.run()
    for (v, cur, bias, theta), prev, (v_next, spike) in zip(cases, prevs, got):
        ref_layer = Layer(name="x", n_in=1, n_out=1, weight_bits=p.acc_bits + 1 if
                          p.acc_bits + 1 <= 16 else 16, weights=np.array([[cur]]),
                          threshold=theta, membrane_bits=p.membrane_bits, leak_shifts=shifts,
                          reset=layer.reset, fire=fire, bias=np.array([bias]))
        v_ref, s_ref = layer_step(ref_layer, np.array([[v]]), np.array([[1]]), np.array([[prev]]))
        assert (v_next, spike) == (int(v_ref[0, 0]), int(s_ref[0, 0])), (v, cur, bias, theta,
                                                                          prev)


def test_crossbar_accumulates_weight_rows():
    """Per step each axon spikes at most once; the sum must be exact at the range ends."""
    rng = np.random.default_rng(3)
    n_in, n_out, wb = 7, 5, 6
    lo, hi = signed_range(wb)
    w = rng.integers(lo, hi + 1, size=(n_out, n_in))
    w[1, :] = hi  # a column that reaches the top of the accumulator range
    w[2, :] = lo  # and one that reaches the bottom
    layer = Layer(name="x", n_in=n_in, n_out=n_out, weight_bits=wb, weights=w, threshold=1,
                  membrane_bits=16)
    lines = [6, 0, 2, 3, 5]  # rows hold these lines, in this order; lines 1 and 4 are absent
    xbar = Crossbar(LayerParams(layer, timesteps=1), lines, (1, 4))
    w = w[1:4]
    steps = [list(range(n_in)), [], [3], *(
        sorted(rng.choice(n_in, size=int(rng.integers(1, n_in + 1)), replace=False).tolist())
        for _ in range(8))]
    seen = []

    async def bench(ctx):
        for axons in steps:
            for a in axons:
                if a not in lines:
                    continue
                ctx.set(xbar.row.valid, 1)
                ctx.set(xbar.row.payload, lines.index(a))
                await ctx.tick()
            ctx.set(xbar.row.valid, 0)
            await ctx.tick()
            assert not ctx.get(xbar.busy)
            seen.append([ctx.get(Value.cast(xbar.acc[j]).as_signed()) for j in range(3)])
            ctx.set(xbar.clear, 1)
            await ctx.tick()
            ctx.set(xbar.clear, 0)

    sim = Simulator(xbar)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for axons, acc in zip(steps, seen):
        s = np.zeros(n_in, dtype=np.int64)
        s[[a for a in axons if a in lines]] = 1
        assert acc == (w @ s).tolist(), axons


def _fuzz(seed: int, samples: int = 3) -> None:
    """Random QNet, random spikes; odd seeds get random stalls, seeds 2 and 3 mod 4 random tiles."""
    net = random_qnet(seed)
    x = random_spikes(seed, net, samples)
    stalls = seed % 2 == 1
    layout = random_layout(seed, net) if seed % 4 >= 2 else None
    rtl = run_amaranth(net, x, stall_seed=seed if stalls else None, layout=layout)
    mismatches = compare(expected(net, x, layout), rtl)
    assert not mismatches, "\n".join(map(str, mismatches[:3]))
    if not stalls:  # the documented bounds (hw.json) hold without backpressure
        params = NetworkParams(net, layout=layout)
        assert (rtl.cycles <= params.max_cycles_per_sample).all()
        assert (rtl.cycles >= params.min_cycles_per_sample).all()


@pytest.mark.parametrize("seed", range(N_FUZZ))
def test_network_random_qnets(seed):
    _fuzz(seed)


def test_fuzz_reaches_the_corners():
    """The random cases must actually saturate, spike, reset both ways and stay silent."""
    seen = {"sat_hi": 0, "sat_lo": 0, **{r.value: 0 for r in SPIKING_RESETS}, "spike": 0,
            "silent": 0}
    for seed in range(N_FUZZ):
        net = random_qnet(seed)
        x = random_spikes(seed, net, 3)
        ref = simulate(net, x)
        for layer in net.layers:
            lo, hi = layer.membrane_range
            v = ref.membrane[layer.name]
            seen["sat_hi"] += int((v == hi).any())
            seen["sat_lo"] += int((v == lo).any())
            if layer.fire:
                seen[layer.reset.value] += 1
                total = ref.spikes[layer.name].sum()
                seen["spike" if total else "silent"] += 1
    assert all(count >= 3 for count in seen.values()), seen


def test_pipelined_layers_under_backpressure_give_identical_results():
    net = random_qnet(11, max_layers=3, max_width=10, max_timesteps=6)
    x = random_spikes(5, net, 4)
    plain = run_amaranth(net, x)
    stalled = run_amaranth(net, x, stall_seed=99)
    assert not compare(expected(net, x), plain)
    assert not compare(expected(net, x), stalled)
    assert (stalled.cycles > plain.cycles).all()


def test_verilog_is_deterministic_and_multiplier_free():
    net = random_qnet(4)
    a, b = to_verilog(net), to_verilog(net)
    assert a == b
    body = "\n".join(line for line in a.splitlines() if not line.strip().startswith("//"))
    assert " * " not in body


def test_widths_derive_from_the_qnet():
    w = np.array([[127, -128, 5]])
    layer = Layer(name="x", n_in=3, n_out=1, weight_bits=8, weights=w, threshold=3,
                  membrane_bits=12)
    p = LayerParams(layer, timesteps=10)
    assert layer.accumulator_bits == 8 + 2  # docs/QNET.md §2's bound: ceil(log2(3 + 1)) = 2
    assert p.acc_bits == 9  # exact for these weights: currents lie in [-128, 132]
    assert p.counter_bits == (10 * 3 * 1).bit_length()
    net = QNet(layers=(layer,), timesteps=10, input=InputSpec(3))
    mem = NetworkParams(net).layer_memories()[0]
    # 3 rows of one 8-bit weight; one 12-bit membrane; a 3-word line table (valid, chunk, row)
    assert mem == {"weights": 24, "membranes": 12, "line_table": 3 * (1 + 1 + 2)}
    assert "[8:0]" in to_verilog(net)  # the 9-bit accumulator appears


def test_bad_parameters_are_refused():
    with pytest.raises(TypeError, match="LayerParams"):
        NeuronLane("not params")
    # The half-built component would warn "created but never used" when collected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
    layer = _single_neuron_layer((), Reset.ZERO, True)
    with pytest.raises(ValueError, match="timesteps"):
        LayerParams(layer, timesteps=0)


@pytest.mark.slow
@pytest.mark.parametrize("block", range(20))
def test_network_random_qnets_long(block):
    for seed in range(1000 + block * 100, 1000 + (block + 1) * 100):
        _fuzz(seed, samples=4)


def test_checker_flags_exactly_the_failing_sample():
    from spikeforge.sim.driver import Checker

    net = random_qnet(8)
    x = random_spikes(8, net, 3)
    rtl = run_amaranth(net, x)
    good, bad = [], []
    wrong = expected(net, x)
    wrong.membrane[net.layers[-1].name][1] += 1
    for s in range(3):
        Checker(expected(net, x), good.append)(s, rtl)
        Checker(wrong, bad.append)(s, rtl)
    assert good == []
    assert {m.sample for m in bad} == {1} and bad[0].what == "membrane"


def test_rtl_command_writes_verilog_and_hw_json(tmp_path):
    import json

    from spikeforge.cli import main
    from spikeforge.qnet import save_qnet

    net = random_qnet(6)
    qpath, _ = save_qnet(net, tmp_path / "net")
    assert main(["rtl", str(qpath), "--out", str(tmp_path / "rtl")]) == 0
    desc = json.loads((tmp_path / "rtl" / "hw.json").read_text())
    assert desc["multipliers"] == 0 and desc["encoder"] is None
    assert [layer["name"] for layer in desc["layers"]] == [l.name for l in net.layers]
    weights = sum(int(np.any(l.weights != 0, axis=0).sum()) * l.n_out * l.weight_bits
                  for l in net.layers)  # zero rows are left out
    assert sum(layer["memory_bits"]["weights"] for layer in desc["layers"]) == weights
    assert desc["memory_bits"] == sum(sum(layer["memory_bits"].values())
                                      for layer in desc["layers"])
    assert (tmp_path / "rtl" / "spikeforge_top.v").stat().st_size > 0
