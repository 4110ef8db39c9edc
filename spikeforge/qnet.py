"""The deployable integer network (QNet): data classes, validation, files.

(The file format and the strict loader are in :mod:`spikeforge._qnetfile`, re-exported
here: ``save_qnet``, ``load_qnet``, ``qnet_paths``, ``inspect_npz``.)

This module is the contract of docs/QNET.md in code. A QNet is plain
data (numpy integers and small scalars); loading it needs neither torch nor
Amaranth. Every field is validated on construction, so an object that exists is
a valid network; errors name the layer and the field.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from spikeforge.errors import QNetError
from spikeforge.yamlio import short

__all__ = [
    "FORMAT",
    "MAX_NAME",
    "MAX_NPZ_BYTES",
    "MAX_TIMESTEPS",
    "NpzError",
    "InputEncoding",
    "InputSpec",
    "Layer",
    "LayerKind",
    "QNet",
    "RESET_RULES",
    "Reset",
    "ResetRule",
    "SPIKING_RESETS",
    "AtSpike",
    "check_name",
    "inspect_npz",
    "load_qnet",
    "qnet_paths",
    "requantize",
    "save_qnet",
]

FORMAT = "qnet/1"
_MIN_WB, _MAX_WB = 2, 16
_MAX_VB = 48  # keeps every intermediate of the reference inside int64
MAX_TIMESTEPS = 100_000  # steps per sample; the RTL's step counters and the tests assume fewer
MAX_NAME = 64  # characters in a network or layer name (they become Verilog identifiers)
MAX_NPZ_BYTES = 1 << 30  # the arrays of one QNet, uncompressed
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_INT64_MAX = np.iinfo(np.int64).max


def check_name(value: Any) -> str | None:
    """``None`` when ``value`` is a valid network or layer name, else why it is not.

    A name is an ASCII letter followed by letters, digits and ``_``, at most
    :data:`MAX_NAME` characters: it becomes part of Verilog identifiers and NPZ keys.
    """
    if not isinstance(value, str):
        return f"must be a string, not {short(value)}"
    if len(value) > MAX_NAME:
        return f"must be at most {MAX_NAME} characters, not {len(value)}"
    if not _NAME.fullmatch(value):
        return (f"must be an ASCII letter followed by letters, digits or '_', "
                f"not {short(value)}")
    return None


class LayerKind(enum.Enum):
    DENSE = "dense"


class Reset(enum.Enum):
    """How a neuron's membrane is reset; the semantics of each is its :data:`RESET_RULES` entry."""

    ZERO = "zero"
    SUBTRACT = "subtract"
    SUBTRACT_UNLEAKED = "subtract_unleaked"  # snnTorch's subtraction (docs/QNET.md §2.1)
    NONE = "none"


class AtSpike(enum.Enum):
    """What a spike does to the membrane in the step that fires (docs/QNET.md §2)."""

    ZERO = "zero"  # v = 0
    SUBTRACT = "subtract"  # v = v - theta
    KEEP = "keep"  # v unchanged


@dataclass(frozen=True)
class ResetRule:
    """The integer semantics of one reset mode, which every side implements generically.

    Attributes
    ----------
    at_spike : AtSpike
        What happens to ``v`` in the step that fires.
    subtract_next : bool
        ``theta * s_prev`` is subtracted (inside the saturation) at the next update,
        ``s_prev`` being the neuron's spike of the previous step (0 at the start of
        a sample): the neuron keeps one state bit besides its membrane.
    spiking : bool
        A spiking layer (``fire: true``) may use it; otherwise it is a readout's.
    """

    at_spike: AtSpike
    subtract_next: bool = False
    spiking: bool = True

    @property
    def state_bits(self) -> int:
        """State bits per neuron besides the membrane (the previous spike)."""
        return int(self.subtract_next)


RESET_RULES: dict[Reset, ResetRule] = {
    Reset.ZERO: ResetRule(AtSpike.ZERO),
    Reset.SUBTRACT: ResetRule(AtSpike.SUBTRACT),
    # v[t] = beta v[t-1] + I[t] - theta s[t-1]: the threshold leaves at the next update, unleaked
    Reset.SUBTRACT_UNLEAKED: ResetRule(AtSpike.KEEP, subtract_next=True),
    Reset.NONE: ResetRule(AtSpike.KEEP, spiking=False),
}
"""The one table of reset semantics: a new reset mode is a :class:`Reset` value and an entry."""

