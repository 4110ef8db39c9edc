"""STDP: pair updates against hand-computed spike pairs, competition, export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikeforge.model.data import load_digits_split
from spikeforge.model.kernels import lif_sequence_reference
from spikeforge.model.layers import DenseReadout
from spikeforge.model.network import SNN
from spikeforge.model.neurons import LIFParams
from spikeforge.model.stdp import (
    Competition,
    CompetitiveParams,
    STDPLayer,
    STDPParams,
    competitive_step,
    stdp_to_qnet,
    stdp_update,
    train_stdp,
)
from spikeforge.qnet import Reset
from spikeforge.reference import simulate


def _train(t_steps: int, spikes: dict[int, list[int]], n: int) -> torch.Tensor:
    """``[T, 1, n]`` spike trains from ``{line: [steps]}``."""
    x = torch.zeros(t_steps, 1, n, dtype=torch.float64)
    for line, steps in spikes.items():
        for t in steps:
            x[t, 0, line] = 1.0
    return x


def test_stdp_pairs_by_hand():
    p = STDPParams(a_plus=0.5, a_minus=0.25, tau_plus=2.0, tau_minus=3.0)
    # input 0 fires at 1 and 5, input 1 at 3 (with the post spike), input 2 at 4 only
    pre = _train(7, {0: [1, 5], 1: [3], 2: [4]}, 3)
    post = _train(7, {0: [3]}, 2)
    dw = stdp_update(pre, post, p)
    expected_0 = 0.5 * math.exp(-2 / 2.0) - 0.25 * math.exp(-2 / 3.0)  # pre 1 -> post 3 -> pre 5
    expected_1 = 0.5  # same step: pre at or before post is potentiation, dt = 0
    expected_2 = -0.25 * math.exp(-1 / 3.0)  # post 3 -> pre 4
    assert dw.shape == (2, 3)
    assert dw[0].tolist() == pytest.approx([expected_0, expected_1, expected_2], abs=1e-12)
    assert dw[1].tolist() == [0.0, 0.0, 0.0]  # neuron 1 never fired


def test_stdp_all_pairs_and_batch_sum():
    g = torch.Generator().manual_seed(3)
    p = STDPParams(a_plus=0.3, a_minus=0.2, tau_plus=2.5, tau_minus=1.5)
    pre = (torch.rand(9, 2, 4, generator=g) < 0.4).double()
    post = (torch.rand(9, 2, 3, generator=g) < 0.3).double()
    want = np.zeros((3, 4))
    for b in range(2):
        for j in range(3):
            for i in range(4):
                for tq in np.flatnonzero(post[:, b, j].numpy()):
                    for tp in np.flatnonzero(pre[:, b, i].numpy()):
                        if tp <= tq:
                            want[j, i] += 0.3 * math.exp(-(tq - tp) / 2.5)
                        else:
                            want[j, i] -= 0.2 * math.exp(-(tp - tq) / 1.5)
    np.testing.assert_allclose(stdp_update(pre, post, p).numpy(), want, atol=1e-12)


def test_competitive_step_one_winner_and_inhibition():
    params = CompetitiveParams(leak_shifts=(1,), threshold=1.0, inhibition=0.5)
    v = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    current = torch.tensor([[1.5, 2.0, 0.7], [0.2, 0.1, 0.3]])
    theta = torch.tensor([1.0, 1.0, 1.0])
    s, v2 = competitive_step(current, v, theta, params)
    assert s.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]  # both 0 and 1 crossed; 1 wins
    assert v2[0].tolist() == pytest.approx([1.0, 0.0, 0.2])  # rivals inhibited, winner reset
    assert v2[1].tolist() == pytest.approx([0.2, 0.1, 0.3])  # no spike, no inhibition


def test_no_competition_is_lif_with_per_neuron_thresholds():
    g = torch.Generator().manual_seed(0)
    layer = STDPLayer(5, 4, neuron=CompetitiveParams(leak_shifts=(2,), threshold=0.6),
                      competition=Competition.NONE, generator=g)
    layer.theta_adapt.copy_(torch.tensor([0.0, 0.3, 0.7, 1.1]))
    x = (torch.rand(12, 3, 5, generator=g) < 0.5).float()
    out = layer(x)
    currents = torch.nn.functional.linear(x, layer.weight)
    for j, th in enumerate(layer.thresholds.tolist()):
        ref = lif_sequence_reference(currents[..., j:j + 1].double(),
                                     LIFParams(beta=0.75, threshold=th, reset=Reset.ZERO))
        assert torch.equal(out[..., j:j + 1].double(), ref)


def test_learning_keeps_weights_bounded_and_normalised():
    g = torch.Generator().manual_seed(1)
    layer = STDPLayer(16, 6, neuron=CompetitiveParams(threshold=1.0),
                      stdp=STDPParams(a_plus=0.05, a_minus=0.06, weight_sum=3.0), generator=g)
    x = torch.rand(40, 16, generator=g)
    train_stdp(layer, x, timesteps=10, epochs=1, batch_size=8, generator=g)
    assert float(layer.weight.min()) >= 0.0
    assert float(layer.weight.max()) <= 1.0
    np.testing.assert_allclose(layer.weight.sum(1).numpy(), 3.0, rtol=1e-5)
    assert float(layer.theta_adapt.sum()) > 0.0  # thresholds adapted to the spikes


def test_stdp_learns_digits_and_exports_to_qnet():
    torch.manual_seed(0)
    x_tr, y_tr, x_te, _ = load_digits_split()
    x = torch.tensor(x_tr[:300], dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    layer = STDPLayer(64, 20, neuron=CompetitiveParams(threshold=2.0, theta_plus=0.05),
                      stdp=STDPParams(a_plus=0.01, a_minus=0.0105, weight_sum=6.0), generator=g)
    w0 = layer.weight.clone()
    train_stdp(layer, x * 0.5, timesteps=20, epochs=1, batch_size=10, generator=g)
    assert not torch.equal(w0, layer.weight)
    model = SNN([layer, DenseReadout(20, 10)])
    with pytest.raises(ValueError, match="lateral inhibition"):
        stdp_to_qnet(model, weight_bits=8, membrane_bits=16, timesteps=20)
    layer.competition = Competition.NONE
    net = stdp_to_qnet(model, weight_bits=8, membrane_bits=16, timesteps=20)
    assert net.layers[0].weights.min() >= 0
    assert net.layers[0].thresholds.shape == (20,)
    spikes = (np.random.default_rng(0).random((5, 20, 64)) < x_te[:5, None, :] * 0.5)
    res = simulate(net, spikes.astype(np.uint8))
    assert res.scores.shape == (5, 10)
