"""Run the network top in Amaranth's own Python simulator (no Verilog tools needed)."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Value
from amaranth.sim import Simulator

from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.top import Network
from spikeforge.qnet import QNet
from spikeforge.sim.driver import run_samples
from spikeforge.sim.protocol import RtlResult

__all__ = ["run_amaranth"]


def _port_map(dut: Network) -> dict[str, object]:
    ports = {"seed": dut.seed} if dut.params.encoder else {}
    ports |= {
        "clear": dut.clear, "done": dut.done, "cycles": dut.cycles,
        "prediction": dut.prediction,
        "i__valid": dut.i.valid, "i__ready": dut.i.ready, "i__payload": dut.i.payload,
        "o__ready": dut.o.ready,
    }
    for p in dut.params.layers:
        probe = getattr(dut, p.name)
        ports |= {
            f"{p.name}__membrane": probe.membrane, f"{p.name}__counters": probe.counters,
            f"{p.name}__tap_valid": probe.tap_valid, f"{p.name}__tap_payload": probe.tap_payload,
        }
    # Views (struct and array payloads) are read and written as their raw bits.
    return {name: Value.cast(sig) for name, sig in ports.items()}


def run_amaranth(qnet: QNet, spikes: np.ndarray, *, stall_seed: int | None = None,
                 seeds: np.ndarray | None = None,
                 layout: HardwareLayout | None = None, lockstep: bool = False) -> RtlResult:
    """Simulate ``spikes`` (``[N, T, n_in]``) on the generated hardware, cycle by cycle.

    With ``seeds``, the network gets the on-chip encoder and ``spikes`` are 8-bit
    pixels ``[N, n_in]``. ``layout`` picks the tiles (default: one per layer);
    ``lockstep`` runs the layers unpipelined (see :func:`run_samples`).
    """
    dut = Network(qnet, encoder=seeds is not None, layout=layout)
    ports = _port_map(dut)
    box: dict[str, RtlResult] = {}

    async def bench(ctx):
        async def settle():
            return None  # a testbench's ctx.get already sees settled values

        async def tick():
            await ctx.tick()

        box["r"] = await run_samples(
            dut.params, spikes,
            write=lambda name, v: ctx.set(ports[name], v),
            read=lambda name: ctx.get(ports[name]), settle=settle, tick=tick, stall_seed=stall_seed,
            seeds=seeds, lockstep=lockstep)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return box["r"]
