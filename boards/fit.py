"""Will it fit? Block RAM, LUT and I/O estimates of the on-board top, before any tool runs.

Every memory of the generated design is listed with its depth and word width:
the layout's memory records (:meth:`~spikeforge.hw.layout.HardwareLayout.memories`,
the figures the generator builds and ``hw.json`` reports) and the board's input
buffer. A memory becomes block RAM when it is deep
enough to be worth one (:data:`BRAM_MIN_DEPTH` words); it then takes, for the
block shape that needs fewest, ``ceil(depth / d) * ceil(width / w)`` blocks: a
784-deep, 1024-bit-wide weight memory is 57 ECP5 DP16KD (1024 x 18) or 256
iCE40 EBR (256 x 16), although its bits would fill 44 and 196. Shallower
memories become flip-flops (what yosys does with them on both families).

The LUT figure is an estimate from the datapath's widths (accumulators, update
lanes and their multiplexers, emitter, counters, UART), calibrated on measured
builds (docs/BOARDS.md); it refuses only a design whose estimate exceeds the
part, and ``build.json`` reports the estimate beside what nextpnr placed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.boards.protocol import LinkFormat
from spikeforge.boards.target import BramGeometry, Target
from spikeforge.contracts import COUNTERS, Memory
from spikeforge.errors import SpikeforgeError
from spikeforge.hw.params import NetworkParams

__all__ = ["BRAM_MIN_DEPTH", "FitError", "FitReport", "MemoryUse", "bram_blocks", "check_fit",
           "estimate", "memories"]

#: Memories shallower than this are built from flip-flops, not block RAM.
BRAM_MIN_DEPTH = 16
# LUTs of the fixed parts: UART receiver and transmitter, the protocol FSM, cycle counter
_FIXED_LUTS = 160


class FitError(SpikeforgeError):
    """The design does not fit the target; the message names the resource and by how much."""


@dataclass(frozen=True)
class MemoryUse:
    """One memory of the design and what it costs on the target."""

    name: str
    depth: int
    width: int
    blocks: int  # block RAMs (0: built from flip-flops)
    count: int = 1  # identical memories

    @property
    def bits(self) -> int:
        return self.depth * self.width * self.count


def bram_blocks(depth: int, width: int, geometry: BramGeometry) -> int:
    """Fewest blocks of ``geometry`` that hold a ``depth`` x ``width`` memory (one shape)."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in geometry.shapes)


def memories(params: NetworkParams, link: LinkFormat) -> tuple[Memory, ...]:
    """Every memory of the on-board top: the network's (its layout's records) and the
    input buffer."""
    return (*params.layout.memories(params.qnet, encoder=params.encoder),
            Memory("board.input_buffer", "input_buffer", link.payload_bits, link.buffer_depth))


def _lut_estimate(params: NetworkParams, link: LinkFormat) -> tuple[int, int]:
    """(LUTs, flip-flops) of the logic, memories built from flip-flops not included."""
    luts, ffs = _FIXED_LUTS, 100 + 8 * link.frame_bytes + params.cycle_bits
    for p, lay in zip(params.layers, params.layout.layers):
        chunks = sum(len(g.chunks) for g in lay.groups)
        acc = sum(g.size * p.acc_bits for g in lay.groups for c in g.chunks)
        luts += acc  # one adder bit per accumulator bit (carry chains)
        ffs += acc
        lane = p.membrane_bits * (len(p.layer.leak_shifts) + 5)
        per_group_chunks = max(len(g.chunks) for g in lay.groups)
        mux = (lay.batches - 1) * (p.acc_bits * per_group_chunks + p.membrane_bits)
        luts += len(lay.groups) * lay.lanes * (lane + mux)
        luts += p.n_out * (p.out_index_bits + 1)  # pending bits and the emitter's chain
        ffs += p.n_out + len(COUNTERS) * p.counter_bits
        luts += len(COUNTERS) * p.counter_bits
        luts += chunks * 8 + lay.line_word_bits
        if not p.fire:  # the readout's membrane copy and the argmax chain
            ffs += p.n_out * p.membrane_bits
            luts += p.n_out * (2 * p.membrane_bits + p.out_index_bits)
    return luts, ffs


@dataclass(frozen=True)
class FitReport:
    """Estimated use of a target's resources."""

    target: str
    memories: tuple[MemoryUse, ...]
    bram_blocks: int
    bram_available: int
    luts: int
    luts_available: int
    ffs: int
    ffs_available: int
    io: int
    io_available: int

    def to_dict(self) -> dict:
        return {
            "bram_blocks": self.bram_blocks, "bram_available": self.bram_available,
            "luts": self.luts, "luts_available": self.luts_available,
            "ffs": self.ffs, "ffs_available": self.ffs_available,
            "io": self.io, "io_available": self.io_available,
            "memories": [{"name": m.name, "depth": m.depth, "width": m.width,
                          "bits": m.bits, "bram_blocks": m.blocks} for m in self.memories],
        }


def estimate(params: NetworkParams, link: LinkFormat, target: Target) -> FitReport:
    """Estimate what the on-board top of ``params`` uses on ``target``."""
    part = target.part
    mems = []
    ff_mem = 0
    for mem in memories(params, link):
        blocks = (mem.count * bram_blocks(mem.depth, mem.width, part.bram)
                  if mem.depth >= BRAM_MIN_DEPTH else 0)
        if not blocks:
            ff_mem += mem.bits
        mems.append(MemoryUse(mem.name, mem.depth, mem.width, blocks, mem.count))
    luts, ffs = _lut_estimate(params, link)
    ffs += ff_mem
    luts += ff_mem // 2  # write enables and read multiplexers of flip-flop memories
    return FitReport(
        target=target.name, memories=tuple(mems), bram_blocks=sum(m.blocks for m in mems),
        bram_available=part.bram_blocks, luts=luts, luts_available=part.luts, ffs=ffs,
        ffs_available=part.ffs, io=target.io_needed(), io_available=part.user_io)


def check_fit(report: FitReport, target: Target) -> None:
    """Raise :class:`FitError` naming the first resource that does not fit, and by how much."""
    part = target.part
    where = f"does not fit {target.name} ({part.device})"
    if report.bram_blocks > report.bram_available:
        big = max(report.memories, key=lambda m: m.blocks)
        raise FitError(
            f"{where}: block RAM: needs {report.bram_blocks} {part.bram.primitive} "
            f"({part.bram.bits // 1024} kbit), has {report.bram_available} "
            f"({report.bram_blocks - report.bram_available} over; largest: {big.name} "
            f"{big.depth} x {big.width} bits = {big.blocks} blocks)")
    if report.luts > report.luts_available:
        raise FitError(f"{where}: LUTs: about {report.luts} estimated, has "
                       f"{report.luts_available} ({report.luts - report.luts_available} over; "
                       "fewer --lanes needs fewer)")
    if report.ffs > report.ffs_available:
        raise FitError(f"{where}: flip-flops: about {report.ffs} estimated, has "
                       f"{report.ffs_available} ({report.ffs - report.ffs_available} over)")
    if report.io > report.io_available:
        raise FitError(f"{where}: I/O: needs {report.io} pins, has {report.io_available} "
                       f"({report.io - report.io_available} over)")
