"""Energy model (docs/ENERGY.md): Horowitz table, interpolation rules, report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikeforge.energy import E_AC_PJ, E_MAC_PJ, RULES, add_energy_pj, energy_report, sram_read_pj
from spikeforge.qnet import InputSpec, Layer, QNet, Reset

KB = 1024 * 8  # bits in a kilobyte
MB = 1024 * KB

# ----------------------------------------------------------------------------- table points


def test_panda_constants():
    assert E_AC_PJ == 0.1
    assert E_MAC_PJ == 3.2


@pytest.mark.parametrize(("bits", "pj"), [(8, 0.03), (32, 0.1)])
def test_add_table_points(bits, pj):
    assert add_energy_pj(bits) == pytest.approx(pj, rel=1e-12)


@pytest.mark.parametrize("bits", [9, 12, 16, 20, 24, 31])
def test_add_linear_between_8_and_32(bits):
    expected = 0.03 + (bits - 8) * (0.1 - 0.03) / (32 - 8)
    assert add_energy_pj(bits) == pytest.approx(expected, rel=1e-12)


def test_add_16_bits_is_the_midpoint_of_8_and_24():
    # linear: equal steps in width give equal steps in energy
    step = add_energy_pj(16) - add_energy_pj(8)
    assert add_energy_pj(24) - add_energy_pj(16) == pytest.approx(step)
    assert add_energy_pj(20) == pytest.approx((0.03 + 0.1) / 2)


@pytest.mark.parametrize("bits", [1, 2, 4, 7])
def test_add_proportional_below_8(bits):
    assert add_energy_pj(bits) == pytest.approx(0.03 * bits / 8, rel=1e-12)


def test_add_monotone_and_continuous_at_8():
    values = [add_energy_pj(b) for b in range(1, 49)]
    assert all(a < b for a, b in zip(values, values[1:]))
    assert add_energy_pj(7) < add_energy_pj(8) < add_energy_pj(9)


@pytest.mark.parametrize(("array_bits", "pj"), [(8 * KB, 10.0), (32 * KB, 20.0), (MB, 100.0)])
def test_sram_table_points_64_bit_words(array_bits, pj):
    assert sram_read_pj(64, array_bits) == pytest.approx(pj, rel=1e-12)


@pytest.mark.parametrize("array_bits", [8 * KB, 32 * KB, MB, 100 * KB, 100])
def test_sram_scales_with_word_width(array_bits):
    e64 = sram_read_pj(64, array_bits)
    assert sram_read_pj(32, array_bits) == pytest.approx(e64 / 2)
    assert sram_read_pj(128, array_bits) == pytest.approx(e64 * 2)
    assert sram_read_pj(8, array_bits) == pytest.approx(e64 / 8)
    assert sram_read_pj(18, array_bits) == pytest.approx(e64 * 18 / 64)


def test_sram_log_linear_between_points():
    # 16 KB lies halfway between 8 KB and 32 KB in log2(size)
    assert sram_read_pj(64, 16 * KB) == pytest.approx(15.0)
    # 256 KB: log2 step 3 of the 5 between 32 KB and 1 MB
    assert sram_read_pj(64, 256 * KB) == pytest.approx(20.0 + 3 / 5 * 80.0)


def test_sram_floor_below_8_kb():
    for bits in (1, 64, 8 * 1024, 4 * KB, 8 * KB - 8):
        assert sram_read_pj(64, bits) == pytest.approx(10.0)


def test_sram_beyond_1_mb_continues_last_slope():
    assert sram_read_pj(64, 2 * MB) == pytest.approx(100.0 + 80.0 / 5)
    assert sram_read_pj(64, 4 * MB) > sram_read_pj(64, 2 * MB) > sram_read_pj(64, MB)


# ----------------------------------------------------------------------------- report


def _net() -> QNet:
    """fc1: 512 -> 64 at 8 bits (a 64 x 512-bit word array = 32 KB); fc2: readout with bias."""
    rng = np.random.default_rng(0)
    fc1 = Layer(
        name="fc1", n_in=512, n_out=64, weight_bits=8,
        weights=rng.integers(-128, 128, size=(64, 512)), threshold=100, membrane_bits=16,
        leak_shifts=(3, 4), reset=Reset.ZERO, fire=True,
    )
    fc2 = Layer(
        name="fc2", n_in=64, n_out=3, weight_bits=6,
        weights=rng.integers(-32, 32, size=(3, 64)), threshold=1, membrane_bits=12,
        leak_shifts=(), reset=Reset.NONE, fire=False, bias=np.array([1, -2, 3]),
    )
    return QNet(layers=(fc1, fc2), timesteps=4, input=InputSpec(size=512))


def _counters() -> dict[str, dict[str, np.ndarray]]:
    """Two samples; synaptic events = weight reads x n_out, as the crossbar counts them."""
    return {
        "fc1": {
            "synaptic_events": np.array([640, 1280]),  # mean 960
            "neuron_updates": np.array([256, 256]),  # T * n_out
            "weight_reads": np.array([10, 20]),  # mean 15
            "spikes_out": np.array([5, 7]),
        },
        "fc2": {
            "synaptic_events": np.array([15, 21]),  # mean 18
            "neuron_updates": np.array([12, 12]),
            "weight_reads": np.array([5, 7]),  # mean 6
            "spikes_out": np.array([0, 0]),
        },
    }


def test_energy_report_panda_convention():
    r = energy_report(_net(), _counters(), source="hand-made counters")
    assert r["snn_pj"] == pytest.approx((960 + 18) * 0.1)
    assert r["ann_pj"] == pytest.approx((512 * 64 + 64 * 3) * 3.2)
    assert r["ee"] == pytest.approx(r["ann_pj"] / r["snn_pj"])
    assert r["ee"] == pytest.approx(105472.0 / 97.8)
    assert r["source"] == "hand-made counters"
    fc1, fc2 = r["layers"]
    assert (fc1["name"], fc2["name"]) == ("fc1", "fc2")
    assert fc1["ann_macs"] == 512 * 64 and fc2["ann_macs"] == 64 * 3
    assert fc1["panda"]["snn_pj"] == pytest.approx(96.0)
    assert fc2["panda"]["snn_pj"] == pytest.approx(1.8)
    assert fc1["counts"]["synaptic_events"] == pytest.approx(960.0)
    assert fc2["counts"]["weight_reads"] == pytest.approx(6.0)


def test_energy_report_hardware_figure_by_hand():
    r = energy_report(_net(), _counters(), source="x")
    fc1, fc2 = r["layers"]

    def add(bits):  # Horowitz 8 / 32-bit points, linear between
        return 0.03 + (bits - 8) * 0.07 / 24

    # fc1: accumulator 8 + ceil(log2 513) = 18 bits; update = 2 leak shifts + input + compare
    # at 16 bits; a 64 x 8 = 512-bit word from a 512-word (32 KB) array: 20 pJ * 512 / 64.
    acc1 = 960 * add(18)
    upd1 = 256 * 4 * add(16)
    mem1 = 15 * 160.0
    # fc2: accumulator 6 + ceil(log2 65) = 13 bits; update = input + bias + compare at
    # 12 bits; an 18-bit word from a 64-word (144 byte) array: 10 pJ * 18 / 64.
    acc2 = 18 * add(13)
    upd2 = 12 * 3 * add(12)
    mem2 = 6 * 10.0 * 18 / 64

    h1, h2 = fc1["hardware"], fc2["hardware"]
    assert (h1["accumulator_bits"], h1["membrane_bits"], h1["word_bits"], h1["memory_bits"]) == (
        18, 16, 512, 512 * 512)
    assert (h2["accumulator_bits"], h2["membrane_bits"], h2["word_bits"], h2["memory_bits"]) == (
        13, 12, 18, 18 * 64)
    assert h1["accumulate_pj"] == pytest.approx(acc1)
    assert h1["neuron_update_pj"] == pytest.approx(upd1)
    assert h1["weight_read_pj"] == pytest.approx(mem1)
    assert h1["total_pj"] == pytest.approx(acc1 + upd1 + mem1)
    assert h2["accumulate_pj"] == pytest.approx(acc2)
    assert h2["neuron_update_pj"] == pytest.approx(upd2)
    assert h2["weight_read_pj"] == pytest.approx(mem2)
    assert h2["total_pj"] == pytest.approx(acc2 + upd2 + mem2)
    assert r["hardware_pj"] == pytest.approx(acc1 + upd1 + mem1 + acc2 + upd2 + mem2)


def test_energy_report_states_its_rules_and_convention():
    r = energy_report(_net(), _counters(), source="reference simulator")
    assert r["rules"] == RULES
    assert {"add", "sram", "neuron_update"} <= set(r["rules"])
    assert "Panda" in r["convention"]
    assert "sample" in r["per"]


def test_energy_report_is_a_mean_over_samples():
    one = {k: {c: v[:1] for c, v in cs.items()} for k, cs in _counters().items()}
    doubled = {k: {c: np.concatenate([v, v]) for c, v in cs.items()} for k, cs in one.items()}
    a = energy_report(_net(), one, source="a")
    b = energy_report(_net(), doubled, source="b")
    for key in ("snn_pj", "ann_pj", "ee", "hardware_pj"):
        assert a[key] == pytest.approx(b[key])


def test_energy_report_no_spikes_gives_infinite_ee():
    zero = {k: {c: np.zeros_like(v) for c, v in cs.items()} for k, cs in _counters().items()}
    r = energy_report(_net(), zero, source="silent")
    assert r["snn_pj"] == 0.0
    assert math.isinf(r["ee"])
    assert r["ann_pj"] > 0


# ----------------------------------------------------------------------------- layouts


def test_energy_follows_the_layout_built():
    """Tiled and untiled hardware differ exactly by their weight reads (issue: one model)."""
    from spikeforge.energy import read_energy_pj, weight_memories
    from spikeforge.hw.layout import Group, HardwareLayout, LayerLayout
    from spikeforge.reference import simulate

    rng = np.random.default_rng(3)
    w = rng.integers(1, 8, size=(32, 40)) * rng.choice([-1, 1], size=(32, 40))  # no zeros
    fc = Layer(name="fc", n_in=40, n_out=32, weight_bits=4, weights=w, threshold=9,
               membrane_bits=12, leak_shifts=(2,))
    net = QNet(layers=(fc,), timesteps=5, input=InputSpec(size=40))
    x = (rng.random((6, 5, 40)) < 0.3).astype(np.uint8)
    flat = HardwareLayout.default(net)
    lines = tuple(range(40))
    tiled = HardwareLayout((LayerLayout("fc", 40, 32, tuple(
        Group(lo, lo + 8, (lines[:20], lines[20:])) for lo in range(0, 32, 8)), 4),))
    r_flat = energy_report(net, simulate(net, x, flat.visits()).counters, source="r",
                           layout=flat)
    r_tile = energy_report(net, simulate(net, x, tiled.visits()).counters, source="r",
                           layout=tiled)
    f, t = r_flat["layers"][0], r_tile["layers"][0]
    assert f["counts"]["synaptic_events"] == t["counts"]["synaptic_events"]
    # one row in each of 4 groups
    assert t["counts"]["weight_reads"] == 4 * f["counts"]["weight_reads"]
    for k in ("accumulate_pj", "neuron_update_pj"):
        assert f["hardware"][k] == pytest.approx(t["hardware"][k], rel=1e-12)
    assert weight_memories(fc, tiled.layer("fc")) == [(32, 20)] * 8
    assert t["hardware"]["weight_read_pj"] == pytest.approx(
        t["counts"]["weight_reads"] * sram_read_pj(32, 32 * 20))
    assert f["hardware"]["weight_read_pj"] == pytest.approx(
        f["counts"]["weight_reads"] * read_energy_pj([(128, 40)]))
    diff = r_tile["hardware_pj"] - r_flat["hardware_pj"]
    assert diff == pytest.approx(t["hardware"]["weight_read_pj"] - f["hardware"]["weight_read_pj"])
    assert r_tile["layout"] == "as built" and t["hardware"]["memories"] == 8
