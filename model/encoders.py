"""Input encoders in torch, made on the fly per batch, seeded and reproducible.

Every encoder maps intensities ``x`` (``[B, ...]`` in ``[0, 1]``) to a
time-major input ``[T, B, ...]``:

* :attr:`Encoding.BERNOULLI` -- rate coding: at each step a line spikes when
  its intensity exceeds a uniform random number, ``P(spike) = x``. The random
  numbers are 16-bit integers cut from the 64-bit words of a counter-based
  splitmix64 stream whose seed is drawn from a :class:`torch.Generator`
  (``P = round(x * 2^16) / 2^16``); a C pass draws, compares and writes them
  blockwise, ~2.7x faster than torch's generator and a separate compare, which
  matters because a batch of 64 Fashion-MNIST images at ``T = 20`` needs a
  million of them.
  (:func:`spikeforge.encoding.bernoulli` is the numpy coder of the hardware
  chain; this one is for training and does not reproduce its bits.)
* :attr:`Encoding.DIRECT` -- the real-valued intensities at every step, as a
  stride-0 view (no copy); a first :class:`~spikeforge.model.layers.Dense` or
  :class:`~spikeforge.model.layers.Conv2d` layer then computes its product once.
* :attr:`Encoding.LATENCY` -- time-to-first-spike: one spike at step
  ``round((1 - x) * (T - 1))``, brighter is earlier; ``x <= cutoff`` never
  spikes. Deterministic.
* :attr:`Encoding.REGULAR` -- deterministic rate coding: each line is an
  integrate-and-fire neuron (threshold 1, reset by subtraction, starting at
  1/2) driven by its intensity, ``s[t] = floor((t+1) x + 1/2) - floor(t x + 1/2)``;
  the first ``t`` steps hold ``round(t x)`` spikes for every ``t``. The same bits
  as :func:`spikeforge.encoding.regular`, the numpy coder a QNet's input is made
  with, so a model trained on it runs on a QNet with identical input.
"""

from __future__ import annotations

import numpy as np
import torch

from spikeforge.trainconfig import Encoding  # torch-free, so configs name it

from . import native

__all__ = ["Encoding", "bernoulli_spikes", "direct_input", "encode", "latency_spikes",
           "regular_spikes"]


def _check(x: torch.Tensor, timesteps: int) -> None:
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive integer, not {timesteps!r}")
    if x.ndim < 2:
        raise ValueError(f"intensities must be [B, ...], not {list(x.shape)}")


def bernoulli_spikes(x: torch.Tensor, timesteps: int, generator: torch.Generator) -> torch.Tensor:
    """Bernoulli rate coding, ``[B, ...] -> [T, B, ...]`` 0/1 in ``x``'s float dtype.

    Parameters
    ----------
    x : torch.Tensor
        Intensities in ``[0, 1]``.
    timesteps : int
        Steps ``T``.
    generator : torch.Generator
        Source of the random bits; the same generator state gives the same spikes.

    Returns
    -------
    torch.Tensor
        Spikes with ``P(spike) = round(x * 65536) / 65536``.
    """
    _check(x, timesteps)
    # one 64-bit seed from the generator, then a counter-based stream (splitmix64):
    # 4x faster than torch's Mersenne twister here, and the C pass draws, compares
    # and writes in one sweep; the numpy path gives the same bits
    seed = int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64,
                             generator=generator, device=generator.device)) % 2**64
    # r is uniform on [-2^15, 2^15); r < x * 2^16 - 2^15 has probability x.
    level = (x * 65536.0).round().to(torch.int32) - 32768
    dtype = x.dtype if x.is_floating_point() else torch.float32
    if dtype == torch.float32 and native.usable(x):
        return native.bernoulli_splitmix_f32(seed, timesteps, level)
    r = torch.from_numpy(splitmix_draws(seed, timesteps * x.numel()))
    return torch.lt(r.view(timesteps, *x.shape).to(x.device), level).to(dtype)


def splitmix_draws(seed: int, n: int) -> np.ndarray:
    """The ``n`` signed 16-bit draws of ``seed``: draw ``k`` is bits ``16 (k % 4) ...`` of
    ``splitmix64(seed + (k // 4 + 1) * 0x9E3779B97F4A7C15)`` (what the C pass computes)."""
    seed %= 2**64
    i = np.arange(1, (n + 3) // 4 + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z.astype("<u8").view("<i2")[:n].copy()


def direct_input(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """The intensities at every step: a stride-0 ``[T, B, ...]`` view of ``x``."""
    _check(x, timesteps)
    return x.unsqueeze(0).expand(timesteps, *x.shape)


def latency_spikes(x: torch.Tensor, timesteps: int, cutoff: float = 0.0) -> torch.Tensor:
    """Time-to-first-spike coding: one spike at ``round((1 - x) (T - 1))`` where ``x > cutoff``.

    Parameters
    ----------
    x : torch.Tensor
        Intensities in ``[0, 1]``.
    timesteps : int
        Steps ``T``.
    cutoff : float
        Intensities at or below it never spike.

    Returns
    -------
    torch.Tensor
        0/1 ``[T, B, ...]``, at most one spike per line.
    """
    _check(x, timesteps)
    t_fire = ((1.0 - x.clamp(0.0, 1.0)) * (timesteps - 1)).round().long()
    t_fire = torch.where(x > cutoff, t_fire, torch.full_like(t_fire, timesteps))
    steps = torch.arange(timesteps, device=x.device).view(timesteps, *([1] * x.ndim))
    return (steps == t_fire.unsqueeze(0)).to(x.dtype if x.is_floating_point() else torch.float32)


def regular_spikes(x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """Deterministic rate coding, ``[B, ...] -> [T, B, ...]`` 0/1 in ``x``'s float dtype.

    ``s[t] = floor((t + 1) x + 1/2) - floor(t x + 1/2)`` for ``t = 0 .. T-1``: an
    integrate-and-fire neuron per line with constant input ``x``, threshold 1,
    reset by subtraction and initial membrane 1/2 (why 1/2:
    :data:`spikeforge.encoding.REGULAR_PHASE`). Computed in float64 as the numpy
    coder :func:`spikeforge.encoding.regular` is, so the bits are equal.

    Parameters
    ----------
    x : torch.Tensor
        Intensities; values outside ``[0, 1]`` are clamped.
    timesteps : int
        Steps ``T``.

    Returns
    -------
    torch.Tensor
        0/1 ``[T, B, ...]``; the first ``t`` steps of a line hold ``floor(t x + 1/2)`` spikes.
    """
    _check(x, timesteps)
    xd = x.detach().to(torch.float64).clamp(0.0, 1.0)
    t = torch.arange(timesteps + 1, dtype=torch.float64, device=x.device)
    count = torch.floor(t.view(-1, *([1] * x.ndim)) * xd.unsqueeze(0) + 0.5)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    return (count[1:] - count[:-1]).to(dtype)


def encode(kind: Encoding, x: torch.Tensor, timesteps: int,
           generator: torch.Generator) -> torch.Tensor:
    """Encode ``x`` with ``kind``; ``generator`` is used by Bernoulli coding only."""
    if kind is Encoding.BERNOULLI:
        return bernoulli_spikes(x, timesteps, generator)
    if kind is Encoding.DIRECT:
        return direct_input(x, timesteps)
    if kind is Encoding.LATENCY:
        return latency_spikes(x, timesteps)
    if kind is Encoding.REGULAR:
        return regular_spikes(x, timesteps)
    raise ValueError(f"kind must be an Encoding, not {kind!r}")
