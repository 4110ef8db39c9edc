"""Bit-exact integer reference simulator of a QNet (docs/QNET.md §2, §3, §5), in numpy.

Vectorised over a batch of samples. The hardware is checked against this, so
it follows the spec literally: floor shifts, saturation, then compare and reset.
:func:`layer_step` is one step as the spec writes it and ``_simulate_slow`` the
literal loop over it; :func:`simulate` computes the same integers faster (exact
BLAS products, layer by layer) and is tested equal to it (tests/test_reference.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from spikeforge.contracts import COUNTERS
from spikeforge.qnet import RESET_RULES, AtSpike, Layer, QNet

__all__ = ["COUNTERS", "RefResult", "layer_step", "predict", "simulate"]


@dataclass
class RefResult:
    """What the reference reports for a batch of ``N`` samples of ``T`` steps.

    ``spikes[name]`` is uint8 ``[N, T, n_out]`` (spiking layers only),
    ``membrane[name]`` the final membrane int64 ``[N, n_out]`` for every layer,
    ``counters[name][counter]`` int64 ``[N]``.
    """

    spikes: dict[str, np.ndarray]
    membrane: dict[str, np.ndarray]
    counters: dict[str, dict[str, np.ndarray]]
    scores: np.ndarray
    predictions: np.ndarray


# What a spike does to the membrane at once, per action of the reset rules (qnet.RESET_RULES).
AT_SPIKE = {
    AtSpike.ZERO: lambda v, theta: np.zeros_like(v),
    AtSpike.SUBTRACT: lambda v, theta: v - theta,
    AtSpike.KEEP: lambda v, theta: v,
}


def layer_step(layer: Layer, v: np.ndarray, s_in: np.ndarray,
               s_prev: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One time step of one layer for a batch.

    ``v`` is int64 ``[N, n_out]`` and ``s_in`` is ``[N, n_in]`` of 0/1; returns the new
    membrane and the output spikes (uint8; all zero for a readout layer)::

        I = W @ s_in ; v = sat(v - sum(v >> k) + I + bias [- theta * s_prev]) ;
        s = v >= theta ; reset

    ``s_prev`` is the layer's own spikes of the previous step (``None``: none, as at
    the start of a sample); only a reset rule with ``subtract_next`` reads it.
    """
    rule = RESET_RULES[layer.reset]
    current = s_in.astype(np.int64) @ layer.weights.T
    leaked = v.copy()
    for k in layer.leak_shifts:
        leaked -= v >> k
    lo, hi = layer.membrane_range
    total = leaked + current + layer.biases
    if rule.subtract_next and s_prev is not None:
        total = total - layer.thresholds * s_prev.astype(np.int64)
    v = np.clip(total, lo, hi)
    if not layer.fire:
        return v, np.zeros(v.shape, dtype=np.uint8)
    spikes = v >= layer.thresholds
    v = np.where(spikes, AT_SPIKE[rule.at_spike](v, layer.thresholds), v)
    return v, spikes.astype(np.uint8)


