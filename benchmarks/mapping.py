"""Benchmark of the mapper (issue: mapping layers onto crossbar tiles).

Trains two small spiking networks on Fashion-MNIST (Debian's
``dataset-fashion-mnist``), quantizes them to QNets, and maps each onto three
tile sizes (``examples/hw/mesh4x4_256.yaml``, ``mesh8x8_256x64.yaml``,
``mesh8x8_64.yaml``; ``--hw`` picks others) with the three placement methods.
Activity comes from the reference simulator on held-out test images. Prints,
per network and hardware: hop-weighted inter-tile traffic (and all traffic, I/O
included) vs the naive in-order placement, busiest-tile load vs the mean,
predicted cycles (the mesh model, and the cycle-exact model of the RTL
``spikeforge rtl --mapping`` generates; benchmarks/hw_tiles.py measures that
RTL), and the mapping time (the whole flow: activity, partition, balance, traffic, place, analyze)::

    .venv/bin/python benchmarks/mapping.py [--train 10000] [--samples 128] [--retrain]

Networks (cached under ``out/bench-mapping``):

* ``mlp``: 784-300-300-10 LIF MLP, readout on the last layer;
* ``conv``: 784 -> conv 8@5x5 stride 2 (12x12x8 = 1152 LIF) -> 128 LIF -> 10 readout,
  the convolution trained as such and lowered to a dense layer by
  :func:`spikeforge.mapping.conv2d_to_dense` (position-major neurons).

Both are trained for one epoch on ``--train`` images (T = 6, 8-bit weights):
enough for realistic spike statistics, not for a tuned accuracy.
"""

from __future__ import annotations

import os

# One BLAS thread, set before numpy loads: the figures are single-core and repeatable.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from spikeforge.datasets import load_fashion_mnist  # noqa: E402
from spikeforge.encoding import bernoulli  # noqa: E402
from spikeforge.mapping import (  # noqa: E402
    MapOptions,
    NeuronOrder,
    PlaceMethod,
    conv2d_to_dense,
    load_hardware,
    run_mapping,
    write_mapping,
)
from spikeforge.model import LIFMLP, evaluate, to_qnet, train  # noqa: E402
from spikeforge.qnet import load_qnet, save_qnet  # noqa: E402
from spikeforge.reference import simulate  # noqa: E402

T_STEPS = 6
HARDWARE = ("examples/hw/mesh4x4_256.yaml", "examples/hw/mesh8x8_256x64.yaml",
            "examples/hw/mesh8x8_64.yaml")


class ConvAsLinear(torch.nn.Module):
    """A 2-D convolution that looks like ``nn.Linear`` to LIFMLP and to_qnet.

    ``forward`` convolves ``[..., 784]`` images and flattens position-major
    (HWC); ``weight`` is the same map as a dense matrix from the numpy lowering,
    so the exported QNet computes exactly what was trained.
    """

    def __init__(self, channels: int, kernel: int, stride: int, side: int = 28) -> None:
        super().__init__()
        self.side, self.stride = side, stride
        self.kernel = torch.nn.Parameter(torch.randn(channels, 1, kernel, kernel)
                                         * (1.0 / kernel))
        out = (side - kernel) // stride + 1
        self.in_features, self.out_features = side * side, channels * out * out
        self.bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = torch.nn.functional.conv2d(x.reshape(-1, 1, self.side, self.side), self.kernel,
                                       stride=self.stride)
        return y.permute(0, 2, 3, 1).reshape(*lead, self.out_features)

    @property
    def weight(self) -> torch.Tensor:
        k = self.kernel.detach().double().numpy()
        return torch.from_numpy(conv2d_to_dense(k, (1, self.side, self.side), self.stride,
                                                order=NeuronOrder.HWC))


def build(kind: str) -> LIFMLP:
    if kind == "mlp":
        return LIFMLP([784, 300, 300, 10], leak_shifts=(3, 4))
    model = LIFMLP([784, 1152, 128, 10], leak_shifts=(3, 4))
    model.layers[0] = ConvAsLinear(channels=8, kernel=5, stride=2)
    return model


