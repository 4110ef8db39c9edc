"""Argument parsing shared by every subcommand: one-line errors and checked numbers.

:class:`Parser` prints an argparse error as one line (``spikeforge: error: …``)
and exits with status 2. The ``type=`` helpers check a number when it is
parsed, before any work: seeds in 0..2^64−1, finite positive frequencies,
counts within a documented limit.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import NoReturn

__all__ = ["MAX_SEED", "Parser", "bounded_int", "positive_float", "seed"]

MAX_SEED = 2**64 - 1


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        prog = self.prog.split()
        where = " ".join(prog[1:])
        line = " ".join(message.split())
        sys.stderr.write(f"spikeforge: error: {where + ': ' if where else ''}{line}\n")
        sys.exit(2)


def bounded_int(lo: int, hi: int | None = None, what: str = "an integer"):
    """An argparse type: an integer in ``lo..hi``."""
    def parse(text: str) -> int:
        try:
            v = int(text, 0) if text.strip().lower().startswith(("0x", "0o", "0b")) \
                else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} is needed, not {text[:40]!r}") from None
        if v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be {rng}, not {text[:40]}")
        return v
    parse.__name__ = "integer"
    return parse


def seed(text: str) -> int:
    """An argparse type: a seed in 0..2^64−1."""
    return bounded_int(0, MAX_SEED, "an integer seed")(text)


def positive_float(hi: float | None = None):
    """An argparse type: a finite number > 0 (and <= ``hi``)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a number is needed, not {text[:40]!r}") from None
        if not math.isfinite(v) or v <= 0 or (hi is not None and v > hi):
            rng = f"in (0, {hi:g}]" if hi is not None else "a finite number > 0"
            raise argparse.ArgumentTypeError(f"must be {rng}, not {text[:40]}")
        return v
    parse.__name__ = "number"
    return parse
