"""Speed of the numpy reference (issue 20): samples/s of ``spikeforge.reference.simulate``.

The Fashion-MNIST 784-300-300-10 QNet (T = 10, 8-bit weights, 16-bit membranes;
the one benchmarks/fashion_verify.py trains, reused from out/bench-fashion when
present) runs on Bernoulli-coded test images (``bernoulli(x_te[:N], T, seed=2)``).
The fast ``simulate`` and the literal per-step loop it replaced
(``reference._simulate_slow``) run in turn, interleaved, ``--repeats`` times
each; the first pair is checked to agree on every spike, membrane, counter,
score and prediction. The time is of the whole call (input checks included)::

    .venv/bin/python benchmarks/reference_speed.py [--samples 2000] [--repeats 7] [--no-slow] \
        [--blas-threads 1] [--compare-threads]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from spikeforge import reference
from spikeforge.datasets import load_fashion_mnist
from spikeforge.encoding import bernoulli

sys.path.insert(0, str(Path(__file__).parent))
from hw_tiles import fashion_qnet  # noqa: E402  (the benchmarks' shared QNet)


def same(a: reference.RefResult, b: reference.RefResult) -> bool:
    """Every spike, final membrane, counter, score and prediction equal (and typed alike)."""
    pairs = [(a.spikes[k], b.spikes[k]) for k in b.spikes]
    pairs += [(a.membrane[k], b.membrane[k]) for k in b.membrane]
    pairs += [(a.counters[k][c], b.counters[k][c]) for k in b.counters for c in b.counters[k]]
    pairs += [(a.scores, b.scores), (a.predictions, b.predictions)]
    return (a.spikes.keys() == b.spikes.keys() and a.counters.keys() == b.counters.keys()
            and all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in pairs))


def own_threads(net, spikes) -> reference.RefResult:
    """``simulate`` with the BLAS's own thread count (no limit)."""
    limit, reference._BLAS_THREADS = reference._BLAS_THREADS, None
    try:
        return reference.simulate(net, spikes)
    finally:
        reference._BLAS_THREADS = limit


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qnet-dir", default="out/bench-fashion")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-slow", action="store_true", help="time only the fast simulate")
    ap.add_argument("--blas-threads", type=int, default=reference._BLAS_THREADS,
                    help="BLAS threads in simulate (0: the BLAS's own count; default "
                         f"{reference._BLAS_THREADS})")
    ap.add_argument("--compare-threads", action="store_true",
                    help="also time simulate with the BLAS's own thread count, interleaved")
    args = ap.parse_args()
    reference._BLAS_THREADS = args.blas_threads or None
    console = Console(width=120)
    net = fashion_qnet(Path(args.qnet_dir), console)
    _, _, x_te, y_te = load_fashion_mnist()
    n = min(args.samples, len(y_te))
    spikes = bernoulli(x_te[:n], net.timesteps, seed=2)
    sizes = "-".join(str(s) for s in [net.n_in, *(layer.n_out for layer in net.layers)])
    console.print(f"{net.name}: {sizes}, "
                  f"T = {net.timesteps}, {n} test images, input spike rate "
                  f"{spikes.mean():.3f}; compute types "
                  f"{[str(reference._exact_dtype(layer)) for layer in net.layers]}, BLAS "
                  f"threads {reference._BLAS_THREADS or 'default'}")
    impls = {"simulate (fast)": reference.simulate}
    if args.compare_threads:
        impls["simulate, BLAS's own threads"] = own_threads
    if not args.no_slow:
        impls["_simulate_slow (before)"] = reference._simulate_slow
    times: dict[str, list[float]] = {name: [] for name in impls}
    load_before = os.getloadavg()
    results = {}
    for rep in range(args.repeats):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            r = fn(net, spikes)
            times[name].append(time.perf_counter() - t0)
            if rep == 0:
                results[name] = r
    load_after = os.getloadavg()
    fast = results["simulate (fast)"]
    agree = all(same(fast, r) for r in results.values())
    acc = float((fast.predictions == y_te[:n]).mean())

    table = Table(title=f"benchmarks/reference_speed.py: {n} samples, {args.repeats} repeats")
    table.add_column("implementation")
    table.add_column("median samples/s", justify="right")
    table.add_column("range samples/s", justify="right")
    table.add_column("median s/call", justify="right")
    rates = {}
    for name, ts in times.items():
        r = [n / t for t in ts]
        rates[name] = statistics.median(r)
        table.add_row(name, f"{statistics.median(r):,.0f}", f"{min(r):,.0f} – {max(r):,.0f}",
                      f"{statistics.median(ts):.3f}")
    console.print(table)
    if "_simulate_slow (before)" in rates:
        console.print(f"speedup (median over median): "
                      f"{rates['simulate (fast)'] / rates['_simulate_slow (before)']:.1f}x")
    console.print(f"results identical (spikes, membranes, counters, scores, predictions): "
                  f"{agree}; accuracy on these {n}: {acc:.4f}")
    console.print(f"load average (1, 5, 15 min) before {load_before}, after {load_after}; "
                  f"{os.cpu_count()} CPUs")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
