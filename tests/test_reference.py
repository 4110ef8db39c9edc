"""Integer reference simulator (docs/QNET.md §2, §3, §5) and rate coding (§4).

Expected numbers are worked out by hand in the comments, straight from the
docs/QNET.md formula ``v = sat(v - Σ(v >> k) + I + bias)``, then compare and reset.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from spikeforge import reference
from spikeforge.encoding import bernoulli
from spikeforge.qnet import SPIKING_RESETS, InputSpec, Layer, QNet, Reset
from spikeforge.reference import RefResult, _simulate_slow, layer_step, predict, simulate
from spikeforge.sim.fuzz import random_layout, random_qnet, random_spikes


def _layer(
    weights,
    threshold=3,
    *,
    name="l1",
    leak=(),
    reset=Reset.ZERO,
    fire=True,
    wb=8,
    vb=8,
    bias=None,
) -> Layer:
    w = np.asarray(weights, dtype=np.int64)
    return Layer(
        name=name, n_in=w.shape[1], n_out=w.shape[0], weight_bits=wb, weights=w,
        threshold=threshold, membrane_bits=vb, leak_shifts=tuple(leak), reset=reset,
        fire=fire, bias=None if bias is None else np.asarray(bias), )


def _net(*layers: Layer, timesteps: int = 4) -> QNet:
    return QNet(layers=layers, timesteps=timesteps, input=InputSpec(size=layers[0].n_in))


def _col(bits) -> np.ndarray:
    """One input line: list of bits over time → ``[T, 1]``."""
    return np.asarray(bits, dtype=np.uint8)[:, None]


# ----------------------------------------------------------------------------- neuron dynamics


def test_if_reset_zero() -> None:
    net = _net(_layer([[2]], threshold=3, reset=Reset.ZERO))
    r = simulate(net, _col([1, 1, 1, 0]))
    # t0: v = 0 + 2 = 2 < 3          → 0, v = 2
    # t1: v = 2 + 2 = 4 >= 3         → 1, v = 0 (zero)
    # t2: v = 0 + 2 = 2              → 0, v = 2
    # t3: v = 2 + 0 = 2              → 0, v = 2
    assert r.spikes["l1"][0, :, 0].tolist() == [0, 1, 0, 0]
    assert r.membrane["l1"].tolist() == [[2]]


def test_if_reset_subtract() -> None:
    net = _net(_layer([[2]], threshold=3, reset=Reset.SUBTRACT))
    r = simulate(net, _col([1, 1, 1, 0]))
    # t0: v = 0 + 2 = 2              → 0, v = 2
    # t1: v = 2 + 2 = 4 >= 3         → 1, v = 4 - 3 = 1
    # t2: v = 1 + 2 = 3 >= 3         → 1, v = 3 - 3 = 0
    # t3: v = 0 + 0 = 0              → 0, v = 0
    assert r.spikes["l1"][0, :, 0].tolist() == [0, 1, 1, 0]
    assert r.membrane["l1"].tolist() == [[0]]


def test_subtract_unleaked_by_hand() -> None:
    """docs/QNET.md §2.1: theta leaves at the next update, unleaked; v is kept at the spike."""
    net = _net(_layer([[4]], threshold=5, leak=[1], reset=Reset.SUBTRACT_UNLEAKED),
               timesteps=6)
    r = simulate(net, _col([1, 1, 1, 1, 1, 1]))
    # leak(v) = v - (v >> 1); v = sat(leak(v) + I - 5 * s_prev)
    # t0: 0 + 4                 = 4  → 0
    # t1: (4 - 2) + 4           = 6  → 1, v stays 6
    # t2: (6 - 3) + 4 - 5       = 2  → 0
    # t3: (2 - 1) + 4           = 5  → 1, v stays 5
    # t4: (5 - 2) + 4 - 5       = 2  → 0
    # t5: (2 - 1) + 4           = 5  → 1; the final membrane has no pending subtraction
    assert r.spikes["l1"][0, :, 0].tolist() == [0, 1, 0, 1, 0, 1]
    assert r.membrane["l1"].tolist() == [[5]]
    # reset by subtraction (leaked) differs: t1 6 → 1, t2 1 + 4 = 5 → 1, ...
    sub = simulate(_net(_layer([[4]], threshold=5, leak=[1], reset=Reset.SUBTRACT),
                        timesteps=6), _col([1] * 6))
    assert sub.spikes["l1"][0, :, 0].tolist() == [0, 1, 1, 0, 1, 1]
    # layer_step carries the previous spikes explicitly; None (start of a sample) is 0
    layer = net.layers[0]
    v, s = layer_step(layer, np.array([[6]]), np.ones((1, 1), np.uint8), None)
    assert (v.tolist(), s.tolist()) == ([[7]], [[1]])
    v, s = layer_step(layer, np.array([[6]]), np.ones((1, 1), np.uint8), np.ones((1, 1)))
    assert (v.tolist(), s.tolist()) == ([[2]], [[0]])


def test_subtract_unleaked_saturates_after_the_subtraction() -> None:
    net = _net(_layer([[7]], threshold=6, reset=Reset.SUBTRACT_UNLEAKED, wb=4, vb=4),
               timesteps=3)
    r = simulate(net, _col([1, 1, 1]))
    # t0: 0 + 7 = 7 → 1; t1: sat(7 + 7 - 6) = sat(8) = 7 → 1 (saturating first: 7 - 6 = 1); t2: 7
    assert r.spikes["l1"][0, :, 0].tolist() == [1, 1, 1]
    assert r.membrane["l1"].tolist() == [[7]]
    # each sample starts with no pending subtraction
    two = simulate(net, np.stack([_col([1, 1, 1]), _col([0, 1, 1])]))
    assert two.spikes["l1"][:, :, 0].tolist() == [[1, 1, 1], [0, 1, 1]]


def test_leak_one_shift() -> None:
    net = _net(_layer([[4]], threshold=5, leak=[1], reset=Reset.ZERO), timesteps=3)
    r = simulate(net, _col([1, 1, 1]))
    # β = 0.5
    # t0: leak(0) = 0;           v = 0 + 4 = 4 < 5  → 0
    # t1: leak(4) = 4 - 2 = 2;   v = 2 + 4 = 6 >= 5 → 1, v = 0
    # t2: leak(0) = 0;           v = 0 + 4 = 4      → 0
    assert r.spikes["l1"][0, :, 0].tolist() == [0, 1, 0]
    assert r.membrane["l1"].tolist() == [[4]]


def test_leak_floor_on_negative_membrane() -> None:
    net = _net(_layer([[-3]], threshold=100, leak=[1]), timesteps=2)
    r = simulate(net, _col([1, 0]))
    # t0: v = 0 - 3 = -3
    # t1: -3 >> 1 = floor(-1.5) = -2, so leak(-3) = -3 - (-2) = -1   (not -3 - (-1) = -2)
    assert r.membrane["l1"].tolist() == [[-1]]
    assert r.spikes["l1"].sum() == 0


def test_leak_two_shifts_positive_and_negative() -> None:
    layer = _layer([[0], [0]], threshold=1000, leak=[3, 4], vb=16)
    v = np.array([[100, -100]], dtype=np.int64)
    v2, s = layer_step(layer, v, np.zeros((1, 1), dtype=np.uint8))
    # v = 100:  100 >> 3 = 12,  100 >> 4 = 6   → 100 - 12 - 6 = 82
    # v = -100: -100 >> 3 = floor(-12.5) = -13, -100 >> 4 = floor(-6.25) = -7
    #           → -100 + 13 + 7 = -80
    assert v2.tolist() == [[82, -80]]
    assert s.tolist() == [[0, 0]]
    # the same through simulate: inject ±100 at t0, then one leak step at t1
    net = _net(_layer([[100], [-100]], threshold=1000, leak=[4, 3], vb=16), timesteps=2)
    assert simulate(net, _col([1, 0])).membrane["l1"].tolist() == [[82, -80]]


def test_saturation_readout_both_ends() -> None:
    ro = _layer([[5], [-5]], fire=False, reset=Reset.NONE, wb=4, vb=4)  # v in [-8, 7]
    r = simulate(_net(ro, timesteps=3), _col([1, 1, 1]))
    # neuron 0: 5; 5 + 5 = 10 → 7; 7 + 5 = 12 → 7
    # neuron 1: -5; -5 - 5 = -10 → -8; -8 - 5 = -13 → -8
    assert r.membrane["l1"].tolist() == [[7, -8]]
    assert r.scores.tolist() == [[7, -8]]
    assert "l1" not in r.spikes  # readout: no spike record
    assert r.counters["l1"]["spikes_out"].tolist() == [0]


def test_saturation_before_subtract_reset() -> None:
    net = _net(_layer([[7]], threshold=6, reset=Reset.SUBTRACT, wb=4, vb=4), timesteps=2)
    r = simulate(net, _col([1, 1]))
    # t0: v = 0 + 7 = 7 >= 6         → 1, v = 7 - 6 = 1
    # t1: v = 1 + 7 = 8 → sat 7 >= 6 → 1, v = 7 - 6 = 1   (without saturation: 2)
    assert r.spikes["l1"][0, :, 0].tolist() == [1, 1]
    assert r.membrane["l1"].tolist() == [[1]]


def test_saturation_negative_spiking_layer() -> None:
    net = _net(_layer([[-8]], threshold=5, reset=Reset.ZERO, wb=4, vb=4, leak=[2]),
               timesteps=3)
    r = simulate(net, _col([1, 1, 0]))
    # t0: v = -8
    # t1: -8 >> 2 = -2, leak = -8 + 2 = -6; -6 - 8 = -14 → sat -8
    # t2: leak(-8) = -6; no input → -6
    assert r.membrane["l1"].tolist() == [[-6]]
    assert r.spikes["l1"].sum() == 0


def test_bias_every_step_without_input() -> None:
    ro = _layer([[1]], fire=False, reset=Reset.NONE, bias=[3])
    r = simulate(_net(ro, timesteps=3), _col([0, 0, 0]))
    # 0 + 3 = 3; 3 + 3 = 6; 6 + 3 = 9
    assert r.membrane["l1"].tolist() == [[9]]

    sp = _layer([[1]], threshold=5, reset=Reset.ZERO, bias=[2])
    r = simulate(_net(sp, timesteps=4), _col([0, 0, 0, 0]))
    # t0: 2; t1: 4; t2: 6 >= 5 → 1, v = 0; t3: 2
    assert r.spikes["l1"][0, :, 0].tolist() == [0, 0, 1, 0]
    assert r.membrane["l1"].tolist() == [[2]]

    neg = _layer([[4]], threshold=5, reset=Reset.ZERO, bias=[-1])
    r = simulate(_net(neg, timesteps=3), _col([1, 1, 0]))
    # t0: 0 + 4 - 1 = 3; t1: 3 + 4 - 1 = 6 >= 5 → 1, v = 0; t2: 0 + 0 - 1 = -1
    assert r.spikes["l1"][0, :, 0].tolist() == [0, 1, 0]
    assert r.membrane["l1"].tolist() == [[-1]]


def test_per_neuron_threshold() -> None:
    net = _net(_layer([[2], [2], [2]], threshold=np.array([1, 3, 5]), reset=Reset.ZERO))
    r = simulate(net, _col([1, 1, 1, 1]))
    # θ=1: 2 → 1,0 ; 2 → 1,0 ; 2 → 1,0 ; 2 → 1,0            spikes 1111, v 0
    # θ=3: 2 ; 4 → 1,0 ; 2 ; 4 → 1,0                         spikes 0101, v 0
    # θ=5: 2 ; 4 ; 6 → 1,0 ; 2                               spikes 0010, v 2
    assert r.spikes["l1"][0].T.tolist() == [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 1, 0]]
    assert r.membrane["l1"].tolist() == [[0, 0, 2]]
    # a spiking last layer is read out by spike count
    assert r.scores.tolist() == [[4, 2, 1]]
    assert r.predictions.tolist() == [0]


def test_layer_sees_same_step_spikes() -> None:
    l1 = _layer([[1]], threshold=1, name="a")
    l2 = _layer([[5]], fire=False, reset=Reset.NONE, name="b")
    r = simulate(_net(l1, l2, timesteps=3), _col([0, 0, 1]))
    # layer a spikes only at t2 (v = 1 >= 1); layer b adds 5 at the same step t2 → 5
    assert r.spikes["a"][0, :, 0].tolist() == [0, 0, 1]
    assert r.membrane["b"].tolist() == [[5]]


# ----------------------------------------------------------------------------- readout


def test_predict_ties_lowest_index() -> None:
    scores = np.array([[1, 5, 5], [3, 3, 3], [-1, -2, -1], [0, 0, 9]])
    assert predict(scores).tolist() == [1, 0, 0, 2]


def test_readout_ties_through_simulate() -> None:
    ro = _layer([[1], [2], [2]], fire=False, reset=Reset.NONE)
    r = simulate(_net(ro, timesteps=1), _col([1]))
    # scores [1, 2, 2] → tie between 1 and 2 → 1
    assert r.scores.tolist() == [[1, 2, 2]]
    assert r.predictions.tolist() == [1]


def test_spike_count_readout_ties() -> None:
    sp = _layer([[2], [2], [2]], threshold=np.array([5, 3, 3]), reset=Reset.ZERO)
    r = simulate(_net(sp), _col([1, 1, 1, 1]))
    # θ=5: 2,4,6→spike,2 → 1 spike; θ=3: 2,4→spike,2,4→spike → 2 spikes (twice)
    assert r.scores.tolist() == [[1, 2, 2]]
    assert r.predictions.tolist() == [1]


# ----------------------------------------------------------------------------- counters


def test_counters_single_layer() -> None:
    net = _net(_layer([[2]], threshold=3, reset=Reset.SUBTRACT))
    c = simulate(net, _col([1, 1, 1, 0])).counters["l1"]
    # spikes in per step 1,1,1,0 → Σ = 3; n_out = 1; T = 4; spikes out [0,1,1,0] → 2
    assert c["synaptic_events"].tolist() == [3]
    assert c["weight_reads"].tolist() == [3]
    assert c["neuron_updates"].tolist() == [4]
    assert c["spikes_out"].tolist() == [2]


def test_counters_two_layers() -> None:
    l1 = _layer([[1, 1, 1], [1, 0, 0]], threshold=np.array([1, 2]), wb=4, name="h")
    l2 = _layer(np.ones((4, 2)), fire=False, reset=Reset.NONE, wb=4, name="o")
    x = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=np.uint8)
    r = simulate(_net(l1, l2, timesteps=3), x)
    # layer h: inputs per step 2, 0, 3 → Σ = 5
    #   neuron 0 (θ=1): I = 2 → spike; I = 0 → v 0; I = 3 → spike        → [1, 0, 1]
    #   neuron 1 (θ=2): I = 1 → v 1;   I = 0 → v 1; I = 1 → v 2 → spike  → [0, 0, 1]
    assert r.spikes["h"][0].tolist() == [[1, 0], [0, 0], [1, 1]]
    ch, co = r.counters["h"], r.counters["o"]
    assert ch["weight_reads"].tolist() == [5]
    assert ch["synaptic_events"].tolist() == [5 * 2]  # × n_out = 2
    assert ch["neuron_updates"].tolist() == [3 * 2]  # T × n_out
    assert ch["spikes_out"].tolist() == [3]
    # layer o reads layer h's spikes: 1, 0, 2 per step → Σ = 3
    assert co["weight_reads"].tolist() == [3]
    assert co["synaptic_events"].tolist() == [3 * 4]  # × n_out = 4
    assert co["neuron_updates"].tolist() == [3 * 4]
    assert co["spikes_out"].tolist() == [0]
    # readout membrane: every o neuron sums all 3 h spikes with weight 1
    assert r.membrane["o"].tolist() == [[3, 3, 3, 3]]


# ----------------------------------------------------------------------------- batches, inputs


def _random_net(rng: np.random.Generator) -> QNet:
    l1 = _layer(rng.integers(-8, 8, size=(7, 10)), threshold=np.arange(1, 8), leak=[3, 4],
                reset=Reset.SUBTRACT, wb=4, vb=6, bias=rng.integers(-3, 4, size=7), name="a")
    l2 = _layer(rng.integers(-8, 8, size=(5, 7)), threshold=4, leak=[2], reset=Reset.ZERO,
                wb=4, vb=5, name="b")
    l3 = _layer(rng.integers(-32, 32, size=(3, 5)), fire=False, reset=Reset.NONE, wb=6, vb=7,
                leak=[1], name="c")
    return _net(l1, l2, l3, timesteps=12)


def test_batch_equals_single_samples() -> None:
    rng = np.random.default_rng(7)
    net = _random_net(rng)
    x = (rng.random((6, 12, 10)) < 0.4).astype(np.uint8)
    batch = simulate(net, x)
    assert batch.scores.shape == (6, 3)
    assert batch.spikes["a"].shape == (6, 12, 7) and batch.spikes["a"].dtype == np.uint8
    assert batch.spikes["a"].any() and batch.spikes["b"].any()  # the case is not trivial
    for i in range(6):
        one = simulate(net, x[i])  # [T, n_in] means one sample
        for name in ("a", "b"):
            np.testing.assert_array_equal(batch.spikes[name][i], one.spikes[name][0])
        for name in ("a", "b", "c"):
            np.testing.assert_array_equal(batch.membrane[name][i], one.membrane[name][0])
            for counter, values in batch.counters[name].items():
                assert values[i] == one.counters[name][counter][0], (name, counter)
        np.testing.assert_array_equal(batch.scores[i], one.scores[0])
        assert batch.predictions[i] == one.predictions[0]


def test_input_validation() -> None:
    net = _net(_layer([[1, 1]]))
    simulate(net, np.zeros((4, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="input spikes"):
        simulate(net, np.zeros((4, 3), dtype=np.uint8))  # wrong n_in
    with pytest.raises(ValueError, match="input spikes"):
        simulate(net, np.zeros((2, 4, 1), dtype=np.uint8))
    with pytest.raises(ValueError, match="input spikes"):
        simulate(net, np.zeros(4, dtype=np.uint8))  # not [T, n_in]
    with pytest.raises(ValueError, match="0 or 1"):
        simulate(net, np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="0 or 1"):
        simulate(net, np.array([[0, -1], [1, 0]]))
    with pytest.raises(ValueError, match="0 or 1"):
        simulate(net, np.array([[0.0, 0.5], [1.0, 0.0]]))


# ----------------------------------------------------------------------------- encoding


def test_bernoulli_seeded() -> None:
    x = np.random.default_rng(0).random((3, 20))
    a = bernoulli(x, 16, seed=42)
    b = bernoulli(x, 16, seed=42)
    assert a.shape == (3, 16, 20) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, bernoulli(x, 16, seed=43))


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_bernoulli_refuses_bad_timesteps(steps) -> None:
    with pytest.raises(ValueError, match="timesteps must be a positive integer"):
        bernoulli(np.zeros((1, 3)), steps, seed=0)


def test_bernoulli_extremes() -> None:
    x = np.array([[0.0, 1.0, 0.0, 1.0]])
    s = bernoulli(x, 50, seed=3)
    assert s[0, :, 0].sum() == 0 and s[0, :, 2].sum() == 0
    assert s[0, :, 1].sum() == 50 and s[0, :, 3].sum() == 50


def test_bernoulli_rate() -> None:
    x = np.array([[0.1, 0.3, 0.5, 0.9]])
    s = bernoulli(np.repeat(x, 100, axis=0), 500, seed=1)  # 50 000 draws per intensity
    rate = s.mean(axis=(0, 1))
    # std of the mean ≤ sqrt(0.25 / 50 000) ≈ 0.0022; allow about 5 σ
    np.testing.assert_allclose(rate, x[0], atol=0.012)


@pytest.mark.parametrize(
    "bad",
    [np.array([[0.5, -0.1]]), np.array([[1.01, 0.2]]), np.array([0.5, 0.5]),
     np.zeros((1, 2, 3))],
)
def test_bernoulli_invalid(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        bernoulli(bad, 4, seed=0)


# ----------------------------------------------------------------------------- fast == literal
# simulate() runs layer by layer with BLAS products in float32/float64 where that is exact
# (reference._exact_dtype); _simulate_slow is the literal layer_step loop in int64. They
# must agree on everything the hardware is checked on.


def _assert_same(fast: RefResult, slow: RefResult) -> None:
    def same(a: np.ndarray, b: np.ndarray, what: str) -> None:
        assert a.dtype == b.dtype and a.shape == b.shape, what
        np.testing.assert_array_equal(a, b, err_msg=what)

    assert fast.spikes.keys() == slow.spikes.keys()
    for name in slow.spikes:
        same(fast.spikes[name], slow.spikes[name], f"spikes {name}")
    assert fast.membrane.keys() == slow.membrane.keys()
    for name in slow.membrane:
        same(fast.membrane[name], slow.membrane[name], f"membrane {name}")
    assert fast.counters.keys() == slow.counters.keys()
    for name, counters in slow.counters.items():
        assert fast.counters[name].keys() == counters.keys()
        for counter, values in counters.items():
            same(fast.counters[name][counter], values, f"{counter} {name}")
    same(fast.scores, slow.scores, "scores")
    same(fast.predictions, slow.predictions, "predictions")


def _both(net: QNet, x: np.ndarray, visits=None) -> RefResult:
    slow = _simulate_slow(net, x, visits)
    _assert_same(simulate(net, x, visits), slow)
    return slow


@pytest.mark.parametrize("first", range(0, 240, 40))
def test_fast_equals_slow_random_nets_and_layouts(first: int) -> None:
    for seed in range(first, first + 40):
        net = random_qnet(seed)
        x = random_spikes(seed, net, 6)
        _both(net, x)
        _both(net, x, random_layout(seed, net).visits())


def _with(layer: Layer, **changes) -> Layer:
    return dataclasses.replace(layer, **changes)


@pytest.mark.parametrize("mode", SPIKING_RESETS)
def test_fast_equals_slow_every_reset_with_bias_and_thresholds(mode: Reset) -> None:
    fired = 0
    for seed in range(30):
        rng = np.random.default_rng(1000 + seed)
        net = random_qnet(seed)
        layers = []
        for layer in net.layers:
            lo, hi = layer.membrane_range
            extra = {"reset": mode} if layer.fire else {}
            if seed % 2:  # per-neuron thresholds and a bias on every layer
                extra["threshold"] = rng.integers(1, min(hi, 40) + 1, size=layer.n_out)
                extra["bias"] = rng.integers(max(lo, -20), min(hi, 20) + 1, size=layer.n_out)
            layers.append(_with(layer, **extra))
        net = dataclasses.replace(net, layers=tuple(layers))
        x = random_spikes(seed, net, 6)
        slow = _both(net, x, random_layout(seed, net).visits())
        fired += sum(int(s.sum()) for s in slow.spikes.values())
    assert fired > 0


def test_fast_equals_slow_saturation_heavy() -> None:
    """Narrow membranes driven into both ends every step; the readout stays saturated."""
    rng = np.random.default_rng(3)
    for sign in (1, -1):
        w1 = sign * rng.integers(20, 64, size=(9, 13))
        w2 = sign * rng.integers(30, 64, size=(4, 9))
        for mode in SPIKING_RESETS:
            net = _net(_layer(w1, threshold=60, leak=[2], reset=mode, wb=7, vb=8, name="h"),
                       _layer(np.abs(w2), fire=False, reset=Reset.NONE, wb=7, vb=7, name="o",
                              bias=np.full(4, 10)),
                       timesteps=7)
            x = random_spikes(5, net, 8)
            x[0] = 1
            slow = _both(net, x)
            assert slow.membrane["o"][0].tolist() == [63] * 4  # saturated at the top
            if sign < 0:
                assert slow.membrane["h"][0].min() == -128  # and at the bottom


def test_fast_uses_float32_for_the_fashion_shape() -> None:
    rng = np.random.default_rng(0)
    layer = _layer(rng.integers(-128, 128, size=(300, 784)), wb=8, vb=16, leak=[3, 4])
    assert reference._exact_dtype(layer) == np.float32


def test_fast_exactness_bound_at_the_float32_limit() -> None:
    """16-bit weights: the largest row sum of |W| that float32 still holds is 2^24."""
    # 511 * 32768 + 2^(14+1) (membrane) = 2^24 exactly: float32; one more line: float64
    for n_in, want in ((511, np.float32), (512, np.float64)):
        for value in (-32768, 32767):
            w = np.full((3, n_in), value)
            layer = _layer(w, threshold=np.array([1, 100, 8191]), wb=16, vb=14,
                           reset=Reset.SUBTRACT, name="w")
            if value < 0:
                assert reference._step_bound(layer) == (1 << 24) + (n_in - 511) * 32768
            assert reference._exact_dtype(layer) == want, (n_in, value)
            readout = _layer(np.ones((2, 3)), fire=False, reset=Reset.NONE, wb=2, vb=20,
                             name="o")
            net = _net(layer, readout, timesteps=5)
            x = random_spikes(n_in, net, 6)
            x[0] = 1
            x[1, :, ::2] = 0  # about half the lines: a current far from saturation
            x[1, :, 1::2] = 1
            _both(net, x)


def test_fast_equals_slow_16_bit_weights_wide_layers() -> None:
    """Weights near the 16-bit limits on 1,200 input lines (rows of |W| about 2^25.2:
    float64) feeding a layer that float32 holds; wide membranes, per-neuron thresholds."""
    rng = np.random.default_rng(11)
    w1 = rng.choice([-1, 1], size=(40, 1200)) * rng.integers(30000, 32768, size=(40, 1200))
    l1 = _layer(w1, threshold=rng.integers(1, 1 << 22, size=40), wb=16, vb=26, leak=[5, 7],
                reset=Reset.SUBTRACT_UNLEAKED, bias=rng.integers(-1 << 20, 1 << 20, size=40),
                name="wide")
    l2 = _layer(rng.integers(-128, 128, size=(12, 40)), threshold=200, wb=8, vb=12, leak=[2],
                reset=Reset.SUBTRACT, name="mid")
    l3 = _layer(rng.integers(-32768, 32768, size=(5, 12)), fire=False, reset=Reset.NONE,
                wb=16, vb=22, name="out")
    assert [reference._exact_dtype(l) for l in (l1, l2, l3)] == [np.float64, np.float32,
                                                                  np.float32]
    net = _net(l1, l2, l3, timesteps=9)
    x = random_spikes(4, net, 10)
    slow = _both(net, x)
    assert slow.spikes["wide"].any() and slow.spikes["mid"].any()


_F32, _F64, _I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)


@pytest.mark.parametrize(("limits", "kinds"), [
    ({}, {_I64}),  # no float type: all int64
    ({_F64: 1 << 53}, {_F64}),  # float64 for every layer
    ({_F32: 1 << 8, _F64: 1 << 12}, {_F32, _F64, _I64}),  # all three, mixed within nets
])
def test_fast_falls_back_to_int64_past_the_bound(monkeypatch, limits, kinds) -> None:
    """A layer whose bound no float type holds runs in int64 (real QNets cannot reach 2^53:
    the limits are lowered here); nets mixing the types give the same results."""
    monkeypatch.setattr(reference, "_EXACT_LIMITS", limits)
    seen = set()
    for seed in range(60):
        net = random_qnet(seed)
        seen.update(reference._exact_dtype(layer) for layer in net.layers)
        x = random_spikes(seed, net, 5)
        _both(net, x, random_layout(seed, net).visits())
    assert seen == kinds


def test_fast_unknown_reset_action_runs_in_int64(monkeypatch) -> None:
    monkeypatch.setattr(reference, "_BOUNDED_AT_SPIKE", frozenset())
    net = random_qnet(4)
    assert {reference._exact_dtype(layer) for layer in net.layers} == {np.dtype(np.int64)}
    _both(net, random_spikes(4, net, 5))


@pytest.mark.parametrize("values", [1, 37, 500])
def test_fast_blocks_of_samples(monkeypatch, values: int) -> None:
    """Samples run in blocks (the last one short); the blocks join up exactly."""
    monkeypatch.setattr(reference, "_BLOCK_VALUES", values)
    for seed in range(10):
        net = random_qnet(seed)
        x = random_spikes(seed, net, 11)
        _both(net, x, random_layout(seed, net).visits())


def test_fast_inputs_of_any_form() -> None:
    net = _random_net(np.random.default_rng(2))
    rng = np.random.default_rng(5)
    x = (rng.random((5, 12, 10)) < 0.5).astype(np.uint8)
    for xi in (x, x.astype(bool), x.astype(np.float64), x.astype(np.int8), x[0],
               x[:, ::-1, ::-1], x[:, :1], np.concatenate([x, x], axis=1), x[:0], x[:, :0]):
        _both(net, xi)


@pytest.mark.parametrize("threads", [1, 2, None])
def test_fast_blas_threads_change_nothing(monkeypatch, threads) -> None:
    """The BLAS thread limit (taken for large calls only) leaves results and the setting."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(reference, "_BLAS_THREADS", threads)
    monkeypatch.setattr(reference, "_BLAS_LIMIT_FROM", 0)
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    net = _random_net(np.random.default_rng(9))
    _both(net, random_spikes(9, net, 40))
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == before
