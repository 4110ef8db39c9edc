"""Build and run the generated Verilog under cocotb's Python runner (Icarus, Verilator)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeforge.errors import SpikeforgeError
from spikeforge.hw.export import TOP_NAME, write_verilog
from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.params import NetworkParams
from spikeforge.jsonio import dumps
from spikeforge.qnet import QNet, save_qnet
from spikeforge.sim import tb_network as tb
from spikeforge.sim.protocol import RtlResult
from spikeforge.sim.tools import (
    SIMULATORS,
    log_tail,
    simulator_available,
    simulator_environment,
    use_group_launcher,
)

__all__ = ["SIMULATORS", "RtlRun", "run_rtl", "simulator_available"]


@dataclass
class RtlRun:
    result: RtlResult
    verilog: Path
    build_dir: Path
    passed: bool


def run_rtl(
    qnet: QNet,
    spikes: np.ndarray,
    *,
    simulator: str = "icarus",
    build_dir: str | os.PathLike[str] | None = None,
    verilog: str | os.PathLike[str] | None = None,
    stall_seed: int | None = None,
    waves: bool = False,
    check: bool = False,
    seeds: np.ndarray | None = None,
    layout: HardwareLayout | None = None,
) -> RtlRun:
    """Generate Verilog for ``qnet``, simulate ``spikes`` (``[N, T, n_in]``), return results.

    With ``check`` the testbench itself also asserts equality with the reference;
    ``verilog`` reuses Verilog already generated for this QNet. With ``seeds``
    the design has the on-chip encoder and ``spikes`` are pixels ``[N, n_in]``.
    ``layout`` picks the tiles (default: one per layer).

    The simulator and everything it starts run in a process group of their own,
    stopped on any exception (Ctrl-C, SIGTERM); a build folder this call made
    (a temporary one without ``build_dir``, or a new ``build_dir``) is removed
    again when it fails.
    """

    spikes = np.asarray(spikes, dtype=np.uint8)
    encoder = seeds is not None
    if encoder:
        if spikes.ndim != 2 or spikes.shape[1] != qnet.n_in or len(seeds) != len(spikes):
            raise SpikeforgeError(f"pixels must be [N, {qnet.n_in}] with one seed each")
    elif spikes.ndim != 3 or spikes.shape[1:] != (qnet.timesteps, qnet.n_in):
        raise SpikeforgeError(
            f"input spikes must be [N, {qnet.timesteps}, {qnet.n_in}] for this QNet, "
            f"not {list(spikes.shape)}")
    reason = simulator_available(simulator)
    if reason:
        raise SpikeforgeError(f"simulator {simulator}: {reason}")
    if build_dir:
        build = Path(build_dir).resolve()
        made = build
        while not made.parent.exists():
            made = made.parent
        made = None if build.exists() else made
        build.mkdir(parents=True, exist_ok=True)
    else:
        build = made = Path(tempfile.mkdtemp(prefix="spikeforge-sim-")).resolve()
    try:
        return _run(qnet, spikes, simulator, build, verilog, stall_seed, waves, check, seeds,
                    encoder, layout)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        raise


def _run(qnet: QNet, spikes: np.ndarray, simulator: str, build: Path, verilog, stall_seed,
         waves: bool, check: bool, seeds, encoder: bool, layout) -> RtlRun:
    from cocotb_tools.runner import get_results, get_runner

    layout = NetworkParams(qnet, encoder=encoder, layout=layout).layout
    verilog = Path(verilog).resolve() if verilog else write_verilog(
        qnet, build / "rtl", encoder=encoder, layout=layout)
    qpath, _ = save_qnet(qnet, build / "dut")
    (build / "layout.json").write_text(dumps(layout.to_dict(), indent=None))
    if encoder:
        np.savez(build / "inputs.npz", pixels=spikes, seeds=np.asarray(seeds, dtype=np.uint32))
    else:
        np.savez(build / "inputs.npz", spikes=spikes)
    outputs = build / "outputs.npz"
    if outputs.exists():
        outputs.unlink()

    env = {
        tb.ENV_QNET: str(qpath),
        tb.ENV_LAYOUT: str(build / "layout.json"),
        tb.ENV_INPUTS: str(build / "inputs.npz"),
        tb.ENV_OUTPUTS: str(outputs),
        tb.ENV_CHECK: "1" if check else "0",
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
    }
    if stall_seed is not None:
        env[tb.ENV_STALL] = str(stall_seed)
    with simulator_environment(simulator):
        runner = get_runner(simulator)
        use_group_launcher(runner)
        build_args = ["-Wno-fatal"] if simulator == "verilator" else []
        try:
            runner.build(sources=[verilog], hdl_toplevel=TOP_NAME, build_dir=build / simulator,
                         build_args=build_args, waves=waves, always=True,
                         timescale=("1ns", "1ps"), log_file=build / "build.log")
        except RuntimeError as e:  # cocotb: "Command failed with return code: N"
            raise SpikeforgeError(f"{simulator} failed to build the design ({e}): "
                                  f"{log_tail(build / 'build.log') or 'no output'}") from None
        xml = build / "results.xml"
        try:
            xml = runner.test(hdl_toplevel=TOP_NAME, test_module="spikeforge.sim.tb_network",
                              build_dir=build / simulator, test_dir=build, extra_env=env,
                              waves=waves, results_xml=str(xml), log_file=build / "sim.log")
        except SystemExit as e:  # cocotb exits when the simulator fails (or, under pytest,
            if not (outputs.exists() and xml.exists()):  # when a test failed)
                raise SpikeforgeError(
                    f"the {simulator} run failed (exit {e.code}): "
                    f"{log_tail(build / 'sim.log') or 'no output'}") from None
    if not outputs.exists():
        raise SpikeforgeError(f"the {simulator} run wrote no outputs: "
                              f"{log_tail(build / 'sim.log') or 'no output'}")
    _, failed = get_results(xml)
    with np.load(outputs) as d:
        result = RtlResult.from_npz_dict(d)
    return RtlRun(result=result, verilog=verilog, build_dir=build, passed=failed == 0)
