"""The one pydantic base of every spikeforge configuration, and its one error translation.

Run configs, training configs, hardware descriptions and studies all derive
from :class:`StrictModel` (unknown keys refused, frozen) and turn pydantic's
errors into one :class:`~spikeforge.errors.ConfigError` line through
:func:`validation_error`, so they name the file and field the same way.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from spikeforge.errors import ConfigError
from spikeforge.qnet import SPIKING_RESETS, Reset
from spikeforge.yamlio import short

__all__ = ["SpikingReset", "StrictModel", "error_location", "load_model", "validation_error"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are refused; values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _spiking_reset(value: Any) -> Reset:
    for mode in SPIKING_RESETS:
        if value is mode or value == mode.value:
            return mode
    names = [f"'{m.value}'" for m in SPIKING_RESETS]
    raise ValueError(f"must be {', '.join(names[:-1])} or {names[-1]}, not {short(value)}")


SpikingReset = Annotated[Reset, BeforeValidator(_spiking_reset)]
"""A config's neuron reset: a ``qnet.Reset`` a spiking layer may use (``qnet.SPIKING_RESETS``),
written as its value (``zero``, ``subtract``, ...)."""


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


def load_model(path, model_cls, translate=None, empty_ok: bool = False):
    """Read the YAML at ``path`` and validate it as ``model_cls``: the one config loader.

    ``translate(source, error)`` turns a ``ValidationError`` into the one-line
    :class:`ConfigError` (default :func:`validation_error`); ``empty_ok`` lets an
    empty file stand for ``{}``.
    """
    from pathlib import Path

    from spikeforge.yamlio import read_yaml

    p = Path(path)
    doc = read_yaml(p)
    if doc is None and empty_ok:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(str(p), "-", "must be a YAML mapping")
    try:
        return model_cls.model_validate(doc)
    except ValidationError as e:
        raise (translate or validation_error)(str(p), e) from None
