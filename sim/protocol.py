"""How a testbench talks to the generated network top, without any simulator.

Stimulus events and decoded probe values (membranes, counters, taps), in the
layouts of :mod:`spikeforge.contracts` (``pack_event``, ``unpack_event`` and
``sample_events`` are re-exported from there); the record of one RTL run, and
the comparison with the reference. Used by the Amaranth-simulator tests and by
the cocotb testbench alike, so both read the DUT the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikeforge.contracts import (
    COUNTERS,
    EventKind,
    pack_event,
    sample_events,
    unpack_counters,
    unpack_event,
    unpack_membranes,
)
from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.params import LayerParams, NetworkParams
from spikeforge.qnet import QNet
from spikeforge.reference import RefResult, simulate

__all__ = [
    "Mismatch",
    "RtlResult",
    "SampleRecorder",
    "compare",
    "decode_counters",
    "decode_membrane",
    "expected",
    "pack_event",
    "sample_events",
    "unpack_event",
]

_STEP_END = EventKind.STEP_END.value


def decode_membrane(value: int, p: LayerParams) -> np.ndarray:
    """Membranes of a layer's membrane probe (layout: :mod:`spikeforge.contracts`)."""
    return unpack_membranes(value, p.n_out, p.membrane_bits)


def decode_counters(value: int, p: LayerParams) -> dict[str, int]:
    """Counters of a layer's counter probe (layout: :mod:`spikeforge.contracts`)."""
    return unpack_counters(value, p.counter_bits)


class SampleRecorder:
    """Rebuilds per-step spike matrices from the taps of one sample."""

    def __init__(self, params: NetworkParams):
        self._params = params
        t_steps = params.timesteps
        self.spikes = {p.name: np.zeros((t_steps, p.n_out), dtype=np.uint8)
                       for p in params.layers if p.fire}
        self.step = {p.name: 0 for p in params.layers}
        self.errors: list[str] = []

    def on_tap(self, name: str, payload: int) -> None:
        kind, index = unpack_event(payload)
        t = self.step[name]
        if t >= self._params.timesteps:
            self.errors.append(f"layer {name}: event after the last step")
            return
        if kind == _STEP_END:
            self.step[name] = t + 1
        elif name not in self.spikes:
            self.errors.append(f"layer {name}: readout layer emitted a spike")
        elif self.spikes[name][t, index]:
            self.errors.append(f"layer {name}: spike {index} at step {t} emitted twice")
        else:
            self.spikes[name][t, index] = 1


@dataclass
class RtlResult:
    """What an RTL run reports, shaped like :class:`spikeforge.reference.RefResult`."""

    spikes: dict[str, np.ndarray]
    membrane: dict[str, np.ndarray]
    counters: dict[str, dict[str, np.ndarray]]
    cycles: np.ndarray
    errors: list[str] = field(default_factory=list)
    predictions: np.ndarray | None = None  # the top's `prediction` port per sample

    @classmethod
    def empty(cls, params: NetworkParams, n: int) -> RtlResult:
        t_steps = params.timesteps
        return cls(
            spikes={p.name: np.zeros((n, t_steps, p.n_out), dtype=np.uint8)
                    for p in params.layers if p.fire},
            membrane={p.name: np.zeros((n, p.n_out), dtype=np.int64) for p in params.layers},
            counters={p.name: {c: np.zeros(n, dtype=np.int64) for c in COUNTERS}
                      for p in params.layers},
            cycles=np.zeros(n, dtype=np.int64),
            predictions=np.zeros(n, dtype=np.int64),
        )

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = {f"spikes.{k}": v for k, v in self.spikes.items()}
        out |= {f"membrane.{k}": v for k, v in self.membrane.items()}
        for name, cs in self.counters.items():
            out |= {f"counters.{name}.{c}": v for c, v in cs.items()}
        out["cycles"] = self.cycles
        if self.predictions is not None:
            out["predictions"] = self.predictions
        out["errors"] = np.array(self.errors, dtype=str)
        return out

    @classmethod
    def from_npz_dict(cls, d) -> RtlResult:
        spikes, membrane, counters = {}, {}, {}
        for key in d:
            part = key.split(".")
            if part[0] == "spikes":
                spikes[part[1]] = np.asarray(d[key])
            elif part[0] == "membrane":
                membrane[part[1]] = np.asarray(d[key])
            elif part[0] == "counters":
                counters.setdefault(part[1], {})[part[2]] = np.asarray(d[key])
        return cls(spikes=spikes, membrane=membrane, counters=counters,
                   cycles=np.asarray(d["cycles"]), errors=[str(e) for e in d["errors"]],
                   predictions=np.asarray(d["predictions"]) if "predictions" in d else None)


@dataclass(frozen=True)
class Mismatch:
    """The first difference found in one sample."""

    sample: int
    what: str  # "spikes", "membrane", "counter", "protocol"
    layer: str
    detail: str

    def __str__(self) -> str:
        return f"sample {self.sample}: {self.what} of layer {self.layer}: {self.detail}"


def expected(qnet: QNet, spikes: np.ndarray, layout: HardwareLayout | None = None) -> RefResult:
    """The reference's answer for the hardware of ``layout`` (default: one tile per layer).

    Spikes and membranes do not depend on the layout; ``synaptic_events`` and
    ``weight_reads`` count the rows and synapses that hardware actually visits.
    """
    layout = HardwareLayout.default(qnet) if layout is None else layout
    return simulate(qnet, spikes, layout.visits())


def compare(ref: RefResult, rtl: RtlResult) -> list[Mismatch]:
    """One :class:`Mismatch` per sample whose spikes, membranes or counters differ."""
    found: dict[int, Mismatch] = {}

    def note(n: int, what: str, layer: str, detail: str) -> None:
        found.setdefault(n, Mismatch(n, what, layer, detail))

    for err in rtl.errors:
        n = int(err.split(":")[0].split()[-1]) if err.startswith("sample") else -1
        note(n, "protocol", "-", err)
    for name, ref_s in ref.spikes.items():
        diff = np.argwhere(ref_s != rtl.spikes[name])
        for n, t, j in diff:
            note(int(n), "spikes", name,
                 f"first difference at step {t}, neuron {j}: reference {ref_s[n, t, j]}, "
                 f"RTL {rtl.spikes[name][n, t, j]}")
    for name, ref_v in ref.membrane.items():
        for n, j in np.argwhere(ref_v != rtl.membrane[name]):
            note(int(n), "membrane", name,
                 f"final membrane of neuron {j}: reference {ref_v[n, j]}, "
                 f"RTL {rtl.membrane[name][n, j]}")
    if rtl.predictions is not None:
        for n in np.flatnonzero(ref.predictions != rtl.predictions):
            note(int(n), "prediction", "-", f"reference class {ref.predictions[n]}, "
                 f"RTL {rtl.predictions[n]}")
    for name, cs in ref.counters.items():
        for c, ref_c in cs.items():
            for n in np.flatnonzero(ref_c != rtl.counters[name][c]):
                note(int(n), "counter", name,
                     f"{c}: reference {ref_c[n]}, RTL {rtl.counters[name][c][n]}")
    return [found[k] for k in sorted(found)]