def trained_qnet(kind: str, out: Path, data, n_train: int, retrain: bool, console: Console):
    path = out / f"fmnist_{kind}.qnet.yaml"
    if path.is_file() and not retrain:
        console.log(f"{kind}: cached {path}")
        return load_qnet(path)
    x_tr, y_tr, x_te, y_te = data
    torch.manual_seed(0)
    model = build(kind)
    s_tr = bernoulli(x_tr[:n_train], T_STEPS, seed=1)
    t0 = time.perf_counter()
    train(model, s_tr, y_tr[:n_train], epochs=1, lr=2e-3, batch_size=64, seed=0)
    s_te = bernoulli(x_te[:1000], T_STEPS, seed=2)
    acc = evaluate(model, s_te, y_te[:1000])
    net = to_qnet(model, weight_bits=8, membrane_bits=16, timesteps=T_STEPS,
                  name=f"fmnist_{kind}", input_shape=(28, 28))
    qacc = float(np.mean(simulate(net, s_te).predictions == y_te[:1000]))
    console.log(f"{kind}: trained on {n_train} images in {time.perf_counter() - t0:.0f} s, "
                f"test accuracy float {acc:.3f}, qnet {qacc:.3f}")
    save_qnet(net, path)
    return net


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=10000, help="training images (one epoch)")
    ap.add_argument("--samples", type=int, default=128, help="test images for the activity")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--out", default="out/bench-mapping")
    ap.add_argument("--hw", nargs="+", default=list(HARDWARE), help="hardware descriptions")
    args = ap.parse_args()
    torch.set_num_threads(1)
    console = Console(width=220)
    out = Path(args.out)
    data = load_fashion_mnist()
    spikes = bernoulli(data[2][-args.samples:], T_STEPS, seed=3)  # held-out test images
    rows = []
    for kind in ("mlp", "conv"):
        net = trained_qnet(kind, out, data, args.train, args.retrain, console)
        rates = [float(simulate(net, spikes).spikes[layer.name].mean())
                 for layer in net.layers if layer.fire]
        console.log(f"{kind}: spikes per neuron per step {[f'{r:.3f}' for r in rates]}")
        for hw_path in args.hw:
            hw = load_hardware(hw_path)
            res = {}
            for method in PlaceMethod:
                t0, c0 = time.perf_counter(), time.process_time()
                st = run_mapping(net, hw, spikes, MapOptions(method=method, seed=args.seed))
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                res[method] = (st, f"{wall:.2f} / {cpu:.2f}")
                if method is PlaceMethod.ANNEAL:
                    write_mapping(st, out / f"{kind}_{hw.name}")
            st, wall = res[PlaceMethod.ANNEAL]
            a, g = st.analysis, res[PlaceMethod.GREEDY][0].analysis
            rows.append((
                net.name, hw.name, f"{len(st.partition.fragments)}/{hw.n_tiles}",
                f"{a.inter_tile_hops_in_order:.0f}",
                f"{g.inter_tile_hops:.0f} ({-100 * g.inter_tile_reduction:+.0f} %)",
                f"{a.inter_tile_hops:.0f} ({-100 * a.inter_tile_reduction:+.0f} %)",
                f"{a.hops_in_order:.0f} -> {a.hops:.0f} ({-100 * a.traffic_reduction:+.0f} %)",
                f"{a.load_ratio:.2f}",
                f"{a.busiest_cycles_per_step:.0f}",
                f"{a.predicted_cycles_per_sample:.0f} ({a.bound})",
                f"{a.rtl_cycles_per_sample:.0f}",
                res[PlaceMethod.GREEDY][1], wall,
            ))
    t = Table(title="benchmarks/mapping.py: packet hops per sample (change vs in-order)")
    for col in ("network", "hardware", "tiles", "inter-tile in-order", "inter-tile greedy",
                "inter-tile anneal", "all hops incl. I/O, anneal", "busiest/mean load",
                "busiest c/step", "cycles/sample (mesh)", "generated RTL cycles/sample",
                "map greedy, wall / CPU (s)",
                "map anneal, wall / CPU (s)"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(*r)
    console.print(t)
    console.print(f"machine: {platform.machine()}, Python {platform.python_version()}, "
                  f"torch threads 1; activity: {args.samples} Fashion-MNIST test images, "
                  f"T={T_STEPS}, seed {args.seed}; one BLAS thread; load average "
                  f"{os.getloadavg()[0]:.1f} (other work on the machine inflates wall time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
