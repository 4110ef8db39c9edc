"""Seeded data augmentation of image batches ``[B, C, H, W]``, applied before encoding.

Random translation (zero padding by ``shift`` pixels, then a random
``H x W`` crop: the "random crop" of image classifiers) and random horizontal
flip. The randomness comes from the epoch's :class:`torch.Generator`, so an
epoch, and a resumed run, are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

__all__ = ["Augment", "augment_batch"]


@dataclass(frozen=True)
class Augment:
    """What :func:`augment_batch` does.

    Attributes
    ----------
    shift : int
        Largest translation in pixels along each axis (0: none).
    flip : bool
        Mirror each image left-right with probability 1/2.
    """

    shift: int = 0
    flip: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ValueError(f"shift must be a non-negative integer, not {self.shift!r}")

    @property
    def active(self) -> bool:
        """Whether it changes anything."""
        return self.shift > 0 or self.flip


def augment_batch(x: torch.Tensor, aug: Augment, generator: torch.Generator) -> torch.Tensor:
    """A randomly translated and flipped copy of images ``x`` ``[B, C, H, W]``.

    Each image gets its own offsets in ``[-shift, shift]`` (uncovered pixels
    are 0) and its own flip.
    """
    if x.ndim != 4:
        raise ValueError(f"augmentation needs images [B, C, H, W], not {list(x.shape)}")
    b, _, h, w = x.shape
    if aug.shift > 0:
        s = aug.shift
        padded = F.pad(x, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (b,), generator=generator)
        dx = torch.randint(0, 2 * s + 1, (b,), generator=generator)
        rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # [B, 1, H, 1]
        cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # [B, 1, 1, W]
        bi = torch.arange(b)[:, None, None, None]
        ci = torch.arange(x.shape[1])[None, :, None, None]
        x = padded[bi, ci, rows, cols]
    if aug.flip:
        mirror = torch.rand(b, generator=generator) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    return x
