"""cocotb testbench for the generated network top.

Driver, monitor and model are joined by the shared :mod:`spikeforge.sim.driver`
loop (driver: input events with optional stalls; monitor: every layer's taps
each cycle; model: the QNet reference; checker: :func:`protocol.compare`).
The runner passes the QNet, the inputs and where to write the outputs through
environment variables, so one compiled design serves every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from spikeforge.encoding import onchip_rate_encode
from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.params import NetworkParams
from spikeforge.qnet import load_qnet
from spikeforge.reference import simulate
from spikeforge.sim.driver import Checker, run_samples

ENV_QNET = "SPIKEFORGE_QNET"
ENV_INPUTS = "SPIKEFORGE_INPUTS"
ENV_OUTPUTS = "SPIKEFORGE_OUTPUTS"
ENV_STALL = "SPIKEFORGE_STALL_SEED"
ENV_CHECK = "SPIKEFORGE_CHECK"
ENV_LAYOUT = "SPIKEFORGE_LAYOUT"


def _read(handle) -> int:
    value = handle.value
    try:
        return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
    except ValueError:
        raise ValueError(f"{handle._name} holds unknown bits: {value}") from None


@cocotb.test()
async def network_matches_reference(dut):
    """Drive every sample; record spikes, membranes, counters; compare with the reference."""
    qnet = load_qnet(os.environ[ENV_QNET])
    with np.load(os.environ[ENV_INPUTS]) as d:
        encoder = "pixels" in d.files
        stimulus = d["pixels"] if encoder else d["spikes"]
        seeds = d["seeds"] if encoder else None
    # the model sees the spikes the on-chip encoder makes, reproduced bit for bit
    spikes = onchip_rate_encode(stimulus, qnet.timesteps, seeds) if encoder else stimulus
    stall = os.environ.get(ENV_STALL)
    layout = None
    if os.environ.get(ENV_LAYOUT):
        layout = HardwareLayout.from_dict(json.loads(Path(os.environ[ENV_LAYOUT]).read_text()))
    params = NetworkParams(qnet, encoder=encoder, layout=layout)

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.clear.value = 0
    dut.i__valid.value = 0
    dut.o__ready.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    handles = {}

    def handle(name):
        if name not in handles:
            handles[name] = getattr(dut, name)
        return handles[name]

    def write(name, value):
        handle(name).value = value

    async def tick():
        await RisingEdge(dut.clk)

    mismatches: list = []
    checker = None
    if os.environ.get(ENV_CHECK, "1") == "1":
        def report(m):
            if not mismatches or mismatches[-1].sample != m.sample:
                dut._log.error(str(m))  # logged at the simulation time it happens
            mismatches.append(m)

        checker = Checker(simulate(qnet, spikes, params.layout.visits()), report)
    if encoder:
        dut.seed.value = 0
    result = await run_samples(
        params, stimulus, seeds=seeds,
        write=write, read=lambda name: _read(handle(name)), settle=ReadOnly, tick=tick,
        stall_seed=int(stall) if stall else None, on_sample=checker,
    )
    out = os.environ.get(ENV_OUTPUTS)
    if out:
        np.savez(out, **result.to_npz_dict())
    failing = sorted({m.sample for m in mismatches})
    assert not failing, f"{len(failing)} of {len(spikes)} samples differ"
