"""Unsupervised pair-based STDP with winner-take-all competition (Diehl & Cook 2015 style).

A layer of excitatory LIF neurons learns input features without labels:

* **Dynamics** (:func:`competitive_step`, one step, the equation written once)::

      v      = beta * v + W s_in                       # W >= 0, [n_out, n_in]
      theta  = theta0 + theta_adapt                    # per neuron
      winner = argmax_j (v_j - theta_j)                # per sample
      s      = onehot(winner) if v_winner >= theta_winner else 0
      v      = 0 for the winner; max(v - inhibition, 0) for the others, where s fired

  Lateral inhibition is the hard winner-take-all of Diehl & Cook's inhibitory
  population: at most one neuron per sample fires per step, and a spike pushes
  every rival's membrane down by ``inhibition``.
* **Adaptive thresholds** (homeostasis): every spike of neuron ``j`` raises
  ``theta_adapt[j]`` by ``theta_plus`` during learning, so no neuron wins
  every input.
* **Pair-based STDP** with exponential windows (:func:`stdp_update`): for every
  pair of a pre-synaptic spike at ``t_pre`` and a post-synaptic spike at
  ``t_post``::

      dw = +a_plus  * exp(-(t_post - t_pre) / tau_plus)    if t_pre <= t_post  (potentiation)
      dw = -a_minus * exp(-(t_pre - t_post) / tau_minus)   if t_pre >  t_post  (depression)

  computed with exponential traces (all-to-all pairing). Weights are clipped to
  ``[0, w_max]`` and each neuron's incoming weights are renormalised to sum to
  ``weight_sum`` (Diehl & Cook's normalisation), so they stay non-negative for
  hardware.

Learning is mini-batched (as in Panda et al. 2020, after Srinivasan & Roy
2019): a batch is presented for ``T`` steps with frozen weights and the summed
pair updates are applied afterwards. A trained readout
(:class:`~spikeforge.model.layers.DenseReadout`) then classifies the spike
counts. The QNet has no lateral connections, so the layer runs at inference
either with the competition (:attr:`Competition.WTA`, float only) or without it
(:attr:`Competition.NONE`: plain LIF neurons with per-neuron thresholds), and
only the latter exports to a QNet (:func:`stdp_to_qnet`).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spikeforge.qnet import InputSpec, Layer, QNet, Reset

from .encoders import bernoulli_spikes
from .export import _check_fits
from .kernels import lif_sequence
from .layers import DenseReadout
from .network import SNN
from .neurons import LIFParams, beta_from_shifts

__all__ = [
    "Competition",
    "CompetitiveParams",
    "STDPLayer",
    "STDPParams",
    "competitive_step",
    "stdp_to_qnet",
    "stdp_update",
    "train_stdp",
]


class Competition(enum.Enum):
    """How the neurons of an :class:`STDPLayer` compete at inference."""

    WTA = "wta"  # lateral inhibition, at most one spike per sample and step (float only)
    NONE = "none"  # independent LIF neurons with per-neuron thresholds (exports to a QNet)


@dataclass(frozen=True)
class STDPParams:
    """Pair-based STDP with exponential windows.

    Attributes
    ----------
    a_plus : float
        Potentiation amplitude (pre at or before post).
    a_minus : float
        Depression amplitude (pre after post).
    tau_plus : float
        Potentiation window, in steps.
    tau_minus : float
        Depression window, in steps.
    w_max : float
        Upper weight bound (the lower bound is 0).
    weight_sum : float or None
        Each neuron's incoming weights are rescaled to this sum after every
        update; ``None`` leaves the sums free.
    """

    a_plus: float = 0.01
    a_minus: float = 0.0105
    tau_plus: float = 4.0
    tau_minus: float = 4.0
    w_max: float = 1.0
    weight_sum: float | None = None

    def __post_init__(self) -> None:
        if self.a_plus < 0.0 or self.a_minus < 0.0:
            raise ValueError(f"a_plus and a_minus must be >= 0, not {self.a_plus!r}, "
                             f"{self.a_minus!r}")
        if not (self.tau_plus > 0.0 and self.tau_minus > 0.0):
            raise ValueError(f"tau_plus and tau_minus must be positive, not {self.tau_plus!r}, "
                             f"{self.tau_minus!r}")
        if not self.w_max > 0.0:
            raise ValueError(f"w_max must be positive, not {self.w_max!r}")
        if self.weight_sum is not None and not self.weight_sum > 0.0:
            raise ValueError(f"weight_sum must be positive or None, not {self.weight_sum!r}")


@dataclass(frozen=True)
class CompetitiveParams:
    """Neurons of an STDP layer.

    Attributes
    ----------
    leak_shifts : tuple of int
        Hardware leak shifts (``beta = 1 - sum 2^-k``); ``()`` is an IF neuron.
    threshold : float
        Base threshold ``theta0``.
    inhibition : float
        How far a spike pushes every rival's membrane down (WTA only).
    theta_plus : float
        Threshold increase per spike while learning.
    """

    leak_shifts: tuple[int, ...] = (3,)
    threshold: float = 4.0
    inhibition: float = 1e9
    theta_plus: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "leak_shifts", tuple(sorted(self.leak_shifts)))
        beta_from_shifts(self.leak_shifts)  # validates
        if not self.threshold > 0.0:
            raise ValueError(f"threshold must be positive, not {self.threshold!r}")
        if self.inhibition < 0.0 or self.theta_plus < 0.0:
            raise ValueError(f"inhibition and theta_plus must be >= 0, not "
                             f"{self.inhibition!r}, {self.theta_plus!r}")

    @property
    def beta(self) -> float:
        """Leak factor ``1 - sum 2^-k``."""
        return beta_from_shifts(self.leak_shifts)


def competitive_step(current: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor,
                     params: CompetitiveParams) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of LIF neurons under winner-take-all lateral inhibition.

    ``v' = beta v + I``; the neuron with the largest ``v' - theta`` fires if it
    is at or above its threshold; the winner resets to 0 and every other
    neuron's membrane drops by ``inhibition`` (not below 0).

    Parameters
    ----------
    current : torch.Tensor
        Input current ``[B, n]``.
    v : torch.Tensor
        Membrane before the step, ``[B, n]``.
    threshold : torch.Tensor
        Per-neuron thresholds ``[n]``.
    params : CompetitiveParams
        Leak and inhibition.

    Returns
    -------
    spikes : torch.Tensor
        0/1 ``[B, n]``, at most one 1 per row.
    v : torch.Tensor
        Membrane after reset and inhibition.
    """
    v = params.beta * v + current
    over, winner = (v - threshold).max(dim=1)
    fired = (over >= 0).to(v.dtype)
    s = torch.zeros_like(v)
    s.scatter_(1, winner.unsqueeze(1), fired.unsqueeze(1))
    v = (v - params.inhibition * fired.unsqueeze(1)).clamp_(min=0.0) * (1.0 - s)
    return s, v


