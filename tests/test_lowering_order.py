"""One conv -> dense lowering: the SNN lowering, ANN conversion and the mapper agree."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.mapping.lowering import NeuronOrder, conv2d_to_dense, neuron_permutation

torch = pytest.importorskip("torch")


def test_conv2d_to_dense_orders_are_one_permutation() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 2, 3, 3))
    chw = conv2d_to_dense(w, (2, 6, 5), stride=2, padding=1, order=NeuronOrder.CHW)
    hwc = conv2d_to_dense(w, (2, 6, 5), stride=2, padding=1, order=NeuronOrder.HWC)
    perm = neuron_permutation((3, 3, 3), NeuronOrder.HWC)
    np.testing.assert_array_equal(hwc, chw[perm])
    np.testing.assert_array_equal(neuron_permutation((3, 3, 3), NeuronOrder.CHW), np.arange(27))
    # position-major: neuron (y * W + x) * C + c is channel-major (c * H + y) * W + x
    assert perm[(1 * 3 + 2) * 3 + 1] == (1 * 3 + 1) * 3 + 2


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 0)])
@pytest.mark.parametrize("order", ["position", "channel"])
def test_snn_lowering_gives_the_mapper_matrix(order: str, stride: int, padding: int) -> None:
    from spikeforge.model.layers import LIF, Conv2d, DenseReadout
    from spikeforge.model.layers import Flatten as FlattenLayer
    from spikeforge.model.lowering import dense_equivalent, snn_to_qnet
    from spikeforge.model.network import SNN
    from spikeforge.reference import simulate

    rng = np.random.default_rng(1)
    shape = (2, 6, 6)
    conv = Conv2d(2, 3, 3, stride=stride, padding=padding, bias=False)
    w = rng.integers(-127, 128, size=(3, 2, 3, 3)).astype(np.float64)
    w[0, 0, 0, 0] = 127.0  # integer weights, max 127: scale 1, so the QNet keeps them exactly
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(w))
    n_hidden = conv2d_to_dense(w, shape, stride, padding).shape[0]
    ro = DenseReadout(n_hidden, 4, bias=False)
    snn = SNN([conv, LIF(1.0, 1.0), FlattenLayer(), ro])
    q = snn_to_qnet(snn, shape, weight_bits=8, membrane_bits=24, timesteps=4,
                    neuron_order=order)
    flat = NeuronOrder.HWC if order == "position" else NeuronOrder.CHW
    expect = conv2d_to_dense(w, shape, stride, padding, flat)
    np.testing.assert_array_equal(np.asarray(q.layers[0].weights), expect.astype(np.int64))
    # the float matrix before the order is applied is the channel-major one
    fw, _, _ = dense_equivalent([conv], shape)
    np.testing.assert_array_equal(fw, conv2d_to_dense(w, shape, stride, padding, NeuronOrder.CHW))
    # both numberings are the same network
    other = snn_to_qnet(snn, shape, weight_bits=8, membrane_bits=24, timesteps=4,
                        neuron_order="channel" if order == "position" else "position")
    x = (rng.random((5, 4, int(np.prod(shape)))) < 0.3).astype(np.uint8)
    a, b = simulate(q, x), simulate(other, x)
    np.testing.assert_array_equal(a.predictions, b.predictions)


def test_conversion_uses_the_same_conv_lowering() -> None:
    from torch import nn

    from spikeforge.model.convert import Conversion, ReLUNet, rate_code, to_snn
    from spikeforge.model.lowering import dense_equivalent

    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    net = ReLUNet([conv, nn.Flatten(), nn.Linear(2 * 5 * 5, 3, bias=False)], in_shape=(1, 5, 5))
    cal = rate_code(np.random.default_rng(0).random((4, 25)), 4, seed=0)
    # conversion's QNet is snn_to_qnet's: the conv's matrix is conv2d_to_dense's, quantized
    q = Conversion([1.0], to_snn(net, [1.0]), (1, 5, 5)).to_qnet(
        weight_bits=8, timesteps=4, calibration=[cal], neuron_order="channel")
    fw, _, _ = dense_equivalent([conv], (1, 5, 5))
    np.testing.assert_array_equal(fw, conv2d_to_dense(conv.weight.detach().double().numpy(),
                                                      (1, 5, 5), 1, 1, NeuronOrder.CHW))
    expect = np.round(fw * q.meta["scales"][0]).astype(np.int64)
    np.testing.assert_array_equal(np.asarray(q.layers[0].weights), expect)
