"""The deployable integer network (QNet): data classes, validation, files.

This module is the contract of docs/QNET.md in code. A QNet is plain
data (numpy integers and small scalars); loading it needs neither torch nor
Amaranth. Every field is validated on construction, so an object that exists is
a valid network; errors name the layer and the field.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spikeforge.errors import ConfigError, QNetError
from spikeforge.staging import file_mode
from spikeforge.yamlio import read_yaml, short

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


# ----------------------------------------------------------------------------- files


def qnet_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Return ``(NAME.qnet.yaml, NAME.qnet.npz)`` for any of the two or the stem."""
    p = Path(path)
    s = str(p)
    for suffix in (".qnet.yaml", ".qnet.npz", ".qnet"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
            break
    return Path(s + ".qnet.yaml"), Path(s + ".qnet.npz")


def _layer_record(layer: Layer) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "name": layer.name,
        "kind": layer.kind.value,
        "n_in": layer.n_in,
        "n_out": layer.n_out,
        "weight_bits": layer.weight_bits,
        "membrane_bits": layer.membrane_bits,
        "leak_shifts": list(layer.leak_shifts),
        "reset": layer.reset.value,
        "fire": layer.fire,
        "bias": layer.bias is not None,
    }
    rec["threshold"] = "per-neuron" if isinstance(layer.threshold, np.ndarray) else layer.threshold
    return rec


