"""ANN-to-SNN conversion: thresholds, lowering, convergence to the ANN, QNet export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.model.convert import (
    Method,
    ReLUNet,
    balance_thresholds,
    convert,
    evaluate_ann,
    mlp,
    norm_thresholds,
    rate_code,
    scores_per_steps,
    small_cnn,
    to_float_layers,
    to_snn,
    train_ann,
)
from spikeforge.model.data import load_digits_split
from spikeforge.model.encoders import Encoding
from spikeforge.model.quantize import QuantSNN
from spikeforge.qnet import load_qnet, save_qnet
from spikeforge.reference import simulate


def _tiny() -> ReLUNet:
    """3 -> 2 -> 2 -> 1 with hand-set weights (maxima worked out in the tests)."""
    net = mlp([3, 2, 2, 1])
    with torch.no_grad():
        net.ops[0].weight.copy_(torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.5, 0.0]]))
        net.ops[1].weight.copy_(torch.tensor([[1.0, 3.0], [-1.0, 1.0]]))
        net.ops[2].weight.copy_(torch.tensor([[1.0, 1.0]]))
    return net


def test_threshold_balancing_known_maxima() -> None:
    net = _tiny()
    # sample 0: inputs 0 and 1 spike every step; sample 1: input 0 only. T = 4.
    x = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    spikes = x.unsqueeze(0).expand(4, 2, 3).contiguous()
    # Layer 1 currents: neuron 0 gets 2 (sample 0) -> theta_1 = 2. With theta_1 = 2 and
    # reset by subtraction, sample 0's neuron 0 fires every step and neuron 1 (0.5 per
    # step) at step 3, so layer 2's neuron 0 gets 1, 1, 1, 1 + 3 = 4 -> theta_2 = 4.
    assert balance_thresholds(net, spikes) == [2.0, 4.0]
    # Data-based normalization at the 100th percentile: lambda_1 = 2, lambda_2 = 3.5.
    assert norm_thresholds(net, x, percentile=100.0) == pytest.approx([2.0, 1.75])


def test_balancing_on_the_regular_code() -> None:
    # The regular code of 1 spikes at every step and of 0 never: the spikes of the test above.
    x = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    conv = convert(_tiny(), x, Method.BALANCE, timesteps=4, coding=Encoding.REGULAR)
    assert conv.thresholds == [2.0, 4.0]


def test_shared_weights_get_one_threshold_per_use() -> None:
    shared = nn.Linear(4, 4, bias=False)
    net = ReLUNet([nn.Linear(3, 4, bias=False), shared, shared, nn.Linear(4, 2, bias=False)],
                  (3,))
    assert net.n_hidden == 3
    snn = to_snn(net, [1.0, 2.0, 3.0])
    assert sum(p.numel() for p in snn.parameters()) == 12 + 16 + 8
    layers = to_float_layers(net, [1.0, 2.0, 3.0])
    assert [l.threshold for l in layers] == [1.0, 2.0, 3.0, None]
    np.testing.assert_array_equal(layers[1].weight, layers[2].weight)
    with pytest.raises(ValueError, match="need 3 thresholds"):
        to_snn(net, [1.0, 2.0])


def test_relunet_rejects_what_it_cannot_convert() -> None:
    with pytest.raises(ValueError, match="bias"):
        ReLUNet([nn.Linear(3, 2)], (3,))
    with pytest.raises(ValueError, match="MaxPool2d"):
        ReLUNet([nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2, bias=False)], (1, 4, 4))


def test_lowering_equals_the_ann() -> None:
    torch.manual_seed(0)
    net = small_cnn((2, 12, 12), channels=(3, 4), kernel=3)
    layers = to_float_layers(net, [1.0] * net.n_hidden)
    x = torch.rand(5, 2 * 12 * 12, dtype=torch.float64)
    h = x.numpy()
    for l in layers[:-1]:
        h = np.maximum(h @ l.weight.T, 0.0)
    out = h @ layers[-1].weight.T
    np.testing.assert_allclose(out, net.double()(x).detach().numpy(), rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def digits_ann():
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = load_digits_split(seed=0)
    torch.manual_seed(0)
    net = mlp([64, 64, 10])
    xtr_t = torch.tensor(xtr, dtype=torch.float32)
    train_ann(net, xtr_t, torch.as_tensor(ytr), epochs=15, lr=3e-3)
    return net, xtr, xte[:200], yte[:200]


def test_converted_snn_approaches_the_ann(digits_ann) -> None:
    net, xtr, xte, yte = digits_ann
    ann_pred = net(torch.tensor(xte, dtype=torch.float32)).argmax(1).numpy()
    ann_acc = evaluate_ann(net, torch.tensor(xte, dtype=torch.float32), torch.as_tensor(yte))
    assert ann_acc > 0.9
    for method in Method:
        conv = convert(net, torch.tensor(xtr, dtype=torch.float32), method, timesteps=16)
        steps = [4, 16, 64, 256]
        scores = scores_per_steps(conv.snn, rate_code(xte, 256, seed=3), steps)
        agree = [float((s.argmax(1).numpy() == ann_pred).mean()) for s in scores]
        acc = [float((s.argmax(1).numpy() == yte).mean()) for s in scores]
        assert agree[-1] > agree[0], (method, agree)
        assert agree[-1] >= 0.93, (method, agree)
        assert abs(acc[-1] - ann_acc) <= 0.03, (method, acc, ann_acc)


def test_regular_code_agrees_more_than_bernoulli(digits_ann) -> None:
    # Measured on these 200 digits (agreement with the ANN at T = 4, 16, 64):
    # Bernoulli 0.95 / 0.98 / 0.99, regular 0.98 / 0.995 / 1.0 (normalization).
    net, xtr, xte, _ = digits_ann
    ann_pred = net(torch.tensor(xte, dtype=torch.float32)).argmax(1).numpy()
    conv = convert(net, torch.tensor(xtr, dtype=torch.float32), Method.NORM)
    agree = {}
    for coding in (Encoding.BERNOULLI, Encoding.REGULAR):
        scores = scores_per_steps(conv.snn, rate_code(xte, 64, 3, coding=coding), [4, 16, 64])
        agree[coding] = [float((s.argmax(1).numpy() == ann_pred).mean()) for s in scores]
    assert all(r >= b for r, b in zip(agree[Encoding.REGULAR], agree[Encoding.BERNOULLI])), agree
    assert agree[Encoding.REGULAR][-1] >= 0.99, agree


def test_qnet_export_runs_in_the_reference(tmp_path, digits_ann) -> None:
    net, xtr, xte, yte = digits_ann
    conv = convert(net, torch.tensor(xtr, dtype=torch.float32), Method.NORM)
    q = QuantSNN(conv.layers, 8)
    bits = q.calibrate([rate_code(xtr[:200], 32, seed=5)], margin_bits=1)
    qnet = q.to_qnet(timesteps=32, name="digits_conv", input_shape=(8, 8))
    assert [l.membrane_bits for l in qnet.layers] == bits
    assert all(l.leak_shifts == () and l.reset.value == "subtract" for l in qnet.layers[:-1])
    save_qnet(qnet, tmp_path / "digits_conv")
    qnet = load_qnet(tmp_path / "digits_conv")
    spikes = rate_code(xte[:60], 32, seed=9)
    ref = simulate(qnet, spikes.transpose(0, 1).numpy().astype(np.uint8))
    run = q.run(spikes)
    np.testing.assert_array_equal(ref.scores, run.readout[-1].numpy())
    np.testing.assert_array_equal(ref.spikes["h1"], run.spikes[0].transpose(0, 1).numpy())
    float_pred = scores_per_steps(conv.snn, spikes, [32])[0].argmax(1).numpy()
    assert (ref.predictions == float_pred).mean() >= 0.9
    assert (ref.predictions == yte[:60]).mean() >= 0.85


def test_cnn_conversion_to_qnet_matches_reference() -> None:
    torch.manual_seed(1)
    net = small_cnn((1, 8, 8), channels=(4,), kernel=3)
    x = torch.rand(20, 64)
    conv = convert(net, x, Method.BALANCE, timesteps=8)
    q = QuantSNN(conv.layers, 6)
    q.calibrate([rate_code(x.numpy(), 12, seed=1)])
    qnet = q.to_qnet(timesteps=12)
    assert [l.n_out for l in qnet.layers] == [4 * 6 * 6, 10]
    spikes = rate_code(x.numpy()[:8], 12, seed=2)
    ref = simulate(qnet, spikes.transpose(0, 1).numpy().astype(np.uint8))
    np.testing.assert_array_equal(ref.scores, q.run(spikes).readout[-1].numpy())
