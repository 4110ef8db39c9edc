"""Benchmark of post-training quantization and QAT (issue 4): QNet accuracy against bits.

Trains a float LIF MLP on Fashion-MNIST (``--sizes``, default 784-300-300-10;
hardware leak shifts [3, 4] (beta 0.8125), reset by subtraction, threshold 1,
integrating readout, no biases, Bernoulli rate coding, T = 8, Adam), then for
8-, 6-, 4- and 2-bit weights

* PTQ: ``QuantSNN.from_float`` (per-layer scale, ``--ptq-clip``), membrane
  widths from the membranes of ``--calib`` training images, QNet export;
* QAT: the same ``QuantSNN`` with learned thresholds and MSE-clipped scales,
  fine-tuned for ``--qat-epochs`` on the quantized forward pass
  (straight-through weights, exact integer leak), calibrated and exported;

and prints the accuracy of each QNet in the reference simulator
(``spikeforge.reference.simulate``) beside the float model's, all on the same
Bernoulli bits of the test images (``spikeforge.encoding.bernoulli``, seed 1;
the float model is evaluated on exactly these spikes). It also checks that
each QNet's reference predictions equal the ``QuantSNN`` forward pass. Because
QAT trains for extra epochs, the float model fine-tuned for as many epochs
without quantization is printed too (a fair baseline for QAT)::

    .venv/bin/python benchmarks/qat.py
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: the figures are single-core and repeatable.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import copy  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikeforge import datasets  # noqa: E402
from spikeforge.encoding import bernoulli  # noqa: E402
from spikeforge.model import LIF, SNN, Dense, DenseReadout, beta_from_shifts  # noqa: E402
from spikeforge.model.encoders import Encoding  # noqa: E402
from spikeforge.model.engine import epoch_seed, retain_freed_memory, train_epoch  # noqa: E402
from spikeforge.model.quantize import ClipRule, QuantSNN  # noqa: E402
from spikeforge.qnet import Reset  # noqa: E402
from spikeforge.reference import simulate  # noqa: E402

LEAK = (3, 4)


def build(sizes: list[int]) -> SNN:
    beta = beta_from_shifts(LEAK)
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [Dense(a, b, bias=False), LIF(beta, 1.0, reset=Reset.SUBTRACT)]
    layers.append(DenseReadout(sizes[-2], sizes[-1], bias=False))
    return SNN(layers)


@torch.no_grad()
def predict(model, spikes: np.ndarray, batch: int = 500) -> np.ndarray:
    out = []
    for i in range(0, len(spikes), batch):
        x = torch.from_numpy(spikes[i:i + batch]).to(torch.float32).transpose(0, 1)
        out.append(model(x).argmax(1).numpy())
    return np.concatenate(out)


def fit(model, x, y, *, epochs: int, lr: float, timesteps: int, seed: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for e in range(epochs):
        gen = torch.Generator().manual_seed(epoch_seed(seed, e))
        r = train_epoch(model, x, y, encoding=Encoding.BERNOULLI, timesteps=timesteps,
                        optimizer=opt, batch_size=64, generator=gen, scheduler=sched)
        print(f"  epoch {e + 1}: loss {r.loss:.4f}, train acc {100 * r.accuracy:.2f} %",
              flush=True)
    model.eval()


def export(q: QuantSNN, calib: torch.Tensor, spikes: np.ndarray, t_steps: int, name: str):
    bits = q.calibrate([calib[:, i:i + 500] for i in range(0, calib.shape[1], 500)])
    net = q.to_qnet(timesteps=t_steps, name=name, input_shape=(28, 28))
    ref = np.concatenate([simulate(net, spikes[i:i + 1000]).predictions
                          for i in range(0, len(spikes), 1000)])
    same = bool(np.array_equal(ref, predict(q, spikes)))
    return net, bits, ref, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[784, 300, 300, 10])
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=4, help="float training epochs")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--qat-epochs", type=int, default=1)
    ap.add_argument("--qat-lr", type=float, default=2e-4)
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4, 2])
    ap.add_argument("--ptq-clip", choices=[c.value for c in ClipRule], default="mse")
    ap.add_argument("--calib", type=int, default=2000, help="training images for widths")
    ap.add_argument("--train-samples", type=int, default=60000)
    ap.add_argument("--test-samples", type=int, default=10000)
    ap.add_argument("--out", default="out/bench-qat")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()
    t_start = time.time()
    t_steps = args.timesteps

    xtr, ytr, xte, yte = datasets.load_fashion_mnist()
    xte, yte = xte[:args.test_samples], yte[:args.test_samples]
    x = torch.tensor(xtr[:args.train_samples], dtype=torch.float32)
    y = torch.as_tensor(ytr[:args.train_samples])
    spikes = bernoulli(xte, t_steps, 1)
    calib = torch.from_numpy(bernoulli(xtr[:args.calib], t_steps, 2)).to(
        torch.float32).transpose(0, 1)

    torch.manual_seed(args.seed)
    model = build(args.sizes)
    cache = Path(args.out) / (f"mlp_{'-'.join(map(str, args.sizes))}_T{t_steps}"
                              f"_e{args.epochs}_n{len(x)}_s{args.seed}.pt")
    if cache.is_file() and not args.retrain:
        model.load_state_dict(torch.load(cache))
        model.eval()
        print(f"float model loaded from {cache}")
    else:
        t0 = time.time()
        print(f"training the float model {args.sizes}, T = {t_steps}, {args.epochs} epochs")
        fit(model, x, y, epochs=args.epochs, lr=args.lr, timesteps=t_steps, seed=args.seed)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), cache)
        print(f"  {time.time() - t0:.0f} s")
    float_acc = float((predict(model, spikes) == yte).mean())
    print(f"float model: {100 * float_acc:.2f} % on {len(yte)} Fashion-MNIST test images "
          f"(T = {t_steps}, Bernoulli seed 1); trained on {len(x)} images")

    # Control: QAT trains for --qat-epochs more; the float model gets the same extra epochs.
    t0 = time.time()
    tuned = copy.deepcopy(model)
    print(f"control: the float model fine-tuned {args.qat_epochs} epoch(s), lr {args.qat_lr}")
    fit(tuned, x, y, epochs=args.qat_epochs, lr=args.qat_lr, timesteps=t_steps,
        seed=args.seed + 99)
    tuned_acc = float((predict(tuned, spikes) == yte).mean())
    print(f"  {100 * tuned_acc:.2f} %, {time.time() - t0:.0f} s")

    rows = []
    for wb in args.bits:
        t0 = time.time()
        q = QuantSNN.from_float(model, wb, clip=ClipRule(args.ptq_clip))
        net, bits, ref, same = export(q, calib, spikes, t_steps, f"ptq{wb}")
        rows.append(("PTQ", wb, float((ref == yte).mean()), bits,
                     [l.threshold for l in net.layers if l.fire], same, time.time() - t0))
        print(f"PTQ {wb}-bit: {100 * rows[-1][2]:.2f} %, {time.time() - t0:.0f} s", flush=True)

        t0 = time.time()
        q = QuantSNN.from_float(copy.deepcopy(model), wb, clip=ClipRule.MSE,
                                learn_threshold=True)
        print(f"QAT {wb}-bit, {args.qat_epochs} epoch(s), lr {args.qat_lr}")
        fit(q, x, y, epochs=args.qat_epochs, lr=args.qat_lr, timesteps=t_steps,
            seed=args.seed + 100 + wb)
        net, bits, ref, same = export(q, calib, spikes, t_steps, f"qat{wb}")
        rows.append(("QAT", wb, float((ref == yte).mean()), bits,
                     [l.threshold for l in net.layers if l.fire], same, time.time() - t0))
        print(f"QAT {wb}-bit: {100 * rows[-1][2]:.2f} %, {time.time() - t0:.0f} s", flush=True)

    print(f"\nFashion-MNIST MLP {'-'.join(map(str, args.sizes))}, LIF leak shifts {list(LEAK)}, "
          f"subtract reset, T = {t_steps}, {len(yte)} test images; float model "
          f"{100 * float_acc:.2f} %; the float model fine-tuned like QAT (no quantization) "
          f"{100 * tuned_acc:.2f} %")
    print("| method | weight bits | QNet accuracy (reference) | vs float | membrane bits "
          "(per layer) | integer thresholds | reference == QuantSNN forward | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for method, wb, acc, bits, th, same, sec in rows:
        print(f"| {method} | {wb} | {100 * acc:.2f} % | {100 * (acc - float_acc):+.2f} pp "
              f"| {bits} | {th} | {same} | {sec:.0f} |")
    print(f"\ntotal {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
