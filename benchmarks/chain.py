"""Benchmark of the end-to-end chain (issue: end-to-end chain on a small network).

Runs ``spikeforge run`` on a config (the built-in digits example by default)
and prints the figures the issue asks for, measured in this run:

    .venv/bin/python benchmarks/chain.py [examples/digits.yaml] [--out out/bench-chain]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spikeforge.config import load_config
from spikeforge.pipeline import run_pipeline


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("config", nargs="?", default="examples/digits.yaml")
    ap.add_argument("--out", default="out/bench-chain")
    args = ap.parse_args()
    console = Console()
    cfg = load_config(args.config)
    t0 = time.perf_counter()
    r = run_pipeline(cfg, Path(args.out), console=console)
    wall = time.perf_counter() - t0
    a, rtl, e = r["accuracy"], r["rtl"], r["energy"]
    gap_pp = 100 * (a["float"] - a["qnet"])
    rows = [
        ("config", args.config),
        ("machine", f"{platform.machine()}, {platform.python_version()}"),
        ("accuracy.float", f"{a['float']:.4f}"),
        ("accuracy.qnet", f"{a['qnet']:.4f}"),
        ("accuracy.rtl", f"{a['rtl']:.4f}"),
        ("float - qnet (percentage points)", f"{gap_pp:+.2f}"),
        ("test samples / through the RTL", f"{a['samples']} / {rtl['samples']}"),
        ("rtl.mismatches", str(rtl["mismatches"])),
        ("counters reference == rtl", str(r["counters_equal"])),
        ("rtl.cycles_per_sample", f"{rtl['cycles_per_sample']:.1f}"),
        ("energy.snn_pj / ann_pj (Panda)", f"{e['snn_pj']:.1f} / {e['ann_pj']:.1f}"),
        ("energy.ee", f"{e['ee']:.2f}"),
        ("energy hardware-aware (pJ)", f"{e['hardware_pj']:.1f}"),
        *((f"time: pass {k} (s)", f"{v:.1f}") for k, v in r["timings_s"].items()),
        ("time: spikeforge run, total (s)", f"{wall:.1f}"),
    ]
    t = Table(title="benchmarks/chain.py")
    t.add_column("figure")
    t.add_column("measured", justify="right")
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    ok = rtl["mismatches"] == 0 and r["counters_equal"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
