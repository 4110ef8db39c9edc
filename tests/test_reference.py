"""Integer reference simulator (docs/QNET.md §2, §3, §5) and rate coding (§4).

Expected numbers are worked out by hand in the comments, straight from the
docs/QNET.md formula ``v = sat(v - Σ(v >> k) + I + bias)``, then compare and reset.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.encoding import bernoulli
from spikeforge.qnet import InputSpec, Layer, QNet, Reset
from spikeforge.reference import layer_step, predict, simulate


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
