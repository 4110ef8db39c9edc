"""The per-cycle testbench, written once for any simulator.

Four parts joined by callbacks (the cocotb `matrix_multiplier` pattern):

* :class:`EventDriver` offers one sample's input events, with an optional random
  stall pattern on the input ``valid`` and the output ``ready``;
* :class:`TapMonitor` watches every layer's tap each cycle and calls its
  subscribers with ``(layer, payload)``;
* the model is the QNet reference (:func:`spikeforge.reference.simulate`), whose
  geometry comes from the same :class:`NetworkParams` the DUT was built from;
* :class:`Checker` receives each finished sample (monitored spikes, read-back
  membranes and counters) and compares it with the model at once, so the first
  mismatch is reported when it happens, not after the run.

A simulator back-end supplies four callables (write a port, read a port, let
combinational logic settle, advance one clock); :func:`run_samples` joins the
parts and returns an :class:`RtlResult`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np

from spikeforge.contracts import EventKind, unpack_event
from spikeforge.hw.params import NetworkParams
from spikeforge.reference import RefResult
from spikeforge.sim.protocol import (
    Mismatch,
    RtlResult,
    SampleRecorder,
    compare,
    decode_counters,
    decode_membrane,
    sample_events,
)

__all__ = ["Checker", "EventDriver", "Port", "TapMonitor", "run_samples"]

# Reads return ints; writes take ints. Names are the flattened Verilog port names.
Port = str
STALL_PROBABILITY = 0.25


class EventDriver:
    """Offers a sample's packed events in order; ``accept()`` moves to the next."""

    def __init__(self, events: list[int], rng: np.random.Generator | None):
        self._events = events
        self._rng = rng
        self.position = 0

    @property
    def finished(self) -> bool:
        return self.position >= len(self._events)

    def offer(self) -> int | None:
        """The event to present this cycle, or ``None`` (nothing left, or a stall)."""
        if self.finished or (self._rng is not None and self._rng.random() < STALL_PROBABILITY):
            return None
        return self._events[self.position]

    def ready_out(self) -> int:
        """Whether the testbench accepts the last layer's output this cycle."""
        return int(self._rng is None or self._rng.random() >= STALL_PROBABILITY)

    def accept(self) -> None:
        self.position += 1


class TapMonitor:
    """Reads every layer's tap each cycle and calls each subscriber per event."""

    def __init__(self, names: list[str]):
        self._names = names
        self._subscribers: list[Callable[[str, int], None]] = []

    def subscribe(self, callback: Callable[[str, int], None]) -> None:
        self._subscribers.append(callback)

    def sample(self, read: Callable[[Port], int]) -> None:
        for name in self._names:
            if read(f"{name}__tap_valid"):
                payload = read(f"{name}__tap_payload")
                for cb in self._subscribers:
                    cb(name, payload)


class Checker:
    """Compares each finished sample with the model's result for that sample."""

    def __init__(self, reference: RefResult, on_mismatch: Callable[[Mismatch], None]):
        self._ref = reference
        self._on_mismatch = on_mismatch

    def __call__(self, sample: int, result: RtlResult) -> None:
        ref = _slice_ref(self._ref, sample)
        got = _slice_rtl(result, sample)
        for m in compare(ref, got):
            self._on_mismatch(Mismatch(sample, m.what, m.layer, m.detail))


def _slice_ref(r: RefResult, s: int) -> RefResult:
    return RefResult(
        spikes={k: v[s:s + 1] for k, v in r.spikes.items()},
        membrane={k: v[s:s + 1] for k, v in r.membrane.items()},
        counters={k: {c: v[s:s + 1] for c, v in cs.items()} for k, cs in r.counters.items()},
        scores=r.scores[s:s + 1], predictions=r.predictions[s:s + 1])