def simulate(net: QNet, spikes_in: np.ndarray,
             visits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> RefResult:
    """Run ``spikes_in`` (0/1, ``[N, T, n_in]`` or ``[T, n_in]``) through ``net``.

    ``visits[layer]`` = (weight rows read, synapses visited) per input line, for
    hardware that skips zero rows or splits a layer into tiles (docs/QNET.md §5 counts
    what the hardware reads; ``HardwareLayout.visits()`` gives it). Without it
    a spike reads one row and visits all ``n_out`` synapses.

    The result is that of :func:`layer_step` applied step by step, layer by layer
    (kept as ``_simulate_slow``), computed faster: a layer's input does not depend on
    its own state, so it runs one layer at a time over all ``T`` steps, with all the
    steps' currents from one matrix product. The arithmetic is exact integer
    arithmetic in float32 or float64 (BLAS) when every value a step can reach is an
    integer that type holds exactly (:func:`_exact_dtype`), else in int64.
    """
    x = _check_spikes(net, spikes_in)
    n, t_steps, _ = x.shape
    dtypes = [_exact_dtype(layer) for layer in net.layers]
    weights = [layer.weights.T.astype(dt) for layer, dt in zip(net.layers, dtypes)]
    v = {l.name: np.zeros((n, l.n_out), dtype=np.int64) for l in net.layers}
    out = {l.name: np.zeros((n, t_steps, l.n_out), dtype=np.uint8) for l in net.layers if l.fire}
    widest = max(net.n_in, *(l.n_out for l in net.layers))
    block = max(1, _BLOCK_VALUES // max(1, t_steps * widest))
    with _blas_threads(n * t_steps * widest):
        for a in range(0, n, block):
            b = min(n, a + block)
            s = np.empty((t_steps, b - a, net.n_in), dtype=dtypes[0])  # time-major [T, nb, n]
            np.copyto(s, x[a:b].transpose(1, 0, 2), casting="unsafe")
            for layer, dt, w in zip(net.layers, dtypes, weights):
                if s.dtype != dt:
                    s = s.astype(dt)
                v_blk, s = _layer_all_steps(layer, w, s)
                v[layer.name][a:b] = v_blk
                if layer.fire:
                    out[layer.name][a:b] = s.transpose(1, 0, 2)
    counters = {}
    seen = x  # what the layer's input lines carried, [N, T, n_in]
    for layer in net.layers:
        if visits is None:  # one row read and n_out adds per spiking axon
            reads = seen.sum(axis=(1, 2), dtype=np.int64)
            syn = reads * layer.n_out
        else:
            r, a_ = visits[layer.name]
            per_line = seen.sum(axis=1, dtype=np.int64)  # sum_t s_t @ r == (sum_t s_t) @ r
            reads = np.zeros(n, dtype=np.int64)
            reads += per_line @ r
            syn = np.zeros(n, dtype=np.int64)
            syn += per_line @ a_
        counters[layer.name] = {
            "synaptic_events": syn,
            "neuron_updates": np.full(n, t_steps * layer.n_out, dtype=np.int64),
            "weight_reads": reads,
            "spikes_out": (out[layer.name].sum(axis=(1, 2), dtype=np.int64) if layer.fire
                           else np.zeros(n, dtype=np.int64)),
        }
        seen = out[layer.name] if layer.fire else np.zeros((n, t_steps, layer.n_out), np.uint8)
    last = net.layers[-1]
    scores = v[last.name] if not last.fire else out[last.name].sum(axis=1, dtype=np.int64)
    return RefResult(spikes=out, membrane=v, counters=counters, scores=scores,
                     predictions=predict(scores))


# Every integer of magnitude up to the limit is a value of the type, so sums of such
# integers that stay within it are exact whatever the order of the additions.
_EXACT_LIMITS: dict[np.dtype, int] = {np.dtype(np.float32): 1 << 24,
                                      np.dtype(np.float64): 1 << 53}
# The actions _step_bound covers: each leaves 0 <= v < v_before or v unchanged.
_BOUNDED_AT_SPIKE = frozenset({AtSpike.ZERO, AtSpike.SUBTRACT, AtSpike.KEEP})
_BLOCK_VALUES = 1 << 22  # samples per block: about this many values of the widest layer


# BLAS threads for the products of one call (None: the BLAS's own count). The results do
# not depend on it (the arithmetic is exact). On the shared 2-core machine, busy (load
# about 2.8), one thread ran the Fashion benchmark faster than two (7,225 against 5,655
# samples/s); quieter (load 1.3), slower (8,672 against 11,218; docs/BENCHMARKS.md,
# issue 20). One is the steadier, and callers that shard samples over processes want one.
_BLAS_THREADS: int | None = 1
_BLAS_LIMIT_FROM = 1 << 20  # values per call below which setting it (about 2 ms) is not worth it


def _blas_threads(values: int) -> contextlib.AbstractContextManager:
    if _BLAS_THREADS is None or values < _BLAS_LIMIT_FROM:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it the BLAS keeps its own count
        return contextlib.nullcontext()
    return threadpool_limits(limits=_BLAS_THREADS, user_api="blas")


def _step_bound(layer: Layer) -> int:
    """A bound on the magnitude of every value one step of ``layer`` computes.

    The state is ``|v| <= 2^(vb-1)`` (after the clip; the resets of
    ``_BOUNDED_AT_SPIKE`` only move it toward 0).
    Each partial sum of the current is a subset sum of a weight row: at most the
    largest row sum of ``|W|``. The leaked membrane ``v - sum(floor(v / 2^k))`` is at
    most ``2 |v| + len(shifts)``; the bias and ``theta * s_prev`` at most ``2^(vb-1)``
    each. Every partial sum of these is within ``2^(vb+1) + len(shifts) + rows``.
    """
    rows = int(np.abs(layer.weights).sum(axis=1).max())
    return (1 << (layer.membrane_bits + 1)) + len(layer.leak_shifts) + rows


def _exact_dtype(layer: Layer) -> np.dtype:
    """The narrowest float type in which ``layer``'s arithmetic is exact, else int64.

    An at-spike action not known to :func:`_step_bound` (a new one in ``qnet.AtSpike``)
    runs in int64, like :func:`layer_step`, until its bound is worked out.
    """
    if RESET_RULES[layer.reset].at_spike not in _BOUNDED_AT_SPIKE:
        return np.dtype(np.int64)
    bound = _step_bound(layer)
    for dt, limit in _EXACT_LIMITS.items():
        if bound <= limit:
            return dt
    return np.dtype(np.int64)


def _layer_all_steps(layer: Layer, w: np.ndarray,
                     s_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ``T`` steps of ``layer`` for a block: :func:`layer_step` ``T`` times.

    ``s_in`` is the input spikes ``[T, nb, n_in]`` in the layer's type, ``w`` the
    transposed weights in it. Returns the final membrane (int64 ``[nb, n_out]``)
    and the output spikes ``[T, nb, n_out]`` (0/1 in the layer's type; zero for a readout).
    """
    t_steps, nb, n_in = s_in.shape
    dt = w.dtype
    rule = RESET_RULES[layer.reset]
    cur = np.matmul(s_in.reshape(t_steps * nb, n_in), w).reshape(t_steps, nb, layer.n_out)
    if layer.bias is not None:
        cur += layer.bias.astype(dt)
    theta = layer.thresholds.astype(dt)
    lo, hi = layer.membrane_range
    is_float = dt.kind == "f"
    v = np.zeros((nb, layer.n_out), dtype=dt)
    leak = np.empty_like(v)
    tmp = np.empty_like(v)
    fired = np.empty(v.shape, dtype=bool)
    s_out = np.zeros((t_steps, nb, layer.n_out), dtype=dt)
    for t in range(t_steps):
        # leak: v - sum(v >> k), the shifts floor (toward -inf) as in the spec
        for i, k in enumerate(layer.leak_shifts):
            dst = leak if i == 0 else tmp
            if is_float:  # v * 2^-k is exact; floor of it is v >> k
                np.multiply(v, 2.0 ** -k, out=dst)
                np.floor(dst, out=dst)
            else:
                np.right_shift(v, k, out=dst)
            if i:
                leak += tmp
        if layer.leak_shifts:
            v -= leak
        v += cur[t]
        if rule.subtract_next and layer.fire and t:
            np.multiply(s_out[t - 1], theta, out=tmp)
            v -= tmp
        np.clip(v, lo, hi, out=v)
        if not layer.fire:
            continue
        np.greater_equal(v, theta, out=fired)
        s = s_out[t]
        s[...] = fired
        if rule.at_spike is not AtSpike.KEEP:  # v += s * (at_spike(v) - v): masked writes are slow
            np.subtract(AT_SPIKE[rule.at_spike](v, theta), v, out=tmp)
            tmp *= s
            v += tmp
    return v.astype(np.int64), s_out


def _check_spikes(net: QNet, spikes_in: np.ndarray) -> np.ndarray:
    """``spikes_in`` as ``[N, T, n_in]``; refused unless the shape fits and each value is 0 or 1."""
    x = np.asarray(spikes_in)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ValueError(f"input spikes must be [N, T, {net.n_in}], not {list(x.shape)}")
    if x.size and x.dtype != bool:
        if x.dtype.kind in "ui":  # integers: 0/1 exactly when within [0, 1]
            ok = int(x.min()) >= 0 and int(x.max()) <= 1
        else:
            ok = bool(np.isin(x, (0, 1)).all())
        if not ok:
            raise ValueError("input spikes must be 0 or 1")
    return x


def _simulate_slow(net: QNet, spikes_in: np.ndarray,
                   visits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> RefResult:
    """:func:`simulate` the literal way: :func:`layer_step` per step, per layer (int64).

    Kept as the definition the fast path is tested against (tests/test_reference.py)
    and for benchmarks/reference_speed.py.
    """
    x = np.asarray(spikes_in)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise ValueError(f"input spikes must be [N, T, {net.n_in}], not {list(x.shape)}")
    if x.size and not np.isin(x, (0, 1)).all():
        raise ValueError("input spikes must be 0 or 1")
    n, t_steps, _ = x.shape
    v = {l.name: np.zeros((n, l.n_out), dtype=np.int64) for l in net.layers}
    prev: dict[str, np.ndarray | None] = {l.name: None for l in net.layers}  # last spikes
    out = {l.name: np.zeros((n, t_steps, l.n_out), dtype=np.uint8) for l in net.layers if l.fire}
    syn = {l.name: np.zeros(n, dtype=np.int64) for l in net.layers}
    reads = {l.name: np.zeros(n, dtype=np.int64) for l in net.layers}
    for t in range(t_steps):
        s = x[:, t, :]
        for layer in net.layers:
            if visits is None:  # one row read and n_out adds per spiking axon
                n_spk = s.sum(axis=1, dtype=np.int64)
                reads[layer.name] += n_spk
                syn[layer.name] += n_spk * layer.n_out
            else:
                r, a = visits[layer.name]
                reads[layer.name] += s.astype(np.int64) @ r
                syn[layer.name] += s.astype(np.int64) @ a
            v[layer.name], s = layer_step(layer, v[layer.name], s, prev[layer.name])
            prev[layer.name] = s
            if layer.fire:
                out[layer.name][:, t, :] = s
    counters = {}
    for layer in net.layers:
        counters[layer.name] = {
            "synaptic_events": syn[layer.name],
            "neuron_updates": np.full(n, t_steps * layer.n_out, dtype=np.int64),
            "weight_reads": reads[layer.name],
            "spikes_out": (out[layer.name].sum(axis=(1, 2), dtype=np.int64) if layer.fire
                           else np.zeros(n, dtype=np.int64)),
        }
    last = net.layers[-1]
    scores = v[last.name] if not last.fire else out[last.name].sum(axis=1, dtype=np.int64)
    return RefResult(spikes=out, membrane=v, counters=counters, scores=scores,
                     predictions=predict(scores))


def predict(scores: np.ndarray) -> np.ndarray:
    """Index of the largest score per row; ties go to the lowest index (np.argmax does)."""
    return np.argmax(scores, axis=-1)
