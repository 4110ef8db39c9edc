"""Tests of spikeforge.model: surrogates, LIF steps, export, float/integer equivalence, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikeforge.encoding import bernoulli
from spikeforge.model import (
    LIFMLP,
    LIFParams,
    Surrogate,
    beta_from_shifts,
    evaluate,
    lif_step,
    load_digits_split,
    rate_code_copies,
    readout_step,
    spike,
    to_qnet,
    train,
)
from spikeforge.qnet import QNet, Reset, signed_range
from spikeforge.reference import simulate

POINTS = [-2.5, -1.0, -0.4, -0.05, 0.0, 0.05, 0.3, 0.999, 1.7]


def _analytic(kind: Surrogate, a: float, x: float) -> float:
    if kind is Surrogate.EXPONENTIAL:
        return math.exp(-a * abs(x))
    if kind is Surrogate.PIECEWISE_LINEAR:
        return a * max(0.0, 1.0 - abs(x))
    if kind is Surrogate.FAST_SIGMOID:
        return 1.0 / (1.0 + a * abs(x)) ** 2
    if kind is Surrogate.ARCTAN:
        # d/dx of arctan(pi a x / 2) / pi
        return (a / 2.0) / (1.0 + (math.pi * a * x / 2.0) ** 2)
    return a  # straight-through


@pytest.mark.parametrize("kind", list(Surrogate))
@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_surrogate_forward_and_backward(kind: Surrogate, scale: float) -> None:
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    s = spike(x, kind, scale)
    assert s.tolist() == [1.0 if p >= 0 else 0.0 for p in POINTS]
    upstream = torch.linspace(0.5, 2.0, len(POINTS), dtype=torch.float64)
    (s * upstream).sum().backward()
    want = [u * _analytic(kind, scale, p) for u, p in zip(upstream.tolist(), POINTS)]
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-15)


def test_surrogate_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="Surrogate"):
        spike(torch.zeros(2), "fast_sigmoid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        spike(torch.zeros(2), Surrogate.ARCTAN, 0.0)


def test_beta_from_shifts() -> None:
    assert beta_from_shifts(()) == 1.0
    assert beta_from_shifts((3, 4)) == 0.8125
    assert beta_from_shifts([2]) == 0.75
    for bad in ((0,), (2, 2), (True,)):
        with pytest.raises(ValueError):
            beta_from_shifts(bad)


@pytest.mark.parametrize("reset", [Reset.ZERO, Reset.SUBTRACT])
def test_lif_step_by_hand(reset: Reset) -> None:
    params = LIFParams(beta=0.75, threshold=1.0, reset=reset)
    v = torch.tensor([[0.8, 0.4, 2.0, -0.4, 0.0]], dtype=torch.float64)
    i = torch.tensor([[0.5, 0.2, 0.5, 0.3, 1.0]], dtype=torch.float64)
    # v' = 0.75 v + I = [1.1, 0.5, 2.0, 0.0, 1.0]; fires where v' >= 1 (1.0 fires).
    s, v2 = lif_step(i, v, params)
    assert s.tolist() == [[1.0, 0.0, 1.0, 0.0, 1.0]]
    if reset is Reset.ZERO:
        want = [0.0, 0.5, 0.0, 0.0, 0.0]
    else:
        want = [0.1, 0.5, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(v2.numpy()[0], want, atol=1e-12)


def test_readout_step_and_params_validation() -> None:
    v = torch.tensor([[4.0, -2.0]])
    np.testing.assert_allclose(readout_step(torch.tensor([[1.0, 1.0]]), v, 0.5).numpy(),
                               [[3.0, 0.0]])
    with pytest.raises(ValueError, match="Reset"):
        LIFParams(beta=1.0, threshold=1.0, reset=Reset.NONE)
    with pytest.raises(ValueError, match="threshold"):
        LIFParams(beta=1.0, threshold=0.0)
    with pytest.raises(ValueError, match="beta"):
        LIFParams(beta=1.5, threshold=1.0)


def test_mlp_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    model = LIFMLP([12, 9, 7, 3], leak_shifts=(2,), threshold=0.5)
    x = (torch.rand(5, 4, 12) < 0.5).float()
    out = model.run(x)
    assert out.scores.shape == (5, 3)
    assert [s.shape for s in out.spikes] == [(5, 4, 9), (5, 4, 7)]
    out.scores.sum().backward()
    for layer in model.layers:
        assert torch.isfinite(layer.weight.grad).all()
    assert model.layers[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="spikes must be"):
        model(torch.zeros(5, 4, 11))


def _integer_model(sizes: list[int], reset: Reset, theta: int, wmax: int, seed: int) -> LIFMLP:
    """A model whose weights are integers with max |W| = wmax in every layer (scale 1)."""
    rng = np.random.default_rng(seed)
    model = LIFMLP(sizes, leak_shifts=(), threshold=float(theta), reset=reset)
    with torch.no_grad():
        for layer in model.layers:
            w = rng.integers(-wmax, wmax + 1, size=tuple(layer.weight.shape))
            w[0, 0] = wmax  # pins the scale to exactly 1
            layer.weight.copy_(torch.from_numpy(w.astype(np.float32)))
    return model


@pytest.mark.parametrize("reset", [Reset.ZERO, Reset.SUBTRACT])
@pytest.mark.parametrize("sizes", [[20, 16, 5], [24, 16, 12, 4]])
def test_float_model_matches_reference_exactly(reset: Reset, sizes: list[int]) -> None:
    wb, theta, t_steps = 5, 9, 25
    model = _integer_model(sizes, reset, theta, (1 << (wb - 1)) - 1, seed=len(sizes))
    net = to_qnet(model, weight_bits=wb, membrane_bits=16, timesteps=t_steps)
    for layer, torch_layer in zip(net.layers, model.layers):
        np.testing.assert_array_equal(layer.weights, torch_layer.weight.detach().numpy())
    assert [layer.threshold for layer in net.layers[:-1]] == [theta] * (len(sizes) - 2)

    rng = np.random.default_rng(7)
    x = bernoulli(rng.random((40, sizes[0])), t_steps, seed=3)
    ref = simulate(net, x)
    with torch.no_grad():
        out = model.run(torch.from_numpy(x.astype(np.float32)))
    lo, hi = signed_range(16)
    for name in ref.membrane:  # no saturation happened, so the comparison is fair
        assert lo < ref.membrane[name].min() and ref.membrane[name].max() < hi
    n_spikes = 0
    for layer, spikes in zip(net.layers[:-1], out.spikes):
        np.testing.assert_array_equal(spikes.numpy().astype(np.uint8), ref.spikes[layer.name])
        n_spikes += int(ref.spikes[layer.name].sum())
    # neither silent nor always firing
    assert 0 < n_spikes < sum(ref.spikes[n].size for n in ref.spikes)
    np.testing.assert_array_equal(out.scores.numpy().astype(np.int64), ref.scores)


def test_to_qnet_is_valid_and_in_range() -> None:
    torch.manual_seed(1)
    model = LIFMLP([64, 32, 10], leak_shifts=(3, 4), threshold=1.0, reset=Reset.SUBTRACT,
                   bias=True)
    net = to_qnet(model, weight_bits=8, membrane_bits=16, timesteps=6, name="t",
                  input_shape=(8, 8))
    assert isinstance(net, QNet) and net.timesteps == 6 and net.input.shape == (8, 8)
    assert [layer.fire for layer in net.layers] == [True, False]
    assert net.layers[0].reset is Reset.SUBTRACT and net.layers[1].reset is Reset.NONE
    assert net.layers[0].leak_shifts == (3, 4) and net.layers[1].leak_shifts == ()
    for layer, scale in zip(net.layers, net.meta["scales"]):
        assert np.abs(layer.weights).max() == 127
        assert layer.bias is not None
        lo, hi = signed_range(layer.membrane_bits)
        assert lo <= layer.bias.min() and layer.bias.max() <= hi
        assert scale > 0
    assert net.layers[0].threshold == max(1, round(net.meta["scales"][0]))


def test_to_qnet_rejects_small_membrane() -> None:
    torch.manual_seed(2)
    model = LIFMLP([64, 32, 10])
    with pytest.raises(ValueError, match="membrane_bits=9 .* too small"):
        to_qnet(model, weight_bits=8, membrane_bits=9, timesteps=4)
    with pytest.raises(ValueError, match="weight_bits"):
        to_qnet(model, weight_bits=1, membrane_bits=16, timesteps=4)


def test_digits_split_is_deterministic_and_stratified() -> None:
    a = load_digits_split(0.2, seed=0)
    b = load_digits_split(0.2, seed=0)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    x_train, y_train, x_test, y_test = a
    assert x_train.shape[1] == 64 and 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert abs(len(y_test) / (len(y_train) + len(y_test)) - 0.2) < 0.01
    assert set(np.unique(y_test)) == set(range(10))
    spikes, labels = rate_code_copies(x_train[:5], y_train[:5], 3, seed=0, copies=2)
    assert spikes.shape == (10, 3, 64) and labels.tolist() == y_train[:5].tolist() * 2


def test_short_training_beats_chance_and_exports() -> None:
    x_train, y_train, x_test, y_test = load_digits_split(0.2, seed=0)
    t_steps = 6
    s_train = bernoulli(x_train, t_steps, seed=1)
    s_test = bernoulli(x_test, t_steps, seed=2)

    def fit(n: int, epochs: int) -> LIFMLP:
        torch.manual_seed(0)
        model = LIFMLP([64, 64, 10], leak_shifts=(3, 4), threshold=1.0)
        train(model, s_train[:n], y_train[:n], epochs=epochs, lr=3e-3, batch_size=64, seed=0)
        return model

    seen = []
    torch.manual_seed(0)
    model = LIFMLP([64, 64, 10], leak_shifts=(3, 4), threshold=1.0)
    history = train(model, s_train, y_train, epochs=4, lr=3e-3, batch_size=64, seed=0,
                    progress=seen.append)
    assert [h.epoch for h in seen] == [1, 2, 3, 4] and seen == history
    acc = evaluate(model, s_test, y_test)
    assert acc > 0.6  # chance is 0.1

    for p, q in zip(fit(256, 2).parameters(), fit(256, 2).parameters()):
        assert torch.equal(p, q)  # deterministic given the seed

    net = to_qnet(model, weight_bits=8, membrane_bits=16, timesteps=t_steps)
    q_acc = float(np.mean(simulate(net, s_test).predictions == y_test))
    assert abs(q_acc - acc) <= 0.03
