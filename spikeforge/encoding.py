"""Input coding that every part of the chain shares (numpy only, seeded).

Bernoulli rate coding: at each step, each input line spikes when its intensity
in [0, 1] exceeds a uniform random number. The random numbers come from
``numpy.random.default_rng(seed)`` drawn as one ``[N, T, n_in]`` block, so the
same seed gives the same bits in training, in the reference and in the RTL run.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bernoulli"]


def bernoulli(x: np.ndarray, timesteps: int, seed: int) -> np.ndarray:
    """Rate-code intensities ``x`` (``[N, n_in]`` in [0, 1]) into uint8 ``[N, T, n_in]``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"intensities must be [N, n_in], not {list(x.shape)}")
    if x.size and (x.min() < 0.0 or x.max() > 1.0):
        raise ValueError("intensities must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    u = rng.random((x.shape[0], timesteps, x.shape[1]))
    return (u < x[:, None, :]).astype(np.uint8)
