"""QAT and PTQ: the exported QNet equals the quantized forward pass bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge.encoding import bernoulli
from spikeforge.model import LIF, LIFMLP, SNN, Dense, DenseReadout, beta_from_shifts
from spikeforge.model.export import float_layers, shifts_from_beta, to_qnet
from spikeforge.model.quantize import ClipRule, QuantSNN, mse_clip, post_training_quantize
from spikeforge.qnet import Reset
from spikeforge.reference import simulate


def _snn(shifts=(3, 4), resets=(Reset.SUBTRACT, Reset.ZERO)) -> SNN:
    torch.manual_seed(0)
    beta = beta_from_shifts(shifts)
    return SNN([Dense(20, 16, bias=True), LIF(beta, 0.5, reset=resets[0]),
                Dense(16, 12, bias=False), LIF(beta, 0.5, reset=resets[1]),
                DenseReadout(12, 4, bias=True)])


def _spikes(n: int, t: int, seed: int) -> tuple[np.ndarray, torch.Tensor]:
    x = bernoulli(np.random.default_rng(seed).random((n, 20)), t, seed)
    return x, torch.from_numpy(x).to(torch.float32).transpose(0, 1)


def _assert_bit_equal(q: QuantSNN, x: np.ndarray, xt: torch.Tensor) -> None:
    net = q.to_qnet(timesteps=xt.shape[0])
    ref = simulate(net, x)
    run = q.run(xt)
    for layer, s in zip(net.layers, run.spikes):
        np.testing.assert_array_equal(ref.spikes[layer.name], s.transpose(0, 1).numpy())
    np.testing.assert_array_equal(ref.scores, run.readout[-1].numpy())
    np.testing.assert_array_equal(ref.predictions, q(xt).argmax(1).numpy())


@pytest.mark.parametrize("bits, clip", [(8, ClipRule.MAX), (4, ClipRule.MSE), (2, ClipRule.MSE)])
def test_qat_export_equals_quantized_forward(bits: int, clip: ClipRule) -> None:
    q = QuantSNN.from_float(_snn(), bits, clip=clip, learn_threshold=True)
    x, xt = _spikes(64, 10, 1)
    y = torch.arange(64) % 4
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    w0 = q.layers[0].weight.detach().clone()
    for _ in range(3):  # a few QAT steps: weights and thresholds move
        loss = torch.nn.functional.cross_entropy(q(xt), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(w0, q.layers[0].weight)
    assert q.layers[0].threshold.grad is not None
    bits_v = q.calibrate([xt[:, :32]])  # half the samples: the rest may saturate
    assert all(2 <= b <= 48 for b in bits_v)
    xs, xst = _spikes(40, 10, 2)
    _assert_bit_equal(q, np.concatenate([x, xs]), torch.cat([xt, xst], dim=1))


def test_saturation_is_bit_exact() -> None:
    q = QuantSNN.from_float(_snn(shifts=(2,)), 6)
    x, xt = _spikes(30, 12, 3)
    q.calibrate([xt])
    for layer in q.layers:
        layer.membrane_bits = max(layer.membrane_bits - 2, 4)  # force saturation
    _assert_bit_equal(q, x, xt)


def test_subtract_unleaked_quantized_forward_equals_the_reference() -> None:
    """snnTorch's subtraction: QAT forward, export (the layers keep the mode) and reference
    agree spike for spike, also when the membranes saturate."""
    model = _snn(shifts=(2,), resets=(Reset.SUBTRACT_UNLEAKED, Reset.SUBTRACT_UNLEAKED))
    q = QuantSNN.from_float(model, 6)
    x, xt = _spikes(30, 12, 5)
    q.calibrate([xt])
    net = q.to_qnet(timesteps=12)
    assert [l.reset for l in net.layers] == [Reset.SUBTRACT_UNLEAKED] * 2 + [Reset.NONE]
    _assert_bit_equal(q, x, xt)
    for layer in q.layers:
        layer.membrane_bits = max(layer.membrane_bits - 2, 4)  # force saturation
    _assert_bit_equal(q, x, xt)
    # the float model lowers to QNet layers with the same reset
    from spikeforge.model.lowering import snn_to_qnet

    lowered = snn_to_qnet(model, (20,), weight_bits=6, membrane_bits=16, timesteps=4)
    assert [l.reset for l in lowered.layers] == [Reset.SUBTRACT_UNLEAKED] * 2 + [Reset.NONE]
    mlp = LIFMLP([20, 16, 4], leak_shifts=(3, 4), reset=Reset.SUBTRACT_UNLEAKED, bias=True)
    assert mlp.run(xt.transpose(0, 1)).spikes[0].sum() > 0  # the step loop carries s_prev
    net = to_qnet(mlp, weight_bits=8, membrane_bits=16, timesteps=12)
    assert net.layers[0].reset is Reset.SUBTRACT_UNLEAKED


def test_calibrated_widths_hold_the_observed_range() -> None:
    q = QuantSNN.from_float(_snn(), 8)
    x, xt = _spikes(50, 10, 4)
    bits = q.calibrate([xt])
    run = q.run(xt)  # now saturating at the calibrated widths: never reached
    for layer, b, lo, hi in zip(q.layers, bits, run.v_min, run.v_max):
        top = max(hi, int(layer.integer_parameters(layer.scale())[2]) if layer.fire else 0)
        assert -(2 ** (b - 1)) <= lo and top <= 2 ** (b - 1) - 1
        assert top > 2 ** (b - 2) - 1 or lo < -(2 ** (b - 2))  # one bit fewer would not do


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("resets", [(Reset.SUBTRACT, Reset.ZERO),
                                    (Reset.SUBTRACT_UNLEAKED, Reset.SUBTRACT_UNLEAKED)])
def test_lowered_and_calibrated_qnet_equals_ptq(bits: int, resets) -> None:
    # calibrate_membranes is QuantSNN.calibrate's rule on a QNet; with it, snn_to_qnet
    # (threshold_rounding="nearest", as ANN conversion lowers) gives PTQ's QNet (ClipRule.MAX)
    from spikeforge.model.lowering import snn_to_qnet
    from spikeforge.model.quantize import calibrate_membranes

    model = _snn(resets=resets)
    x, xt = _spikes(64, 10, 1)
    ptq = post_training_quantize(model, bits, [xt], timesteps=10, margin_bits=1)
    lowered = snn_to_qnet(model, (20,), weight_bits=bits, membrane_bits=48, timesteps=10,
                          threshold_rounding="nearest")
    q = calibrate_membranes(lowered, [xt], margin_bits=1)
    for a, b in zip(ptq.layers, q.layers):
        np.testing.assert_array_equal(np.asarray(a.weights), np.asarray(b.weights))
        np.testing.assert_array_equal(a.biases, b.biases)
        assert (a.threshold, a.membrane_bits, a.leak_shifts, a.reset) == \
            (b.threshold, b.membrane_bits, b.leak_shifts, b.reset)
    x2, _ = _spikes(64, 10, 2)
    np.testing.assert_array_equal(simulate(ptq, x2).scores, simulate(q, x2).scores)
    with pytest.raises(ValueError, match="threshold_rounding"):
        snn_to_qnet(model, (20,), weight_bits=bits, membrane_bits=16, timesteps=10,
                    threshold_rounding="up")


def test_ptq_of_lifmlp_matches_to_qnet_weights() -> None:
    torch.manual_seed(3)
    model = LIFMLP([20, 16, 4], leak_shifts=(3, 4), reset=Reset.SUBTRACT, bias=True)
    x, xt = _spikes(30, 8, 5)
    net = post_training_quantize(model, 8, [xt], timesteps=8)
    fixed = to_qnet(model, weight_bits=8, membrane_bits=24, timesteps=8)
    for a, b in zip(net.layers, fixed.layers):
        np.testing.assert_array_equal(a.weights, b.weights)
        assert a.threshold == b.threshold and a.leak_shifts == b.leak_shifts
    np.testing.assert_array_equal(simulate(net, x).predictions, simulate(fixed, x).predictions)


def test_float_layers_and_helpers() -> None:
    layers = float_layers(_snn())
    assert [l.name for l in layers] == ["fc1", "fc2", "fc3"]
    assert layers[0].leak_shifts == (3, 4) and layers[1].reset is Reset.ZERO
    assert not layers[2].fire
    assert shifts_from_beta(0.8125) == (3, 4)
    with pytest.raises(ValueError, match="hardware leak"):
        shifts_from_beta(0.8187)
    w = np.random.default_rng(0).normal(size=(50, 50))
    assert mse_clip(w, 2) < 0.6 < mse_clip(w, 8)
    with pytest.raises(ValueError, match="readout"):
        QuantSNN(layers[:2], 8)