def _traces(spikes: torch.Tensor, tau: float) -> torch.Tensor:
    """``x[t] = sum_{t' <= t} exp(-(t - t') / tau) s[t']`` for ``[T, ...]`` spikes."""
    decay = math.exp(-1.0 / tau)
    out = torch.empty_like(spikes)
    x = torch.zeros_like(spikes[0])
    for t in range(spikes.shape[0]):
        x = x * decay + spikes[t]
        out[t] = x
    return out


def stdp_update(pre: torch.Tensor, post: torch.Tensor, params: STDPParams) -> torch.Tensor:
    """Summed pair-based STDP updates of a presentation, all-to-all pairs.

    For every pre spike at ``t_pre`` of input ``i`` and post spike at ``t_post``
    of neuron ``j`` in the same sample::

        dW[j, i] += a_plus  * exp(-(t_post - t_pre) / tau_plus)    if t_pre <= t_post
        dW[j, i] -= a_minus * exp(-(t_pre - t_post) / tau_minus)   if t_pre >  t_post

    computed with traces: the post spike reads the pre trace (which includes a
    pre spike of the same step), the pre spike reads the post trace of the steps
    before.

    Parameters
    ----------
    pre : torch.Tensor
        Pre-synaptic spikes ``[T, B, n_in]``.
    post : torch.Tensor
        Post-synaptic spikes ``[T, B, n_out]``.
    params : STDPParams
        Amplitudes and windows.

    Returns
    -------
    torch.Tensor
        ``dW`` ``[n_out, n_in]``, summed over the batch.
    """
    if pre.shape[:2] != post.shape[:2]:
        raise ValueError(f"pre {list(pre.shape)} and post {list(post.shape)} must share [T, B]")
    x_pre = _traces(pre, params.tau_plus)
    x_post = _traces(post, params.tau_minus)
    # the post trace seen by a pre spike at t holds post spikes of steps < t only
    x_post_before = torch.cat([torch.zeros_like(x_post[:1]),
                               x_post[:-1] * math.exp(-1.0 / params.tau_minus)])
    potentiation = torch.einsum("tbj,tbi->ji", post, x_pre)
    depression = torch.einsum("tbj,tbi->ji", x_post_before, pre)
    return params.a_plus * potentiation - params.a_minus * depression


