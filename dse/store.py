"""Every evaluated point, one JSON line each, appended and fsynced as it finishes.

``points.jsonl`` in the study folder is the study's memory: a restarted study
reads it and never evaluates a stored point again. Each line holds the point's
key (a hash of its full settings), its settings, the study fingerprint, the
evaluation record and ``sum``, a checksum of the rest of the line.

The file is append-only: it is never truncated or rewritten. A line that
cannot be used (torn by a kill in the middle of a write, damaged bytes, not
JSON, not a record, a wrong checksum) is skipped with one warning line naming
the file and the line; every other point is reused. Each append is one write of
a whole line, flushed and fsynced; when the file does not end with a newline
(a line torn by a crash) the append starts with one, so the new line stands on
its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

from spikeforge.errors import SpikeforgeError
from spikeforge.jsonio import dumps

__all__ = ["STATUSES", "PointStore"]

STATUSES = ("ok", "infeasible", "failed")
MAX_WARNINGS = 20  # warning lines per load; further bad lines are counted in one more line


def _checksum(rec: dict[str, Any]) -> str:
    body = {k: v for k, v in rec.items() if k != "sum"}
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _problem(rec: Any) -> str | None:
    """Why ``rec`` is not a usable point record (None when it is)."""
    if not isinstance(rec, dict):
        return f"a JSON {type(rec).__name__}, not a point record"
    for name, kind in (("key", str), ("fingerprint", str), ("settings", dict),
                       ("status", str)):
        if name not in rec:
            return f"no {name!r}"
        if not isinstance(rec[name], kind):
            return f"{name!r} is not a {'string' if kind is str else 'mapping'}"
    if rec["status"] not in STATUSES:
        return "unknown status"
    for name in ("metrics", "seconds"):
        v = rec.get(name, {})
        if not isinstance(v, dict) or not all(x is None or _is_number(x) for x in v.values()):
            return f"{name!r} is not a mapping of numbers"
    for name in ("message", "worker"):
        if not isinstance(rec.get(name, ""), str):
            return f"{name!r} is not a string"
    if "sum" in rec and rec["sum"] != _checksum(rec):
        return "checksum does not match (a damaged line)"
    return None


class PointStore:
    """Append-only JSON-lines store of evaluated points, keyed by point key.

    Parameters
    ----------
    path : path-like
        The ``points.jsonl`` file (created on the first :meth:`add`).
    fingerprint : str
        The study's fingerprint (:meth:`~spikeforge.dse.study.Study.fingerprint`):
        records made under another base, metrics or constraints are not reused.

    Attributes
    ----------
    other : int
        Records of another study version (ignored).
    skipped : list of int
        Line numbers (1-based) that could not be used (each warned about once).
    """

    def __init__(self, path: str | os.PathLike[str], fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self._records: dict[str, dict[str, Any]] = {}
        self.other = 0
        self.skipped: list[int] = []
        self._load()

    def _warn(self, lineno: int, why: str) -> None:
        self.skipped.append(lineno)
        if len(self.skipped) <= MAX_WARNINGS:
            print(f"spikeforge: warning: {self.path}: line {lineno}: {why}; skipped",
                  file=sys.stderr)

    def _read(self) -> bytes | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise SpikeforgeError(f"{self.path}: cannot be read ({e.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise SpikeforgeError(f"{self.path}: is not a regular file")
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise SpikeforgeError(f"{self.path}: cannot be read ({e.strerror})") from None

    def _load(self) -> None:
        data = self._read()
        if not data:
            return
        for lineno, line in enumerate(data.split(b"\n"), start=1):
            if not line.strip():
                continue  # blank, or the empty tail after the last newline
            try:
                rec = json.loads(line, parse_constant=_no_constant)
            except UnicodeDecodeError:
                self._warn(lineno, "not UTF-8 (damaged bytes)")
                continue
            except (ValueError, RecursionError):
                torn = lineno == data.count(b"\n") + 1
                self._warn(lineno, "not valid JSON (" + ("torn by an interrupted write"
                                                         if torn else "a damaged line") + ")")
                continue
            why = _problem(rec)
            if why is not None:
                self._warn(lineno, why)
                continue
            if rec["fingerprint"] != self.fingerprint:
                self.other += 1
                continue
            self._records.setdefault(rec["key"], rec)
        extra = len(self.skipped) - MAX_WARNINGS
        if extra > 0:
            print(f"spikeforge: warning: {self.path}: {extra} more unusable lines skipped",
                  file=sys.stderr)

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def records(self) -> list[dict[str, Any]]:
        """Stored records in the order they were evaluated."""
        return list(self._records.values())

    def add(self, key: str, settings: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """Append one evaluated point (one write of a whole line, fsynced before returning)."""
        if key in self._records:
            raise SpikeforgeError(f"point {key} is already stored: it was evaluated twice")
        rec = {"key": key, "fingerprint": self.fingerprint, "settings": settings} | {
            k: v for k, v in record.items() if k not in ("key", "sum")}
        rec.setdefault("metrics", {})
        rec.setdefault("seconds", {})
        # strict JSON: a non-finite figure is stored as null (missing); the record kept in
        # memory is exactly what a later load reads back
        rec = json.loads(dumps(rec, indent=None))
        rec["sum"] = _checksum(rec)
        line = dumps(rec, indent=None, sort_keys=True).encode() + b"\n"
        self._append(line)
        self._records[key] = rec
        return rec

    def _append(self, line: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as e:
            raise SpikeforgeError(f"{self.path}: cannot be written ({e.strerror})") from None
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a torn last line: do not glue onto it
            view = memoryview(line)
            while view:  # one write; a short one (disk full) continues the same line
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as e:
            raise SpikeforgeError(f"{self.path}: cannot append a point ({e.strerror})") from None
        finally:
            os.close(fd)
