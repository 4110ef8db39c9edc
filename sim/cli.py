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
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeforge.encoding import onchip_rate_encode, sample_seeds
from spikeforge.errors import SpikeforgeError
from spikeforge.qnet import QNet, load_qnet
from spikeforge.staging import staged_output

__all__ = ["Inputs", "add_parsers", "load_inputs"]


@dataclass(frozen=True)
class Inputs:
    """Checked stimulus: rate-coded ``spikes`` [N, T, n_in], or ``pixels`` [N, n_in] + seeds."""

    stimulus: np.ndarray
    seeds: np.ndarray | None  # set when the on-chip encoder makes the spikes

    @property
    def encoder(self) -> bool:
        return self.seeds is not None

    def spikes(self, net: QNet) -> np.ndarray:
        """The spikes layer 0 sees (the encoder's, reproduced exactly, for pixels)."""
        if self.seeds is None:
            return self.stimulus
        return onchip_rate_encode(self.stimulus, net.timesteps, self.seeds)


def _check_int(p: Path, name: str, arr: np.ndarray, lo: int, hi: int) -> None:
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise SpikeforgeError(f"{p}: field {name}: dtype {arr.dtype}, expected integers")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise SpikeforgeError(f"{p}: field {name}: values must lie in {lo}..{hi}"
                              + (" (0 or 1)" if hi == 1 else ""))


def load_inputs(path: str | os.PathLike[str], net: QNet) -> Inputs:
    """Read and check an inputs NPZ; one-line errors name the file and the field.

    ``spikes`` (uint8 ``[N, T, n_in]``) drive the network directly; ``pixels``
    (uint8 ``[N, n_in]``) go through the on-chip rate encoder, seeded per sample by
    ``seeds`` (uint32 ``[N]``; default :func:`spikeforge.encoding.sample_seeds`).
    """
    p = Path(path)
    if not p.is_file():
        raise SpikeforgeError(f"{p}: file does not exist")
    try:
        with np.load(p, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except Exception as e:  # numpy raises several types for a damaged archive
        raise SpikeforgeError(f"{p}: cannot be read as NPZ ({e.__class__.__name__})") from None
    if "spikes" in arrays:
        arr = arrays["spikes"]
        want = (net.timesteps, net.n_in)
        if arr.ndim != 3 or arr.shape[1:] != want:
            raise SpikeforgeError(f"{p}: field spikes: shape {list(arr.shape)}, expected "
                                  f"[N, {want[0]}, {want[1]}]")
        _check_int(p, "spikes", arr, 0, 1)
        return Inputs(arr.astype(np.uint8), None)
    if "pixels" in arrays:
        arr = arrays["pixels"]
        if arr.ndim != 2 or arr.shape[1] != net.n_in:
            raise SpikeforgeError(f"{p}: field pixels: shape {list(arr.shape)}, expected "
                                  f"[N, {net.n_in}]")
        _check_int(p, "pixels", arr, 0, 255)
        seeds = arrays.get("seeds")
        if seeds is None:
            seeds = sample_seeds(len(arr))
        elif seeds.shape != (len(arr),):
            raise SpikeforgeError(f"{p}: field seeds: shape {list(seeds.shape)}, expected "
                                  f"[{len(arr)}]")
        else:
            _check_int(p, "seeds", seeds, 0, 2**32 - 1)
        return Inputs(arr.astype(np.uint8), seeds.astype(np.uint32))
    raise SpikeforgeError(f"{p}: field spikes: missing (give 'spikes' or 'pixels')")


def _run(args: argparse.Namespace, net: QNet, inputs: Inputs, stage: Path, layout):
    if args.mode == "fast":
        from spikeforge.sim.fast import run_fast

        return run_fast(net, inputs.stimulus, simulator=args.simulator,
                        build_dir=stage / "build", seeds=inputs.seeds, layout=layout).result
    from spikeforge.sim.runner import run_rtl

    return run_rtl(net, inputs.stimulus, simulator=args.simulator, build_dir=stage / "build",
                   stall_seed=args.stall_seed, seeds=inputs.seeds, layout=layout).result


def _cmd(args: argparse.Namespace, verify: bool) -> int:
    from spikeforge.hw.layout import choose_layout
    from spikeforge.sim.tools import simulator_available

    net = load_qnet(args.qnet)
    layout = choose_layout(net, args.mapping, args.lanes)
    inputs = load_inputs(args.inputs, net)
    reason = simulator_available(args.simulator)
    if reason:
        raise SpikeforgeError(f"--simulator {args.simulator}: {reason}")
    out = Path(args.out).resolve()
    with staged_output(out) as stage:
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
    (stage / "mismatches.json").write_text(json.dumps(
        {"samples": len(spikes), "mismatches": len(mism),
         "first": [m.__dict__ for m in mism[:100]]}, indent=2))
    energy = energy_report(net, result.counters, source=f"rtl counters ({args.simulator})")
    (stage / "energy.json").write_text(json.dumps(energy, indent=2))
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
                            "cocotb: Python drives every cycle (random stalls possible)")
        p.add_argument("--stall-seed", type=int, default=None,
                       help="cocotb mode: random valid/ready stalls from this seed")
        add_layout_arguments(p)
        p.add_argument("--out", required=True, help="output folder (replaced at the end)")
        p.set_defaults(func=lambda a, v=verify: _cmd(a, v))


def add_layout_arguments(p) -> None:
    """``--mapping`` and ``--lanes``: which tiles the hardware has."""
    p.add_argument("--mapping", default=None,
                   help="mapping.yaml from `spikeforge map` (default: one tile per layer)")
    p.add_argument("--lanes", type=int, default=None,
                   help="neuron update lanes P per tile (default: the mapping's, or one per "
                        "neuron without a mapping)")
