"""Training speed of spikeforge.model against snnTorch, side by side in one run.

Set-up of PERF-NOTES.md (the design notes): Fashion-MNIST, 784-300-300-10 with
LIF hidden layers (beta 0.8187, reset to zero, threshold 1) and an integrating
readout (beta 1, score = final membrane), exponential surrogate, Bernoulli
coding at T = 20, Adam 1e-3, batch 64, same seed and data. Each implementation
runs in its own process (so peak RSS is its own) and reports seconds per
training epoch, test accuracy, inference images/s at batch 256 and peak RSS.

snnTorch 1.0.0 and SpikingJelly 2.0.0 are never project dependencies: install
them beside the project's torch with ``pip install --no-deps --target ../peers
snntorch spikingjelly loguru`` and pass ``--peers-path ../peers``; a peer that
cannot be imported is reported as failed and skipped. Both peers use the same
exponential surrogate function object as spikeforge and a detached reset.

Implementations: ``spikeforge`` (fused LIF loop, event-driven products of
the layers fed spikes), ``spikeforge-dense`` (the same with every dense layer
as a matrix product), ``spikeforge-generic`` (generic step loop, no fused
kernel), ``snntorch``, ``spikingjelly``.

Usage::

    .venv/bin/python benchmarks/train_speed.py --epochs 1 --threads 2 \
        --peers-path ../peers
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

IMPLS = ("spikeforge", "spikeforge-dense", "spikeforge-generic", "snntorch", "spikingjelly")


def _load(limit: int | None):
    """Fashion-MNIST as float32 (read as uint8 IDX: no float64 copy inflates peak RSS)."""
    from spikeforge.datasets import FASHION_MNIST_DIR, load_fashion_mnist, load_idx

    def idx(stem):
        for name in (stem, stem + ".gz"):
            if (FASHION_MNIST_DIR / name).is_file():
                return load_idx(FASHION_MNIST_DIR / name)
        load_fashion_mnist()  # raises the message that names the package
        raise FileNotFoundError(stem)

    def images(a):
        return torch.from_numpy(a.reshape(len(a), -1)).to(torch.float32) / 255.0

    xtr, ytr = idx("train-images-idx3-ubyte"), idx("train-labels-idx1-ubyte")
    xte, yte = idx("t10k-images-idx3-ubyte"), idx("t10k-labels-idx1-ubyte")
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    return (images(xtr), torch.from_numpy(ytr.astype(np.int64)), images(xte),
            torch.from_numpy(yte.astype(np.int64)))


def _spikeforge_model(beta: float, fused: bool) -> nn.Module:
    from spikeforge.model.layers import LIF, Dense, DenseReadout
    from spikeforge.model.network import SNN
    from spikeforge.model.surrogate import Surrogate
    from spikeforge.qnet import Reset

    class GenericLIF(LIF):
        """The same neurons through the generic step loop (no fused kernel)."""

        def forward(self, currents):
            from spikeforge.model.kernels import lif_sequence_reference

            return lif_sequence_reference(currents, self.step_params())

    cls = LIF if fused else GenericLIF
    lif = dict(beta=beta, threshold=1.0, reset=Reset.ZERO, surrogate=Surrogate.EXPONENTIAL)
    return SNN([Dense(784, 300), cls(**lif), Dense(300, 300), cls(**lif),
                DenseReadout(300, 10, beta=1.0)])


def _snntorch_model(beta: float) -> nn.Module:
    import snntorch as snn

    from spikeforge.model.surrogate import Surrogate, spike

    def grad(x):
        return spike(x, Surrogate.EXPONENTIAL, 1.0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(784, 300), nn.Linear(300, 300)
            self.fc3 = nn.Linear(300, 10)
            self.lif1 = snn.Leaky(beta=beta, spike_grad=grad, reset_mechanism="zero")
            self.lif2 = snn.Leaky(beta=beta, spike_grad=grad, reset_mechanism="zero")
            self.lif3 = snn.Leaky(beta=1.0, spike_grad=grad, reset_mechanism="none")

        def forward(self, x):  # x [T, B, 784]
            m1, m2, m3 = self.lif1.init_leaky(), self.lif2.init_leaky(), self.lif3.init_leaky()
            for t in range(x.shape[0]):
                s1, m1 = self.lif1(self.fc1(x[t]), m1)
                s2, m2 = self.lif2(self.fc2(s1), m2)
                _, m3 = self.lif3(self.fc3(s2), m3)
            return m3

    return Net()


def _spikingjelly_model(beta: float) -> nn.Module:
    from spikingjelly.activation_based import functional, layer, neuron

    from spikeforge.model.surrogate import Surrogate, spike

    def grad(x):
        return spike(x, Surrogate.EXPONENTIAL, 1.0)

    # decay_input=False, v_reset=0: V = (1 - 1/tau) V + X, hard reset to 0, i.e. beta = 1 - 1/tau
    tau = 1.0 / (1.0 - beta)
    lif = dict(tau=tau, decay_input=False, v_threshold=1.0, v_reset=0.0, detach_reset=True,
               surrogate_function=grad, step_mode="m")
    net = nn.Sequential(layer.Linear(784, 300), neuron.LIFNode(**lif),
                        layer.Linear(300, 300), neuron.LIFNode(**lif), layer.Linear(300, 10))
    functional.set_step_mode(net, "m")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):  # x [T, B, 784]; readout = membrane of an integrator
            out = self.net(x).sum(0)
            functional.reset_net(self.net)
            return out

    return Net()


_ADAM = {"fused": {"fused": True}, "foreach": {"foreach": True}}


def _worker(args: argparse.Namespace) -> dict:
    impl = args.impl[0]
    if impl.startswith("spikeforge") or args.malloc_all:
        from spikeforge.model.engine import retain_freed_memory

        retain_freed_memory()  # what spikeforge's trainer does
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = _load(args.limit)
    if impl == "snntorch":
        sys.path.insert(0, args.peers_path)
        from snntorch import spikegen

        model = _snntorch_model(args.beta)

        def encode(x, gen):
            return spikegen.rate(x, num_steps=args.timesteps)  # torch.bernoulli, global RNG
    elif impl == "spikingjelly":
        sys.path.insert(0, args.peers_path)
        model = _spikingjelly_model(args.beta)

        def encode(x, gen):  # SpikingJelly's PoissonEncoder: rand_like(x) <= x, per step
            return (torch.rand(args.timesteps, *x.shape) <= x).to(x.dtype)
    else:
        from spikeforge.model import events
        from spikeforge.model.encoders import bernoulli_spikes

        if impl == "spikeforge-dense":
            events.MAX_DENSITY = 0.0  # every dense layer as a matrix product (no event sums)
        model = _spikeforge_model(args.beta, fused=impl != "spikeforge-generic")

        def encode(x, gen):
            return bernoulli_spikes(x, args.timesteps, gen)

    # the same torch optimizer for every implementation; --adam foreach is torch's default
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **_ADAM[args.adam])
    gen = torch.Generator().manual_seed(args.seed)
    loss_fn = nn.CrossEntropyLoss()
    epoch_s = []
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(xtr.shape[0], generator=gen)
        for i in range(0, xtr.shape[0], 64):
            idx = order[i:i + 64]
            loss = loss_fn(model(encode(xtr[idx], gen)), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch_s.append(time.perf_counter() - t0)
    model.eval()
    correct = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, xte.shape[0], 256):
            correct += int((model(encode(xte[i:i + 256], gen)).argmax(1) == yte[i:i + 256]).sum())
    infer_s = time.perf_counter() - t0
    return {
        "impl": impl,
        "epoch_s": epoch_s,
        "train_samples": int(xtr.shape[0]),
        "test_acc": correct / xte.shape[0],
        "infer_img_s": xte.shape[0] / infer_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--impl", choices=IMPLS, nargs="+",
                   default=["spikeforge", "snntorch", "spikingjelly"])
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--beta", type=float, default=0.8187)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only")
    p.add_argument("--peers-path", default="../peers")
    p.add_argument("--adam", choices=tuple(_ADAM), default="fused",
                   help="torch's Adam for every implementation: one fused kernel (default, "
                        "what spikeforge's trainer uses) or torch's default foreach loop")
    p.add_argument("--malloc-all", action="store_true",
                   help="also give the peers spikeforge's malloc setting (retain_freed_memory)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if args.worker:
        print(json.dumps(_worker(args)))
        return
    results = []
    for impl in args.impl:
        cmd = [sys.executable, __file__, "--worker", "--impl", impl]
        for k in ("epochs", "threads", "timesteps", "beta", "seed", "limit", "peers_path",
                  "adam"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
        if args.malloc_all:
            cmd.append("--malloc-all")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{impl}: failed: {r.stderr.strip().splitlines()[-1:]}")
            continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        results.append(res)
        print(f"{impl:20s} s/epoch {' '.join(f'{s:.1f}' for s in res['epoch_s'])} "
              f"({res['train_samples']} images)  test acc {100 * res['test_acc']:.2f} %  "
              f"infer {res['infer_img_s']:.0f} img/s  peak RSS {res['peak_rss_mib']:.0f} MiB",
              flush=True)
    peers = [r for r in results if r["impl"] in ("snntorch", "spikingjelly")]
    if peers:
        best = min(peers, key=lambda r: float(np.mean(r["epoch_s"])))
        base = float(np.mean(best["epoch_s"]))
        for r in results:
            if r["impl"].startswith("spikeforge"):
                print(f"{r['impl']}: {float(np.mean(r['epoch_s'])) / base:.2f}x the epoch time of "
                      f"the faster peer ({best['impl']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
