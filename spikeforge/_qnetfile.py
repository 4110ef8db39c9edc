"""QNet files: ``NAME.qnet.yaml`` + ``NAME.qnet.npz``, saved atomically, loaded strictly.

Part of :mod:`spikeforge.qnet`'s API (import it from there); the rules are in
docs/QNET.md §6 and "The loader".
"""

from __future__ import annotations

import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spikeforge.errors import ConfigError, QNetError
from spikeforge.qnet import (
    FORMAT,
    MAX_NPZ_BYTES,
    MAX_TIMESTEPS,
    InputEncoding,
    InputSpec,
    Layer,
    LayerKind,
    QNet,
    Reset,
    check_name,
)
from spikeforge.staging import file_mode
from spikeforge.yamlio import read_yaml, short

__all__ = ["NpzError", "inspect_npz", "load_qnet", "qnet_paths", "save_qnet"]


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

