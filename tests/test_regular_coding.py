"""The deterministic regular rate code: exact counts, numpy and torch give equal bits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge.encoding import REGULAR_PHASE, regular
from spikeforge.model.config import EncodingConfig
from spikeforge.model.convert import rate_code
from spikeforge.model.encoders import Encoding, encode, regular_spikes

PIXELS = np.arange(256) / 255.0  # every 8-bit intensity


def _counts(bits: np.ndarray) -> np.ndarray:
    """Spike counts of every prefix, ``[N, T + 1, n_in]`` (prefix 0 included)."""
    z = np.zeros((bits.shape[0], 1, bits.shape[2]), dtype=np.int64)
    return np.concatenate([z, np.cumsum(bits, axis=1, dtype=np.int64)], axis=1)


@pytest.mark.parametrize("steps", [1, 7, 32, 128, 255, 300])
def test_counts_are_nearest_integers_of_every_prefix(steps) -> None:
    bits = regular(PIXELS[None, :], steps)
    assert bits.dtype == np.uint8 and bits.shape == (1, steps, 256)
    assert set(np.unique(bits)) <= {0, 1}
    # k/255 * t is never a half-integer (255 is odd), so floor(t x + 1/2) is
    # the nearest integer, computed here exactly in integers: (2 t k + 255) // 510.
    t = np.arange(steps + 1)[:, None]
    k = np.arange(256)[None, :]
    np.testing.assert_array_equal(_counts(bits)[0], (2 * t * k + 255) // 510)


def test_ends_and_halves() -> None:
    bits = regular(np.array([[0.0, 1.0, 0.5, 0.25]]), 8)[0].T
    np.testing.assert_array_equal(bits[0], np.zeros(8))  # 0 never spikes
    np.testing.assert_array_equal(bits[1], np.ones(8))  # 1 spikes at every step
    np.testing.assert_array_equal(bits[2], [1, 0, 1, 0, 1, 0, 1, 0])  # halves round up
    np.testing.assert_array_equal(bits[3], [0, 1, 0, 0, 0, 1, 0, 0])  # 0.25: 0.5 at t=2 -> 1
    assert REGULAR_PHASE == 0.5


def test_prefix_error_at_most_half_and_deterministic() -> None:
    x = np.random.default_rng(0).random((20, 50))
    bits = regular(x, 128)
    t = np.arange(129)[None, :, None]
    assert np.abs(_counts(bits) - t * x[:, None, :]).max() <= 0.5
    assert np.array_equal(bits, regular(x, 128))
    # a run of T steps reads the first T steps of a longer code
    assert np.array_equal(bits[:, :32], regular(x, 32))


def test_regular_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="lie in"):
        regular(np.array([[1.5]]), 4)
    with pytest.raises(ValueError, match="lie in"):
        regular(np.array([[np.nan]]), 4)
    with pytest.raises(ValueError, match=r"\[N, n_in\]"):
        regular(np.zeros(3), 4)
    with pytest.raises(ValueError, match="positive integer"):
        regular(np.zeros((1, 3)), 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_encoder_equals_numpy(dtype) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(40, 784, generator=g, dtype=dtype),
                   torch.as_tensor(np.tile(PIXELS, 4)[None, :784], dtype=dtype)])
    spikes = regular_spikes(x, 64)
    assert spikes.shape == (64, 41, 784) and spikes.dtype == dtype
    want = regular(x.numpy(), 64)  # the numpy coder of the chain, [N, T, n]
    assert torch.equal(spikes, torch.from_numpy(want).to(dtype).transpose(0, 1))
    # through encode: image-shaped input, no random numbers drawn
    state = g.get_state()
    img = encode(Encoding.REGULAR, x[:, :784].reshape(41, 1, 28, 28), 64, g)
    assert torch.equal(g.get_state(), state)
    assert torch.equal(img.reshape(64, 41, 784), spikes)


def test_rate_code_and_config_accept_regular() -> None:
    x = np.random.default_rng(1).random((5, 16))
    s = rate_code(x, 12, seed=0, shape=(4, 4), coding=Encoding.REGULAR)
    assert torch.equal(s.reshape(12, 5, 16), torch.from_numpy(regular(x, 12)).float()
                       .transpose(0, 1))
    with pytest.raises(ValueError, match="numpy coders"):
        rate_code(x, 12, seed=0, coding=Encoding.DIRECT)
    assert EncodingConfig(kind="regular").kind is Encoding.REGULAR
