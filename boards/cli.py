"""``spikeforge build``, ``spikeforge board list`` and ``spikeforge board run``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from spikeforge.errors import SpikeforgeError

__all__ = ["add_parsers"]


def _design(args: argparse.Namespace):
    """QNet, target, layout and inputs shared by ``build`` and ``board run``."""
    from spikeforge.boards.target import get_target
    from spikeforge.hw.layout import choose_layout
    from spikeforge.qnet import load_qnet

    target = get_target(args.board)  # an unknown board fails before the QNet is read
    net = load_qnet(args.qnet)
    layout = choose_layout(net, args.mapping, args.lanes)
    inputs = None
    if getattr(args, "inputs", None):
        from spikeforge.sim.cli import load_inputs

        inputs = load_inputs(args.inputs, net)
        if inputs.encoder != args.encoder:
            raise SpikeforgeError(f"{args.inputs}: holds {'pixels' if inputs.encoder else 'spikes'}"
                                  f", but the build {'has' if args.encoder else 'has no'} "
                                  "on-chip encoder (--encoder)")
    return net, target, layout, inputs


def _cmd_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from spikeforge.boards.flow import BuildOptions, build
    from spikeforge.staging import staged_output

    net, target, layout, inputs = _design(args)
    console = Console(stderr=True, quiet=args.quiet)
    samples = None if inputs is None or inputs.encoder else inputs.stimulus
    opts = BuildOptions(layout=layout, encoder=args.encoder, baud=args.baud,
                        buffer_depth=args.buffer, samples=samples, freq_mhz=args.freq)
    with staged_output(args.out) as stage:
        info = build(net, target, stage, opts, qnet_name=str(args.qnet), console=console)
        (stage / "build.json").write_text(json.dumps(info, indent=2))
    r = info["resources"]
    lat = info["latency"]
    us = lat.get("us_per_sample_at_fmax")
    print(f"{target.name}: {r['lut']['used']}/{r['lut']['available']} LUT, "
          f"{r['ff']['used']}/{r['ff']['available']} FF, "
          f"{r['bram']['used']}/{r['bram']['available']} BRAM, Fmax {info['fmax_mhz']} MHz, "
          f"{lat[lat['figure']]:.0f} cycles/sample"
          + (f" = {us:.1f} us at Fmax" if us else "")
          + f"; wrote {Path(args.out) / 'build.json'}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from spikeforge.boards.target import targets

    for t in targets().values():
        p = t.part
        print(f"{t.name:12s} {p.device:10s} {p.luts:6d} LUT {p.bram_blocks:4d} "
              f"{p.bram.primitive:11s} {t.clock_hz / 1e6:5.1f} MHz  {t.description}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from spikeforge.boards.host import open_serial, run_samples
    from spikeforge.boards.protocol import LinkFormat
    from spikeforge.boards.top import default_buffer_depth
    from spikeforge.hw.cycles import predicted_cycles
    from spikeforge.hw.params import NetworkParams
    from spikeforge.sim.protocol import expected

    net, target, layout, inputs = _design(args)
    if inputs is None:
        raise SpikeforgeError("board run needs --inputs")
    n = len(inputs.stimulus) if args.samples is None else min(args.samples,
                                                               len(inputs.stimulus))
    params = NetworkParams(net, encoder=args.encoder, layout=layout)
    depth = args.buffer or default_buffer_depth(params)
    if args.sim:
        from spikeforge.boards.sim import SimulatedPort
        from spikeforge.boards.top import BoardCore

        core = BoardCore(net, divisor=4, encoder=args.encoder, layout=layout,
                         buffer_depth=depth)
        port, where = SimulatedPort(core), "the simulated board (Amaranth, UART at 4 cycles/bit)"
        link = core.link
    else:
        if not args.port:
            raise SpikeforgeError("board run needs --port DEVICE (or --sim)")
        link = LinkFormat(params, depth)
        port, where = open_serial(args.port, args.baud), args.port
    stim = inputs.stimulus[:n]
    seeds = None if inputs.seeds is None else inputs.seeds[:n]
    try:
        run = run_samples(port, link, stim, seeds=seeds)
    finally:
        port.close()
    spikes = inputs.spikes(net)[:n]
    ref = expected(net, spikes, layout)
    mism = int((run.predictions != ref.predictions).sum())
    for p in net.layers:
        for c in ("synaptic_events", "neuron_updates", "weight_reads", "spikes_out"):
            mism += int((run.counters(p.name, c) != ref.counters[p.name][c]).sum())
    summary = {"target": target.name, "port": where, "samples": n,
               "mean_cycles_per_sample": float(run.cycles.mean()),
               "us_per_sample_at_board_clock": float(run.cycles.mean() / (target.clock_hz / 1e6)),
               "host_seconds": round(run.seconds, 2), "mismatches_vs_reference": mism}
    if not args.encoder:
        pred = predicted_cycles(net, layout, spikes)
        summary["cycles_equal_cycle_model"] = bool((pred == run.cycles).all())
    labels = _labels(args.inputs)
    if labels is not None:
        summary["accuracy"] = float((run.predictions == labels[:n]).mean())
    print(json.dumps(summary, indent=2))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "run.json").write_text(json.dumps(summary, indent=2))
        np.savez(out / "board_results.npz", predictions=run.predictions, cycles=run.cycles)
    return 0 if mism == 0 else 1


def _labels(path) -> np.ndarray | None:
    with np.load(path, allow_pickle=False) as d:
        return d["labels"] if "labels" in d.files else None


def _common(p: argparse.ArgumentParser) -> None:
    from spikeforge.sim.cli import add_layout_arguments

    p.add_argument("qnet", help="NAME.qnet.yaml")
    p.add_argument("--board", required=True, help="target: a board or part (spikeforge board list)")
    add_layout_arguments(p)
    p.add_argument("--encoder", action="store_true",
                   help="on-chip rate encoder: the host sends 8-bit pixels and a seed")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate (default 115200)")
    p.add_argument("--buffer", type=int, default=None,
                   help="input words the board buffers per sample (default: T x (n_in + 1), "
                        "at most 2048; with --encoder n_in)")


def add_parsers(sub) -> None:
    """Register ``build`` and ``board {list,run}`` on the CLI's subparsers."""
    b = sub.add_parser("build", help="fits check, synthesis, place and route, bitstream, "
                                     "build.json (yowasp tools)")
    _common(b)
    b.add_argument("--out", required=True, help="build folder (logs, bitstream, build.json)")
    b.add_argument("--inputs", default=None,
                   help="inputs NPZ (spikes): latency per sample from the cycle model on them")
    b.add_argument("--freq", type=float, default=None,
                   help="MHz nextpnr is asked to meet (default: the board's clock)")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    b.set_defaults(func=_cmd_build)

    board = sub.add_parser("board", help="list targets; run a test set on a board over its UART")
    bsub = board.add_subparsers(dest="board_command", required=True)
    ls = bsub.add_parser("list", help="boards and parts spikeforge can build for")
    ls.set_defaults(func=_cmd_list)
    r = bsub.add_parser("run", help="stream a test set to a board; accuracy, cycles, counters "
                                    "checked against the reference")
    _common(r)
    r.add_argument("--inputs", required=True,
                   help="inputs NPZ: spikes or pixels (+ seeds), optional labels")
    r.add_argument("--port", default=None, help="serial device, e.g. /dev/ttyUSB0")
    r.add_argument("--sim", action="store_true",
                   help="talk to the gateware in Amaranth's simulator instead of a board")
    r.add_argument("--samples", type=int, default=None, help="only the first N samples")
    r.add_argument("--out", default=None, help="folder for run.json and board_results.npz")
    r.set_defaults(func=_cmd_run)
