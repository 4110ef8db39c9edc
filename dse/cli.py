"""``spikeforge dse STUDY.yaml --out DIR [--cluster tcp://...] [--workers N]``.

The study and the options are validated before anything runs: a bad study, a
bad number or address, or an unusable ``--out`` is one line and exit status 2
(a :class:`~spikeforge.errors.SpikeforgeError` printed by
:func:`spikeforge.cli.main`), and nothing is evaluated or written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from spikeforge.cliutil import bounded_int

__all__ = ["add_parser", "main"]


def _cmd_dse(args: argparse.Namespace) -> int:
    from .runner import run_study
    from .study import load_study

    study = load_study(args.study)  # refused here, before a folder or a worker exists
    console = Console(stderr=True)
    try:
        res = run_study(study, Path(args.out), workers=args.workers, cluster=args.cluster,
                        console=console, inputs=[args.study])
    except KeyboardInterrupt:
        print("spikeforge: dse: the stored points are kept; run the same command again "
              "to resume", file=sys.stderr)
        raise
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


def _address(text: str) -> str:
    from .execute import check_address

    try:
        return check_address(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_address.__name__ = "address"


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dse`` on the main CLI's subparsers."""
    from .execute import MAX_WORKERS

    p = subparsers.add_parser("dse", help="design-space exploration of the whole chain "
                                          "(grid, random, NSGA-II; local or Dask)")
    p.add_argument("study", help="study (YAML), e.g. examples/dse/digits_grid.yaml")
    p.add_argument("--out", required=True,
                   help="study folder (new, empty, or one a study wrote); a study run again "
                        "there resumes and never re-evaluates a stored point")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT", default=None, type=_address,
                   help="run the points on this Dask scheduler instead of local processes")
    p.add_argument("--workers", type=bounded_int(0, MAX_WORKERS), default=None,
                   help=f"local worker processes, 0..{MAX_WORKERS} (default: the CPU count; "
                        "0: this process)")
    p.set_defaults(func=_cmd_dse)
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m spikeforge.dse``: ``spikeforge dse`` through :func:`spikeforge.cli.main`.

    The same parser, error handling (one line, exit status 2), signal handling
    (SIGTERM/SIGHUP: exit status 128 + N) and exit statuses as ``spikeforge dse``.
    """
    from spikeforge.cli import main as cli_main

    return cli_main(["dse", *(sys.argv[1:] if argv is None else argv)])
