"""BackRes parameter sharing, stochmax at inference, hybrid training, operation counts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from spikeforge.model.backres import BackRes
from spikeforge.model.data import load_digits_split
from spikeforge.model.encoders import Encoding, bernoulli_spikes, direct_input
from spikeforge.model.engine import predict_encoded, train_epoch
from spikeforge.model.hybrid import ReLU, hybrid_mlp
from spikeforge.model.layers import LIF, Dense, DenseReadout
from spikeforge.model.network import SNN
from spikeforge.model.opcount import count_ops
from spikeforge.model.stochmax import Stochmax


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_backres_shares_weights():
    torch.manual_seed(0)
    one = BackRes(Dense(16, 16), 1, beta=0.9)
    three = BackRes(Dense(16, 16), 3, beta=0.9)
    assert _n_params(one) == _n_params(three) == 16 * 16 + 16
    assert three.unroll == 3 and three.thresholds == (1.0, 1.0, 1.0)


def test_backres_gradient_is_the_sum_over_unrolled_copies():
    torch.manual_seed(1)
    x = (torch.rand(6, 4, 8) < 0.6).double()
    block = BackRes(Dense(8, 8).double(), 3, beta=0.8, threshold=[0.3, 0.4, 0.5])
    with torch.no_grad():
        block.body.weight.mul_(3.0)
    block(x).sum().backward()
    shared = block.body.weight.grad.clone()
    assert shared.abs().sum() > 0
    copies = [copy.deepcopy(block.body) for _ in range(3)]
    y = x
    for body, lif in zip(copies, block.neurons):
        y = lif(body(y))
    assert torch.equal(y, block(x))
    y.sum().backward()
    untied = sum(c.weight.grad for c in copies)
    torch.testing.assert_close(shared, untied)
    assert all(c.weight.grad.abs().sum() > 0 for c in copies)  # every step contributes


def test_backres_per_step_thresholds_and_relu_twin():
    block = BackRes(Dense(5, 5), 2, beta=1.0, learn_threshold=True)
    block.set_thresholds([0.5, 2.0])
    assert block.thresholds == (0.5, 2.0)
    assert _n_params(block) == 5 * 5 + 5 + 2
    y, pre = block.forward_relu(torch.rand(3, 5))
    assert len(pre) == 2 and y.shape == (3, 5)
    torch.testing.assert_close(y, torch.relu(pre[1]))
    with pytest.raises(ValueError):
        block.set_thresholds([1.0])
    with pytest.raises(ValueError):
        BackRes(Dense(5, 6), 2, beta=1.0)


def test_stochmax_leaves_inference_unchanged():
    torch.manual_seed(2)
    scores = torch.randn(7, 10)
    y = torch.randint(0, 10, (7,))
    loss = Stochmax(10)
    loss.eval()
    assert torch.equal(loss(scores, y), F.cross_entropy(scores, y))
    torch.testing.assert_close(Stochmax.probabilities(scores), torch.softmax(scores, 1))
    loss.train()
    train_loss = loss(scores, y)
    assert not torch.equal(train_loss, F.cross_entropy(scores, y))  # classes were dropped
    masked = loss.masked_logits(scores, y)
    assert torch.equal(masked.gather(1, y[:, None]), scores.gather(1, y[:, None]))  # target kept
    assert (masked <= scores + 1e-6).all()
    train_loss.backward()
    assert loss.retain.bias.grad.abs().sum() > 0  # the retain probabilities learn


def test_stochmax_training_keeps_the_same_predictor():
    torch.manual_seed(3)
    x_tr, y_tr, _, _ = load_digits_split()
    x, y = torch.tensor(x_tr[:256], dtype=torch.float32), torch.tensor(y_tr[:256])
    model = SNN([Dense(64, 32), LIF(0.9), DenseReadout(32, 10)])
    before = predict_encoded(model, x, encoding=Encoding.BERNOULLI, timesteps=5, seed=1)
    sm = Stochmax(10)
    opt = torch.optim.Adam([*model.parameters(), *sm.parameters()], lr=1e-3)
    train_epoch(model, x, y, encoding=Encoding.BERNOULLI, timesteps=5, optimizer=opt,
                batch_size=64, generator=torch.Generator().manual_seed(0), loss_fn=sm)
    # inference is the model's own argmax (softmax), with or without the loss around
    after = predict_encoded(model, x, encoding=Encoding.BERNOULLI, timesteps=5, seed=1)
    scores = model(bernoulli_spikes(x, 5, torch.Generator().manual_seed(1)))
    assert torch.equal(after, scores.argmax(1))
    assert before.shape == after.shape


def test_hybrid_trains():
    torch.manual_seed(4)
    x_tr, y_tr, _, _ = load_digits_split()
    x, y = torch.tensor(x_tr[:256], dtype=torch.float32), torch.tensor(y_tr[:256])
    model = hybrid_mlp([64, 64, 32, 10], 1, beta=0.9)
    assert isinstance(model.layers[1], ReLU) and isinstance(model.layers[3], LIF)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xin = direct_input(x, 8)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(xin), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    assert model.layers[0].weight.grad.abs().sum() > 0  # gradients reach the ReLU layers


def test_hybrid_relu_output_constant_in_time():
    model = hybrid_mlp([4, 3, 3, 2], 1, beta=0.9)
    h = model.layers[1](model.layers[0](direct_input(torch.rand(2, 4), 5)))
    assert h.stride(0) == 0  # the ANN part is computed once per sample


def test_count_ops_macs_acs_and_backres_steps():
    torch.manual_seed(5)
    x = torch.rand(3, 6)
    hyb = hybrid_mlp([6, 5, 4, 2], 1, beta=0.9, threshold=0.1)
    ops = count_ops(hyb, direct_input(x, 4))
    l0, l1, l2 = ops.layers
    assert (l0.macs, l0.acs) == (30.0, 0.0) and not l0.spiking_input  # computed once
    assert (l1.macs, l1.acs) == (20.0, 0.0)  # receives the real-valued ReLU output
    assert l2.spiking_input and l2.macs == 0.0 and l2.ann_macs == 8.0
    assert l1.spikes_out == l2.acs / 2  # every spike of layer 1 reaches 2 readout neurons
    assert ops.ann_pj == pytest.approx((30 + 20 + 8) * 3.2)
    net = SNN([Dense(6, 4), LIF(0.9, 0.2), BackRes(Dense(4, 4), 3, beta=0.9, threshold=0.2),
               DenseReadout(4, 2)])
    spikes = bernoulli_spikes(x, 4, torch.Generator().manual_seed(0))
    ops = count_ops(net, spikes)
    assert [l.name for l in ops.layers] == ["0:dense", "2:backres.1", "2:backres.2",
                                            "2:backres.3", "3:densereadout"]
    assert ops.layers[0].acs == pytest.approx(float(spikes.sum()) * 4 / 3)
    assert all(l.spiking_input for l in ops.layers)
