"""Pure step functions of the float neurons (the training twin of docs/QNET.md §2).

The integer reference computes, per step, ``v = sat(leak(v) + I + bias)``, then
compares and resets. The float neurons here follow the same order with
``leak(v) = beta * v`` and ``beta = 1 - sum(2^-k for k in leak_shifts)``::

    v = beta * v + I          # I = W @ s_in + bias  [- theta * s_prev, see below]
    s = (v >= theta)          # LIF only
    v = reset(v, s)           # zero: v = 0 where s; subtract: v = v - theta where s

The reset modes' semantics come from the one table ``spikeforge.qnet.RESET_RULES``;
:data:`FLOAT_AT_SPIKE` implements each action on floats. A rule with
``subtract_next`` subtracts ``theta * s_prev`` at the next update instead, and
its step state is a :class:`LIFState` (membrane and previous spikes).

``beta = 1`` is an IF neuron; ``beta`` may also be any float in ``(0, 1]``
(snnTorch/SpikingJelly style) when the network will not be exported. A
readout neuron integrates only (no spike, no reset). With ``refractory = r >
0`` a neuron that fired ignores its input and cannot fire for the next ``r``
steps (:func:`refractory_lif_step`). The threshold may be a float or a
(learnable) tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import torch

from spikeforge.leak import beta_from_shifts  # the one beta <-> shift rule
from spikeforge.qnet import RESET_RULES, SPIKING_RESETS, AtSpike, Reset

from .surrogate import DEFAULT_SCALE, Surrogate, spike

__all__ = [
    "FLOAT_AT_SPIKE",
    "FloatAtSpike",
    "LIFParams",
    "LIFState",
    "RefractoryState",
    "ShiftLIFParams",
    "beta_from_shifts",
    "lif_step",
    "readout_step",
    "refractory_lif_step",
    "run_steps",
    "shift_leak",
    "shift_lif_step",
]


@dataclass(frozen=True)
class FloatAtSpike:
    """One reset action (``qnet.AtSpike``) on float membranes.

    Attributes
    ----------
    apply : callable
        ``apply(u, s, theta)``: the membrane after the spikes ``s`` (detached) of the
        membrane ``u`` (out of place).
    fused : callable
        ``fused(u, theta, flag, v)`` for the fused loop of :mod:`.kernels`: fills ``flag``
        in place (the spikes, or ``1 - s`` when ``flag_is_keep``) and returns the
        membrane after the reset (written into ``v`` or a view of ``u``).
    flag_is_keep : bool
        ``flag`` holds ``1 - s``, which is also ``d v / d u`` (zero reset); otherwise
        ``d v / d u = 1``.
    theta_in_v : bool
        The membrane after the spike depends on ``theta`` as ``- theta * s``.
    """

    apply: Callable[[torch.Tensor, torch.Tensor, float | torch.Tensor], torch.Tensor]
    fused: Callable[[torch.Tensor, float, torch.Tensor, torch.Tensor], torch.Tensor]
    flag_is_keep: bool
    theta_in_v: bool


def _fused_zero(u, theta, flag, v):
    torch.lt(u, theta, out=flag)
    return torch.mul(u, flag, out=v)


def _fused_subtract(u, theta, flag, v):
    torch.ge(u, theta, out=flag)
    return torch.add(u, flag, alpha=-theta, out=v)


def _fused_keep(u, theta, flag, v):
    torch.ge(u, theta, out=flag)
    return u


FLOAT_AT_SPIKE: dict[AtSpike, FloatAtSpike] = {
    AtSpike.ZERO: FloatAtSpike(lambda u, s, theta: u * (1.0 - s), _fused_zero,
                               flag_is_keep=True, theta_in_v=False),
    AtSpike.SUBTRACT: FloatAtSpike(lambda u, s, theta: u - theta * s, _fused_subtract,
                                   flag_is_keep=False, theta_in_v=True),
    AtSpike.KEEP: FloatAtSpike(lambda u, s, theta: u, _fused_keep,
                               flag_is_keep=False, theta_in_v=False),
}
"""The float side's one table: each reset action of ``qnet.RESET_RULES`` on float membranes."""


class LIFState(NamedTuple):
    """Step state of LIF neurons whose reset rule subtracts at the next update.

    Attributes
    ----------
    v : torch.Tensor
        Membrane, ``[B, n]``.
    s : torch.Tensor
        Spikes of the previous step (detached), same shape.
    """

    v: torch.Tensor
    s: torch.Tensor


def _reset_names() -> str:
    return ", ".join(f"Reset.{r.name}" for r in SPIKING_RESETS)


