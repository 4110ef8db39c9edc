"""The `spikeforge` command line. Bad input gives one line and exit status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikeforge.cliutil import Parser
from spikeforge.errors import SpikeforgeError

__all__ = ["main"]

EXIT_BAD_INPUT = 2


def _cmd_run(args: argparse.Namespace) -> int:
    from spikeforge.config import load_config

    cfg = load_config(args.config)  # validated before anything is written
    from spikeforge.pipeline import run_pipeline
    from spikeforge.staging import check_out

    check_out(args.out, [args.config])
    report = run_pipeline(cfg, Path(args.out), inputs=[args.config])
    ok = report["rtl"]["mismatches"] == 0 and report["counters_equal"]
    return 0 if ok else 1


def _cmd_rtl(args: argparse.Namespace) -> int:
    import json
    import time

    from spikeforge.hw.export import write_verilog
    from spikeforge.hw.layout import choose_layout
    from spikeforge.hw.params import NetworkParams
    from spikeforge.qnet import load_qnet, qnet_paths
    from spikeforge.staging import check_out, staged_output

    net = load_qnet(args.qnet)
    mapping = getattr(args, "mapping", None)
    inputs = [*qnet_paths(args.qnet), mapping]
    check_out(args.out, inputs)
    layout = choose_layout(net, mapping, getattr(args, "lanes", None))
    encoder = getattr(args, "encoder", False)
    params = NetworkParams(net, encoder=encoder, layout=layout)
    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    # nothing appears in --out unless all of it is written
    with staged_output(out, inputs) as stage:
        path = write_verilog(net, stage, encoder=encoder, layout=layout)
        desc = params.describe() | {
            "verilog": path.name, "qnet": str(args.qnet),
            "generation_seconds": round(time.perf_counter() - t0, 3)}
        (stage / "hw.json").write_text(json.dumps(desc, indent=2))
    path = out / path.name
    print(f"wrote {path} and {out / 'hw.json'} ({desc['tiles']} tiles, "
              f"{desc['memory_bits']} memory bits, {time.perf_counter() - t0:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from spikeforge import __version__

    p = Parser(prog="spikeforge", description=__doc__)
    p.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train -> QNet -> Verilog -> cocotb -> energy report")
    run.add_argument("config", help="run configuration (YAML), e.g. examples/digits.yaml")
    run.add_argument("--out", required=True, help="output folder (replaced when the run ends)")
    run.set_defaults(func=_cmd_run)
    from spikeforge.sim.cli import add_layout_arguments

    r = sub.add_parser("rtl", help="write the Verilog of a QNet and hw.json describing it")
    r.add_argument("qnet", help="NAME.qnet.yaml")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--encoder", action="store_true",
                   help="put the on-chip rate encoder in front (8-bit pixels in)")
    add_layout_arguments(r)
    r.set_defaults(func=_cmd_rtl)
    from spikeforge.dse.cli import add_parser as add_dse_parser
    from spikeforge.mapping.cli import add_parser as add_map_parser
    from spikeforge.sim.cli import add_parsers as add_sim_parsers

    add_train_parser(sub)
    add_sim_parsers(sub)
    add_map_parser(sub)
    add_dse_parser(sub)
    from spikeforge.boards.cli import add_parsers as add_board_parsers
    add_board_parsers(sub)
    return p


def _cmd_train(args: argparse.Namespace) -> int:
    from spikeforge.model.trainer import train_from_config  # torch only when training

    train_from_config(args.config, args.out, resume=args.resume, progress=not args.quiet)
    return 0


def add_train_parser(sub) -> argparse.ArgumentParser:
    """``spikeforge train CONFIG --out DIR``; defined here so other commands skip torch."""
    p = sub.add_parser("train", help="train a spiking network from a YAML config")
    p.add_argument("config", help="training configuration (YAML), e.g. "
                                  "examples/train/fashion_mlp.yaml")
    p.add_argument("--out", required=True, help="output folder (checkpoint, history, plots)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (same config)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    p.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad input, 128+N on signal N)."""
    from spikeforge import signals

    signals.install()
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as e:  # argparse: --help, --version, a usage error (one line)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_BAD_INPUT)
    except SpikeforgeError as e:
        print(f"spikeforge: error: {_one_line(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        print("spikeforge: interrupted", file=sys.stderr)
        return signals.exit_status(e)
    except OSError as e:
        if e.filename is None:
            raise
        # a path the system refuses (too long, a loop, no permission) or a full disk
        name = short(str(e.filename), 120)
        print(f"spikeforge: error: {name}: {e.strerror or e.__class__.__name__}",
              file=sys.stderr)
        return EXIT_BAD_INPUT


def short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 400 else line[:399] + "…"


if __name__ == "__main__":
    sys.exit(main())
