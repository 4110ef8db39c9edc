"""Encoders (statistics, seeding), time-major layers, readouts and activity counters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from spikeforge.model.encoders import (
    Encoding,
    bernoulli_spikes,
    direct_input,
    encode,
    latency_spikes,
)
from spikeforge.model.layers import (
    LIF,
    Conv2d,
    Dense,
    DenseReadout,
    Dropout,
    Flatten,
    Pool2d,
    PoolKind,
    SpikeCountReadout,
)
from spikeforge.model.network import SNN
from spikeforge.model.neurons import readout_step


def test_bernoulli_statistics_and_extremes() -> None:
    x = torch.tensor([[0.0, 0.1, 0.5, 0.9, 1.0]]).repeat(200, 1)
    s = bernoulli_spikes(x, 100, torch.Generator().manual_seed(1))
    assert s.shape == (100, 200, 5) and s.dtype == torch.float32
    rate = s.mean(dim=(0, 1))
    assert rate[0] == 0.0 and rate[4] == 1.0
    # 20,000 draws each: 4 standard deviations is < 0.015
    torch.testing.assert_close(rate[1:4], torch.tensor([0.1, 0.5, 0.9]), atol=0.015, rtol=0)
    # steps and lines are independent: no correlation between consecutive steps
    mid = s[:, :, 2]
    corr = ((mid[1:] - 0.5) * (mid[:-1] - 0.5)).mean() / 0.25
    assert abs(float(corr)) < 0.02


def test_bernoulli_seeding() -> None:
    x = torch.rand(7, 3, 4)
    a = bernoulli_spikes(x, 9, torch.Generator().manual_seed(5))
    b = bernoulli_spikes(x, 9, torch.Generator().manual_seed(5))
    c = bernoulli_spikes(x, 9, torch.Generator().manual_seed(6))
    assert a.shape == (9, 7, 3, 4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    g = torch.Generator().manual_seed(5)
    first = bernoulli_spikes(x, 9, g)
    assert torch.equal(first, a) and not torch.equal(bernoulli_spikes(x, 9, g), a)


def test_direct_and_latency() -> None:
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]])
    d = direct_input(x, 3)
    assert d.shape == (3, 1, 4) and d.stride(0) == 0 and torch.equal(d[2], x)
    lat = latency_spikes(x, 5)
    # one spike at round((1 - x) * 4): never, 3, 2, 0
    assert lat[:, 0].t().tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 1, 0, 0],
                                      [1, 0, 0, 0, 0]]
    assert torch.equal(encode(Encoding.LATENCY, x, 5, torch.Generator()), lat)
    with pytest.raises(ValueError, match="timesteps"):
        direct_input(x, 0)


def test_dense_over_time_equals_per_step() -> None:
    torch.manual_seed(0)
    layer = Dense(6, 4)
    x = torch.rand(5, 3, 6)
    want = torch.stack([layer(x[t]) for t in range(5)])
    torch.testing.assert_close(layer(x), want)
    # an input constant in time (stride 0) gives the same currents, computed once
    const = direct_input(x[0], 5)
    torch.testing.assert_close(layer(const), layer(const.contiguous()))


def test_conv_pool_flatten_shapes_and_values() -> None:
    torch.manual_seed(0)
    conv = Conv2d(2, 3, 3, padding=1)
    x = (torch.rand(4, 2, 2, 6, 6) < 0.3).float()
    y = conv(x)
    assert y.shape == (4, 2, 3, 6, 6)
    torch.testing.assert_close(y[1], F.conv2d(x[1], conv.weight, conv.bias, padding=1))
    avg = Pool2d(2, PoolKind.AVERAGE)(y)
    tot = Pool2d(2, PoolKind.SUM)(y)
    assert avg.shape == (4, 2, 3, 3, 3)
    torch.testing.assert_close(tot, 4 * avg)
    torch.testing.assert_close(tot[0, 0, 0, 0, 0], y[0, 0, 0, :2, :2].sum())
    assert Flatten()(avg).shape == (4, 2, 27)


def test_dropout_mask_shared_over_time() -> None:
    torch.manual_seed(0)
    drop = Dropout(0.5)
    x = torch.ones(6, 4, 50)
    y = drop(x)
    assert torch.equal(y[0], y[5])
    assert set(y.unique().tolist()) == {0.0, 2.0}
    drop.eval()
    assert torch.equal(drop(x), x)


@pytest.mark.parametrize("beta", [1.0, 0.75])
def test_dense_readout_is_the_final_membrane(beta: float) -> None:
    torch.manual_seed(0)
    ro = DenseReadout(5, 3, beta=beta).double()
    s = (torch.rand(7, 2, 5) < 0.5).double()
    v = torch.zeros(2, 3, dtype=torch.float64)
    for t in range(7):
        v = readout_step(F.linear(s[t], ro.weight, ro.bias), v, beta)
    torch.testing.assert_close(ro(s), v)


def test_snn_run_activity_and_spike_count_readout() -> None:
    torch.manual_seed(0)
    net = SNN([Dense(8, 6), LIF(0.9, 0.5), Dense(6, 3), LIF(0.9, 0.5), SpikeCountReadout()])
    x = (torch.rand(10, 4, 8) < 0.5).float()
    with torch.no_grad():
        out = net.run(x)
    assert out.scores.shape == (4, 3)
    torch.testing.assert_close(out.scores, out.spikes[-1].sum(0))
    scores, acts = net.activity(x)
    torch.testing.assert_close(scores, out.scores)
    assert [a.name for a in acts] == ["0:dense", "1:lif", "2:dense", "3:lif",
                                      "4:spikecountreadout"]
    assert acts[0].synops == pytest.approx(float(x.sum()) / 4 * 6)
    assert acts[1].spikes == pytest.approx(float(out.spikes[0].sum()) / 4)
    assert acts[1].rate == pytest.approx(float(out.spikes[0].mean()))
    assert acts[2].synops == pytest.approx(float(out.spikes[0].sum()) / 4 * 3)
    with pytest.raises(ValueError, match="last layer"):
        SNN([Dense(8, 6)])


def test_conv_synops_match_brute_force() -> None:
    torch.manual_seed(1)
    conv = Conv2d(2, 4, 3, padding=1)
    net = SNN([conv, LIF(1.0, 1.0), Flatten(), DenseReadout(4 * 25, 2)])
    x = (torch.rand(3, 2, 2, 5, 5) < 0.4).float()
    _, acts = net.activity(x)
    # every (input spike, output position, output channel) whose kernel covers it
    count = 0
    for _t, _b, _c, i, j in torch.nonzero(x).tolist():
        for oi in range(5):
            for oj in range(5):
                if abs(oi - i) <= 1 and abs(oj - j) <= 1:
                    count += 4
    assert acts[0].synops == pytest.approx(count / 2)


def test_snn_gradients_reach_every_layer() -> None:
    torch.manual_seed(0)
    net = SNN([Conv2d(1, 4, 3, padding=1), LIF(0.8, 0.5), Pool2d(2), Flatten(), Dropout(0.1),
               Dense(4 * 9, 16), LIF(0.8, 0.5, learn_threshold=True), DenseReadout(16, 3)])
    x = bernoulli_spikes(torch.rand(5, 1, 6, 6), 6, torch.Generator().manual_seed(0))
    loss = F.cross_entropy(net(x), torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bernoulli_native_pass_equals_the_numpy_stream(monkeypatch) -> None:
    """The C pass and the numpy splitmix64 stream give the same spikes, and a known draw."""
    from spikeforge.model import encoders, native

    # splitmix64 from state 0: the first output is 0xE220A8397B1DCDAF
    assert encoders.splitmix_draws(0, 4).astype("<i2").view("<u2").tolist() == [
        0xCDAF, 0x7B1D, 0xA839, 0xE220]
    assert np.array_equal(encoders.splitmix_draws(-1, 8), encoders.splitmix_draws(2**64 - 1, 8))
    # small, and more than one 2,048-draw block with n not a multiple of 4
    xs = [torch.rand(5, 3, 7), torch.rand(3, 683)]
    fast = [bernoulli_spikes(x, t, torch.Generator().manual_seed(9)) for x, t in zip(xs, (11, 5))]
    monkeypatch.setattr(native, "usable", lambda t: False)
    slow = [bernoulli_spikes(x, t, torch.Generator().manual_seed(9)) for x, t in zip(xs, (11, 5))]
    assert native.available()
    for a, b in zip(fast, slow):
        assert torch.equal(a, b)
