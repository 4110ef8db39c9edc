"""Epochs of training and evaluation with the input encoded on the fly.

Randomness is explicit: the batch order and the Bernoulli bits of epoch ``e``
come from a :class:`torch.Generator` seeded with :func:`epoch_seed` ``(seed, e)``,
and test-set coding from ``seed`` alone, so any epoch can be replayed (and a
run resumed at an epoch boundary) without the generator states of the past.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .augment import Augment, augment_batch
from .encoders import Encoding, encode

__all__ = [
    "EpochResult",
    "epoch_seed",
    "evaluate_encoded",
    "predict_encoded",
    "retain_freed_memory",
    "train_epoch",
]


def retain_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 32 MiB in the heap instead of unmapping them.

    torch's CPU allocator is plain ``malloc``: every activation of a few MiB is
    a fresh ``mmap`` whose pages fault in on first touch and are returned on
    free, and on ``[T, B, C, H, W]`` spiking activations those page faults cost
    more than the arithmetic (measured: a conv SNN batch 1.7x faster with this).
    Process-wide, harmless (freed memory is reused, not returned to the system),
    and a no-op returning False where glibc's ``mallopt`` is not available.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
    return ok and mallopt(m_trim_threshold, 512 * 1024 * 1024) == 1


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return (int(seed) * 1_000_003 + int(epoch) * 7_919 + 1) % (2**63)


@dataclass(frozen=True)
class EpochResult:
    """Mean training loss and accuracy of one epoch (while the weights moved)."""

    loss: float
    accuracy: float


def train_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    encoding: Encoding,
    timesteps: int,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    generator: torch.Generator,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    on_batch: Callable[[int, float], None] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    augment: Augment | None = None,
) -> EpochResult:
    """One pass over ``(x, y)`` in a random order, minimising ``loss_fn(scores, y)``.

    Parameters
    ----------
    model : nn.Module
        Maps ``[T, B, ...]`` to scores ``[B, classes]``.
    x, y : torch.Tensor
        Intensities ``[N, ...]`` in ``[0, 1]`` and labels ``[N]``.
    encoding : Encoding
        Input coding, applied per batch.
    timesteps : int
        Steps per sample.
    optimizer : torch.optim.Optimizer
        Stepped once per batch.
    batch_size : int
        Samples per batch (the last batch may be smaller).
    generator : torch.Generator
        Source of the batch order and of the input spikes.
    scheduler : LRScheduler, optional
        Stepped once per batch.
    on_batch : callable, optional
        ``on_batch(samples_done, loss)`` after each batch.
    loss_fn : callable
        The loss of the scores and labels (default: cross-entropy); a loss that
        is an ``nn.Module`` (e.g. :class:`~spikeforge.model.stochmax.Stochmax`)
        is put in training mode with the model.
    augment : Augment, optional
        Random translation / flip of each batch of images ``[B, C, H, W]``
        before encoding, drawn from ``generator``.
    """
    model.train()
    if isinstance(loss_fn, nn.Module):
        loss_fn.train()
    n = x.shape[0]
    order = torch.randperm(n, generator=generator)
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.int64)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        xb, yb = x[idx], y[idx]
        if augment is not None and augment.active:
            xb = augment_batch(xb, augment, generator)
        scores = model(encode(encoding, xb, timesteps, generator))
        loss = loss_fn(scores, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        with torch.no_grad():
            total_loss += loss.detach() * len(idx)
            correct += (scores.argmax(1) == yb).sum()
        if on_batch is not None:
            on_batch(min(i + batch_size, n), float(loss.detach()))
    return EpochResult(loss=float(total_loss) / n, accuracy=int(correct) / n)


@torch.no_grad()
def predict_encoded(model: nn.Module, x: torch.Tensor, *, encoding: Encoding, timesteps: int,
                    seed: int, batch_size: int = 256) -> torch.Tensor:
    """Predicted classes ``[N]`` (argmax, ties to the lowest index)."""
    was = model.training
    model.eval()
    gen = torch.Generator().manual_seed(int(seed))
    out = [model(encode(encoding, x[i:i + batch_size], timesteps, gen)).argmax(1)
           for i in range(0, x.shape[0], batch_size)]
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def evaluate_encoded(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, encoding: Encoding,
                     timesteps: int, seed: int, batch_size: int = 256) -> float:
    """Accuracy on ``(x, y)`` with the input coded from ``seed``."""
    if x.shape[0] == 0:
        raise ValueError("cannot evaluate on zero samples")
    pred = predict_encoded(model, x, encoding=encoding, timesteps=timesteps, seed=seed,
                           batch_size=batch_size)
    return float((pred == y).double().mean())