if set(RESET_RULES) != set(Reset):  # pragma: no cover - a mode without its rule
    raise RuntimeError(f"no RESET_RULES entry for {set(Reset) - set(RESET_RULES)}")

SPIKING_RESETS: tuple[Reset, ...] = tuple(r for r, rule in RESET_RULES.items() if rule.spiking)
"""The modes a spiking layer may use, in table order."""


def _names(modes) -> str:
    names = [f"'{m.value}'" for m in modes]
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


class InputEncoding(enum.Enum):
    """How the samples' input spikes were made (informative: the QNet reads bits)."""

    SPIKES = "spikes"  # spike bits given per step (e.g. Bernoulli rate coding on the host)
    RATE = "rate"


def signed_range(bits: int) -> tuple[int, int]:
    """Return the inclusive range of a two's complement number of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def bits_for_signed(lo: int, hi: int) -> int:
    """Smallest two's complement width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (signed_range(bits)[0] <= lo and hi <= signed_range(bits)[1]):
        bits += 1
    return bits


@dataclass(frozen=True)
class InputSpec:
    """What layer 0 reads: ``size`` input lines, one bit per line per step."""

    size: int
    encoding: InputEncoding = InputEncoding.SPIKES
    shape: tuple[int, ...] | None = None  # e.g. (8, 8) for an image, informative

    def __post_init__(self) -> None:
        size = self.size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise QNetError("input", "size", f"must be a positive integer, not {short(size)}")
        if not isinstance(self.encoding, InputEncoding):
            raise QNetError("input", "encoding", f"must be an InputEncoding, not "
                                                 f"{short(self.encoding)}")
        shape = self.shape
        if shape is not None:
            if not isinstance(shape, list | tuple) or not all(
                    not isinstance(d, bool) and isinstance(d, int) and d > 0 for d in shape):
                raise QNetError("input", "shape",
                                f"must be a list of positive integers, not {short(shape)}")
            shape = tuple(shape) or None
            if shape is not None and math.prod(shape) != size:
                raise QNetError("input", "shape", f"{list(shape)} holds {math.prod(shape)} "
                                                  f"inputs, but size is {size}")
            object.__setattr__(self, "shape", shape)


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of a QNet (docs/QNET.md §1). Arrays are int64 and read-only."""

    name: str
    n_in: int
    n_out: int
    weight_bits: int
    weights: np.ndarray
    threshold: int | np.ndarray
    membrane_bits: int
    leak_shifts: tuple[int, ...] = ()
    reset: Reset = Reset.ZERO
    fire: bool = True
    bias: np.ndarray | None = None
    kind: LayerKind = LayerKind.DENSE

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        err = self._error
        why = check_name(self.name)
        if why:
            raise QNetError(short(self.name, 40), "name", why)
        if not isinstance(self.kind, LayerKind):
            raise err("kind", f"must be a LayerKind, not {self.kind!r}")
        for f in ("n_in", "n_out"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise err(f, f"must be a positive integer, not {v!r}")
        wb = self.weight_bits
        if isinstance(wb, bool) or not isinstance(wb, int) or not _MIN_WB <= wb <= _MAX_WB:
            raise err("weight_bits", f"must be an integer in {_MIN_WB}..{_MAX_WB}, not {wb!r}")
        vb = self.membrane_bits
        if isinstance(vb, bool) or not isinstance(vb, int) or not 2 <= vb <= _MAX_VB:
            raise err("membrane_bits", f"must be an integer in 2..{_MAX_VB}, not {vb!r}")
        if not isinstance(self.reset, Reset):
            raise err("reset", f"must be a Reset, not {self.reset!r}")
        if not isinstance(self.fire, bool):
            raise err("fire", f"must be true or false, not {self.fire!r}")
        if self.fire != RESET_RULES[self.reset].spiking:
            if self.fire:
                raise err("reset", f"a spiking layer (fire: true) needs reset "
                                   f"{_names(SPIKING_RESETS)}")
            readout = [r for r, rule in RESET_RULES.items() if not rule.spiking]
            raise err("reset", f"a readout layer (fire: false) must have reset {_names(readout)}")

        shifts = tuple(self.leak_shifts)
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in shifts):
            raise err("leak_shifts", f"must be integers >= 1, not {list(shifts)!r}")
        if len(set(shifts)) != len(shifts):
            raise err("leak_shifts", f"must be distinct, not {list(shifts)!r}")
        if any(k >= vb for k in shifts):
            raise err("leak_shifts", f"each shift must be below membrane_bits={vb}")
        if sum(2.0**-k for k in shifts) >= 1.0:
            raise err("leak_shifts", "the shifts remove the whole membrane (beta <= 0)")
        set_(self, "leak_shifts", tuple(sorted(shifts)))

        set_(self, "weights", self._int_array("weights", self.weights, (self.n_out, self.n_in)))
        lo, hi = signed_range(wb)
        if self.weights.size and (self.weights.min() < lo or self.weights.max() > hi):
            bad = np.argwhere((self.weights < lo) | (self.weights > hi))[0]
            raise err(
                "weights",
                f"value {int(self.weights[tuple(bad)])} at [{bad[0]}, {bad[1]}] is outside "
                f"the {wb}-bit range [{lo}, {hi}]",
            )
        vlo, vhi = signed_range(vb)
        if self.bias is not None:
            set_(self, "bias", self._int_array("bias", self.bias, (self.n_out,)))
            if self.bias.min() < vlo or self.bias.max() > vhi:
                raise err("bias", f"values must lie in the {vb}-bit membrane range")
        th = self.threshold
        if isinstance(th, np.ndarray) or isinstance(th, list | tuple):
            arr = self._int_array("threshold", th, (self.n_out,))
            if arr.min() < 1 or arr.max() > vhi:
                raise err("threshold", f"values must lie in 1..{vhi} (membrane_bits={vb})")
            set_(self, "threshold", arr)
        else:
            if isinstance(th, bool) or not isinstance(th, int | np.integer):
                raise err("threshold", f"must be an integer, not {th!r}")
            if not 1 <= int(th) <= vhi:
                raise err("threshold", f"must lie in 1..{vhi} (membrane_bits={vb}), not {th}")
            set_(self, "threshold", int(th))

    def _error(self, field_name: str, message: str) -> QNetError:
        return QNetError(self.name, field_name, message)

    def _int_array(self, field_name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
        """``value`` as a read-only int64 array of ``shape``; refused unless every value is
        an integer that int64 holds exactly (no wrapping, no rounding, no NaN)."""
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):  # ragged nested lists
            raise self._error(field_name, "must be a rectangular array of integers") from None
        if arr.shape != shape:
            raise self._error(field_name, f"has shape {list(arr.shape)}, expected {list(shape)}")
        kind = arr.dtype.kind
        if kind == "u":
            if arr.size and int(arr.max()) > _INT64_MAX:
                raise self._error(field_name, f"value {int(arr.max())} does not fit a signed "
                                              "64-bit integer")
        elif kind == "f":
            if not np.all(np.isfinite(arr)):
                raise self._error(field_name, "must hold integers, not NaN or infinity")
            if not np.all(arr == np.round(arr)):
                raise self._error(field_name, f"must hold integers, not fractional {arr.dtype} "
                                              "values")
            if arr.size and float(np.abs(arr).max()) >= 2.0**63:
                raise self._error(field_name, "values do not fit a signed 64-bit integer")
        elif kind != "i":
            raise self._error(field_name, f"must hold integers, not {arr.dtype}")
        out = arr.astype(np.int64)
        out.setflags(write=False)
        return out

    # --- derived figures, shared by the reference, the hardware and the tests ---
    @property
    def beta(self) -> float:
        """Leak factor ``1 - sum(2^-k)`` of the float model (:mod:`spikeforge.leak`)."""
        from spikeforge.leak import beta_from_shifts

        return beta_from_shifts(self.leak_shifts)

    @property
    def thresholds(self) -> np.ndarray:
        """Per-neuron thresholds as an int64 array of length ``n_out``."""
        if isinstance(self.threshold, np.ndarray):
            return self.threshold
        return np.full(self.n_out, self.threshold, dtype=np.int64)

    @property
    def biases(self) -> np.ndarray:
        return self.bias if self.bias is not None else np.zeros(self.n_out, dtype=np.int64)

    @property
    def accumulator_bits(self) -> int:
        """Width that holds any input current ``I`` exactly (docs/QNET.md §2)."""
        return self.weight_bits + math.ceil(math.log2(self.n_in + 1))

    @property
    def membrane_range(self) -> tuple[int, int]:
        return signed_range(self.membrane_bits)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Layer):
            return NotImplemented
        from spikeforge._qnetfile import _layer_arrays, _layer_record  # what a file holds

        return _layer_record(self) == _layer_record(other) and all(
            np.array_equal(a, b)
            for a, b in zip(_layer_arrays(self).values(), _layer_arrays(other).values())
        ) and _layer_arrays(self).keys() == _layer_arrays(other).keys()


@dataclass(frozen=True, eq=False)
class QNet:
    """An ordered list of layers plus the input description and step count."""

    layers: tuple[Layer, ...]
    timesteps: int
    input: InputSpec
    name: str = "qnet"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise QNetError("network", "layers", "must hold at least one layer")
        if not all(isinstance(layer, Layer) for layer in self.layers):
            raise QNetError("network", "layers", "must all be Layer objects")
        why = check_name(self.name)
        if why:
            raise QNetError("network", "name", why)
        if not isinstance(self.meta, dict):
            raise QNetError("network", "meta", f"must be a mapping, not {short(self.meta)}")
        if not isinstance(self.input, InputSpec):
            raise QNetError("network", "input", f"must be an InputSpec, not {short(self.input)}")
        t = self.timesteps
        if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_TIMESTEPS:
            raise QNetError("network", "timesteps",
                            f"must be an integer in 1..{MAX_TIMESTEPS}, not {short(t)}")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise QNetError("network", "layers", f"layer names must be unique: {names}")
        prev = self.input.size
        for layer in self.layers:
            if layer.n_in != prev:
                raise QNetError(
                    layer.name, "n_in", f"is {layer.n_in} but the previous stage gives {prev}"
                )
            prev = layer.n_out
        for layer in self.layers[:-1]:
            if not layer.fire:
                raise QNetError(layer.name, "fire", "only the last layer may be a readout")

    @property
    def n_in(self) -> int:
        return self.input.size

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QNet):
            return NotImplemented
        return (
            self.timesteps == other.timesteps
            and self.input == other.input
            and self.layers == other.layers
        )


def requantize(net: QNet, weight_bits: int, name: str | None = None) -> QNet:
    """Post-training requantization of an integer QNet to narrower weights.

    Each layer's weights, bias and threshold are multiplied by the same factor
    ``(2^(wb-1) - 1) / max|W|`` and rounded (thresholds at least 1), which
    leaves a float network's spikes unchanged (the leak is linear); what
    changes is rounding. Membrane widths are kept. Raises ``QNetError`` for a
    width outside 2..16 or a layer with only zero weights.
    """
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or \
            not 2 <= weight_bits <= 16:
        raise QNetError("-", "weight_bits", f"must be an integer in 2..16, not {weight_bits!r}")
    layers = []
    for layer in net.layers:
        top = int(np.abs(layer.weights).max())
        if top == 0:
            raise QNetError(layer.name, "weights", "are all zero; nothing to scale")
        k = ((1 << (weight_bits - 1)) - 1) / top
        lo, hi = signed_range(layer.membrane_bits)
        theta = np.clip(np.rint(np.asarray(layer.threshold) * k), 1, hi).astype(np.int64)
        bias = None if layer.bias is None else \
            np.clip(np.rint(layer.biases * k), lo, hi).astype(np.int64)
        layers.append(dataclasses.replace(
            layer, weight_bits=weight_bits, weights=np.rint(layer.weights * k).astype(np.int64),
            threshold=theta if np.ndim(layer.threshold) else int(theta), bias=bias))
    return dataclasses.replace(net, layers=tuple(layers), name=name or f"{net.name}_w{weight_bits}")


# The files (format, saving, the strict loader) live in spikeforge._qnetfile and are
# part of this module's API, resolved on first use (that module builds on the classes
# above, so it cannot be imported while this one runs).
_FILE_API = ("NpzError", "inspect_npz", "load_qnet", "qnet_paths", "save_qnet")

if TYPE_CHECKING:  # for readers and type checkers; at run time __getattr__ below
    from spikeforge._qnetfile import NpzError, inspect_npz, load_qnet, qnet_paths, save_qnet


def __getattr__(name: str) -> Any:
    if name in _FILE_API:
        from spikeforge import _qnetfile

        return getattr(_qnetfile, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
