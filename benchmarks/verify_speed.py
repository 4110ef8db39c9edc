"""Verification speed of the Fashion-MNIST 784-300-300-10 QNet on Verilator (issue 20).

The 10,000 test images (Bernoulli spikes, seed 2, as benchmarks/fashion_verify.py
makes them) through the fast plain-Verilog testbench, every spike, final membrane
and counter compared with the reference. Prints the build time once and, per
configuration (simulator processes over sample shards, Verilator threads,
waveform capture), the run rate over ``--repeats`` runs: median and range.

    .venv/bin/python benchmarks/verify_speed.py [--samples 10000] [--repeats 3]
        [--jobs 1,2] [--threads 2] [--vcd-samples 20]

The rate is samples over the simulators' wall time (``run``); ``run+parse`` also
counts reading their results back into numpy. The build (reused when the command
and sources are unchanged) and the reference are reported apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from spikeforge.datasets import load_fashion_mnist
from spikeforge.encoding import bernoulli
from spikeforge.qnet import load_qnet, qnet_paths
from spikeforge.sim.fast import run_fast
from spikeforge.sim.protocol import compare, expected


def _net(out: Path):
    qpath = out / "fashion"
    if qnet_paths(qpath)[0].exists():
        return load_qnet(qpath)
    from rich.console import Console

    sys.path.insert(0, str(Path(__file__).parent))
    from fashion_verify import train_qnet

    return train_qnet(qpath, 1, 10, Console())[0]


def _fmt(rates: list[float]) -> str:
    return (f"median {statistics.median(rates):.1f}, range {min(rates):.1f}-{max(rates):.1f} "
            f"({len(rates)} runs)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/bench-fashion")
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", default="2", help="comma-separated simulator process counts")
    ap.add_argument("--threads", type=int, default=1,
                    help="also measure one process with Verilator --threads N (N > 1)")
    ap.add_argument("--vcd-samples", type=int, default=0,
                    help="also measure waveform capture (one process) on this many samples")
    args = ap.parse_args()
    out = Path(args.out)
    net = _net(out)
    _, _, x_te, _ = load_fashion_mnist()
    spikes = bernoulli(x_te, net.timesteps, seed=2)[:args.samples]
    n = len(spikes)
    t0 = time.perf_counter()
    ref = expected(net, spikes)
    print(f"reference: {n} samples in {time.perf_counter() - t0:.1f} s")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    build = out / "speed-verilator"
    configs = [(f"jobs={j}", {"jobs": int(j)}, n) for j in args.jobs.split(",")]
    if args.threads > 1:
        configs.append((f"threads={args.threads}", {"jobs": 1, "threads": args.threads}, n))
    if args.vcd_samples:
        configs.append(("vcd", {"vcd": build / "waves.vcd"}, min(args.vcd_samples, n)))
    status = 0
    for name, kw, count in configs:
        x = spikes[:count]
        want = ref if count == n else expected(net, x)
        rates, full, mism = [], [], 0
        for _ in range(args.repeats):
            run = run_fast(net, x, simulator="verilator", build_dir=build, **kw)
            bad = compare(want, run.result)
            mism = max(mism, len(bad))
            rates.append(run.samples_per_second)
            full.append(count / (run.run_seconds + run.parse_seconds))
            print(f"  {name}: {count} samples, build {run.build_seconds:.1f} s, run "
                  f"{run.run_seconds:.1f} s, parse {run.parse_seconds:.1f} s, "
                  f"{len(bad)} mismatches", flush=True)
        extra = ""
        if "vcd" in kw:
            extra = f", VCD {kw['vcd'].stat().st_size / 2**20:.0f} MiB"
        print(f"{name}: {count} samples, {mism} mismatches; samples/s (run) {_fmt(rates)}; "
              f"samples/s (run+parse) {_fmt(full)}{extra}")
        status |= mism != 0
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
