"""The one pydantic base of every spikeforge configuration, and its one error translation.

Run configs, training configs, hardware descriptions and studies all derive
from :class:`StrictModel` (unknown keys refused, frozen) and turn pydantic's
errors into one :class:`~spikeforge.errors.ConfigError` line through
:func:`validation_error`, so they name the file and field the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from spikeforge.errors import ConfigError
from spikeforge.yamlio import short

__all__ = ["StrictModel", "error_location", "validation_error"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are refused; values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def error_location(err: dict[str, Any]) -> str:
    """``model.hidden.0`` from a pydantic error; union-member tags are dropped."""
    return ".".join(str(x) for x in err["loc"]
                    if isinstance(x, int) or (str(x).isidentifier()
                                              and not str(x).endswith("Spec")))


def validation_error(source: str, e: ValidationError | dict[str, Any],
                     prefix: str = "") -> ConfigError:
    """The one-line :class:`ConfigError` for the first error of ``e`` (or the error ``e``)."""
    err = e.errors()[0] if isinstance(e, ValidationError) else e
    loc = ".".join(x for x in (prefix, error_location(err)) if x) or "-"
    kind = err["type"]
    if kind == "extra_forbidden":
        return ConfigError(source, loc, "unknown key")
    if kind == "missing":
        return ConfigError(source, loc, "is missing")
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return ConfigError(source, loc, msg)
    return ConfigError(source, loc, f"{msg} (got {short(err.get('input'))})")
