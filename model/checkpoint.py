"""Training checkpoints that load without running code, and atomic output files.

A checkpoint holds tensors and plain containers only (dicts, lists, str, int,
float, bool, None), so it is read with ``torch.load(weights_only=True)``: a
crafted pickle cannot run anything. What it holds is then checked against the
model and optimiser the current config builds (keys, types, tensor shapes and
dtypes) and against the config's fingerprint before any of it is used; each
failure is one :class:`~spikeforge.errors.SpikeforgeError` line naming the
checkpoint file and the field.

Every file the trainer writes goes through :func:`write_atomic`: a temporary
file beside the target, flushed and fsynced, given the umask's mode, then
renamed over the target, so a crash, Ctrl-C or SIGTERM leaves the old file or
the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from spikeforge.errors import SpikeforgeError
from spikeforge.staging import file_mode

__all__ = [
    "FORMAT",
    "config_fingerprint",
    "load_checkpoint",
    "resumable",
    "save_checkpoint",
    "write_atomic",
    "write_text_atomic",
]

FORMAT = "spikeforge-checkpoint/1"
_KEYS = {"format", "fingerprint", "config", "epoch", "history", "model", "optimizer",
         "scheduler"}
_HISTORY_KEYS = {"epoch", "loss", "train_accuracy", "test_accuracy", "train_seconds", "lr"}
# optimiser state per parameter, as torch writes it
_OPT_STATE = {torch.optim.Adam: {"step", "exp_avg", "exp_avg_sq"},
              torch.optim.SGD: {"momentum_buffer"}}


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file, then rename it into place."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise SpikeforgeError(f"{path}: cannot be written ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode())  # mkstemp makes 0600; outputs follow the umask
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # disk full, the folder gone or made read-only
            raise SpikeforgeError(f"{path}: cannot be written ({e.strerror or e}); "
                                  "the previous file, if any, is unchanged") from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_text_atomic(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    write_atomic(path, lambda f: f.write(data))


def resumable(doc: dict) -> dict:
    """What must not change on resume: all but ``train.epochs``, ``eval`` and ``export``."""
    keep = {k: v for k, v in doc.items() if k not in ("eval", "export")}
    return {**keep, "train": {k: v for k, v in doc["train"].items() if k != "epochs"}}


def config_fingerprint(doc: dict) -> str:
    """SHA-256 of the resumable part of a validated config (``model_dump(mode="json")``)."""
    text = json.dumps(resumable(doc), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def save_checkpoint(path: Path, *, config: dict, epoch: int, history: list[dict],
                    model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> None:
    """Write a checkpoint of plain types and tensors only, atomically."""
    doc = {"format": FORMAT, "fingerprint": config_fingerprint(config), "config": config,
           "epoch": int(epoch), "history": _plain(history), "model": model.state_dict(),
           "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    write_atomic(path, lambda f: torch.save(doc, f))


def _plain(v: Any) -> Any:
    """Python scalars in place of numpy/torch scalars (the safe loader takes plain types)."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"a checkpoint holds plain values, not {type(v).__name__}")