@dataclass(frozen=True)
class LIFParams:
    """Parameters of a layer of LIF neurons.

    Attributes
    ----------
    beta : float
        Leak factor in ``(0, 1]`` (1 for an IF neuron).
    threshold : float or torch.Tensor
        Firing threshold ``theta > 0``; a 0-d tensor (e.g. an ``nn.Parameter``)
        makes it learnable.
    reset : Reset
        A spiking mode (``qnet.SPIKING_RESETS``).
    surrogate : Surrogate
        Pseudo-derivative of the spike in the backward pass.
    scale : float
        Its parameter (see :func:`spikeforge.model.surrogate.surrogate_grad`).
    refractory : int
        Steps after a spike during which the neuron ignores input (0: none).
    """

    beta: float
    threshold: float | torch.Tensor
    reset: Reset = Reset.ZERO
    surrogate: Surrogate = Surrogate.FAST_SIGMOID
    scale: float | None = None
    refractory: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.beta <= 1.0:
            raise ValueError(f"beta must lie in (0, 1], not {self.beta!r}")
        if isinstance(self.threshold, torch.Tensor):
            if self.threshold.ndim != 0:
                raise ValueError(
                    f"a tensor threshold must be 0-d, not {list(self.threshold.shape)}")
        elif not self.threshold > 0.0:
            raise ValueError(f"threshold must be positive, not {self.threshold!r}")
        if (isinstance(self.refractory, bool) or not isinstance(self.refractory, int)
                or self.refractory < 0):
            raise ValueError(f"refractory must be an integer >= 0, not {self.refractory!r}")
        if self.reset not in SPIKING_RESETS:
            raise ValueError(f"a spiking layer needs one of {_reset_names()}, not {self.reset!r}")
        if self.refractory and RESET_RULES[self.reset].subtract_next:
            raise ValueError(f"a refractory period is not supported with {self.reset!r}")
        if not isinstance(self.surrogate, Surrogate):
            raise ValueError(f"surrogate must be a Surrogate, not {self.surrogate!r}")
        if self.scale is None:
            object.__setattr__(self, "scale", DEFAULT_SCALE[self.surrogate])
        elif not self.scale > 0.0:
            raise ValueError(f"scale must be positive, not {self.scale!r}")


def lif_step(current: torch.Tensor, v: torch.Tensor | LIFState,
             params: LIFParams) -> tuple[torch.Tensor, torch.Tensor | LIFState]:
    """One step of a layer of LIF neurons.

    ``v' = beta * v + I``; ``s = v' >= theta``; then ``v' = 0`` (zero) or
    ``v' = v' - theta`` (subtract) where ``s``. The reset uses the spikes
    detached from the graph: the gradient flows through the spike output and
    the leak, not through the reset (Zenke & Vogels 2021).

    Parameters
    ----------
    current : torch.Tensor
        Input current ``I = W s_in + bias``, ``[B, n]``.
    v : torch.Tensor or LIFState
        Membrane before the step, ``[B, n]`` (with the previous spikes, for a reset
        rule that subtracts at the next update; a bare tensor has none pending).
    params : LIFParams
        Layer parameters.

    Returns
    -------
    spikes : torch.Tensor
        0/1 ``[B, n]``.
    v : torch.Tensor or LIFState
        Membrane after the reset, ``[B, n]`` (a :class:`LIFState` when the rule
        subtracts at the next update).
    """
    return _lif_update(params.beta * _membrane(v) + current, v, params)


def _membrane(state: torch.Tensor | LIFState) -> torch.Tensor:
    return state.v if isinstance(state, LIFState) else state


def _lif_update(u: torch.Tensor, state: torch.Tensor | LIFState, params: LIFParams | ShiftLIFParams
                ) -> tuple[torch.Tensor, torch.Tensor | LIFState]:
    """Compare and reset the leaked and driven membrane ``u`` by the rule of ``params.reset``."""
    rule = RESET_RULES[params.reset]
    if rule.subtract_next and isinstance(state, LIFState):
        u = u - params.threshold * state.s
    s = spike(u - params.threshold, params.surrogate, params.scale)
    sd = s.detach()
    v = FLOAT_AT_SPIKE[rule.at_spike].apply(u, sd, params.threshold)
    return s, (LIFState(v, sd) if rule.subtract_next else v)


def readout_step(current: torch.Tensor, v: torch.Tensor, beta: float) -> torch.Tensor:
    """One step of a readout (non-firing) layer: ``v' = beta * v + I``.

    Parameters
    ----------
    current : torch.Tensor
        Input current, ``[B, n]``.
    v : torch.Tensor
        Membrane before the step, ``[B, n]``.
    beta : float
        Leak factor in ``(0, 1]``.

    Returns
    -------
    torch.Tensor
        Membrane after the step.
    """
    return beta * v + current


