"""Energy of one network under the layout actually built (issue: one resource and energy model).

The Fashion-MNIST 784-300-300-10 QNet (the one benchmarks/fashion_verify.py
trains; reused from out/bench-fashion when present) is costed on the same test
spikes under the default layout (one memory per layer) and under the tiles a
mapping builds on each hardware description. Counters come from the reference
with each layout's visits (what that hardware reads), so the figures are the
ones ``spikeforge verify --mapping`` reports from the RTL's counters::

    .venv/bin/python benchmarks/energy_layout.py [--samples 200] \
        [--hw examples/hw/tiles1024x128.yaml examples/hw/tiles1024x64.yaml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spikeforge.datasets import load_fashion_mnist
from spikeforge.encoding import bernoulli
from spikeforge.energy import energy_report
from spikeforge.hw.layout import HardwareLayout, load_layout
from spikeforge.mapping import load_hardware
from spikeforge.mapping.flow import MapOptions, run_mapping, write_mapping
from spikeforge.reference import simulate

sys.path.insert(0, str(Path(__file__).parent))
from hw_tiles import fashion_qnet  # noqa: E402  (the benchmarks' shared QNet)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qnet-dir", default="out/bench-fashion")
    ap.add_argument("--out", default="out/bench-energy")
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--hw", nargs="+", default=["examples/hw/tiles1024x128.yaml",
                                                "examples/hw/tiles1024x64.yaml"])
    args = ap.parse_args()
    console = Console(width=200)
    net = fashion_qnet(Path(args.qnet_dir), console)
    x_tr, _, x_te, _ = load_fashion_mnist()
    spikes = bernoulli(x_te[:args.samples], net.timesteps, seed=2)
    activity = bernoulli(x_tr[:64], net.timesteps, seed=1)
    layouts = [("default (one memory per layer)", HardwareLayout.default(net))]
    for hw_path in args.hw:
        hw = load_hardware(hw_path)
        st = run_mapping(net, hw, activity, MapOptions(balance=False))
        map_dir = Path(args.out) / hw.name
        write_mapping(st, map_dir)
        layouts.append((f"{hw.name} (mapped)", load_layout(map_dir / "mapping.yaml", net)))
    t = Table(title=f"{net.name}: energy per sample, {len(spikes)} test samples, "
                    f"T = {net.timesteps}")
    for col in ("layout", "memories", "weight reads", "read pJ", "accumulate pJ",
                "update pJ", "hardware pJ", "Panda SNN pJ"):
        t.add_column(col, justify="right" if col != "layout" else "left")
    for name, layout in layouts:
        ref = simulate(net, spikes, layout.visits())
        r = energy_report(net, ref.counters, source="reference", layout=layout)
        ls = r["layers"]
        t.add_row(name, str(sum(x["hardware"]["memories"] for x in ls)),
                  f"{sum(x['counts']['weight_reads'] for x in ls):,.1f}",
                  f"{sum(x['hardware']['weight_read_pj'] for x in ls):,.1f}",
                  f"{sum(x['hardware']['accumulate_pj'] for x in ls):,.1f}",
                  f"{sum(x['hardware']['neuron_update_pj'] for x in ls):,.1f}",
                  f"{r['hardware_pj']:,.1f}", f"{r['snn_pj']:,.1f}")
    console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
