"""The one helper every pass's check uses."""

from __future__ import annotations

__all__ = ["require"]


def require(ok: object, message: str) -> None:
    """Raise ``AssertionError(message)`` unless ``ok``.

    A failed check is a bug in the mapper, not bad input, so it is never a
    one-line user error; unlike ``assert`` it survives ``python -O``.
    """
    if not ok:
        raise AssertionError(message)
