"""Every evaluated point, one JSON line each, appended and flushed as it finishes.

``points.jsonl`` in the study folder is the study's memory: a restarted study
reads it and never evaluates a stored point again. Each line holds the point's
key (a hash of its full settings), its settings, the study fingerprint and the
evaluation record. A line torn by a kill in the middle of a write is dropped
(and cut off the file) when the store is opened; every earlier line stands.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from spikeforge.errors import SpikeforgeError

__all__ = ["PointStore"]


class PointStore:
    """Append-only JSON-lines store of evaluated points, keyed by point key.

    Parameters
    ----------
    path : path-like
        The ``points.jsonl`` file (created when missing).
    fingerprint : str
        The study's fingerprint (:meth:`~spikeforge.dse.study.Study.fingerprint`):
        records made under another base, metrics or constraints are not reused.
    """

    def __init__(self, path: str | os.PathLike[str], fingerprint: str):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self._records: dict[str, dict[str, Any]] = {}
        self.other = 0  # records of another study version, ignored
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # torn last line
            try:
                rec = json.loads(line)
            except ValueError:
                break
            good += len(line)
            if rec.get("fingerprint") != self.fingerprint:
                self.other += 1
                continue
            self._records.setdefault(rec["key"], rec)
        if good != len(data):
            with open(self.path, "r+b") as f:
                f.truncate(good)

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
        """Append one evaluated point (flushed and fsynced before returning)."""
        if key in self._records:
            raise SpikeforgeError(f"point {key} is already stored: it was evaluated twice")
        rec = {"key": key, "fingerprint": self.fingerprint, "settings": settings} | {
            k: v for k, v in record.items() if k != "key"}
        # JSON has no inf/NaN: a non-finite figure is stored as null (missing)
        rec["metrics"] = {k: (v if v is None or math.isfinite(v) else None)
                          for k, v in rec.get("metrics", {}).items()}
        line = json.dumps(rec, sort_keys=True, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._records[key] = rec
        return rec