def shift_leak(v: torch.Tensor, leak_shifts: Iterable[int]) -> torch.Tensor:
    """The hardware leak ``v - sum_k floor(v / 2^k)`` (docs/QNET.md §2), exact on integer ``v``.

    On integer-valued membranes (``|v| < 2^24`` in float32) this is bit-equal to
    the arithmetic shifts of the QNet reference. Its gradient is that of
    ``beta * v`` (straight-through over the floors), so a network can be
    fine-tuned with the exact integer leak in the forward pass.

    Parameters
    ----------
    v : torch.Tensor
        Membrane.
    leak_shifts : iterable of int
        Distinct shifts ``k >= 1``.

    Returns
    -------
    torch.Tensor
        Leaked membrane.
    """
    shifts = tuple(leak_shifts)
    beta = beta_from_shifts(shifts)
    exact = v.detach()
    for k in shifts:
        exact = exact - torch.floor(v.detach() * 2.0**-k)
    smooth = beta * v
    return smooth + (exact - smooth.detach())


@dataclass(frozen=True)
class ShiftLIFParams:
    """Parameters of LIF neurons with the exact hardware leak of a QNet layer.

    Attributes
    ----------
    leak_shifts : tuple of int
        Distinct shifts ``k >= 1`` (``()``: IF).
    threshold : float
        Firing threshold.
    reset : Reset
        A spiking mode (``qnet.SPIKING_RESETS``).
    surrogate : Surrogate
        Pseudo-derivative of the spike.
    scale : float, optional
        Its parameter.
    """

    leak_shifts: tuple[int, ...]
    threshold: float
    reset: Reset = Reset.ZERO
    surrogate: Surrogate = Surrogate.FAST_SIGMOID
    scale: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "leak_shifts", tuple(sorted(self.leak_shifts)))
        # validates the shifts, threshold, reset and scale the same way as LIFParams
        lif = LIFParams(beta=beta_from_shifts(self.leak_shifts), threshold=self.threshold,
                        reset=self.reset, surrogate=self.surrogate, scale=self.scale)
        object.__setattr__(self, "scale", lif.scale)

    @property
    def beta(self) -> float:
        """``1 - sum(2^-k)``."""
        return beta_from_shifts(self.leak_shifts)


def shift_lif_step(current: torch.Tensor, v: torch.Tensor | LIFState,
                   params: ShiftLIFParams) -> tuple[torch.Tensor, torch.Tensor | LIFState]:
    """:func:`lif_step` with the leak :func:`shift_leak`: bit-equal to the QNet
    reference (without saturation) on integer currents and thresholds."""
    return _lif_update(shift_leak(_membrane(v), params.leak_shifts) + current, v, params)


class RefractoryState(NamedTuple):
    """State of a layer of refractory LIF neurons.

    Attributes
    ----------
    v : torch.Tensor
        Membrane, ``[B, n]``.
    left : torch.Tensor
        Refractory steps left (0: the neuron integrates), same shape, float.
    """

    v: torch.Tensor
    left: torch.Tensor


def refractory_lif_step(current: torch.Tensor, state: RefractoryState,
                        params: LIFParams) -> tuple[torch.Tensor, RefractoryState]:
    """One step of LIF neurons with a refractory period of ``params.refractory`` steps.

    Where ``left == 0`` the step is :func:`lif_step`; where ``left > 0`` the
    membrane is held, the input ignored, no spike emitted and ``left``
    decremented. A spike sets ``left = refractory``. With ``refractory = 0``
    this equals :func:`lif_step`.

    Parameters
    ----------
    current : torch.Tensor
        Input current ``[B, n]``.
    state : RefractoryState
        Membrane and refractory counters before the step.
    params : LIFParams
        Layer parameters.

    Returns
    -------
    spikes : torch.Tensor
        0/1 ``[B, n]``.
    state : RefractoryState
        State after the step.
    """
    active = state.left <= 0
    s_all, v_new = lif_step(current, state.v, params)
    s = s_all * active
    v = torch.where(active, v_new, state.v)
    left = torch.where(s.detach() > 0, torch.full_like(state.left, float(params.refractory)),
                       (state.left - 1.0).clamp(min=0.0))
    return s, RefractoryState(v=v, left=left)


S = TypeVar("S")


def run_steps(
    step: Callable[[torch.Tensor, S, LIFParams], tuple[torch.Tensor, S]],
    currents: torch.Tensor,
    state: S,
    params: LIFParams,
) -> tuple[torch.Tensor, S]:
    """The generic time loop: apply ``step`` to ``currents[t]`` for ``t = 0 .. T-1``.

    Parameters
    ----------
    step : callable
        ``step(x, state, params) -> (spikes, state)``.
    currents : torch.Tensor
        Input currents, time-major ``[T, ...]``.
    state : object
        Initial state.
    params : LIFParams
        Passed to every step.

    Returns
    -------
    spikes : torch.Tensor
        ``[T, ...]``.
    state : object
        State after the last step.
    """
    out = []
    for t in range(currents.shape[0]):
        s, state = step(currents[t], state, params)
        out.append(s)
    return torch.stack(out), state
