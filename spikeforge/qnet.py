"""The deployable integer network (QNet): data classes, validation, files.

This module is the contract of ``shared/design/SPEC.md`` in code. A QNet is plain
data (numpy integers and small scalars); loading it needs neither torch nor
Amaranth. Every field is validated on construction, so an object that exists is
a valid network; errors name the layer and the field.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spikeforge.errors import QNetError

__all__ = [
    "FORMAT",
    "InputEncoding",
    "InputSpec",
    "Layer",
    "LayerKind",
    "QNet",
    "Reset",
    "load_qnet",
    "qnet_paths",
    "requantize",
    "save_qnet",
]

FORMAT = "qnet/1"
_MIN_WB, _MAX_WB = 2, 16
_MAX_VB = 48  # keeps every intermediate of the reference inside int64


class LayerKind(enum.Enum):
    DENSE = "dense"


class Reset(enum.Enum):
    ZERO = "zero"
    SUBTRACT = "subtract"
    NONE = "none"


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
        if not isinstance(self.size, int) or self.size < 1:
            raise QNetError("input", "size", f"must be a positive integer, not {self.size!r}")


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of a QNet (SPEC.md §1). Arrays are int64 and read-only."""

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
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise QNetError(repr(self.name), "name", "must be an identifier-like string")
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
        if self.fire and self.reset is Reset.NONE:
            raise err("reset", "a spiking layer (fire: true) needs reset 'zero' or 'subtract'")
        if not self.fire and self.reset is not Reset.NONE:
            raise err("reset", "a readout layer (fire: false) must have reset 'none'")

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
        arr = np.asarray(value)
        if arr.shape != shape:
            raise self._error(field_name, f"has shape {list(arr.shape)}, expected {list(shape)}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.issubdtype(arr.dtype, np.floating) or not np.all(arr == np.round(arr)):
                raise self._error(field_name, f"must hold integers, not {arr.dtype}")
        out = arr.astype(np.int64)
        out.setflags(write=False)
        return out

    # --- derived figures, shared by the reference, the hardware and the tests ---
    @property
    def beta(self) -> float:
        """Leak factor ``1 - sum(2^-k)`` of the float model."""
        return 1.0 - sum(2.0**-k for k in self.leak_shifts)

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
        """Width that holds any input current ``I`` exactly (SPEC.md §2)."""
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
        t = self.timesteps
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise QNetError("network", "timesteps", f"must be a positive integer, not {t!r}")
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


_LAYER_KEYS = {
    "name", "kind", "n_in", "n_out", "weight_bits", "membrane_bits", "leak_shifts",
    "reset", "fire", "bias", "threshold",
}


def load_qnet(path: str | os.PathLike[str]) -> QNet:
    """Load and validate a QNet; raise :class:`QNetError` naming the file, layer and field."""
    ypath, npath = qnet_paths(path)
    try:
        return _load(ypath, npath)
    except QNetError as e:
        if e.file is None:
            e.file = str(ypath)
        raise


def _load(ypath: Path, npath: Path) -> QNet:
    for p in (ypath, npath):
        if not p.is_file():
            raise QNetError("network", "file", "does not exist", file=str(p))
    try:
        doc = yaml.safe_load(ypath.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise QNetError("network", "yaml", f"is not valid YAML{where}", file=str(ypath)) from None
    if not isinstance(doc, dict):
        raise QNetError("network", "yaml", "must be a mapping", file=str(ypath))
    if doc.get("format") != FORMAT:
        raise QNetError("network", "format", f"must be {FORMAT!r}, not {doc.get('format')!r}")
    try:
        with open(npath, "rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # numpy raises several types for a damaged archive
        raise QNetError("network", "npz", f"cannot be read ({e})", file=str(npath)) from None
    inp = doc.get("input")
    if not isinstance(inp, dict) or "size" not in inp:
        raise QNetError("network", "input", "must be a mapping with 'size'")
    try:
        encoding = InputEncoding(inp.get("encoding", "spikes"))
    except ValueError:
        raise QNetError("input", "encoding", f"unknown value {inp.get('encoding')!r}") from None
    shape = inp.get("shape")
    if shape is not None and (not isinstance(shape, list)
                              or not all(isinstance(d, int) and d > 0 for d in shape)):
        raise QNetError("input", "shape", f"must be a list of positive integers, not {shape!r}")
    input_spec = InputSpec(size=inp["size"], encoding=encoding,
                           shape=tuple(shape) if shape else None)
    recs = doc.get("layers")
    if not isinstance(recs, list) or not recs:
        raise QNetError("network", "layers", "must be a non-empty list")
    layers = []
    for i, rec in enumerate(recs):
        if not isinstance(rec, dict):
            raise QNetError(f"layers[{i}]", "layer", "must be a mapping")
        name = rec.get("name", f"layers[{i}]")
        unknown = set(rec) - _LAYER_KEYS
        if unknown:
            raise QNetError(str(name), sorted(unknown)[0], "is not a known layer field")
        for key in ("name", "n_in", "n_out", "weight_bits", "membrane_bits", "threshold"):
            if key not in rec:
                raise QNetError(str(name), key, "is missing")
        try:
            kind = LayerKind(rec.get("kind", "dense"))
        except ValueError:
            raise QNetError(str(name), "kind", f"unknown value {rec.get('kind')!r}") from None
        try:
            reset = Reset(rec.get("reset", "zero"))
        except ValueError:
            raise QNetError(str(name), "reset", f"unknown value {rec.get('reset')!r}") from None
        wkey = f"{name}.weights"
        if wkey not in arrays:
            raise QNetError(str(name), "weights", f"array {wkey!r} missing from {npath.name}")
        threshold = rec["threshold"]
        if threshold == "per-neuron":
            tkey = f"{name}.threshold"
            if tkey not in arrays:
                raise QNetError(str(name), "threshold", f"array {tkey!r} missing")
            threshold = arrays[tkey]
        bias = None
        if rec.get("bias", False):
            bkey = f"{name}.bias"
            if bkey not in arrays:
                raise QNetError(str(name), "bias", f"array {bkey!r} missing")
            bias = arrays[bkey]
        shifts = rec.get("leak_shifts", [])
        if not isinstance(shifts, list):
            raise QNetError(str(name), "leak_shifts", "must be a list")
        layers.append(
            Layer(
                name=name, kind=kind, n_in=rec["n_in"], n_out=rec["n_out"],
                weight_bits=rec["weight_bits"], membrane_bits=rec["membrane_bits"],
                weights=arrays[wkey], threshold=threshold, bias=bias,
                leak_shifts=tuple(shifts), reset=reset, fire=rec.get("fire", True),
            )
        )
    meta = doc.get("meta") or {}
    return QNet(layers=tuple(layers), timesteps=doc.get("timesteps"), input=input_spec,
                name=str(doc.get("name", ypath.name.removesuffix(".qnet.yaml"))), meta=meta)


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
