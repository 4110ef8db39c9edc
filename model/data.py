"""The scikit-learn digits data set (8x8 images, 10 classes), offline and deterministic."""

from __future__ import annotations

import numpy as np

from spikeforge.encoding import bernoulli

__all__ = ["load_digits_split", "rate_code_copies"]


def load_digits_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/test split of ``sklearn.datasets.load_digits``.

    Parameters
    ----------
    test_fraction : float
        Share of the samples held out for testing, in ``(0, 1)``.
    seed : int
        Seed of the split.

    Returns
    -------
    x_train, y_train, x_test, y_test : numpy.ndarray
        Intensities as float64 ``[N, 64]`` in ``[0, 1]`` (pixel values / 16) and
        labels as int64 ``[N]``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), not {test_fraction!r}")
    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    return x_train, y_train, x_test, y_test


def rate_code_copies(
    x: np.ndarray, y: np.ndarray, timesteps: int, seed: int, copies: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Rate-code ``copies`` independent spike trains of every sample (training augmentation).

    The samples are repeated ``copies`` times and coded in one
    :func:`spikeforge.encoding.bernoulli` call, so each copy sees different
    random bits and the result depends only on ``seed``.

    Parameters
    ----------
    x : numpy.ndarray
        Intensities ``[N, n_in]`` in ``[0, 1]``.
    y : numpy.ndarray
        Labels ``[N]``.
    timesteps : int
        Steps per spike train ``T``.
    seed : int
        Seed of the coding.
    copies : int
        Spike trains per sample.

    Returns
    -------
    spikes : numpy.ndarray
        uint8 ``[copies * N, T, n_in]``, copy-major.
    labels : numpy.ndarray
        ``[copies * N]``, matching ``spikes``.
    """
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be a positive integer, not {copies!r}")
    x = np.asarray(x)
    y = np.asarray(y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape [{x.shape[0]}], not {list(y.shape)}")
    return bernoulli(np.tile(x, (copies, 1)), timesteps, seed), np.tile(y, copies)
