"""``spikeforge map QNET --hw HW.yaml --out DIR``: partition, place and analyze.

:func:`add_parser` registers the sub-command on the ``spikeforge`` parser; its
handler returns an exit code and raises :class:`~spikeforge.errors.SpikeforgeError`
(one line, exit status 2) for bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spikeforge.errors import SpikeforgeError

__all__ = ["add_parser", "load_sample_inputs", "run_map_command"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``map`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    from .placement import PlaceMethod

    p = subparsers.add_parser(
        "map", help="partition a QNet into crossbar tiles, place them on a mesh, predict cycles",
        description=__doc__)
    p.add_argument("qnet", help="NAME.qnet.yaml")
    p.add_argument("--hw", required=True, help="hardware description (YAML), e.g. "
                   "examples/hw/mesh4x4_256.yaml")
    p.add_argument("--out", required=True, help="output folder (mapping.yaml, report.json, "
                   "mesh.png)")
    p.add_argument("--inputs", help="sample inputs (.npy): spikes uint8 [N, T, n_in] or "
                   "intensities float [N, n_in] in [0, 1] (rate coded with --seed); without "
                   "it, synthetic Bernoulli spikes at --rate (not real activity)")
    p.add_argument("--samples", type=int, default=64,
                   help="samples used from --inputs or drawn synthetically (default 64)")
    p.add_argument("--rate", type=float, default=0.2,
                   help="spike rate of synthetic inputs (default 0.2)")
    p.add_argument("--method", choices=[m.value for m in PlaceMethod], default="anneal",
                   help="placement method (default anneal)")
    p.add_argument("--seed", type=int, default=0, help="seed of the annealer and of coding")
    p.add_argument("--moves", type=int, default=None, help="annealing moves (default: by size)")
    p.add_argument("--no-balance", action="store_true",
                   help="use the fewest tiles; do not spend spare tiles on busy layers")
    p.set_defaults(func=run_map_command)
    return p


def load_sample_inputs(path: str, timesteps: int, n_in: int, samples: int,
                       seed: int) -> np.ndarray:
    """Read ``--inputs``: spikes ``[N, T, n_in]`` or intensities ``[N, n_in]`` (rate coded)."""
    from spikeforge.encoding import bernoulli

    p = Path(path)
    if not p.is_file():
        raise SpikeforgeError(f"{p}: file does not exist")
    try:
        x = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise SpikeforgeError(f"{p}: not a .npy array ({e.__class__.__name__})") from None
    if samples < 1:
        raise SpikeforgeError(f"--samples must be positive, not {samples}")
    if x.ndim == 2 and x.shape[1] == n_in:
        if not np.issubdtype(x.dtype, np.number) or x.size and (x.min() < 0 or x.max() > 1):
            raise SpikeforgeError(f"{p}: intensities must lie in [0, 1]")
        return bernoulli(x[:samples], timesteps, seed)
    if x.ndim == 3 and x.shape[1:] == (timesteps, n_in):
        if not np.isin(x, (0, 1)).all():
            raise SpikeforgeError(f"{p}: spikes must be 0 or 1")
        return x[:samples].astype(np.uint8)
    raise SpikeforgeError(f"{p}: shape {list(x.shape)} is neither spikes [N, {timesteps}, "
                          f"{n_in}] nor intensities [N, {n_in}]")


def run_map_command(args: argparse.Namespace) -> int:
    """Handler of ``spikeforge map``; returns the exit status."""
    from rich.console import Console
    from rich.table import Table

    from spikeforge.qnet import load_qnet

    from .activity import ActivitySource, synthetic_inputs
    from .flow import MapOptions, run_mapping, write_mapping
    from .hardware import load_hardware
    from .placement import PlaceMethod

    console = Console(stderr=True)
    hw = load_hardware(args.hw)  # validated before anything is computed or written
    net = load_qnet(args.qnet)
    if args.moves is not None and args.moves < 0:
        raise SpikeforgeError(f"--moves must be >= 0, not {args.moves}")
    if args.inputs:
        spikes = load_sample_inputs(args.inputs, net.timesteps, net.n_in, args.samples,
                                    args.seed)
        source = ActivitySource.GIVEN
    else:
        if args.samples < 1:
            raise SpikeforgeError(f"--samples must be positive, not {args.samples}")
        spikes = synthetic_inputs(net, args.samples, args.rate, args.seed)
        source = ActivitySource.SYNTHETIC
        console.print(f"[yellow]no --inputs: synthetic spikes at rate {args.rate} "
                      "(give real samples for a meaningful placement)[/yellow]")
    options = MapOptions(method=PlaceMethod(args.method), seed=args.seed,
                         balance=not args.no_balance, moves=args.moves)
    with console.status("mapping") as status:
        def on_pass(name: str, secs: float) -> None:
            status.update(f"mapping: {name} done")
            console.log(f"pass {name:<10} {secs:6.2f} s")

        st = run_mapping(net, hw, spikes, options, source, on_pass=on_pass)
    paths = write_mapping(st, Path(args.out))
    a = st.analysis
    t = Table(title=f"{net.name} on {hw.name}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    for k, v in (
        ("tiles used / available", f"{len(st.partition.fragments)} / {hw.n_tiles}"),
        ("busiest tile, cycles/step", f"{a.busiest_cycles_per_step:.1f}"),
        ("busiest / mean load", f"{a.load_ratio:.2f}"),
        ("inter-tile spikes / sample", f"{a.spikes_between_tiles:.1f}"),
        ("partial-sum packets / sample", f"{a.partial_packets:.1f}"),
        ("inter-tile hops / sample", f"{a.inter_tile_hops:.1f}"),
        ("inter-tile hops vs in-order", f"{-100 * a.inter_tile_reduction:+.1f} %"),
        ("all hops / sample (I/O included)", f"{a.hops:.1f}"),
        ("all hops vs in-order", f"{-100 * a.traffic_reduction:+.1f} %"),
        ("predicted cycles / sample", f"{a.predicted_cycles_per_sample:.0f} ({a.bound}-bound)"),
        ("generated RTL cycles / sample", f"{a.rtl_cycles_per_sample:.0f} (no mesh router)"),
        ("throughput (samples/s)", f"{a.throughput_samples_per_s:,.0f}"),
        ("mapping time (s)", f"{sum(st.timings_s.values()):.2f}"),
    ):
        t.add_row(k, v)
    console.print(t)
    print(paths["mapping"])
    return 0
