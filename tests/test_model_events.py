"""Event-driven dense products: equal to the dense product, gradients included; fallbacks."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from spikeforge.model import native
from spikeforge.model.events import MAX_DENSITY, event_linear
from spikeforge.model.layers import Dense, Dropout

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler for the kernels")


@pytest.mark.parametrize("n_out", [3, 64, 100, 300])
@pytest.mark.parametrize(("rows", "value"), [(70, 1.0), (70, 1.25), (300, 1.0)])
def test_event_linear_equals_dense(n_out: int, rows: int, value: float) -> None:
    # 300 rows: the weight gradient sums over several blocks of 128 rows
    torch.manual_seed(n_out)
    x = ((torch.rand(rows, 90) < 0.2).float() * value).requires_grad_()
    w = torch.randn(n_out, 90, requires_grad=True)
    b = torch.randn(n_out, requires_grad=True)
    g = torch.randn(rows, n_out)
    y = event_linear(x, w, b)
    assert y is not None
    (y * g).sum().backward()
    x2, w2, b2 = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y2 = F.linear(x2, w2, b2)
    (y2 * g).sum().backward()
    assert torch.allclose(y, y2, atol=1e-5)
    for a, r in ((x.grad, x2.grad), (w.grad, w2.grad), (b.grad, b2.grad)):
        assert torch.allclose(a, r, atol=1e-4)


def test_event_linear_without_bias_and_input_gradient() -> None:
    x = (torch.rand(30, 80) < 0.1).float()
    w = torch.randn(70, 80, requires_grad=True)
    y = event_linear(x, w, None)
    y.sum().backward()
    assert torch.allclose(y, x @ w.t(), atol=1e-5)
    assert torch.allclose(w.grad, torch.ones(30, 70).t() @ x, atol=1e-5)


def test_event_linear_falls_back() -> None:
    w = torch.randn(70, 80)
    assert event_linear(torch.rand(30, 80), w, None) is None  # real values
    assert event_linear((torch.rand(30, 80) < 0.9).float(), w, None) is None  # too dense
    two = (torch.rand(30, 80) < 0.1).float()
    two[5, 3], two[5, 4] = 1.0, 2.0
    assert event_linear(two, w, None) is None  # two different non-zero values
    two[5, 4] = float("nan")
    assert event_linear(two, w, None) is None
    assert event_linear((torch.rand(30, 80) < 0.1).double(), w.double(), None) is None
    zero = event_linear(torch.zeros(30, 80), w, torch.ones(70))
    assert zero is not None and torch.equal(zero, torch.ones(30, 70))
    assert MAX_DENSITY < 0.5


def test_dense_layer_on_spikes_over_time() -> None:
    torch.manual_seed(2)
    layer = Dense(120, 80)
    s = (torch.rand(6, 5, 120) < 0.15).float()
    ref = F.linear(s, layer.weight, layer.bias)
    assert torch.allclose(layer(s), ref, atol=1e-5)
    drop = Dropout(0.2).train()
    d = drop(s)  # spikes scaled by 1 / 0.8: still one non-zero value
    assert torch.allclose(layer(d), F.linear(d, layer.weight, layer.bias), atol=1e-5)
