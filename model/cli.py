"""The ``spikeforge train CONFIG --out DIR`` sub-command.

Register it in :mod:`spikeforge.cli` with
``from spikeforge.model.cli import add_parser as add_train_parser; add_train_parser(sub)``.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser"]


def _cmd_train(args: argparse.Namespace) -> int:
    from .trainer import train_from_config

    train_from_config(args.config, args.out, resume=args.resume, progress=not args.quiet)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``train`` to an ``argparse`` sub-parser set; returns the new parser."""
    p = subparsers.add_parser("train", help="train a spiking network from a YAML config")
    p.add_argument("config", help="training configuration (YAML), e.g. "
                                  "examples/train/fashion_mlp.yaml")
    p.add_argument("--out", required=True, help="output folder (checkpoint, history, plots)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (same config)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    p.set_defaults(func=_cmd_train)
    return p
