"""``spikeforge dse STUDY.yaml --out DIR [--cluster tcp://...] [--workers N]``.

The study is validated before anything runs: a bad study is one line and exit
status 2 (through the main CLI's handler), and nothing is evaluated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spikeforge.errors import SpikeforgeError

__all__ = ["add_parser", "main"]


def _cmd_dse(args: argparse.Namespace) -> int:
    from .runner import run_study
    from .study import load_study

    study = load_study(args.study)  # refused here, before a folder or a worker exists
    if args.workers is not None and args.workers < 0:
        raise SpikeforgeError(f"--workers must be 0 or more, not {args.workers}")
    console = Console(stderr=True)
    res = run_study(study, Path(args.out), workers=args.workers, cluster=args.cluster,
                    console=console)
    _summary(console, study, res)
    return 0


def _summary(console: Console, study, res) -> None:
    t = Table(title=f"spikeforge dse {study.name} -> {res.out} "
                    f"({res.evaluated} evaluated, {res.reused} reused, {res.wall_s:.1f} s, "
                    f"{res.executor})")
    names = [*study.parameters, *study.objectives]
    for n in names:
        t.add_column(n, justify="right")
    for r in res.pareto[:20]:
        t.add_row(*(f"{r[n]:.4g}" if isinstance(r[n], float) else str(r[n]) for n in names))
    console.print(t)
    console.print(f"Pareto front: {len(res.pareto)} of {len(res.rows)} points; "
                  f"all points in {res.files['results']}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dse`` on the main CLI's subparsers."""
    p = subparsers.add_parser("dse", help="design-space exploration of the whole chain "
                                          "(grid, random, NSGA-II; local or Dask)")
    p.add_argument("study", help="study (YAML), e.g. examples/dse/digits_grid.yaml")
    p.add_argument("--out", required=True,
                   help="study folder; a study run again there resumes and never "
                        "re-evaluates a stored point")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT", default=None,
                   help="run the points on this Dask scheduler instead of local processes")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: the CPU count; 0: this process)")
    p.set_defaults(func=_cmd_dse)
    return p


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m spikeforge.dse``), same behaviour as ``spikeforge dse``."""
    parser = argparse.ArgumentParser(prog="spikeforge")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["dse", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except SpikeforgeError as e:
        print(f"spikeforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeforge: interrupted (stored points are kept; run again to resume)",
              file=sys.stderr)
        return 130