class STDPLayer(nn.Module):
    """A dense layer of competing LIF neurons whose non-negative weights learn by STDP.

    Time-major like the layers of :mod:`spikeforge.model.layers`: input spikes
    ``[T, B, n_in]`` to output spikes ``[T, B, n_out]``. The weights and the
    adapted thresholds are buffers (no gradient); :meth:`learn` updates them.

    Parameters
    ----------
    n_in, n_out : int
        Inputs and neurons.
    neuron : CompetitiveParams
        Neuron dynamics.
    stdp : STDPParams
        Learning rule.
    competition : Competition
        How the neurons compete in :meth:`forward` (inference).
    generator : torch.Generator, optional
        Source of the initial weights, uniform in ``[0, 0.3 w_max]`` (then
        normalised when ``stdp.weight_sum`` is set).
    """

    def __init__(self, n_in: int, n_out: int, *, neuron: CompetitiveParams | None = None,
                 stdp: STDPParams | None = None, competition: Competition = Competition.WTA,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if n_in < 1 or n_out < 1:
            raise ValueError(f"n_in and n_out must be positive, not {n_in!r}, {n_out!r}")
        if not isinstance(competition, Competition):
            raise ValueError(f"competition must be a Competition, not {competition!r}")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.neuron = neuron if neuron is not None else CompetitiveParams()
        self.stdp = stdp if stdp is not None else STDPParams()
        self.competition = competition
        w = torch.rand(n_out, n_in, generator=generator) * (0.3 * self.stdp.w_max)
        self.register_buffer("weight", w)
        self.register_buffer("theta_adapt", torch.zeros(n_out))
        self._normalise()

    @property
    def thresholds(self) -> torch.Tensor:
        """Per-neuron thresholds ``theta0 + theta_adapt``, ``[n_out]``."""
        return self.neuron.threshold + self.theta_adapt

    def _normalise(self) -> None:
        w = self.weight
        w.clamp_(0.0, self.stdp.w_max)
        if self.stdp.weight_sum is not None:
            sums = w.sum(1, keepdim=True).clamp_(min=1e-12)
            w.mul_(self.stdp.weight_sum / sums).clamp_(0.0, self.stdp.w_max)

    def run(self, x: torch.Tensor, competition: Competition) -> torch.Tensor:
        """Output spikes ``[T, B, n_out]`` of input spikes ``x`` with the given competition."""
        if x.ndim != 3 or x.shape[2] != self.n_in:
            raise ValueError(f"input must be [T, B, {self.n_in}], not {list(x.shape)}")
        currents = torch.nn.functional.linear(x, self.weight)
        theta = self.thresholds
        if competition is Competition.NONE:
            # With reset to zero, scaling a neuron's currents and threshold by the same
            # factor leaves its spikes unchanged: per-neuron thresholds on the fused loop.
            params = LIFParams(beta=self.neuron.beta, threshold=1.0, reset=Reset.ZERO)
            return lif_sequence((currents / theta).contiguous(), params)
        v = torch.zeros_like(currents[0])
        out = torch.empty_like(currents)
        for t in range(currents.shape[0]):
            out[t], v = competitive_step(currents[t], v, theta, self.neuron)
        return out

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.run(x, self.competition)

    @torch.no_grad()
    def learn(self, x: torch.Tensor) -> torch.Tensor:
        """Present a batch with competition, then apply STDP and threshold adaptation.

        Parameters
        ----------
        x : torch.Tensor
            Input spikes ``[T, B, n_in]``.

        Returns
        -------
        torch.Tensor
            The output spikes ``[T, B, n_out]`` of the presentation.
        """
        post = self.run(x, Competition.WTA)
        self.weight += stdp_update(x, post, self.stdp)
        self._normalise()
        self.theta_adapt += self.neuron.theta_plus * post.sum((0, 1))
        return post

    def extra_repr(self) -> str:  # noqa: D102
        return f"n_in={self.n_in}, n_out={self.n_out}, competition={self.competition.value}"


def train_stdp(layer: STDPLayer, x: torch.Tensor, *, timesteps: int, epochs: int,
               batch_size: int, generator: torch.Generator,
               on_batch: Callable[[int, torch.Tensor], None] | None = None) -> None:
    """Unsupervised training of ``layer`` on intensities ``x`` (labels are never seen).

    Parameters
    ----------
    layer : STDPLayer
        Updated in place.
    x : torch.Tensor
        Intensities ``[N, n_in]`` in ``[0, 1]``, Bernoulli-coded per batch (scale
        them first to set the input rate).
    timesteps : int
        Presentation length ``T``.
    epochs : int
        Passes over ``x``.
    batch_size : int
        Samples per STDP update.
    generator : torch.Generator
        Source of the order and of the input spikes.
    on_batch : callable, optional
        ``on_batch(samples_done, post_spikes)`` after each batch.
    """
    n = x.shape[0]
    done = 0
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for i in range(0, n, batch_size):
            spikes = bernoulli_spikes(x[order[i:i + batch_size]], timesteps, generator)
            post = layer.learn(spikes)
            done += spikes.shape[1]
            if on_batch is not None:
                on_batch(done, post)


def stdp_to_qnet(model: SNN, *, weight_bits: int, membrane_bits: int, timesteps: int,
                 name: str = "stdp", input_shape: tuple[int, ...] | None = None) -> QNet:
    """Quantize ``SNN([STDPLayer (Competition.NONE), DenseReadout])`` into a QNet.

    The STDP layer's weights are non-negative; its scale is
    ``s = (2^(wb-1) - 1) / max W``, integer weights ``round(s W)`` and per-neuron
    thresholds ``max(1, round(s theta_j))``. The readout is scaled the same way
    by its own largest absolute weight (bias included as an integer constant
    current). The QNet has no lateral connections, so a layer that competes at
    inference (:attr:`Competition.WTA`) is refused.

    Parameters
    ----------
    model : SNN
        Two layers: an :class:`STDPLayer` and a readout with beta 1.
    weight_bits, membrane_bits : int
        Signed widths.
    timesteps : int
        ``T`` of the QNet.
    name : str
        Network name; layers are ``stdp`` and ``readout``.
    input_shape : tuple of int, optional
        Informative input shape.

    Returns
    -------
    QNet
        ``meta`` records the float scales.
    """
    layers = list(model.layers)
    if (len(layers) != 2 or not isinstance(layers[0], STDPLayer)
            or not isinstance(layers[1], DenseReadout)):
        raise ValueError("model must be SNN([STDPLayer, DenseReadout])")
    feat, ro = layers
    if feat.competition is not Competition.NONE:
        raise ValueError("a QNet has no lateral inhibition: set the STDP layer's competition "
                         "to Competition.NONE (and train the readout on those features)")
    if ro.beta != 1.0:
        raise ValueError(f"the readout must integrate without leak (beta 1), not {ro.beta}")
    wmax = (1 << (weight_bits - 1)) - 1
    with torch.no_grad():
        w1 = feat.weight.double().numpy()
        s1 = wmax / float(w1.max())
        q1 = np.round(w1 * s1).astype(np.int64)
        th = np.maximum(1, np.round(feat.thresholds.double().numpy() * s1)).astype(np.int64)
        w2 = ro.weight.double().numpy()
        b2 = ro.bias.double().numpy() if ro.bias is not None else np.zeros(w2.shape[0])
        s2 = wmax / float(np.abs(w2).max())
        q2 = np.round(w2 * s2).astype(np.int64)
        qb2 = np.round(b2 * s2).astype(np.int64)
    zeros = np.zeros(q1.shape[0], np.int64)
    _check_fits("stdp", q1, zeros, int(th.max()), membrane_bits)
    _check_fits("readout", q2, qb2, 1, membrane_bits)
    qlayers = (
        Layer(name="stdp", n_in=feat.n_in, n_out=feat.n_out, weight_bits=weight_bits,
              weights=q1, threshold=th, membrane_bits=membrane_bits,
              leak_shifts=feat.neuron.leak_shifts, reset=Reset.ZERO, fire=True),
        Layer(name="readout", n_in=feat.n_out, n_out=q2.shape[0], weight_bits=weight_bits,
              weights=q2, threshold=1, membrane_bits=membrane_bits, leak_shifts=(),
              reset=Reset.NONE, fire=False, bias=qb2 if ro.bias is not None else None),
    )
    return QNet(layers=qlayers, timesteps=timesteps, input=InputSpec(size=feat.n_in,
                shape=input_shape), name=name, meta={"scales": [s1, s2]})
