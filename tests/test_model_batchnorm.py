"""BatchNorm over time, its folding into dense/conv layers, and seeded augmentation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from spikeforge.model.augment import Augment, augment_batch
from spikeforge.model.config import load_train_config
from spikeforge.model.encoders import bernoulli_spikes, direct_input
from spikeforge.model.layers import (
    LIF,
    BatchNorm,
    Conv2d,
    Dense,
    DenseReadout,
    Flatten,
    Pool2d,
    PoolKind,
    fold_batchnorm,
)
from spikeforge.model.network import SNN
from spikeforge.model.trainer import build_model


def test_batchnorm_statistics_over_time_and_batch() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, dtype=torch.float64) * 2 + 1
    bn = BatchNorm(4).double()
    y = bn(x)
    ref = F.batch_norm(x.reshape(15, 4), None, None, training=True)
    assert torch.allclose(y.reshape(15, 4), ref)
    # a stride-0 (constant in time) input gives the same as its materialised copy
    d = direct_input(torch.rand(6, 4, dtype=torch.float64), 3)
    a, b = BatchNorm(4).double(), BatchNorm(4).double()
    assert torch.allclose(a(d), b(d.contiguous()))
    assert torch.allclose(a.running_mean, b.running_mean)
    # the running variance's n / (n - 1) correction counts B, not T * B, samples there
    assert torch.allclose(a.running_var, b.running_var, rtol=1e-2)
    with pytest.raises(ValueError, match="BatchNorm takes"):
        bn(torch.zeros(3, 5))


def _trained_stats(net: SNN, x: torch.Tensor) -> None:
    net.train()
    with torch.no_grad():
        for _ in range(5):
            net(x)
    for m in net.layers:
        if isinstance(m, BatchNorm):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    net.eval()


def test_folding_equals_the_unfolded_forward() -> None:
    torch.manual_seed(1)
    net = SNN([Conv2d(1, 6, 3, padding=1), BatchNorm(6), LIF(0.8125, 0.5),
               Pool2d(2, PoolKind.SUM), Conv2d(6, 8, 3, padding=1, bias=False), BatchNorm(8),
               LIF(0.8125, 0.5), Flatten(), Dense(8 * 16, 12), BatchNorm(12), LIF(0.9, 1.0),
               DenseReadout(12, 3)]).double()
    x = bernoulli_spikes(torch.rand(16, 1, 8, 8, dtype=torch.float64), 5,
                         torch.Generator().manual_seed(0))
    _trained_stats(net, x)
    folded = net.folded()
    assert not any(isinstance(m, BatchNorm) for m in folded.layers)
    assert len(folded.layers) == len(net.layers) - 3
    with torch.no_grad():
        assert torch.allclose(folded(x), net(x), atol=1e-9)
        # the currents into the first LIF layer agree to rounding
        cur_a = net.layers[1](net.layers[0](x))
        cur_b = folded.layers[0](x)
        assert torch.allclose(cur_a, cur_b, atol=1e-12)


def test_fold_needs_a_synaptic_layer_before() -> None:
    with pytest.raises(ValueError, match="right before it"):
        fold_batchnorm([LIF(0.9), BatchNorm(4)])


def test_augment_is_seeded_and_moves_pixels() -> None:
    x = torch.zeros(64, 1, 6, 6)
    x[:, 0, 2, 3] = 1.0
    aug = Augment(shift=2, flip=True)
    a = augment_batch(x, aug, torch.Generator().manual_seed(4))
    b = augment_batch(x, aug, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert torch.all(a.sum((1, 2, 3)) == 1.0)  # one lit pixel moved, never lost (shift <= 2)
    where = a.flatten(1).argmax(1)
    rows, cols = where // 6, where % 6
    assert rows.min() == 0 and rows.max() == 4
    assert set(cols.tolist()) > {0, 5}  # flipped copies land on the mirrored column range
    assert torch.equal(augment_batch(x, Augment(), torch.Generator()), x)
    with pytest.raises(ValueError, match="shift"):
        Augment(shift=-1)


def test_config_batch_norm_and_augmentation(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("""
data: {dataset: digits, shift: 1, flip: true}
model:
  input_shape: [1, 8, 8]
  batch_norm: true
  layers: [{conv: {channels: 4}}, {pool: {size: 2}}, {flatten: true}, {dense: 8}, {dense: 10}]
train: {label_smoothing: 0.1, warmup_epochs: 0.5, schedule: cosine}
""")
    cfg = load_train_config(p)
    kinds = [type(m).__name__ for m in build_model(cfg).layers]
    assert kinds == ["Conv2d", "BatchNorm", "LIF", "Pool2d", "Flatten", "Dense", "BatchNorm",
                     "LIF", "DenseReadout"]
    assert cfg.data.shift == 1 and cfg.train.label_smoothing == 0.1
    p.write_text(p.read_text().replace("batch_norm: true",
                                       "batch_norm: true\n  pool_currents: true"))
    kinds = [type(m).__name__ for m in build_model(load_train_config(p)).layers]
    assert kinds == ["Conv2d", "BatchNorm", "Pool2d", "LIF", "Flatten", "Dense", "BatchNorm",
                     "LIF", "DenseReadout"]
