"""Tiled hardware at full scale (issue 5): Fashion-MNIST 784-300-300-10 on crossbar tiles.

For each hardware description (tile size) and number of neuron lanes P the
network is mapped (`spikeforge map`, on 64 training samples), the Verilog is
generated from the mapping (timed), every test sample runs through Verilator
with the fast testbench, and the RTL is checked bit for bit against the
reference. Cycles per sample are set beside the lower bounds of
docs/HARDWARE.md#cycle-model, the mapper's prediction (issue 7; made from the
training samples it mapped with) and the cycle model on the test samples::

    .venv/bin/python benchmarks/hw_tiles.py [--samples 200] [--lanes 1 4 16] \
        [--hw examples/hw/tiles1024x128.yaml examples/hw/tiles1024x64.yaml]

The QNet is the one benchmarks/fashion_verify.py trains (reused from
out/bench-fashion when present, trained for one epoch otherwise).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from spikeforge.datasets import load_fashion_mnist
from spikeforge.encoding import bernoulli
from spikeforge.hw.cycles import cycle_bounds, predicted_cycles
from spikeforge.hw.export import to_verilog
from spikeforge.hw.layout import load_layout
from spikeforge.hw.params import NetworkParams
from spikeforge.mapping import load_hardware
from spikeforge.mapping.flow import MapOptions, run_mapping, write_mapping
from spikeforge.qnet import load_qnet, qnet_paths
from spikeforge.sim.fast import run_fast
from spikeforge.sim.protocol import compare, expected


def fashion_qnet(out: Path, console: Console):
    qpath = out / "fashion"
    if qnet_paths(qpath)[0].exists():
        return load_qnet(qpath)
    spec = importlib.util.spec_from_file_location(
        "fashion_verify", Path(__file__).with_name("fashion_verify.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net, _ = mod.train_qnet(qpath, 1, 10, console)
    return net


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qnet-dir", default="out/bench-fashion")
    ap.add_argument("--out", default="out/bench-tiles")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--lanes", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--hw", nargs="+",
                    default=["examples/hw/tiles1024x128.yaml", "examples/hw/tiles1024x64.yaml"])
    ap.add_argument("--simulator", default="verilator")
    ap.add_argument("--no-balance", action="store_true",
                    help="map without the balance pass (no extra axon chunks)")
    args = ap.parse_args()
    console = Console(width=200)
    out = Path(args.out)
    net = fashion_qnet(Path(args.qnet_dir), console)
    x_tr, _, x_te, y_te = load_fashion_mnist()
    spikes = bernoulli(x_te[:args.samples], net.timesteps, seed=2)
    activity = bernoulli(x_tr[:64], net.timesteps, seed=1)  # what the mapper optimizes for
    table = Table(title=f"784-300-300-10, T = {net.timesteps}, {len(spikes)} test samples, "
                        f"{args.simulator}")
    for col in ("hardware", "P", "tiles", "gen s", "mismatches", "accuracy", "cycles/sample",
                "bound/step", "ratio", "pipelined", "ratio", "link", "mapper", "error",
                "model"):
        table.add_column(col, justify="right")
    records = []
    for hw_path in args.hw:
        base = load_hardware(hw_path)
        for lanes in args.lanes:
            hw = base.model_copy(update={"tile": base.tile.model_copy(
                update={"neuron_lanes": min(lanes, base.tile.neurons)})})
            t0 = time.perf_counter()
            st = run_mapping(net, hw, activity, MapOptions(balance=not args.no_balance))
            map_s = time.perf_counter() - t0
            map_dir = out / f"{hw.name}-P{lanes}" / "map"
            write_mapping(st, map_dir)
            layout = load_layout(map_dir / "mapping.yaml", net, lanes=lanes)
            t0 = time.perf_counter()
            text = to_verilog(net, layout=layout)
            gen = time.perf_counter() - t0
            build = out / f"{hw.name}-P{lanes}"
            build.mkdir(parents=True, exist_ok=True)
            (build / "spikeforge_top.v").write_text(text)
            console.print(f"{hw.name} P={lanes}: generated in {gen:.1f} s; simulating ...")
            run = run_fast(net, spikes, simulator=args.simulator, build_dir=build,
                           verilog=build / "spikeforge_top.v", layout=layout)
            ref = expected(net, spikes, layout)
            mism = compare(ref, run.result)
            b = cycle_bounds(net, layout, spikes)
            model = predicted_cycles(net, layout, spikes)
            cyc = run.result.cycles.astype(np.float64)
            np.save(build / "cycles.npy", run.result.cycles)
            rec = {
                "hardware": hw.name, "lanes": lanes, "balanced": not args.no_balance,
                "tiles": NetworkParams(net, layout=layout).describe()["tiles"],
                "generation_s": gen, "mismatches": len(mism),
                "accuracy": float(np.mean(ref.predictions == y_te[:len(spikes)])),
                "cycles": float(cyc.mean()), "bound_per_step": float(b.per_step.mean()),
                "ratio_per_step": float(np.mean(cyc / b.per_step)),
                "bound_pipelined": float(b.pipelined.mean()),
                "ratio_pipelined": float(np.mean(cyc / b.pipelined)),
                "bound_link": float(b.link.mean()),
                "mapping_s": map_s,
                "mapper_predicted": st.analysis.rtl_cycles_per_sample,
                "mapper_error": st.analysis.rtl_cycles_per_sample / float(cyc.mean()) - 1,
                "model_exact_samples": int(np.sum(model == run.result.cycles)),
                "build_s": run.build_seconds, "samples_per_s": run.samples_per_second,
            }
            records.append(rec)
            table.add_row(hw.name, str(lanes), str(rec["tiles"]), f"{gen:.1f}",
                          str(len(mism)), f"{rec['accuracy']:.4f}", f"{rec['cycles']:.1f}",
                          f"{rec['bound_per_step']:.1f}", f"{rec['ratio_per_step']:.3f}",
                          f"{rec['bound_pipelined']:.1f}", f"{rec['ratio_pipelined']:.3f}",
                          f"{rec['bound_link']:.1f}", f"{rec['mapper_predicted']:.1f}",
                          f"{100 * rec['mapper_error']:+.1f} %",
                          f"{rec['model_exact_samples']}/{len(spikes)} exact")
            (out / "results.json").write_text(json.dumps(records, indent=2))
    console.print(table)
    return 0 if all(r["mismatches"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