def _layer_arrays(layer: Layer) -> dict[str, np.ndarray]:
    arrays = {f"{layer.name}.weights": layer.weights}
    if layer.bias is not None:
        arrays[f"{layer.name}.bias"] = layer.bias
    if isinstance(layer.threshold, np.ndarray):
        arrays[f"{layer.name}.threshold"] = layer.threshold
    return arrays


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; saved files follow the umask
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_qnet(net: QNet, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``NAME.qnet.yaml`` and ``NAME.qnet.npz`` atomically; return both paths."""
    ypath, npath = qnet_paths(path)
    doc = {
        "format": FORMAT,
        "name": net.name,
        "timesteps": net.timesteps,
        "input": {
            "size": net.input.size,
            "encoding": net.input.encoding.value,
            **({"shape": list(net.input.shape)} if net.input.shape else {}),
        },
        "layers": [_layer_record(layer) for layer in net.layers],
    }
    if net.meta:
        doc["meta"] = net.meta
    arrays: dict[str, np.ndarray] = {}
    for layer in net.layers:
        arrays.update(_layer_arrays(layer))
    _atomic_write(npath, lambda f: np.savez_compressed(f, **arrays))
    text = yaml.safe_dump(doc, sort_keys=False).encode()
    _atomic_write(ypath, lambda f: f.write(text))
    return ypath, npath


_TOP_KEYS = ("format", "name", "timesteps", "input", "layers", "meta")
_INPUT_KEYS = ("size", "encoding", "shape")
_LAYER_KEYS = (
    "name", "kind", "n_in", "n_out", "weight_bits", "membrane_bits", "leak_shifts",
    "reset", "fire", "bias", "threshold",
)


class NpzError(ValueError):
    """An NPZ archive that spikeforge will not read; the message does not name the file."""


def inspect_npz(path: str | os.PathLike[str]) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in an NPZ archive, read from the headers only.

    Nothing is allocated or unpickled: an archive member that is not a ``.npy``
    array, holds Python objects (``dtype=object``, which only pickling can
    load), or repeats a name raises :class:`NpzError`.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise NpzError(f"cannot be read as NPZ ({e.__class__.__name__})") from None
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zf:
        for info in zf.infolist():
            key = info.filename.removesuffix(".npy")
            if key in out:
                raise NpzError(f"array {short(key)} appears twice")
            try:
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise NpzError(f"array {short(key)}: .npy version {version} is not "
                                       "supported")
            except NpzError:
                raise
            except Exception as e:  # zipfile and numpy raise several types
                raise NpzError(f"member {short(key)} is not a numpy array "
                               f"({e.__class__.__name__})") from None
            if dtype.hasobject:
                raise NpzError(f"array {short(key)} holds Python objects (dtype {dtype}); "
                               "such arrays are never unpickled")
            out[key] = (tuple(int(d) for d in shape), dtype)
    return out


def _first_unknown(mapping: dict, known: tuple[str, ...]) -> str | None:
    unknown = [k for k in mapping if k not in known]
    return min((k if isinstance(k, str) and k.isprintable() and len(k) <= 40 else short(k, 40)
                for k in unknown), default=None)


def load_qnet(path: str | os.PathLike[str]) -> QNet:
    """Load and validate a QNet; raise :class:`QNetError` naming the file, layer and field.

    Unknown fields (at the top, under ``input`` and in a layer) are refused, as
    are arrays in the NPZ that no layer uses; see ``docs/QNET.md``.
    """
    ypath, npath = qnet_paths(path)
    try:
        return _load(ypath, npath)
    except QNetError as e:
        if e.file is None:
            e.file = str(ypath)
        raise


def _read_arrays(npath: Path) -> dict[str, np.ndarray]:
    try:
        headers = inspect_npz(npath)
    except NpzError as e:
        raise QNetError("network", "npz", str(e), file=str(npath)) from None
    total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values())
    if total > MAX_NPZ_BYTES:
        raise QNetError("network", "npz", f"arrays hold {total:,} bytes; a QNet is limited to "
                                          f"{MAX_NPZ_BYTES:,}", file=str(npath))
    try:
        with open(npath, "rb") as f, np.load(f, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except Exception as e:  # numpy raises several types for a damaged archive
        raise QNetError("network", "npz", f"cannot be read ({e.__class__.__name__})",
                        file=str(npath)) from None


def _enum(cls, value: Any, layer: str, field_name: str, default: str):
    try:
        return cls(default if value is None else value)
    except (ValueError, TypeError):
        choices = ", ".join(repr(m.value) for m in cls)
        raise QNetError(layer, field_name, f"unknown value {short(value)} (choose from "
                                           f"{choices})") from None


def _load(ypath: Path, npath: Path) -> QNet:
    for p in (ypath, npath):
        if not p.is_file():
            raise QNetError("network", "file", "does not exist" if not p.exists()
                            else "is not a regular file", file=str(p))
    try:
        doc = read_yaml(ypath)
    except ConfigError as e:
        field = e.field if e.field not in ("", "-") else "yaml"
        raise QNetError("network", field, e.message, file=str(ypath)) from None
    except yaml.YAMLError as e:  # e.g. a NUL byte, refused before read_yaml's own checks
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise QNetError("network", "yaml", f"is not valid YAML{at}", file=str(ypath)) from None
    if not isinstance(doc, dict):
        raise QNetError("network", "yaml", "must be a mapping", file=str(ypath))
    bad = _first_unknown(doc, _TOP_KEYS)
    if bad is not None:
        raise QNetError("network", bad, f"is not a known field (known: {', '.join(_TOP_KEYS)})")
    if doc.get("format") != FORMAT:
        raise QNetError("network", "format", f"must be {FORMAT!r}, not {short(doc.get('format'))}")
    default_name = ypath.name.removesuffix(".qnet.yaml")
    net_name = doc.get("name", default_name if check_name(default_name) is None else "qnet")
    why = check_name(net_name)
    if why:
        raise QNetError("network", "name", why)
    meta = doc.get("meta")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise QNetError("network", "meta", f"must be a mapping, not {short(meta)}")
    t = doc.get("timesteps")
    if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t <= MAX_TIMESTEPS:
        raise QNetError("network", "timesteps",
                        f"must be an integer in 1..{MAX_TIMESTEPS}, not {short(t)}")

    inp = doc.get("input")
    if not isinstance(inp, dict) or "size" not in inp:
        raise QNetError("network", "input", "must be a mapping with 'size'")
    bad = _first_unknown(inp, _INPUT_KEYS)
    if bad is not None:
        raise QNetError("input", bad, f"is not a known field (known: {', '.join(_INPUT_KEYS)})")
    encoding = _enum(InputEncoding, inp.get("encoding"), "input", "encoding", "spikes")
    input_spec = InputSpec(size=inp["size"], encoding=encoding, shape=inp.get("shape"))

    recs = doc.get("layers")
    if not isinstance(recs, list) or not recs:
        raise QNetError("network", "layers", "must be a non-empty list")
    arrays = _read_arrays(npath)
    used: set[str] = set()

    def array(layer: str, field_name: str) -> np.ndarray:
        key = f"{layer}.{field_name}"
        if key not in arrays:
            raise QNetError(layer, field_name, f"array {key!r} missing from {npath.name}")
        used.add(key)
        return arrays[key]

    layers = []
    for i, rec in enumerate(recs):
        if not isinstance(rec, dict):
            raise QNetError(f"layers[{i}]", "layer", "must be a mapping")
        if "name" not in rec:
            raise QNetError(f"layers[{i}]", "name", "is missing")
        name = rec["name"]
        why = check_name(name)
        if why:
            raise QNetError(f"layers[{i}]", "name", why)
        bad = _first_unknown(rec, _LAYER_KEYS)
        if bad is not None:
            raise QNetError(name, bad, "is not a known layer field")
        for key in ("n_in", "n_out", "weight_bits", "membrane_bits", "threshold"):
            if key not in rec:
                raise QNetError(name, key, "is missing")
        kind = _enum(LayerKind, rec.get("kind"), name, "kind", "dense")
        reset = _enum(Reset, rec.get("reset"), name, "reset", "zero")
        threshold = rec["threshold"]
        if isinstance(threshold, str):
            if threshold != "per-neuron":
                raise QNetError(name, "threshold", f"must be an integer or 'per-neuron', not "
                                                   f"{short(threshold)}")
            threshold = array(name, "threshold")
        has_bias = rec.get("bias", False)
        if not isinstance(has_bias, bool):
            raise QNetError(name, "bias", f"must be true or false, not {short(has_bias)}")
        shifts = rec.get("leak_shifts", [])
        if not isinstance(shifts, list):
            raise QNetError(name, "leak_shifts", f"must be a list, not {short(shifts)}")
        layers.append(
            Layer(
                name=name, kind=kind, n_in=rec["n_in"], n_out=rec["n_out"],
                weight_bits=rec["weight_bits"], membrane_bits=rec["membrane_bits"],
                weights=array(name, "weights"), threshold=threshold,
                bias=array(name, "bias") if has_bias else None,
                leak_shifts=tuple(shifts), reset=reset, fire=rec.get("fire", True),
            )
        )
    extra = sorted(set(arrays) - used)
    if extra:
        raise QNetError("network", "npz", f"array {short(extra[0], 40)} is not used by any layer"
                        + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
                        file=str(npath))
    return QNet(layers=tuple(layers), timesteps=t, input=input_spec, name=net_name,
                meta=meta)

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