class _Bad(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def load_checkpoint(path: Path, *, fingerprint: str, model: nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler: Any) -> tuple[list[dict], int]:
    """Load ``path`` into ``model``, ``optimizer`` and ``scheduler``; return ``(history, epoch)``.

    Nothing is loaded unless the whole file checks out: a damaged file, a
    pickle holding anything but tensors and plain values, a missing or
    mistyped field, a tensor of another shape or dtype, or another config's
    fingerprint is one :class:`SpikeforgeError` line naming the file and field.
    """
    path = Path(path)
    if not path.is_file():
        raise SpikeforgeError(f"{path}: no checkpoint to resume from")
    limit = 16 * sum(t.numel() * t.element_size() for t in model.state_dict().values()) + 2**26
    size = path.stat().st_size
    if size > limit:
        raise SpikeforgeError(f"{path}: is {size} bytes, more than a checkpoint of this "
                              f"network can be ({limit}); not read")
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols: one line only
            warnings.simplefilter("ignore")
            ck = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001 -- torch raises pickle, zip, EOF, Runtime errors
        found = re.search(r"GLOBAL ([\w.]{1,80})", str(e))
        why = (f"it holds a pickled object ({found.group(1)}), not only tensors and plain "
               "values; nothing of it was run" if found
               else f"damaged or not a checkpoint ({e.__class__.__name__})")
        raise SpikeforgeError(f"{path}: cannot be read as a spikeforge checkpoint: {why}"
                              ) from None
    try:
        _check(ck, fingerprint, model, optimizer, scheduler)
    except _Bad as e:
        raise SpikeforgeError(f"{path}: field {e.field}: {e.message}") from None
    try:
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scheduler.load_state_dict(ck["scheduler"])
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as e:
        first = " ".join(str(e).split())[:160]
        raise SpikeforgeError(f"{path}: does not fit the network: {first}") from None
    return ck["history"], ck["epoch"]


def _tname(v: Any) -> str:
    return type(v).__name__


def _check(ck: Any, fingerprint: str, model: nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: Any) -> None:
    if not isinstance(ck, dict):
        raise _Bad("-", f"must be a mapping, not {_tname(ck)}")
    if ck.get("format") != FORMAT:
        raise _Bad("format", f"is not {FORMAT!r} (written by another version? train anew)")
    missing, extra = _KEYS - set(ck), set(ck) - _KEYS
    if missing:
        raise _Bad(sorted(missing)[0], "is missing")
    if extra:
        raise _Bad(str(sorted(map(str, extra))[0]), "unknown key")
    if not isinstance(ck["fingerprint"], str):
        raise _Bad("fingerprint", f"must be a string, not {_tname(ck['fingerprint'])}")
    if ck["fingerprint"] != fingerprint:
        raise _Bad("fingerprint", "was written by a different config (only train.epochs, "
                   "eval and export may change on resume)")
    if not isinstance(ck["config"], dict):
        raise _Bad("config", f"must be a mapping, not {_tname(ck['config'])}")
    epoch = ck["epoch"]
    if not _is_int(epoch) or not 1 <= epoch <= 10000:
        raise _Bad("epoch", f"must be an integer in 1..10000, not {_short(epoch)}")
    _check_history(ck["history"], epoch)
    _like(ck["model"], model.state_dict(), "model", exact_keys=True)
    _check_optimizer(ck["optimizer"], optimizer)
    ref = scheduler.state_dict()
    sch = ck["scheduler"]
    _like(sch, ref, "scheduler", exact_keys=True)
    for k in ("last_epoch", "_step_count"):
        if sch[k] < 0:
            raise _Bad(f"scheduler.{k}", f"must be >= 0, not {sch[k]}")
    if sch["base_lrs"] != ref["base_lrs"]:
        raise _Bad("scheduler.base_lrs", f"are {_short(sch['base_lrs'])}, the config gives "
                   f"{_short(ref['base_lrs'])}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _short(v: Any) -> str:
    from spikeforge.yamlio import short

    return short(v)


def _check_history(h: Any, epoch: int) -> None:
    if not isinstance(h, list):
        raise _Bad("history", f"must be a list, not {_tname(h)}")
    if len(h) != epoch:
        raise _Bad("history", f"has {len(h)} epochs, the checkpoint says {epoch}")
    for i, e in enumerate(h):
        where = f"history.{i}"
        if not isinstance(e, dict) or set(e) != _HISTORY_KEYS:
            raise _Bad(where, f"must be a mapping with keys {sorted(_HISTORY_KEYS)}")
        if e["epoch"] != i + 1 or not _is_int(e["epoch"]):
            raise _Bad(f"{where}.epoch", f"must be {i + 1}, not {_short(e['epoch'])}")
        for k in ("loss", "train_accuracy", "train_seconds", "lr"):
            if not _is_num(e[k]):
                raise _Bad(f"{where}.{k}", f"must be a number, not {_tname(e[k])}")
        acc = e["test_accuracy"]
        if not isinstance(acc, dict) or not all(
                isinstance(t, str) and t.isdigit() and _is_num(a) for t, a in acc.items()):
            raise _Bad(f"{where}.test_accuracy", "must map step counts to numbers")


def _like(v: Any, ref: Any, where: str, exact_keys: bool = False) -> None:
    """``v`` has the structure of ``ref``: same keys, types, tensor shapes and dtypes."""
    if isinstance(ref, torch.Tensor):
        if not isinstance(v, torch.Tensor):
            raise _Bad(where, f"must be a tensor, not {_tname(v)}")
        if v.shape != ref.shape or v.dtype != ref.dtype:
            raise _Bad(where, f"is a {v.dtype} tensor of shape {list(v.shape)}, the network "
                       f"has {ref.dtype} {list(ref.shape)}")
        if v.layout != torch.strided or v.is_quantized:
            raise _Bad(where, "must be a plain dense tensor")
    elif isinstance(ref, dict):
        if not isinstance(v, dict):
            raise _Bad(where, f"must be a mapping, not {_tname(v)}")
        missing = [k for k in ref if k not in v]
        extra = [k for k in v if k not in ref]
        if missing:
            raise _Bad(f"{where}.{missing[0]}", "is missing")
        if extra and exact_keys:
            raise _Bad(f"{where}.{_short(extra[0])}", "unknown key")
        for k in ref:
            _like(v[k], ref[k], f"{where}.{k}")
    elif isinstance(ref, (list, tuple)):
        if not isinstance(v, (list, tuple)) or len(v) != len(ref):
            raise _Bad(where, f"must be a list of {len(ref)}, not {_short(v)}")
        for i, (a, b) in enumerate(zip(v, ref)):
            _like(a, b, f"{where}.{i}")
    elif isinstance(ref, bool) or ref is None or isinstance(ref, str):
        if type(v) is not type(ref):
            raise _Bad(where, f"must be {_tname(ref)}, not {_tname(v)}")
    elif _is_int(ref):
        if not _is_int(v):
            raise _Bad(where, f"must be an integer, not {_short(v)}")
    elif isinstance(ref, float):
        if not _is_num(v) or not math.isfinite(v):
            raise _Bad(where, f"must be a finite number, not {_short(v)}")
    else:  # nothing else is written
        raise _Bad(where, f"holds a {_tname(v)}")


def _check_optimizer(v: Any, optimizer: torch.optim.Optimizer) -> None:
    ref = optimizer.state_dict()
    if not isinstance(v, dict) or set(v) != {"state", "param_groups"}:
        raise _Bad("optimizer", "must be a mapping with keys param_groups and state")
    _like(v["param_groups"], ref["param_groups"], "optimizer.param_groups")
    for i, (g, r) in enumerate(zip(v["param_groups"], ref["param_groups"])):
        extra = set(g) - set(r)
        if extra:
            raise _Bad(f"optimizer.param_groups.{i}.{sorted(map(str, extra))[0]}",
                       "unknown key")
        for k in r:  # all but the scheduled lr follow from the config
            if k != "lr" and g[k] != r[k]:
                raise _Bad(f"optimizer.param_groups.{i}.{k}",
                           f"is {_short(g[k])}, the config gives {_short(r[k])}")
        if g["lr"] < 0:
            raise _Bad(f"optimizer.param_groups.{i}.lr", f"must be >= 0, not {g['lr']}")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    names = next((n for cls, n in _OPT_STATE.items() if isinstance(optimizer, cls)), None)
    state = v["state"]
    if not isinstance(state, dict):
        raise _Bad("optimizer.state", f"must be a mapping, not {_tname(state)}")
    for k, s in state.items():
        where = f"optimizer.state.{_short(k)}"
        if not _is_int(k) or not 0 <= k < len(params):
            raise _Bad(where, f"is no parameter index (0..{len(params) - 1})")
        if not isinstance(s, dict) or (names is not None and set(s) != names):
            raise _Bad(where, f"must be a mapping with keys {sorted(names or [])}")
        p = params[k]
        for n, t in s.items():
            if n == "step":
                ok = isinstance(t, torch.Tensor) and t.shape == () and t.dtype == torch.float32
                if not ok:
                    raise _Bad(f"{where}.step", "must be a float32 scalar tensor")
            elif t is not None or n != "momentum_buffer":
                _like(t, p.detach(), f"{where}.{n}")
