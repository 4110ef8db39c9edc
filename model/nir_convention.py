"""How spikeforge's discrete neurons and NIR's continuous ones correspond.

NIR (the Neuromorphic Intermediate Representation, ``nir`` package) writes a
leaky integrate-and-fire neuron as an ODE,
``tau dv/dt = (v_leak - v) + r I``, that fires when ``v > v_threshold`` and
then sets ``v = v_reset``. spikeforge runs the discrete step
``v[k] = beta v[k-1] + W s[k] + b``, fires when ``v >= theta`` and resets to
zero (or subtracts ``theta``). One forward-Euler step of length ``dt`` of the
ODE is::

    v[k] = (1 - dt/tau) v[k-1] + (dt/tau) r I[k] + (dt/tau) v_leak

so ``beta = 1 - dt/tau``, the input gain is ``g = r dt / tau`` and ``v_leak``
adds the constant current ``(dt/tau) v_leak``. An IF neuron
(``dv/dt = r I``) is taken as ``v[k] = v[k-1] + r I[k]`` (gain ``r``, the
convention of snnTorch and Sinabs); an integrator ``I`` and a leaky integrator
``LI`` are the same without firing. ``dt`` is not stored in a NIR file: the
default, 1e-4, is snnTorch's (it exports ``tau = dt / (1 - beta)`` and
``r = tau / dt``, so ``g = 1``); Norse uses 1e-3. See docs/NIR.md.

NIR fires on ``v > v_threshold``, spikeforge on ``v >= theta``. Thresholds
cross the boundary moved by one float32 step (:func:`threshold_to_nir`,
:func:`threshold_from_nir`), so both comparisons agree exactly in float32.

The leak factor becomes hardware leak shifts by the one rule of
:mod:`spikeforge.leak` (:func:`leak_shifts_for`, :func:`nearest_leak`, re-exported here).
"""

from __future__ import annotations

import numpy as np

from spikeforge.leak import leak_shifts_for, nearest_leak
from spikeforge.qnet import SPIKING_RESETS, Reset

__all__ = [
    "DEFAULT_DT",
    "NIR_RESET",
    "RESET_METADATA",
    "NIRError",
    "beta_from_tau",
    "leak_shifts_for",
    "nearest_leak",
    "reset_from_metadata",
    "reset_metadata",
    "tau_from_beta",
    "threshold_from_nir",
    "threshold_to_nir",
]

DEFAULT_DT = 1e-4
"""Step length assumed between NIR's continuous time and spikeforge's steps (snnTorch's)."""

RESET_METADATA = "spikeforge_reset"
"""Node metadata key that names a reset mode NIR 1.0 cannot express (its ``Reset`` value)."""

NIR_RESET = Reset.ZERO
"""The one reset NIR 1.0 neurons express (``v = v_reset = 0``); every other spiking mode
travels as node metadata ``RESET_METADATA: <the mode's value>``."""


def reset_metadata(reset: Reset) -> dict[str, str]:
    """The node metadata that carries ``reset`` (empty for :data:`NIR_RESET`)."""
    return {} if reset is NIR_RESET else {RESET_METADATA: reset.value}


def reset_from_metadata(value: object) -> Reset | None:
    """The spiking mode a node's :data:`RESET_METADATA` value names (``None``: absent,
    :data:`NIR_RESET`); raises ``ValueError`` for a value that names no spiking mode."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if value is None:
        return NIR_RESET
    for mode in SPIKING_RESETS:
        if value == mode.value:
            return mode
    known = ", ".join(repr(m.value) for m in SPIKING_RESETS)
    raise ValueError(f"unknown metadata {RESET_METADATA}={value!r} (known: {known})")


class NIRError(ValueError):
    """A NIR node (or spikeforge layer) that cannot be converted, and why.

    Parameters
    ----------
    node : str
        Name of the node in the graph (or of the spikeforge layer).
    kind : str
        Its type, e.g. ``"CubaLIF"``.
    reason : str
        What cannot be expressed, in words.
    """

    def __init__(self, node: str, kind: str, reason: str) -> None:
        self.node = node
        self.kind = kind
        self.reason = reason
        super().__init__(f"NIR node {node!r} ({kind}): {reason}")


def tau_from_beta(beta: float, dt: float = DEFAULT_DT) -> tuple[float, float]:
    """NIR ``(tau, r)`` of a leak factor ``beta < 1``, with unit input gain.

    Parameters
    ----------
    beta : float
        Leak factor in ``(0, 1)``.
    dt : float
        Step length.

    Returns
    -------
    tau, r : float
        ``tau = dt / (1 - beta)`` and ``r = tau / dt`` (so ``r dt / tau = 1``).
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta must lie in (0, 1) for a leaky neuron, not {beta!r}")
    tau = dt / (1.0 - beta)
    return tau, tau / dt


def beta_from_tau(tau: np.ndarray, dt: float = DEFAULT_DT) -> np.ndarray:
    """Leak factor ``1 - dt / tau`` of NIR time constants (elementwise)."""
    return 1.0 - dt / np.asarray(tau, dtype=np.float64)


def threshold_to_nir(theta: float) -> float:
    """NIR ``v_threshold`` of a spikeforge threshold: the float32 just below ``theta``.

    ``v > threshold_to_nir(theta)`` equals ``v >= theta`` for every float32 ``v``.
    """
    t = np.float32(theta)
    return float(np.nextafter(t, np.float32(-np.inf)))


def threshold_from_nir(v_threshold: float) -> float:
    """spikeforge threshold of a NIR ``v_threshold``: the float32 just above it.

    ``v >= threshold_from_nir(x)`` equals ``v > x`` for every float32 ``v``; the
    two functions are inverse on float32 values.
    """
    t = np.float32(v_threshold)
    return float(np.nextafter(t, np.float32(np.inf)))