def _slice_rtl(r: RtlResult, s: int) -> RtlResult:
    return RtlResult(
        spikes={k: v[s:s + 1] for k, v in r.spikes.items()},
        membrane={k: v[s:s + 1] for k, v in r.membrane.items()},
        counters={k: {c: v[s:s + 1] for c, v in cs.items()} for k, cs in r.counters.items()},
        cycles=r.cycles[s:s + 1],
        predictions=None if r.predictions is None else r.predictions[s:s + 1],
        errors=[e for e in r.errors if e.startswith(f"sample {s}:")])


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
    on_sample: Callable[[int, RtlResult], None] | None = None,
    seeds: np.ndarray | None = None,
    lockstep: bool = False,
) -> RtlResult:
    """Run ``spikes`` (``[N, T, n_in]``) through the DUT one sample after another.

    With ``lockstep`` the input of step *t+1* waits until the last layer has
    closed step *t*: the layers never work on different steps at once (the
    unpipelined schedule), which must not change any result.

    With the on-chip encoder (``params.encoder``), ``spikes`` are instead 8-bit
    pixels ``[N, n_in]`` and ``seeds`` (uint32 ``[N]``) seed each sample's encoder.

    ``settle`` lets combinational logic settle after inputs were written (a no-op
    where the simulator settles by itself); ``tick`` advances to the next edge.
    ``on_sample(s, result)`` is called when sample ``s`` is complete (a
    :class:`Checker`, for instance).
    """
    spikes = np.asarray(spikes)
    n = spikes.shape[0]
    result = RtlResult.empty(params, n)
    rng = np.random.default_rng(stall_seed) if stall_seed is not None else None
    monitor = TapMonitor([p.name for p in params.layers])
    recorder: list[SampleRecorder] = []
    monitor.subscribe(lambda name, payload: recorder[-1].on_tap(name, payload))
    limit = max_cycles_per_sample or 64 * params.timesteps * (
        sum(p.n_in + p.n_out for p in params.layers) + 8)
    if params.encoder:
        if seeds is None or len(seeds) != n:
            raise ValueError("the on-chip encoder needs one seed per sample")
        limit += 64 * params.qnet.n_in * (params.timesteps + 1)
    for s in range(n):
        if params.encoder:
            driver = EventDriver([int(v) for v in spikes[s]], rng)
            write("seed", int(seeds[s]))
        else:
            driver = EventDriver(sample_events(spikes[s]), rng)
        recorder.append(SampleRecorder(params))
        write("clear", 1)
        write("i__valid", 0)
        write("o__ready", 1)
        await tick()
        write("clear", 0)
        cycles = 0
        last = params.layers[-1].name
        steps_in = 0  # STEP_END events taken
        while True:
            hold = lockstep and steps_in > recorder[-1].step[last]
            event = None if hold else driver.offer()
            write("i__valid", int(event is not None))
            if event is not None:
                write("i__payload", event)
            write("o__ready", driver.ready_out())
            await settle()
            if read("done"):
                break
            if event is not None and read("i__ready"):
                driver.accept()
                steps_in += ((not params.encoder)
                             and unpack_event(event)[0] == EventKind.STEP_END)
            monitor.sample(read)
            await tick()
            cycles += 1
            if cycles > limit:
                result.errors.append(f"sample {s}: no 'done' after {limit} cycles")
                break
        if not driver.finished and cycles <= limit:
            result.errors.append(f"sample {s}: done before all input events were taken")
        result.errors.extend(f"sample {s}: {e}" for e in recorder[-1].errors)
        for p in params.layers:
            result.membrane[p.name][s] = decode_membrane(read(f"{p.name}__membrane"), p)
            for c, v in decode_counters(read(f"{p.name}__counters"), p).items():
                result.counters[p.name][c][s] = v
            if p.fire:
                result.spikes[p.name][s] = recorder[-1].spikes[p.name]
        result.cycles[s] = read("cycles")
        result.predictions[s] = read("prediction")
        recorder.pop()
        if on_sample is not None:
            on_sample(s, result)
        await tick()  # leave the read-only phase before the next sample's writes
    return result
