"""`spikeforge sim` and `spikeforge verify`: run a QNet's RTL on given inputs.

Inputs are an NPZ with ``spikes`` (uint8 ``[N, T, n_in]``), or ``pixels`` (uint8
``[N, n_in]``, for the on-chip rate encoder) with optional ``seeds``. Outputs go to
``DIR/outputs.npz``: ``spikes.LAYER`` (uint8 ``[N, T, n_out]``, spiking layers),
``membrane.LAYER`` (int64 ``[N, n_out]``), ``counters.LAYER.NAME`` (int64 ``[N]``)
and ``cycles``. ``verify`` also compares with the reference, writes
``mismatches.json``, a waveform of the first failing sample (Icarus VCD), and the
energy report (``energy.json``, ``energy.png``) from the RTL's counters.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeforge.cliutil import bounded_int, seed
from spikeforge.contracts import COUNTERS
from spikeforge.encoding import onchip_rate_encode, sample_seeds
from spikeforge.errors import SpikeforgeError
from spikeforge.jsonio import dumps
from spikeforge.qnet import NpzError, QNet, inspect_npz, load_qnet, qnet_paths
from spikeforge.sim.tools import MAX_JOBS
from spikeforge.staging import check_out, staged_output
from spikeforge.yamlio import short

__all__ = ["MAX_COCOTB_STEPS", "MAX_LANES", "Inputs", "add_parsers", "inspect_inputs",
           "load_inputs", "memory_needed"]

MAX_LANES = 1 << 16  # neuron update lanes per tile that --lanes accepts


MAX_COCOTB_STEPS = 1_000_000  # samples x timesteps that --mode cocotb drives from Python
_ARRAYS = ("spikes", "pixels", "seeds", "labels")


@dataclass(frozen=True)
class Inputs:
    """Checked stimulus: rate-coded ``spikes`` [N, T, n_in], or ``pixels`` [N, n_in] + seeds."""

    stimulus: np.ndarray
    seeds: np.ndarray | None  # set when the on-chip encoder makes the spikes
    labels: np.ndarray | None = None  # optional int64 [N], checked for length only

    @property
    def encoder(self) -> bool:
        return self.seeds is not None

    def spikes(self, net: QNet) -> np.ndarray:
        """The spikes layer 0 sees (the encoder's, reproduced exactly, for pixels)."""
        if self.seeds is None:
            return self.stimulus
        return onchip_rate_encode(self.stimulus, net.timesteps, self.seeds)


def _check_int(p: Path, name: str, arr: np.ndarray, lo: int, hi: int) -> None:
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise SpikeforgeError(f"{p}: field {name}: values must lie in {lo}..{hi}"
                              + (" (0 or 1)" if hi == 1 else ""))


def _is_int(dtype: np.dtype) -> bool:
    return dtype.kind in "iub"


def inspect_inputs(path: str | os.PathLike[str], net: QNet) -> tuple[str, int]:
    """Check an inputs NPZ from its array headers only; return ``(kind, N)``.

    ``kind`` is ``"spikes"`` or ``"pixels"``. Names, shapes and dtypes are checked
    (and Python-object arrays refused) before a single array is read.
    """
    p = Path(path)
    if not p.is_file():
        raise SpikeforgeError(f"{p}: file does not exist" if not p.exists()
                              else f"{p}: is not a regular file")
    try:
        heads = inspect_npz(p)
    except NpzError as e:
        raise SpikeforgeError(f"{p}: {e}") from None
    extra = [k for k in heads if k not in _ARRAYS]
    if extra:
        name = extra[0] if extra[0].isprintable() and len(extra[0]) <= 40 else short(extra[0], 40)
        raise SpikeforgeError(f"{p}: field {name}: is not a known array "
                              f"(known: {', '.join(_ARRAYS)})")
    if "spikes" in heads and "pixels" in heads:
        raise SpikeforgeError(f"{p}: field pixels: give either spikes or pixels, not both")
    if "spikes" in heads:
        kind, (shape, dtype) = "spikes", heads["spikes"]
        want = (net.timesteps, net.n_in)
        if len(shape) != 3 or shape[1:] != want:
            raise SpikeforgeError(f"{p}: field spikes: shape {list(shape)}, expected "
                                  f"[N, {want[0]}, {want[1]}]")
        if not _is_int(dtype):
            raise SpikeforgeError(f"{p}: field spikes: dtype {dtype}, expected integers "
                                  "(uint8 0 or 1)")
    elif "pixels" in heads:
        kind, (shape, dtype) = "pixels", heads["pixels"]
        if len(shape) != 2 or shape[1] != net.n_in:
            raise SpikeforgeError(f"{p}: field pixels: shape {list(shape)}, expected "
                                  f"[N, {net.n_in}]")
        if not _is_int(dtype):
            raise SpikeforgeError(f"{p}: field pixels: dtype {dtype}, expected integers "
                                  "(uint8 0..255)")
    else:
        raise SpikeforgeError(f"{p}: field spikes: missing (give 'spikes' or 'pixels')")
    n = shape[0]
    if n == 0:
        raise SpikeforgeError(f"{p}: field {kind}: holds 0 samples")
    for name in ("seeds", "labels"):
        if name not in heads:
            continue
        if name == "seeds" and kind != "pixels":
            raise SpikeforgeError(f"{p}: field seeds: only the on-chip encoder (pixels) "
                                  "uses seeds")
        shape, dtype = heads[name]
        if shape != (n,):
            raise SpikeforgeError(f"{p}: field {name}: shape {list(shape)}, expected [{n}] "
                                  f"(one per sample of {kind})")
        if not _is_int(dtype):
            raise SpikeforgeError(f"{p}: field {name}: dtype {dtype}, expected integers")
    return kind, n


def load_inputs(path: str | os.PathLike[str], net: QNet) -> Inputs:
    """Read and check an inputs NPZ; one-line errors name the file and the field.

    ``spikes`` (uint8 ``[N, T, n_in]``) drive the network directly; ``pixels``
    (uint8 ``[N, n_in]``) go through the on-chip rate encoder, seeded per sample by
    ``seeds`` (uint32 ``[N]``; default :func:`spikeforge.encoding.sample_seeds`).
    Optional ``labels`` (integers ``[N]``) are kept. No other array is accepted;
    nothing is unpickled.
    """
    p = Path(path)
    kind, n = inspect_inputs(p, net)
    try:
        with np.load(p, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except Exception as e:  # numpy raises several types for a damaged archive
        raise SpikeforgeError(f"{p}: cannot be read as NPZ ({e.__class__.__name__})") from None
    labels = arrays.get("labels")
    if labels is not None:
        _check_int(p, "labels", labels, 0, 2**63 - 1)
        labels = labels.astype(np.int64)
    if kind == "spikes":
        arr = arrays["spikes"]
        _check_int(p, "spikes", arr, 0, 1)
        return Inputs(arr.astype(np.uint8), None, labels)
    arr = arrays["pixels"]
    _check_int(p, "pixels", arr, 0, 255)
    seeds = arrays.get("seeds")
    if seeds is None:
        seeds = sample_seeds(n)
    else:
        _check_int(p, "seeds", seeds, 0, 2**32 - 1)
    return Inputs(arr.astype(np.uint8), seeds.astype(np.uint32), labels)


def _available_memory() -> int | None:
    """Bytes of memory available now (MemAvailable, else free pages); None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_needed(net: QNet, n: int, verify: bool) -> int:
    """Bytes a run of ``n`` samples holds at once (a generous estimate).

    Input spikes (``N*T*n_in``, with a working copy and the stimulus file's
    packing), per-layer output spikes (``N*T*n_out``) and membranes and counters
    (8 bytes each); ``verify`` holds a second set from the reference.
    """
    t = net.timesteps
    spiking = sum(layer.n_out for layer in net.layers if layer.fire)
    neurons = sum(layer.n_out for layer in net.layers)
    widest = max(net.n_in, *(layer.n_out for layer in net.layers))
    inputs = 3 * n * t * net.n_in
    outputs = n * t * spiking + 8 * n * (neurons + len(COUNTERS) * len(net.layers) + 2)
    work = 3 * 8 * n * widest  # the reference's int64 currents of one step
    return inputs + outputs * (2 if verify else 1) + (work if verify else 0)


def _check_size(net: QNet, n: int, args: argparse.Namespace, verify: bool) -> None:
    """Refuse, before any work, a run that cannot fit in memory or time."""
    if args.mode == "cocotb" and n * net.timesteps > MAX_COCOTB_STEPS:
        raise SpikeforgeError(
            f"--inputs {args.inputs}: {n:,} samples x {net.timesteps} steps is over the "
            f"{MAX_COCOTB_STEPS:,} steps --mode cocotb drives from Python; use --mode fast")
    need = memory_needed(net, n, verify)
    have = _available_memory()
    if have is not None and need > have:
        raise SpikeforgeError(
            f"--inputs {args.inputs}: {n:,} samples need about {need / 2**30:.1f} GiB of "
            f"memory, {have / 2**30:.1f} GiB is available; run fewer samples at a time")


def _run(args: argparse.Namespace, net: QNet, inputs: Inputs, stage: Path, layout):
    if args.mode == "fast":
        from spikeforge.sim.fast import run_fast

        return run_fast(net, inputs.stimulus, simulator=args.simulator,
                        build_dir=stage / "build", seeds=inputs.seeds, layout=layout,
                        jobs=args.jobs).result
    from spikeforge.sim.runner import run_rtl

    return run_rtl(net, inputs.stimulus, simulator=args.simulator, build_dir=stage / "build",
                   stall_seed=args.stall_seed, seeds=inputs.seeds, layout=layout).result


def _cmd(args: argparse.Namespace, verify: bool) -> int:
    from spikeforge.hw.layout import choose_layout
    from spikeforge.sim.tools import simulator_available

    if args.stall_seed is not None and args.mode != "cocotb":
        raise SpikeforgeError("--stall-seed: stalls need --mode cocotb")
    if args.jobs is not None and args.mode != "fast":
        raise SpikeforgeError("--jobs: simulator processes over sample shards need --mode fast")
    net = load_qnet(args.qnet)
    sources = [*qnet_paths(args.qnet), args.inputs, args.mapping]
    out = check_out(args.out, sources)
    layout = choose_layout(net, args.mapping, args.lanes)
    _, n = inspect_inputs(args.inputs, net)
    _check_size(net, n, args, verify)
    reason = simulator_available(args.simulator)
    if reason:
        raise SpikeforgeError(f"--simulator {args.simulator}: {reason}")
    inputs = load_inputs(args.inputs, net)
    with staged_output(out, sources) as stage:
        result = _run(args, net, inputs, stage, layout)
        np.savez(stage / "outputs.npz", **result.to_npz_dict())
        status = 0
        if verify:
            status = _verify(net, inputs, result, stage, args, layout)
    kind = "pixels, on-chip encoder" if inputs.encoder else "spikes"
    print(f"wrote {out / 'outputs.npz'} ({len(inputs.stimulus)} samples of {kind}, "
          f"{args.simulator}, {args.mode})")
    return status


def _verify(net: QNet, inputs: Inputs, result, stage: Path, args, layout) -> int:
    from spikeforge.energy import energy_report
    from spikeforge.reference import simulate
    from spikeforge.sim.protocol import compare

    spikes = inputs.spikes(net)
    ref = simulate(net, spikes, layout.visits())
    mism = compare(ref, result)
    (stage / "mismatches.json").write_text(dumps(
        {"samples": len(spikes), "mismatches": len(mism),
         "first": [dict(m.__dict__) for m in mism[:100]]}))
    # the energy of the hardware that ran: its tiles' weight memories (--mapping, --lanes)
    energy = energy_report(net, result.counters, source=f"rtl counters ({args.simulator})",
                           layout=layout)
    (stage / "energy.json").write_text(dumps(energy))
    _plot_energy(energy, stage / "energy.png")
    print(f"verified {len(spikes)} samples on {args.simulator}: {len(mism)} mismatching")
    for m in mism[:5]:
        print(f"  {m}")
    if mism and simulator_has_waves():
        from spikeforge.sim.fast import run_fast

        first = mism[0].sample
        if first >= 0:
            seeds = None if inputs.seeds is None else inputs.seeds[first:first + 1]
            run_fast(net, inputs.stimulus[first:first + 1], simulator="icarus", seeds=seeds,
                     build_dir=stage / "wave_build", vcd=stage / f"sample{first}.vcd",
                     layout=layout)
            print(f"  waveform of sample {first}: {stage.name}/sample{first}.vcd")
    print(f"energy per sample (Panda): SNN {energy['snn_pj']:.1f} pJ, ANN "
          f"{energy['ann_pj']:.1f} pJ, EE {energy['ee']:.2f}; hardware-aware "
          f"{energy['hardware_pj']:.1f} pJ (from the RTL's counters)")
    return 1 if mism else 0


def simulator_has_waves() -> bool:
    from spikeforge.sim.tools import simulator_available

    return simulator_available("icarus") is None


def _plot_energy(energy: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [l["name"] for l in energy["layers"]]
    x = np.arange(len(names))
    snn = [l["panda"]["snn_pj"] for l in energy["layers"]]
    ann = [l["panda"]["ann_pj"] for l in energy["layers"]]
    hw = [l["hardware"]["total_pj"] for l in energy["layers"]]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(x - 0.27, ann, 0.27, label="ANN, Panda (MAC 3.2 pJ)", color="tab:gray")
    ax.bar(x, snn, 0.27, label="SNN, Panda (AC 0.1 pJ)", color="tab:blue")
    ax.bar(x + 0.27, hw, 0.27, label="SNN, hardware-aware", color="tab:orange")
    ax.set_xticks(x, names)
    ax.set_yscale("log")
    ax.set(ylabel="pJ per sample", title=f"energy per layer (EE {energy['ee']:.1f}, "
                                         f"{energy['source']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_parsers(sub) -> None:
    for name, verify in (("sim", False), ("verify", True)):
        p = sub.add_parser(name, help=("run a QNet's RTL on inputs" if not verify else
                                       "run the RTL and compare with the reference"))
        p.add_argument("qnet", help="NAME.qnet.yaml")
        p.add_argument("--inputs", required=True,
                       help="NPZ with spikes [N, T, n_in] (uint8), or pixels [N, n_in] "
                            "(uint8, on-chip encoder) and optional seeds [N] (uint32)")
        p.add_argument("--simulator", default="icarus", help="icarus or verilator")
        p.add_argument("--mode", choices=("fast", "cocotb"), default="fast",
                       help="fast: plain-Verilog testbench, whole test sets; "
                            "cocotb: Python drives every cycle (random stalls possible; "
                            f"at most {MAX_COCOTB_STEPS:,} samples x timesteps)")
        p.add_argument("--jobs", type=bounded_int(1, MAX_JOBS), default=None,
                       help="fast mode: simulator processes running shards of the samples "
                            "at once (default: one per CPU core, at most one per sample)")
        p.add_argument("--stall-seed", type=seed, default=None,
                       help="cocotb mode: random valid/ready stalls from this seed "
                            "(0..2^64-1)")
        add_layout_arguments(p)
        p.add_argument("--out", required=True,
                       help="output folder: new, empty or made by spikeforge; its outputs "
                            "are replaced when the run ends")
        p.set_defaults(func=lambda a, v=verify: _cmd(a, v))


def add_layout_arguments(p) -> None:
    """``--mapping`` and ``--lanes``: which tiles the hardware has."""
    p.add_argument("--mapping", default=None,
                   help="mapping.yaml from `spikeforge map` (default: one tile per layer)")
    p.add_argument("--lanes", type=bounded_int(1, MAX_LANES), default=None,
                   help="neuron update lanes P per tile (default: the mapping's, or one per "
                        "neuron without a mapping)")
