"""The one rule between a float leak factor ``beta`` and hardware leak shifts.

A hardware neuron leaks by shifts: ``v -= sum(v >> k)`` for a set of distinct
shifts ``k >= 1``, the float leak ``beta = 1 - sum(2^-k)`` (:func:`beta_from_shifts`;
``()`` is an IF neuron, ``beta = 1``). The other way, a float ``beta`` becomes:

* its exact shifts when ``1 - beta`` is a finite sum of distinct ``2^-k`` with
  ``k <= max_shift`` (any number of shifts: the binary expansion, unique);
* otherwise the nearest hardware leak with at most ``max_terms`` shifts in
  ``1..max_shift`` (fewest shifts among equals), accepted when it lies within
  ``tolerance`` of ``beta``;
* nothing for a ``beta`` outside ``(0, 1]`` (or not finite).

:func:`shifts_from_beta` is the exact rule (``tolerance = 0``) and raises;
:func:`leak_shifts_for` returns ``None`` where no leak is close enough. Every
converter (trainer export, SNN lowering, NIR import) uses these functions.
torch-free, so the QNet side uses them too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

__all__ = ["DEFAULT_MAX_SHIFT", "MAX_TERMS", "beta_from_shifts", "exact_shifts",
           "leak_shifts_for", "nearest_leak", "shifts_from_beta"]

DEFAULT_MAX_SHIFT = 15
"""Largest shift considered by default: every shift of a 16-bit membrane."""

MAX_TERMS = 4
"""Most shifts of an approximated leak (each costs the neuron unit a shift and a subtraction)."""


def beta_from_shifts(leak_shifts: Iterable[int]) -> float:
    """Leak factor ``1 - sum(2^-k)`` of hardware leak shifts (``()`` gives 1, an IF neuron).

    Raises ValueError unless the shifts are distinct integers ``>= 1`` leaving ``beta > 0``.
    """
    shifts = tuple(leak_shifts)
    if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in shifts):
        raise ValueError(f"leak_shifts must be integers >= 1, not {list(shifts)!r}")
    if len(set(shifts)) != len(shifts):
        raise ValueError(f"leak_shifts must be distinct, not {list(shifts)!r}")
    beta = 1.0 - sum(2.0**-k for k in shifts)
    if beta <= 0.0:
        raise ValueError(f"leak_shifts {list(shifts)!r} remove the whole membrane (beta <= 0)")
    return beta


def _in_range(beta: float) -> bool:
    return isinstance(beta, int | float) and math.isfinite(beta) and 0.0 < beta <= 1.0


def exact_shifts(beta: float, max_shift: int = DEFAULT_MAX_SHIFT) -> tuple[int, ...] | None:
    """The shifts whose ``1 - sum(2^-k)`` equals ``beta`` exactly (``k <= max_shift``), or None."""
    beta = float(beta)
    if not _in_range(beta):
        return None
    rest, shifts = 1.0 - beta, []
    for k in range(1, max_shift + 1):
        if rest >= 2.0**-k:
            rest -= 2.0**-k
            shifts.append(k)
    return tuple(shifts) if rest == 0.0 else None


def nearest_leak(beta: float, *, max_shift: int = DEFAULT_MAX_SHIFT,
                 max_terms: int = MAX_TERMS) -> tuple[tuple[int, ...], float]:
    """The shifts whose leak ``1 - sum(2^-k)`` is nearest ``beta``, and the gap.

    An exact leak (:func:`exact_shifts`) is returned whatever its number of
    shifts; otherwise every set of at most ``max_terms`` distinct shifts in
    ``1..max_shift`` is tried (about two thousand for the defaults). A
    ``beta`` outside ``(0, 1]`` gives ``((), inf)``.
    """
    beta = float(beta)
    if not _in_range(beta):
        return (), math.inf
    exact = exact_shifts(beta, max_shift)
    if exact is not None:
        return exact, 0.0
    best: tuple[tuple[int, ...], float] = ((), abs(1.0 - beta))
    for n in range(1, max_terms + 1):
        for combo in itertools.combinations(range(1, max_shift + 1), n):
            hw = 1.0 - sum(2.0**-k for k in combo)
            if hw > 0.0 and abs(hw - beta) < best[1]:
                best = (combo, abs(hw - beta))
    return best


def leak_shifts_for(beta: float, *, tolerance: float = 1e-5,
                    max_shift: int = DEFAULT_MAX_SHIFT,
                    max_terms: int = MAX_TERMS) -> tuple[int, ...] | None:
    """Hardware leak shifts within ``tolerance`` of ``beta`` (:func:`nearest_leak`), or None.

    Parameters
    ----------
    beta : float
        Leak factor in ``(0, 1]``.
    tolerance : float
        Largest accepted ``abs(beta_hw - beta)`` (0: exact only).
    max_shift : int
        Largest shift considered (a QNet needs each shift below ``membrane_bits``).
    max_terms : int
        Most shifts of an approximated (not exact) leak.

    Returns
    -------
    tuple of int or None
        The sorted shifts (``()`` for ``beta = 1``), or ``None`` when the nearest
        hardware leak is farther than ``tolerance`` or ``beta`` lies outside ``(0, 1]``.
    """
    shifts, gap = nearest_leak(beta, max_shift=max_shift, max_terms=max_terms)
    return shifts if gap <= tolerance else None


def shifts_from_beta(beta: float, max_shift: int = DEFAULT_MAX_SHIFT) -> tuple[int, ...]:
    """The leak shifts whose ``1 - sum(2^-k)`` equals ``beta`` exactly.

    Raises ValueError when no set of shifts up to ``max_shift`` gives ``beta``
    (a float leak such as 0.8187 has no hardware equivalent).
    """
    shifts = exact_shifts(beta, max_shift)
    if shifts is None:
        raise ValueError(f"beta {beta!r} is not 1 - sum(2^-k) for shifts up to {max_shift}; "
                         "a QNet needs a hardware leak")
    return shifts
