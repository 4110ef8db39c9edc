"""Strict JSON out: NaN and infinities become ``null``; the text is always valid JSON."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps"]


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and hasattr(v, "dtype") and getattr(v, "ndim", 1) == 0:
        return _clean(v.item())  # numpy scalars
    if hasattr(v, "tolist") and hasattr(v, "dtype"):
        return _clean(v.tolist())  # numpy arrays
    return v


def dumps(obj: Any, indent: int | None = 2, **kw: Any) -> str:
    """``json.dumps`` that writes ``null`` for NaN/inf and never invalid JSON."""
    return json.dumps(_clean(obj), indent=indent, allow_nan=False, **kw)
