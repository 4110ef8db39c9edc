"""Full-test-set verification of the Fashion-MNIST 784-300-300-10 network (issue 6).

Trains the network (or reuses the QNet from an earlier run), then checks all
10,000 test samples bit for bit on Verilator with the fast plain-Verilog
testbench, measures Icarus on a subset, and reports energy in both conventions:

    .venv/bin/python benchmarks/fashion_verify.py [--epochs 1] [--icarus-samples 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from spikeforge.datasets import load_fashion_mnist
from spikeforge.encoding import bernoulli
from spikeforge.energy import energy_report
from spikeforge.qnet import load_qnet, qnet_paths, save_qnet
from spikeforge.reference import simulate
from spikeforge.sim.fast import run_fast
from spikeforge.sim.protocol import compare, expected


def train_qnet(path: Path, epochs: int, timesteps: int, console: Console):
    import torch

    from spikeforge.model import LIFMLP, Surrogate, evaluate, rate_code_copies, to_qnet, train

    x_tr, y_tr, x_te, y_te = load_fashion_mnist()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = LIFMLP([784, 300, 300, 10], leak_shifts=(3, 4), threshold=1.0,
                   surrogate=Surrogate.FAST_SIGMOID)
    s_tr, y_tr2 = rate_code_copies(x_tr, y_tr, timesteps, seed=1)
    t0 = time.perf_counter()
    train(model, s_tr, y_tr2, epochs=epochs, lr=1e-3, batch_size=64, seed=0,
          progress=lambda s: console.print(f"epoch {s.epoch}/{s.epochs} loss {s.loss:.3f} "
                                           f"train acc {s.accuracy:.4f}"))
    console.print(f"training: {time.perf_counter() - t0:.1f} s")
    s_te = bernoulli(x_te, timesteps, seed=2)
    acc = evaluate(model, s_te, y_te)
    net = to_qnet(model, weight_bits=8, membrane_bits=16, timesteps=timesteps,
                  name="fashion", input_shape=(28, 28))
    save_qnet(net, path)
    return net, acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="out/bench-fashion")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--timesteps", type=int, default=10)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--icarus-samples", type=int, default=500)
    args = ap.parse_args()
    console = Console()
    out = Path(args.out)
    qpath = out / "fashion"
    acc_float = None
    if qnet_paths(qpath)[0].exists():
        net = load_qnet(qpath)
        console.print(f"reusing {qnet_paths(qpath)[0]}")
    else:
        net, acc_float = train_qnet(qpath, args.epochs, args.timesteps, console)
    _, _, x_te, y_te = load_fashion_mnist()
    n = min(args.samples, len(y_te))
    spikes = bernoulli(x_te, net.timesteps, seed=2)[:n]
    t0 = time.perf_counter()
    ref = simulate(net, spikes)
    t_ref = time.perf_counter() - t0
    rows = [("network", "784-300-300-10 LIF, 8-bit weights, 16-bit membrane"),
            ("timesteps", str(net.timesteps))]
    if acc_float is not None:
        rows.append(("accuracy.float", f"{acc_float:.4f}"))
    rows.append(("accuracy.qnet (reference)", f"{np.mean(ref.predictions == y_te[:n]):.4f}"))
    rows.append(("reference simulator", f"{n / t_ref:.0f} samples/s"))
    report = {"samples": n}
    for sim, count in (("verilator", n), ("icarus", min(args.icarus_samples, n))):
        run = run_fast(net, spikes[:count], simulator=sim, build_dir=out / f"fast-{sim}")
        mism = compare(expected(net, spikes[:count]), run.result)
        cyc = float(np.mean(run.result.cycles))
        rows += [
            (f"{sim}: samples checked", str(count)),
            (f"{sim}: mismatches", str(len(mism))),
            (f"{sim}: build (s)", f"{run.build_seconds:.1f}"),
            (f"{sim}: run (s)", f"{run.run_seconds:.1f}"),
            (f"{sim}: samples/s", f"{run.samples_per_second:.1f}"),
            (f"{sim}: cycles/sample (mean)", f"{cyc:.0f}"),
            (f"{sim}: simulated cycles/s", f"{cyc * count / run.run_seconds:.0f}"),
        ]
        report[sim] = {"samples": count, "mismatches": len(mism),
                       "samples_per_s": run.samples_per_second, "cycles_per_sample": cyc,
                       "first_mismatches": [str(m) for m in mism[:5]]}
        if sim == "verilator":
            e_rtl = energy_report(net, run.result.counters, source="rtl counters (verilator)")
            acc_rtl = float(np.mean(np.argmax(run.result.membrane[net.layers[-1].name], 1)
                                    == y_te[:count]))
            rows.append(("accuracy.rtl (verilator)", f"{acc_rtl:.4f}"))
    e_ref = energy_report(net, ref.counters, source="reference simulator")
    rows += [
        ("energy Panda: E_SNN / E_ANN (pJ/sample)", f"{e_rtl['snn_pj']:.0f} / "
                                                     f"{e_rtl['ann_pj']:.0f}"),
        ("EE Panda (E_ANN / E_SNN)", f"{e_rtl['ee']:.2f}"),
        ("hardware-aware E_SNN (pJ/sample)", f"{e_rtl['hardware_pj']:.0f}"),
        ("EE hardware-aware (E_ANN / E_SNN,hw)", f"{e_rtl['ann_pj'] / e_rtl['hardware_pj']:.2f}"),
        ("energy from RTL == from reference", str(e_rtl["snn_pj"] == e_ref["snn_pj"])),
    ]
    report["energy"] = e_rtl
    (out / "verify.json").write_text(json.dumps(report, indent=2, default=float))
    t = Table(title="benchmarks/fashion_verify.py")
    t.add_column("figure")
    t.add_column("measured", justify="right")
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    return 0 if all(report[s]["mismatches"] == 0 for s in ("verilator", "icarus")) else 1


if __name__ == "__main__":
    sys.exit(main())
