"""``spikeforge build``, ``spikeforge board list`` and ``spikeforge board run``.

Everything a command is given is checked before any work: numbers when they
are parsed (:mod:`spikeforge.cliutil`), then the board, the QNet, the layout,
the inputs (and their labels), the UART rate, the buffer against the samples
and the fits check, then ``--out`` (:func:`spikeforge.staging.check_out`). Only
then do the tools run or the board get its samples; outputs are staged and
appear in ``--out`` only when the command succeeded.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spikeforge.contracts import COUNTERS
from spikeforge.errors import SpikeforgeError

__all__ = ["MAX_BAUD", "MAX_BUFFER", "MAX_FREQ_MHZ", "MAX_RUN_SAMPLES", "add_parsers"]

#: Highest UART rate (baud) accepted; the board's clock must also make it (4+ cycles a bit).
MAX_BAUD = 12_000_000
#: Most input words the board's buffer may hold (``--buffer``).
MAX_BUFFER = 1 << 16
#: Highest frequency (MHz) nextpnr may be asked for (``--freq``).
MAX_FREQ_MHZ = 1000.0
#: Most samples ``board run`` streams (``--samples``).
MAX_RUN_SAMPLES = 10**7


def _input_files(args: argparse.Namespace) -> list:
    from spikeforge.qnet import qnet_paths

    return [*qnet_paths(args.qnet), getattr(args, "mapping", None),
            getattr(args, "inputs", None)]


def _check_samples_fit(inputs, params, depth: int, given: bool, path) -> None:
    """Refuse, before any work, inputs whose longest sample overflows the buffer."""
    if inputs is None or inputs.encoder or not len(inputs.stimulus):
        return
    words = inputs.stimulus.reshape(len(inputs.stimulus), -1).sum(axis=1, dtype=np.int64)
    words += params.timesteps  # one STEP_END word per step
    k = int(np.argmax(words))
    if int(words[k]) > depth:
        where = f"--buffer {depth}" if given else f"--buffer: the default of {depth} words"
        raise SpikeforgeError(f"{where} cannot hold sample {k} of {path}: it has "
                              f"{int(words[k])} input words (spikes + step ends); give "
                              f"--buffer {int(words.max())} or more")


def _design(args: argparse.Namespace):
    """QNet, target, layout and inputs shared by ``build`` and ``board run``; all checked."""
    from spikeforge.boards.flow import BuildOptions, preflight
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
    samples = None if inputs is None or inputs.encoder else inputs.stimulus
    opts = BuildOptions(layout=layout, encoder=args.encoder, baud=args.baud,
                        buffer_depth=args.buffer, samples=samples,
                        freq_mhz=getattr(args, "freq", None))
    building = not hasattr(args, "sim")
    sim = bool(getattr(args, "sim", False))
    # baud, buffer, fits (a build: a board runs what was built): before anything is written
    pre = preflight(net, target, opts, fit=building, uart=not sim)
    _check_samples_fit(inputs, pre.params, pre.depth, args.buffer is not None, args.inputs)
    return net, target, layout, inputs, opts, pre


def _cmd_build(args: argparse.Namespace) -> int:
    from rich.console import Console

    from spikeforge.boards.flow import build
    from spikeforge.jsonio import dumps
    from spikeforge.staging import check_out, staged_output

    net, target, layout, inputs, opts, _ = _design(args)
    files = _input_files(args)
    check_out(args.out, files)  # before any tool runs
    console = Console(stderr=True, quiet=args.quiet)
    with staged_output(args.out, files) as stage:
        info = build(net, target, stage, opts, qnet_name=str(args.qnet), console=console)
        (stage / "build.json").write_text(dumps(info) + "\n")
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
    from spikeforge.hw.cycles import predicted_cycles
    from spikeforge.jsonio import dumps
    from spikeforge.sim.protocol import expected
    from spikeforge.staging import check_out, staged_output

    if not args.sim and not args.port:
        raise SpikeforgeError("--port: board run needs --port DEVICE (or --sim)")
    net, target, layout, inputs, _, pre = _design(args)
    if inputs is None:
        raise SpikeforgeError("--inputs: board run needs --inputs")
    labels = _labels(args.inputs, len(inputs.stimulus), net.layers[-1].n_out)
    files = _input_files(args)
    if args.out:
        check_out(args.out, files)  # before a single sample is sent
    n = len(inputs.stimulus) if args.samples is None else min(args.samples,
                                                               len(inputs.stimulus))
    if n < 1:
        raise SpikeforgeError(f"{args.inputs}: holds no sample")
    params, depth = pre.params, pre.depth
    if args.sim:
        from spikeforge.boards.sim import SimulatedPort
        from spikeforge.boards.top import BoardCore

        core = BoardCore(net, divisor=4, encoder=args.encoder, layout=layout,
                         buffer_depth=depth)
        port, where = SimulatedPort(core), "the simulated board (Amaranth, UART at 4 cycles/bit)"
        link = core.link
    else:
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
        for c in COUNTERS:
            mism += int((run.counters(p.name, c) != ref.counters[p.name][c]).sum())
    mean_cycles = float(run.cycles.mean())
    summary = {"target": target.name, "port": where, "samples": n,
               "mean_cycles_per_sample": mean_cycles,
               "us_per_sample_at_board_clock": mean_cycles / (target.clock_hz / 1e6),
               "host_seconds": round(run.seconds, 2), "mismatches_vs_reference": mism}
    if not args.encoder:
        pred = predicted_cycles(net, layout, spikes)
        summary["cycles_equal_cycle_model"] = bool((pred == run.cycles).all())
    if labels is not None:
        summary["accuracy"] = float((run.predictions == labels[:n]).mean())
    text = dumps(summary) + "\n"
    if args.out:
        with staged_output(args.out, files) as stage:  # both files, or neither
            (stage / "run.json").write_text(text)
            np.savez(stage / "board_results.npz", predictions=run.predictions,
                     cycles=run.cycles)
    print(text, end="")
    return 0 if mism == 0 else 1


def _labels(path, n: int, classes: int) -> np.ndarray | None:
    """The optional ``labels`` of the inputs NPZ: integers ``[N]`` in ``0..classes-1``."""
    try:
        with np.load(path, allow_pickle=False) as d:
            if "labels" not in d.files:
                return None
            labels = d["labels"]
    except Exception as e:  # numpy raises several types for a damaged archive
        raise SpikeforgeError(f"{path}: field labels: cannot be read "
                              f"({e.__class__.__name__})") from None
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise SpikeforgeError(f"{path}: field labels: dtype {labels.dtype}, expected integers")
    if labels.shape != (n,):
        raise SpikeforgeError(f"{path}: field labels: shape {list(labels.shape)}, expected "
                              f"[{n}] (one per sample)")
    if n and (labels.min() < 0 or labels.max() >= classes):
        raise SpikeforgeError(f"{path}: field labels: values must lie in 0..{classes - 1} "
                              "(the network's classes)")
    return labels.astype(np.int64)


def _common(p: argparse.ArgumentParser) -> None:
    from spikeforge.cliutil import bounded_int
    from spikeforge.sim.cli import add_layout_arguments

    p.add_argument("qnet", help="NAME.qnet.yaml")
    p.add_argument("--board", required=True, help="target: a board or part (spikeforge board list)")
    add_layout_arguments(p)
    p.add_argument("--encoder", action="store_true",
                   help="on-chip rate encoder: the host sends 8-bit pixels and a seed")
    p.add_argument("--baud", type=bounded_int(1, MAX_BAUD), default=115200,
                   help=f"UART baud rate, 1..{MAX_BAUD} and at least 4 board clock cycles a "
                        "bit (default 115200)")
    p.add_argument("--buffer", type=bounded_int(2, MAX_BUFFER), default=None,
                   help="input words the board buffers per sample (default: T x (n_in + 1), "
                        f"at most 2048; with --encoder n_in); at most {MAX_BUFFER}, and enough "
                        "for a sample (T step ends, n_in pixels, every sample of --inputs)")


def add_parsers(sub) -> None:
    """Register ``build`` and ``board {list,run}`` on the CLI's subparsers."""
    from spikeforge.cliutil import bounded_int, positive_float

    b = sub.add_parser("build", help="fits check, synthesis, place and route, bitstream, "
                                     "build.json (yowasp tools)")
    _common(b)
    b.add_argument("--out", required=True, help="build folder (logs, bitstream, build.json)")
    b.add_argument("--inputs", default=None,
                   help="inputs NPZ (spikes): latency per sample from the cycle model on them")
    b.add_argument("--freq", type=positive_float(MAX_FREQ_MHZ), default=None,
                   help=f"MHz nextpnr is asked to meet, in (0, {MAX_FREQ_MHZ:g}] (default: the "
                        "board's clock)")
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
                   help="inputs NPZ: spikes or pixels (+ seeds), optional labels [N]")
    r.add_argument("--port", default=None, help="serial device, e.g. /dev/ttyUSB0")
    r.add_argument("--sim", action="store_true",
                   help="talk to the gateware in Amaranth's simulator instead of a board")
    r.add_argument("--samples", type=bounded_int(1, MAX_RUN_SAMPLES), default=None,
                   help=f"only the first N samples, 1..{MAX_RUN_SAMPLES}")
    r.add_argument("--out", default=None, help="folder for run.json and board_results.npz "
                                               "(written when the run ends)")
    r.set_defaults(func=_cmd_run)
