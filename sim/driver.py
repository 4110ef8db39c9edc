"""The per-cycle testbench loop, written once for any simulator.

A simulator back-end supplies four small callables (set inputs, read outputs,
advance one clock); :func:`run_samples` drives each sample's events with an
optional random stall pattern on the input valid and output ready, monitors
every layer's taps, and collects final membranes, counters and cycles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from spikeforge.hw.params import NetworkParams
from spikeforge.sim.protocol import (
    RtlResult,
    SampleRecorder,
    decode_counters,
    decode_membrane,
    sample_events,
)

__all__ = ["Port", "run_samples"]

# Reads return ints; writes take ints. Names are the flattened Verilog port names.
Port = str


async def run_samples(
    params: NetworkParams,
    spikes: np.ndarray,
    *,
    write: Callable[[Port, int], None],
    read: Callable[[Port], int],
    settle: Callable[[], Awaitable[None]],
    tick: Callable[[], Awaitable[None]],
    stall_seed: int | None = None,
    max_cycles_per_sample: int | None = None,
) -> RtlResult:
    """Run ``spikes`` (``[N, T, n_in]``) through the DUT one sample after another.

    ``settle`` lets combinational logic settle after inputs were written (a no-op
    where the simulator settles by itself); ``tick`` advances to the next edge.
    With ``stall_seed``, input valid and output ready drop at random (1 in 4).
    """
    spikes = np.asarray(spikes)
    n = spikes.shape[0]
    result = RtlResult.empty(params, n)
    rng = np.random.default_rng(stall_seed) if stall_seed is not None else None
    names = [p.name for p in params.layers]
    limit = max_cycles_per_sample or 64 * params.timesteps * (
        sum(p.n_in + p.n_out for p in params.layers) + 8)
    for s in range(n):
        events = sample_events(spikes[s])
        rec = SampleRecorder(params)
        write("clear", 1)
        write("i__valid", 0)
        write("o__ready", 1)
        await tick()
        write("clear", 0)
        k = 0
        cycles = 0
        while True:
            offer = k < len(events) and (rng is None or rng.random() >= 0.25)
            write("i__valid", int(offer))
            if offer:
                write("i__payload", events[k])
            write("o__ready", int(rng is None or rng.random() >= 0.25))
            await settle()
            if read("done"):
                break
            if offer and read("i__ready"):
                k += 1
            for name in names:
                if read(f"{name}__tap_valid"):
                    rec.on_tap(name, read(f"{name}__tap_payload"))
            await tick()
            cycles += 1
            if cycles > limit:
                result.errors.append(f"sample {s}: no 'done' after {limit} cycles")
                break
        if k != len(events) and cycles <= limit:
            result.errors.append(f"sample {s}: done before all input events were taken")
        result.errors.extend(f"sample {s}: {e}" for e in rec.errors)
        for p in params.layers:
            result.membrane[p.name][s] = decode_membrane(read(f"{p.name}__membrane"), p)
            for c, v in decode_counters(read(f"{p.name}__counters"), p).items():
                result.counters[p.name][c][s] = v
            if p.fire:
                result.spikes[p.name][s] = rec.spikes[p.name]
        result.cycles[s] = read("cycles")
        await tick()  # leave the read-only phase before the next sample's writes
    return result
