"""``spikeforge map QNET --hw HW.yaml --out DIR``: partition, place and analyze.

:func:`add_parser` registers the sub-command on the ``spikeforge`` parser; its
handler returns an exit code and raises :class:`~spikeforge.errors.SpikeforgeError`
(one line, exit status 2) for bad input.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spikeforge.errors import SpikeforgeError

if TYPE_CHECKING:
    from spikeforge.qnet import QNet

__all__ = ["MAX_MOVES", "add_parser", "load_sample_inputs", "run_map_command"]


#: Most annealing moves (``--moves``): the annealer draws its moves up front (24 bytes each).
MAX_MOVES = 10**7


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``map`` on ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    from spikeforge.cliutil import bounded_int, positive_float, seed

    from .activity import MAX_SAMPLES
    from .placement import PlaceMethod

    p = subparsers.add_parser(
        "map", help="partition a QNet into crossbar tiles, place them on a mesh, predict cycles",
        description=__doc__)
    p.add_argument("qnet", help="NAME.qnet.yaml")
    p.add_argument("--hw", required=True, help="hardware description (YAML), e.g. "
                   "examples/hw/mesh4x4_256.yaml")
    p.add_argument("--out", required=True, help="output folder (mapping.yaml, report.json, "
                   "mesh.png; written only when the whole mapping succeeded)")
    p.add_argument("--inputs", help="sample inputs NPZ, as for `spikeforge sim`: spikes uint8 "
                   "[N, T, n_in], or pixels uint8 [N, n_in] (+ seeds) rate coded like the "
                   "on-chip encoder; a .npy of spikes or of intensities in [0, 1] (rate coded "
                   "with --seed) is read too. Without it, synthetic Bernoulli spikes at --rate "
                   "(not real activity)")
    p.add_argument("--samples", type=bounded_int(1, MAX_SAMPLES), default=64,
                   help=f"samples used from --inputs or drawn synthetically, 1..{MAX_SAMPLES} "
                        "(default 64)")
    p.add_argument("--rate", type=positive_float(1.0), default=0.2,
                   help="spike rate of synthetic inputs, in (0, 1] (default 0.2)")
    p.add_argument("--method", choices=[m.value for m in PlaceMethod], default="anneal",
                   help="placement method (default anneal)")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the annealer and of coding, 0..2^64-1 (default 0)")
    p.add_argument("--moves", type=bounded_int(0, MAX_MOVES), default=None,
                   help=f"annealing moves, 0..{MAX_MOVES} (default: by size)")
    p.add_argument("--no-balance", action="store_true",
                   help="use the fewest tiles; do not spend spare tiles on busy layers")
    p.set_defaults(func=run_map_command)
    return p


def load_sample_inputs(path: str, timesteps: int, n_in: int, samples: int,
                       seed: int, net: QNet | None = None) -> np.ndarray:
    """Read ``--inputs``: an NPZ as for ``spikeforge sim``, or a ``.npy`` of spikes / intensities.

    NPZ: ``spikes`` uint8 ``[N, T, n_in]``, or ``pixels`` uint8 ``[N, n_in]`` with
    optional ``seeds``, rate coded exactly as the on-chip encoder does
    (:func:`spikeforge.sim.cli.load_inputs`). ``.npy``: spikes ``[N, T, n_in]`` or
    intensities ``[N, n_in]`` in [0, 1], rate coded with ``seed``. The first
    ``samples`` are used; their spikes are bounded by
    :func:`~spikeforge.mapping.activity.check_activity_size` before any is made.
    """
    from spikeforge.encoding import bernoulli

    from .activity import check_activity_size

    p = Path(path)
    if not p.is_file():
        raise SpikeforgeError(f"--inputs {p}: file does not exist")
    if samples < 1:
        raise SpikeforgeError(f"--samples must be positive, not {samples}")
    if zipfile.is_zipfile(p):  # an NPZ
        if net is None:
            raise SpikeforgeError(f"--inputs {p}: an NPZ needs the QNet")
        from spikeforge.sim.cli import Inputs, load_inputs

        given = load_inputs(p, net)
        n = min(samples, len(given.stimulus))
        if n < 1:
            raise SpikeforgeError(f"{p}: field {'pixels' if given.encoder else 'spikes'}: "
                                  "holds no sample")
        check_activity_size(net, n)
        seeds = None if given.seeds is None else given.seeds[:n]
        return Inputs(given.stimulus[:n], seeds).spikes(net).astype(np.uint8, copy=False)
    try:
        x = np.load(p, allow_pickle=False, mmap_mode="r")  # only the samples used are read
    except (OSError, ValueError, EOFError) as e:
        raise SpikeforgeError(f"--inputs {p}: neither an NPZ nor a .npy array "
                              f"({e.__class__.__name__})") from None
    if not isinstance(x, np.ndarray):
        raise SpikeforgeError(f"--inputs {p}: neither an NPZ nor a .npy array")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise SpikeforgeError(f"--inputs {p}: dtype {x.dtype}, expected numbers")
    n = min(samples, x.shape[0]) if x.ndim else 0
    if net is not None and n >= 1:
        check_activity_size(net, n)
    if x.ndim == 2 and x.shape[1] == n_in and n >= 1:
        x = np.asarray(x[:n], dtype=np.float64)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise SpikeforgeError(f"--inputs {p}: intensities must lie in [0, 1]")
        return bernoulli(x, timesteps, seed)
    if x.ndim == 3 and x.shape[1:] == (timesteps, n_in) and n >= 1:
        x = np.asarray(x[:n])
        if not np.isin(x, (0, 1)).all():
            raise SpikeforgeError(f"--inputs {p}: spikes must be 0 or 1")
        return x.astype(np.uint8)
    raise SpikeforgeError(f"--inputs {p}: shape {list(x.shape)} is neither spikes [N, "
                          f"{timesteps}, {n_in}] nor intensities [N, {n_in}] with N >= 1")


def run_map_command(args: argparse.Namespace) -> int:
    """Handler of ``spikeforge map``; returns the exit status."""
    from rich.console import Console
    from rich.table import Table

    from spikeforge.qnet import load_qnet, qnet_paths
    from spikeforge.staging import check_out, staged_output

    from .activity import ActivitySource, check_activity_size, synthetic_inputs
    from .flow import MapOptions, run_mapping, write_mapping
    from .hardware import load_hardware
    from .partition import MappingError, partition_network
    from .placement import PlaceMethod

    console = Console(stderr=True)
    hw = load_hardware(args.hw)  # validated before anything is computed or written
    net = load_qnet(args.qnet)
    try:  # the fewest tiles, without activity: a network that cannot fit is refused now
        partition_network(net, hw)
    except MappingError as e:
        raise SpikeforgeError(f"{args.hw}: {e}") from None
    inputs = [*qnet_paths(args.qnet), args.hw, args.inputs]
    spikes = None
    if args.inputs:
        spikes = load_sample_inputs(args.inputs, net.timesteps, net.n_in, args.samples,
                                    args.seed, net=net)
        source = ActivitySource.GIVEN
    else:
        check_activity_size(net, args.samples)
        source = ActivitySource.SYNTHETIC
    check_out(args.out, inputs)  # a bad --out is refused before any mapping work
    options = MapOptions(method=PlaceMethod(args.method), seed=args.seed,
                         balance=not args.no_balance, moves=args.moves)
    out = Path(args.out)
    # outputs appear in --out only when all of them are written; Ctrl-C leaves nothing
    with staged_output(out, inputs) as stage:
        if spikes is None:
            spikes = synthetic_inputs(net, args.samples, args.rate, args.seed)
            console.print(f"[yellow]no --inputs: synthetic spikes at rate {args.rate} "
                          "(give real samples for a meaningful placement)[/yellow]")
        with console.status("mapping") as status:
            def on_pass(name: str, secs: float) -> None:
                status.update(f"mapping: {name} done")
                console.log(f"pass {name:<10} {secs:6.2f} s")

            st = run_mapping(net, hw, spikes, options, source, on_pass=on_pass)
        staged = write_mapping(st, stage)
    paths = {k: out / v.name for k, v in staged.items()}
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
