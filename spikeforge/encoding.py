"""Input coding that every part of the chain shares (numpy only).

* Bernoulli rate coding (:func:`bernoulli`): at each step, each input line
  spikes when its intensity in [0, 1] exceeds a uniform random number. The
  random numbers come from ``numpy.random.default_rng(seed)`` drawn as one
  ``[N, T, n_in]`` block, so the same seed gives the same bits in training, in
  the reference and in the RTL run.
* Regular rate coding (:func:`regular`): deterministic; each line is an
  integrate-and-fire neuron driven by its intensity (see the function).
"""

from __future__ import annotations

import numpy as np

__all__ = ["REGULAR_PHASE", "bernoulli", "onchip_rate_encode", "regular", "sample_seeds",
           "xorshift32"]


def _intensities(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"intensities must be [N, n_in], not {list(x.shape)}")
    if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):
        raise ValueError("intensities must lie in [0, 1]")
    return x


def _steps(timesteps: int) -> int:
    if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) \
            or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    return int(timesteps)


def bernoulli(x: np.ndarray, timesteps: int, seed: int) -> np.ndarray:
    """Rate-code intensities ``x`` (``[N, n_in]`` in [0, 1]) into uint8 ``[N, T, n_in]``."""
    x = _intensities(x)
    timesteps = _steps(timesteps)
    rng = np.random.default_rng(seed)
    u = rng.random((x.shape[0], timesteps, x.shape[1]))
    return (u < x[:, None, :]).astype(np.uint8)


# Initial membrane of the regular coder's integrate-and-fire pixels (threshold 1).
# 0.5 makes the spike count after every prefix of t steps the nearest integer
# to t*x (halves round up), the smallest possible error |count - t*x| <= 1/2, so
# a run of T steps can read the first T steps of a longer code. Phase 0 would
# give floor(t*x): always low, by x/2 on average, and a late first spike.
REGULAR_PHASE = 0.5


def regular(x: np.ndarray, timesteps: int) -> np.ndarray:
    """Deterministic rate code: intensities ``[N, n_in]`` in [0, 1] to uint8 ``[N, T, n_in]``.

    Each line is an integrate-and-fire neuron with threshold 1 and reset by
    subtraction, driven by the constant input ``x`` and starting at
    ``REGULAR_PHASE`` = 1/2::

        s[t] = floor((t + 1) x + 1/2) - floor(t x + 1/2),    t = 0 .. T-1

    so the spike count of the first ``t`` steps is ``floor(t x + 1/2)``, ``t x``
    rounded to the nearest integer (halves up), for every ``t <= T``: 0 never
    spikes, 1 spikes at every step, 1/2 at steps 0, 2, 4, ... The code needs no
    seed; the arithmetic is float64, so :func:`spikeforge.model.encoders.regular_spikes`
    gives the same bits for the same (float32 or float64) intensities.
    """
    x = _intensities(x)
    timesteps = _steps(timesteps)
    t = np.arange(timesteps + 1, dtype=np.float64)
    count = np.floor(t[None, :, None] * x[:, None, :] + REGULAR_PHASE)
    return np.diff(count, axis=1).astype(np.uint8)


# ----------------------------------------------------------------------------- on-chip

XORSHIFT_MASK = 0xFFFF_FFFF


def xorshift32(state: np.ndarray) -> np.ndarray:
    """One step of Marsaglia's xorshift32 (13, 17, 5) on uint32 states."""
    x = state.astype(np.uint32)
    x ^= (x << np.uint32(13)) & np.uint32(XORSHIFT_MASK)
    x ^= x >> np.uint32(17)
    x ^= (x << np.uint32(5)) & np.uint32(XORSHIFT_MASK)
    return x


def sample_seeds(n: int, base: int = 1) -> np.ndarray:
    """The documented per-sample seeds the host sends: ``base + i`` (mod 2^32, never 0)."""
    seeds = (np.arange(n, dtype=np.uint64) + np.uint64(base)) & np.uint64(XORSHIFT_MASK)
    seeds[seeds == 0] = 1
    return seeds.astype(np.uint32)


def onchip_rate_encode(pixels: np.ndarray, timesteps: int, seeds: np.ndarray) -> np.ndarray:
    """The hardware rate encoder's bits, reproduced exactly (docs/HARDWARE.md).

    For each sample the generator starts at ``state = seed`` (0 is replaced by 1).
    Steps run in order ``t = 0 .. T-1`` and, within a step, pixels ``i = 0 .. n_in-1``;
    each (t, i) advances ``state = xorshift32(state)`` once and fires when
    ``pixel[i] > state >> 24``. So a pixel of 255 fires with probability 255/256
    and a pixel of 0 never does.

    ``pixels`` is uint8 ``[N, n_in]``; ``seeds`` uint32 ``[N]``; returns uint8
    ``[N, T, n_in]``.
    """
    px = np.asarray(pixels)
    if px.ndim != 2 or not (np.issubdtype(px.dtype, np.integer)) or px.size and (
            px.min() < 0 or px.max() > 255):
        raise ValueError("pixels must be integers in 0..255 shaped [N, n_in]")
    seeds = np.asarray(seeds, dtype=np.uint64)
    if seeds.shape != (px.shape[0],):
        raise ValueError(f"need one seed per sample ({px.shape[0]}), not {list(seeds.shape)}")
    state = np.where(seeds == 0, 1, seeds & np.uint64(XORSHIFT_MASK)).astype(np.uint32)
    n, n_in = px.shape
    out = np.zeros((n, timesteps, n_in), dtype=np.uint8)
    pxi = px.astype(np.uint32)
    for t in range(timesteps):
        for i in range(n_in):
            state = xorshift32(state)
            out[:, t, i] = pxi[:, i] > (state >> np.uint32(24))
    return out
