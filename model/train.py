"""Deterministic training and evaluation of the float spiking models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["EpochStats", "evaluate", "predict", "train"]


@dataclass(frozen=True)
class EpochStats:
    """Figures of one finished epoch, passed to the ``progress`` callback.

    Attributes
    ----------
    epoch : int
        1-based epoch number.
    epochs : int
        Total number of epochs.
    loss : float
        Mean cross-entropy over the epoch's training samples.
    accuracy : float
        Training accuracy over the epoch (while the weights moved).
    """

    epoch: int
    epochs: int
    loss: float
    accuracy: float


def _as_tensor(spikes: np.ndarray) -> torch.Tensor:
    x = np.asarray(spikes)
    if x.ndim != 3:
        raise ValueError(f"spikes must be [N, T, n_in], not {list(x.shape)}")
    return torch.from_numpy(x.astype(np.float32))


def train(
    model: nn.Module,
    spikes_train: np.ndarray,
    y_train: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    progress: Callable[[EpochStats], None] | None = None,
) -> list[EpochStats]:
    """Train ``model`` with Adam on the cross-entropy of its readout scores.

    Deterministic for a given ``seed`` (batch order and any randomness of the
    model come from ``torch.manual_seed(seed)``); the caller sets the thread
    count (``torch.set_num_threads``).

    Parameters
    ----------
    model : torch.nn.Module
        Maps float spikes ``[B, T, n_in]`` to scores ``[B, n_out]``.
    spikes_train : numpy.ndarray
        0/1 spikes ``[N, T, n_in]`` (e.g. from :func:`spikeforge.encoding.bernoulli`).
    y_train : numpy.ndarray
        Integer labels ``[N]``.
    epochs : int
        Passes over the training set.
    lr : float
        Adam learning rate (decayed to zero over the run on a cosine schedule).
    batch_size : int
        Samples per step.
    seed : int
        Seed of the shuffling.
    progress : callable, optional
        Called with an :class:`EpochStats` after every epoch.

    Returns
    -------
    list of EpochStats
        One entry per epoch.
    """
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(
            f"epochs and batch_size must be positive and lr > 0, not {epochs}, {batch_size}, {lr}"
        )
    x = _as_tensor(spikes_train)
    y = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y_train must have shape [{x.shape[0]}], not {list(y.shape)}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-x.shape[0] // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    history = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        total_loss, correct = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            idx = order[i:i + batch_size]
            scores = model(x[idx])
            loss = loss_fn(scores, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += int((scores.argmax(dim=1) == y[idx]).sum())
        stats = EpochStats(epoch=epoch + 1, epochs=epochs, loss=total_loss / x.shape[0],
                           accuracy=correct / x.shape[0])
        history.append(stats)
        if progress is not None:
            progress(stats)
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, spikes: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Predicted classes ``[N]``: argmax of the scores, ties to the lowest index (QNET.md §3)."""
    x = _as_tensor(spikes)
    was_training = model.training
    model.eval()
    out = [model(x[i:i + batch_size]).argmax(dim=1) for i in range(0, x.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def evaluate(model: nn.Module, spikes: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of ``model`` on spikes ``[N, T, n_in]`` with labels ``y`` ``[N]``."""
    y = np.asarray(y)
    if y.shape[0] == 0:
        raise ValueError("cannot evaluate on zero samples")
    return float(np.mean(predict(model, spikes) == y))
