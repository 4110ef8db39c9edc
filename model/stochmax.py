"""Stochastic softmax (stochmax): drop non-target classes during training.

Panda, Aketi & Roy (2020) train SNNs with the stochastic softmax of Lee et al.
(2018, DropMax): at every training step each non-target class ``k`` is kept
with a learned, input-dependent retain probability ``rho_k`` and dropped
otherwise, so the network learns to discriminate the target from a changing
subset of (mostly confusable) classes; the target class is always kept. At
inference the classifier is the plain softmax of the scores.

With scores ``o`` and a relaxed Bernoulli mask ``z`` (``z_y = 1``)::

    rho  = sigmoid(A normalise(o) + c)                  # learned retain probabilities
    z_k  = sigmoid((logit rho_k + logit u_k) / tau)     # u ~ U(0, 1): Concrete relaxation
    loss = -log( exp(o_y) / sum_k z_k exp(o_k) ) + lambda * BCE(rho, onehot(y))

The first term is the cross-entropy of the masked logits ``o + log z``; the
second teaches ``rho`` which classes could be the target for this input (the
prior ``p(z | x)`` of DropMax, whose KL term reduces to it when the target is
forced in), so confusable classes are kept and unrelated ones dropped. ``A``
starts at zero and ``c`` at ``logit(init_retain)``. The mask noise comes from
the global torch generator (seeded by the trainer, like
:class:`~spikeforge.model.layers.Dropout`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["Stochmax"]


class Stochmax(nn.Module):
    """Stochmax loss with learned retain probabilities; softmax cross-entropy in eval mode.

    Use it as the loss of :func:`~spikeforge.model.engine.train_epoch`
    (``loss_fn=stochmax``) and give its parameters to the optimizer too.

    Parameters
    ----------
    n_classes : int
        Classes.
    temperature : float
        Temperature ``tau`` of the relaxed Bernoulli mask.
    retain_weight : float
        Weight ``lambda`` of the retain-probability loss.
    init_retain : float
        Initial retain probability of every class, in ``(0, 1)``.
    """

    def __init__(self, n_classes: int, *, temperature: float = 0.1, retain_weight: float = 1.0,
                 init_retain: float = 0.9) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, not {n_classes!r}")
        if not temperature > 0.0:
            raise ValueError(f"temperature must be positive, not {temperature!r}")
        if retain_weight < 0.0:
            raise ValueError(f"retain_weight must be >= 0, not {retain_weight!r}")
        if not 0.0 < init_retain < 1.0:
            raise ValueError(f"init_retain must lie in (0, 1), not {init_retain!r}")
        self.temperature = float(temperature)
        self.retain_weight = float(retain_weight)
        self.retain = nn.Linear(n_classes, n_classes)
        nn.init.zeros_(self.retain.weight)
        nn.init.constant_(self.retain.bias, math.log(init_retain / (1.0 - init_retain)))

    def retain_logits(self, scores: torch.Tensor) -> torch.Tensor:
        """``logit rho`` ``[B, C]`` from the scores, standardised per sample and detached.

        The scores of a spiking readout grow with ``T``; standardising makes the
        retain head independent of that scale. Detaching keeps the retain loss
        from training the network itself: the network learns only from the
        masked cross-entropy.
        """
        o = scores.detach()
        o = (o - o.mean(1, keepdim=True)) / (o.std(1, keepdim=True) + 1e-6)
        return self.retain(o)

    def retain_probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """Retain probabilities ``rho`` ``[B, C]``."""
        return torch.sigmoid(self.retain_logits(scores))

    def masked_logits(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``o + log z`` with a relaxed Bernoulli mask ``z`` and the target always kept."""
        logit_rho = self.retain_logits(scores)
        u = torch.rand_like(scores).clamp_(1e-6, 1.0 - 1e-6)
        z = torch.sigmoid((logit_rho + torch.log(u) - torch.log1p(-u)) / self.temperature)
        keep = F.one_hot(target, scores.shape[1]).to(torch.bool)
        z = torch.where(keep, torch.ones_like(z), z)
        return scores + torch.log(z + 1e-8)

    def forward(self, scores: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The stochmax loss in training mode, ``cross_entropy(scores, target)`` in eval mode.

        Parameters
        ----------
        scores : torch.Tensor
            Class scores (logits) ``[B, C]``.
        target : torch.Tensor
            Labels ``[B]``.

        Returns
        -------
        torch.Tensor
            Mean loss over the batch.
        """
        if not self.training:
            return F.cross_entropy(scores, target)
        ce = F.cross_entropy(self.masked_logits(scores, target), target)
        onehot = F.one_hot(target, scores.shape[1]).to(scores.dtype)
        aux = F.binary_cross_entropy_with_logits(self.retain_logits(scores), onehot)
        return ce + self.retain_weight * aux

    @staticmethod
    def probabilities(scores: torch.Tensor) -> torch.Tensor:
        """Class probabilities at inference: the softmax of the scores (no class is dropped)."""
        return torch.softmax(scores, dim=1)
