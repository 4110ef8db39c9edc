"""ANN-to-SNN conversion: thresholds, lowering, convergence to the ANN, QNet export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikeforge.mapping.lowering import NeuronOrder, conv2d_output_shape, conv2d_to_dense
from spikeforge.model.convert import (
    Conversion,
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
    to_snn,
    train_ann,
)
from spikeforge.model.data import load_digits_split
from spikeforge.model.encoders import Encoding
from spikeforge.model.export import FloatDense
from spikeforge.model.layers import LIF, DenseReadout
from spikeforge.model.lowering import dense_equivalent
from spikeforge.model.quantize import QuantSNN
from spikeforge.qnet import Reset, load_qnet, save_qnet
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
    cal = rate_code(np.random.default_rng(0).random((16, 3)), 8, seed=1)
    q = Conversion([1.0, 2.0, 3.0], snn, (3,)).to_qnet(weight_bits=8, timesteps=8,
                                                        calibration=[cal])
    s = q.meta["scales"]
    assert len(q.layers) == 4 and s[1] == s[2]  # one scale per matrix: the same integers
    assert [l.threshold for l in q.layers[:3]] == [round(t * k) for t, k in zip([1, 2, 3], s)]
    np.testing.assert_array_equal(q.layers[1].weights, q.layers[2].weights)
    with pytest.raises(ValueError, match="need 3 thresholds"):
        to_snn(net, [1.0, 2.0])


def test_relunet_rejects_what_it_cannot_convert() -> None:
    with pytest.raises(ValueError, match="bias"):
        ReLUNet([nn.Linear(3, 2)], (3,))
    with pytest.raises(ValueError, match="MaxPool2d"):
        ReLUNet([nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4, 2, bias=False)], (1, 4, 4))


def _snn_runs(snn) -> list[list]:
    """The runs of stateless layers of a converted SNN, one per QNet layer (as snn_to_qnet)."""
    runs, run = [], []
    for m in snn.layers:
        if isinstance(m, LIF):
            runs.append(run)
            run = []
        else:
            run.append(m)
    return runs + [run]


def test_lowering_equals_the_ann() -> None:
    # the float matrices snn_to_qnet quantizes: each run of conv, pool, flatten, linear
    torch.manual_seed(0)
    net = small_cnn((2, 12, 12), channels=(3, 4), kernel=3)
    snn = to_snn(net, [1.0] * net.n_hidden)
    shape, mats = net.in_shape, []
    for run in _snn_runs(snn):
        w, b, shape = dense_equivalent(run, shape)
        assert not b.any()
        mats.append(w)
    assert isinstance(snn.layers[-1], DenseReadout) and len(mats) == 3
    x = torch.rand(5, 2 * 12 * 12, dtype=torch.float64)
    h = x.numpy()
    for w in mats[:-1]:
        h = np.maximum(h @ w.T, 0.0)
    out = h @ mats[-1].T
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
    qnet = conv.to_qnet(weight_bits=8, timesteps=32, name="digits_conv",
                        calibration=[rate_code(xtr[:200], 32, seed=5)], margin_bits=1)
    assert [l.name for l in qnet.layers] == ["fc1", "fc2"]
    assert all(l.leak_shifts == () and l.reset is Reset.SUBTRACT for l in qnet.layers[:-1])
    save_qnet(qnet, tmp_path / "digits_conv")
    qnet = load_qnet(tmp_path / "digits_conv")
    spikes = rate_code(xte[:60], 32, seed=9)
    ref = simulate(qnet, spikes.transpose(0, 1).numpy().astype(np.uint8))
    float_pred = scores_per_steps(conv.snn, spikes, [32])[0].argmax(1).numpy()
    assert (ref.predictions == float_pred).mean() >= 0.9
    assert (ref.predictions == yte[:60]).mean() >= 0.85


def _old_float_layers(net: ReLUNet, thresholds) -> list[FloatDense]:
    """The lowering conversion used before snn_to_qnet (convert.to_float_layers), as an oracle.

    Dense ``FloatDense`` layers ``h1, ..., out`` in channel-major order, to be
    quantized by ``QuantSNN`` (per-layer scale, threshold ``max(1, round(theta s))``).
    """
    shape, chain, out = net.in_shape, None, []
    for i, op in enumerate(net.ops):
        if isinstance(op, nn.Flatten):
            shape = (int(np.prod(shape)),)
            continue
        if isinstance(op, nn.AvgPool2d):
            k, c = int(op.kernel_size), shape[0]
            kernel = np.zeros((c, c, k, k))
            kernel[np.arange(c), np.arange(c)] = 1.0 / k**2
            m = conv2d_to_dense(kernel, shape, stride=k, order=NeuronOrder.CHW)
            shape = (c, shape[1] // k, shape[2] // k)
        elif isinstance(op, nn.Conv2d):
            m = conv2d_to_dense(op.weight.detach().double().numpy(), shape, stride=op.stride[0],
                                padding=op.padding[0], order=NeuronOrder.CHW)
            shape = conv2d_output_shape(shape, op.kernel_size[0], op.stride[0], op.padding[0],
                                        op.out_channels)
        else:
            m = op.weight.detach().double().numpy()
            shape = (op.out_features,)
        chain = m if chain is None else m @ chain
        if isinstance(op, nn.Conv2d | nn.Linear) and i < len(net.ops) - 1:
            out.append(FloatDense(f"h{len(out) + 1}", chain, float(thresholds[len(out)]), (),
                                  Reset.SUBTRACT))
            chain = None
    out.append(FloatDense("out", chain, None))
    return out


def _shared_net() -> ReLUNet:
    torch.manual_seed(3)
    shared = nn.Linear(12, 12, bias=False)
    return ReLUNet([nn.Linear(8, 12, bias=False), shared, shared, shared,
                    nn.Linear(12, 3, bias=False)], (8,))


def _cnn(channels: tuple[int, ...], size: int, seed: int):
    def make():
        torch.manual_seed(seed)
        return small_cnn((channels[0], size, size), channels=channels[1:], kernel=3)
    return make


# (network, calibration and test images, method, weight bits, T, margin bits)
_NETS = {
    "digits_mlp_norm": ("digits", Method.NORM, 8, 32, 1),
    "digits_mlp_balance": ("digits", Method.BALANCE, 8, 32, 1),
    "cnn1_balance": (_cnn((1, 4), 8, 1), Method.BALANCE, 6, 12, 0),
    "cnn2_norm": (_cnn((2, 3, 4), 12, 0), Method.NORM, 8, 16, 0),
    "cnn2_balance": (_cnn((2, 3, 4), 12, 0), Method.BALANCE, 4, 16, 0),
    "shared_norm": (_shared_net, Method.NORM, 8, 16, 0),
}


@pytest.mark.parametrize("case", list(_NETS))
def test_conversion_qnet_equals_the_old_lowering(case, digits_ann) -> None:
    """Conversion.to_qnet (snn_to_qnet) gives the QNet of the old dense lowering + QuantSNN.

    With neuron_order="channel" (the old order) every layer is identical -- integer weights,
    thresholds, calibrated membrane widths, leak, reset, no bias -- and so are the scales;
    only the names differ (fc1.. for h1..out). The default position-major numbering is a
    permutation of the same network: the same scores on every input.
    """
    make, method, wb, t_steps, margin = _NETS[case]
    if make == "digits":
        net, xtr, xte, _ = digits_ann
        x, x_test = torch.tensor(xtr, dtype=torch.float32), xte[:60]
    else:
        net = make()
        gen = torch.Generator().manual_seed(7)
        x = torch.rand(40, int(np.prod(net.in_shape)), generator=gen)
        x_test = torch.rand(30, x.shape[1], generator=gen).numpy()
    conv = convert(net, x, method, timesteps=8)
    cal = rate_code(x[:200].numpy(), t_steps, seed=5)
    old_q = QuantSNN(_old_float_layers(net, conv.thresholds), wb)
    old_q.calibrate([cal], margin_bits=margin)
    old = old_q.to_qnet(timesteps=t_steps)
    new = conv.to_qnet(weight_bits=wb, timesteps=t_steps, calibration=[cal],
                       margin_bits=margin, neuron_order="channel")
    pos = conv.to_qnet(weight_bits=wb, timesteps=t_steps, calibration=[cal],
                       margin_bits=margin)
    assert len(new.layers) == len(old.layers)
    for a, b in zip(old.layers, new.layers):
        np.testing.assert_array_equal(np.asarray(b.weights), np.asarray(a.weights))
        assert (b.threshold, b.membrane_bits, b.leak_shifts, b.reset, b.fire, b.bias) == \
            (a.threshold, a.membrane_bits, a.leak_shifts, a.reset, a.fire, a.bias), b.name
    assert new.meta["scales"] == pytest.approx(old.meta["scales"], rel=1e-12)
    spikes = rate_code(x_test, t_steps, seed=9)
    bits = spikes.transpose(0, 1).numpy().astype(np.uint8)
    ref_old, ref_new, ref_pos = simulate(old, bits), simulate(new, bits), simulate(pos, bits)
    np.testing.assert_array_equal(ref_new.scores, ref_old.scores)
    np.testing.assert_array_equal(ref_pos.scores, ref_old.scores)
    # and the old QNet is the QuantSNN forward pass, bit for bit
    np.testing.assert_array_equal(ref_old.scores, old_q.run(spikes).readout[-1].numpy())
