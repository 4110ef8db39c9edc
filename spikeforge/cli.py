"""The `spikeforge` command line. Bad input gives one line and exit status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spikeforge.errors import SpikeforgeError

__all__ = ["main"]

EXIT_BAD_INPUT = 2


def _cmd_run(args: argparse.Namespace) -> int:
    from spikeforge.config import load_config

    cfg = load_config(args.config)  # validated before anything is written
    from spikeforge.pipeline import run_pipeline

    report = run_pipeline(cfg, Path(args.out))
    ok = report["rtl"]["mismatches"] == 0 and report["counters_equal"]
    return 0 if ok else 1


def _cmd_verilog(args: argparse.Namespace) -> int:
    import json
    import time

    from spikeforge.hw.export import write_verilog
    from spikeforge.hw.layout import choose_layout
    from spikeforge.hw.params import NetworkParams
    from spikeforge.qnet import load_qnet
    from spikeforge.staging import staged_output

    net = load_qnet(args.qnet)
    layout = choose_layout(net, getattr(args, "mapping", None), getattr(args, "lanes", None))
    encoder = getattr(args, "encoder", False)
    params = NetworkParams(net, encoder=encoder, layout=layout)
    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    with staged_output(out) as stage:  # nothing appears in --out unless all of it is written
        path = write_verilog(net, stage, encoder=encoder, layout=layout)
        desc = params.describe() | {
            "verilog": path.name, "qnet": str(args.qnet),
            "generation_seconds": round(time.perf_counter() - t0, 3)}
        (stage / "hw.json").write_text(json.dumps(desc, indent=2))
    path = out / path.name
    if args.command == "verilog":
        print(path)  # scripts read the path
    else:
        print(f"wrote {path} and {out / 'hw.json'} ({desc['tiles']} tiles, "
              f"{desc['memory_bits']} memory bits, {time.perf_counter() - t0:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikeforge", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train -> QNet -> Verilog -> cocotb -> energy report")
    run.add_argument("config", help="run configuration (YAML), e.g. examples/digits.yaml")
    run.add_argument("--out", required=True, help="output folder (replaced when the run ends)")
    run.set_defaults(func=_cmd_run)
    v = sub.add_parser("verilog", help="write the Verilog of a QNet")
    v.add_argument("qnet", help="NAME.qnet.yaml")
    v.add_argument("--out", required=True, help="output folder")
    v.set_defaults(func=_cmd_verilog)
    from spikeforge.sim.cli import add_layout_arguments

    r = sub.add_parser("rtl", help="write the Verilog of a QNet and hw.json describing it")
    r.add_argument("qnet", help="NAME.qnet.yaml")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--encoder", action="store_true",
                   help="put the on-chip rate encoder in front (8-bit pixels in)")
    add_layout_arguments(r)
    r.set_defaults(func=_cmd_verilog)
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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpikeforgeError as e:
        print(f"spikeforge: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("spikeforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
