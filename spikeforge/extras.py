"""Optional dependencies: a missing one is one line naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from spikeforge.errors import SpikeforgeError

__all__ = ["MissingExtra", "require"]


class MissingExtra(SpikeforgeError, ImportError):
    """An optional package is not installed; ``str()`` says which extra brings it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` naming ``extra``; ``what`` needs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{what} needs the optional package {module.split('.')[0]!r}: "
            f"pip install 'spikeforge[{extra}]' (or -e '.[{extra}]' in a checkout)") from None
