"""What a build targets: an FPGA part's resources and, for a board, its platform and pins.

A :class:`Target` is plain, frozen data: each board file (``icebreaker.py``,
``ulx3s_85f.py``, …) declares one, and :data:`TARGETS` lists them explicitly
(nothing is discovered by scanning folders). Resource figures are the vendor
data sheet's; the fits check (:mod:`spikeforge.boards.fit`) reads them before
any tool runs, and ``build.json`` reports nextpnr's own count beside them.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass

from spikeforge.errors import SpikeforgeError
from spikeforge.yamlio import short

__all__ = ["BramGeometry", "Family", "Part", "Target", "TargetError", "get_target", "targets"]


class TargetError(SpikeforgeError):
    """An unknown board or part name (one line, exit status 2)."""


class Family(enum.Enum):
    ICE40 = "ice40"
    ECP5 = "ecp5"


@dataclass(frozen=True)
class BramGeometry:
    """A block RAM primitive: its bits and the (depth, width) shapes it can take."""

    primitive: str
    bits: int
    shapes: tuple[tuple[int, int], ...]  # (depth, width), widest first


#: iCE40 SB_RAM40_4K: 4 kbit, 256x16 … 2048x2 (Lattice TN1250).
ICE40_EBR = BramGeometry("SB_RAM40_4K", 4096, ((256, 16), (512, 8), (1024, 4), (2048, 2)))
#: ECP5 DP16KD: 18 kbit, 512x36 (pseudo dual port) … 16384x1 (Lattice TN1264).
ECP5_EBR = BramGeometry("DP16KD", 18432, ((512, 36), (1024, 18), (2048, 9), (4096, 4),
                                           (8192, 2), (16384, 1)))


@dataclass(frozen=True)
class Part:
    """An FPGA part's resources (data sheet) and the names nextpnr knows it by."""

    family: Family
    device: str  # as amaranth's platforms spell it, e.g. "iCE40UP5K", "LFE5U-85F"
    package: str  # amaranth spelling, e.g. "SG48", "BG381"
    nextpnr_device: str  # nextpnr flag without dashes: "up5k", "85k"
    nextpnr_package: str  # nextpnr --package: "sg48", "CABGA381"
    luts: int  # 4-input LUTs (iCE40: logic cells; each has one LUT and one FF)
    ffs: int
    bram_blocks: int
    dsps: int
    user_io: int
    speed: str | None = None  # ECP5 speed grade

    @property
    def bram(self) -> BramGeometry:
        return ICE40_EBR if self.family is Family.ICE40 else ECP5_EBR

    @property
    def bram_bits(self) -> int:
        return self.bram_blocks * self.bram.bits


@dataclass(frozen=True)
class Target:
    """A board (part, clock, UART pins from an amaranth-boards platform) or a bare part.

    Parameters
    ----------
    name : str
        What ``--board`` takes.
    part : Part
        The FPGA and its resources.
    description : str
        One line for ``spikeforge board list``.
    platform : str or None
        ``"module:Class"`` of the amaranth-boards platform; ``None`` for a part-only
        target, which places its three pins (clock, UART rx, tx) wherever nextpnr likes:
        a resource and timing estimate, not a bitstream for a particular board.
    clock_hz : float
        The board's oscillator (part-only: the frequency nextpnr is asked for).
    """

    name: str
    part: Part
    description: str
    platform: str | None
    clock_hz: float

    @property
    def family(self) -> Family:
        return self.part.family

    @property
    def is_board(self) -> bool:
        return self.platform is not None

    def platform_class(self):
        """The amaranth-boards platform class (imported on demand)."""
        if self.platform is None:
            raise TargetError(f"{self.name} is a part, not a board: it has no platform")
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)

    def io_needed(self) -> int:
        """Pins the on-board top uses: clock, UART rx and tx."""
        return 3


# Explicit registry: board files are listed here, never found by scanning the folder.
_MODULES = ("icebreaker", "ulx3s_85f", "ulx3s_25f", "ice40_part", "ecp5_part")


def targets() -> dict[str, Target]:
    """Every known target by name, boards first."""
    out: dict[str, Target] = {}
    for mod in _MODULES:
        m = importlib.import_module(f"spikeforge.boards.{mod}")
        for t in m.TARGETS:
            out[t.name] = t
    return out


def get_target(name: str) -> Target:
    """The target called ``name``; :class:`TargetError` naming the known ones otherwise."""
    known = targets()
    if name not in known:
        raise TargetError(f"--board {short(name)}: no such board or part; known: "
                          f"{', '.join(known)}")
    return known[name]
