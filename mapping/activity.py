"""Spike activity that the mapping optimizes for: the reference simulator on sample inputs.

The mapper never guesses firing rates: it runs the bit-exact reference
(:func:`spikeforge.reference.simulate`) on sample spike trains and keeps, for
every layer, the spikes it receives and the spikes it emits, flattened over
samples and steps. Traffic, partial sums and tile loads are all counted from
these matrices.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.qnet import QNet
from spikeforge.reference import simulate

__all__ = ["MAX_ACTIVITY_VALUES", "MAX_SAMPLES", "Activity", "ActivitySource",
           "activity_values", "check_activity_size", "measure_activity", "synthetic_inputs"]

#: Most samples the mapper measures (``--samples``).
MAX_SAMPLES = 100_000
#: Most spike values (samples x steps x (inputs + neurons of every layer)) the activity
#: pass keeps: 128 Mi bytes of uint8 spikes; rate coding them takes 8 bytes per input value.
MAX_ACTIVITY_VALUES = 1 << 27


class ActivitySource(enum.Enum):
    """Where the sample inputs came from (recorded in the report)."""

    GIVEN = "given"  # spike trains supplied by the caller (real data)
    SYNTHETIC = "synthetic"  # Bernoulli noise at a fixed rate: a fallback, not real activity


@dataclass(frozen=True, eq=False)
class Activity:
    """Per-layer spikes of ``samples`` inputs of ``timesteps`` steps.

    Attributes
    ----------
    samples, timesteps : int
        ``N`` and ``T``.
    inputs : tuple of numpy.ndarray
        ``inputs[l]`` is uint8 ``[N*T, n_in(l)]``: the spikes layer ``l`` reads.
    outputs : tuple of numpy.ndarray
        ``outputs[l]`` is uint8 ``[N*T, n_out(l)]``: the spikes layer ``l`` emits
        (all zero for a readout layer).
    source : ActivitySource
        Real or synthetic inputs.
    """

    samples: int
    timesteps: int
    inputs: tuple[np.ndarray, ...]
    outputs: tuple[np.ndarray, ...]
    source: ActivitySource
    # figures derived from these spikes, kept by the passes that compute them (loads of
    # candidate tile groups); the spikes are read-only, so an entry never goes stale
    memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def in_counts(self, layer: int) -> np.ndarray:
        """Spikes per sample on each input line of ``layer`` (float64 ``[n_in]``)."""
        return self.inputs[layer].sum(axis=0, dtype=np.int64) / self.samples

    def out_counts(self, layer: int) -> np.ndarray:
        """Spikes per sample of each neuron of ``layer`` (float64 ``[n_out]``)."""
        return self.outputs[layer].sum(axis=0, dtype=np.int64) / self.samples


def activity_values(net: QNet, samples: int) -> int:
    """Spike values the activity pass keeps for ``samples`` samples of ``net``."""
    return samples * net.timesteps * (net.n_in + sum(layer.n_out for layer in net.layers))


def check_activity_size(net: QNet, samples: int, option: str = "--samples") -> None:
    """Refuse (one line naming ``option``) a sample count whose spikes exceed the limit."""
    n = activity_values(net, samples)
    if n > MAX_ACTIVITY_VALUES:
        most = MAX_ACTIVITY_VALUES // max(1, activity_values(net, 1))
        raise SpikeforgeError(
            f"{option} {samples}: {samples} samples x {net.timesteps} steps x "
            f"({net.n_in} inputs + {n // (samples * net.timesteps) - net.n_in} neurons) = {n} "
            f"spike values, over the limit of {MAX_ACTIVITY_VALUES}; use at most {most} samples")


def synthetic_inputs(net: QNet, samples: int, rate: float, seed: int) -> np.ndarray:
    """Bernoulli spike trains ``[samples, T, n_in]`` at ``rate`` (fallback without data).

    Drawn a block of samples at a time (the same numbers as one draw), so only the
    uint8 result is ever whole; :func:`check_activity_size` bounds ``samples`` first.
    """
    if not (0.0 <= rate <= 1.0):
        raise SpikeforgeError(f"input spike rate must lie in [0, 1], not {rate!r}")
    if samples < 1:
        raise SpikeforgeError(f"--samples must be positive, not {samples}")
    check_activity_size(net, samples)
    rng = np.random.default_rng(seed)
    out = np.empty((samples, net.timesteps, net.n_in), dtype=np.uint8)
    block = max(1, (1 << 22) // max(1, net.timesteps * net.n_in))
    for lo in range(0, samples, block):
        hi = min(samples, lo + block)
        out[lo:hi] = rng.random((hi - lo, net.timesteps, net.n_in)) < rate
    return out


def measure_activity(net: QNet, spikes_in: np.ndarray,
                     source: ActivitySource = ActivitySource.GIVEN) -> Activity:
    """Run the reference simulator on ``spikes_in`` and keep every layer's spikes.

    Parameters
    ----------
    net : QNet
        The network to map.
    spikes_in : numpy.ndarray
        0/1 spike trains ``[N, T, n_in]`` with ``T == net.timesteps``.
    source : ActivitySource
        Recorded in the result.

    Returns
    -------
    Activity

    Raises
    ------
    SpikeforgeError
        If the spike trains have the wrong shape or values.
    """
    x = np.asarray(spikes_in)
    if x.ndim != 3 or x.shape[1:] != (net.timesteps, net.n_in) or x.shape[0] < 1:
        raise SpikeforgeError(
            f"sample spikes must be [N, {net.timesteps}, {net.n_in}] with N >= 1, "
            f"not {list(x.shape)}"
        )
    if not np.isin(x, (0, 1)).all():
        raise SpikeforgeError("sample spikes must be 0 or 1")
    x = x.astype(np.uint8)
    res = simulate(net, x)
    n, t = x.shape[:2]
    inputs, outputs = [], []
    s = x.reshape(n * t, net.n_in)
    for layer in net.layers:
        inputs.append(s)
        if layer.fire:
            s = res.spikes[layer.name].reshape(n * t, layer.n_out)
        else:
            s = np.zeros((n * t, layer.n_out), dtype=np.uint8)
        outputs.append(s)
    for a in (*inputs, *outputs):
        a.setflags(write=False)
    return Activity(samples=n, timesteps=t, inputs=tuple(inputs), outputs=tuple(outputs),
                    source=source)
