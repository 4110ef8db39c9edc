"""The `spikeforge run` configuration: a YAML file validated by pydantic.

Every error becomes one :class:`ConfigError` line that names the file and the
field (``model.hidden.0``), never a traceback.
"""

from __future__ import annotations

import enum
import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from spikeforge.configbase import StrictModel, validation_error
from spikeforge.errors import ConfigError
from spikeforge.yamlio import read_yaml

__all__ = ["MAX_SEED", "MAX_TIMESTEPS", "RunConfig", "check_sizes", "load_config",
           "read_yaml"]
# read_yaml: from spikeforge.yamlio

MAX_SEED = 2**64 - 1  # seeds are 0..2^64-1 everywhere (numpy and torch take them all)
MAX_TIMESTEPS = 1000
DIGITS_SAMPLES = 1797  # scikit-learn's digits
DIGITS_CLASSES = 10
# the rate-coded training set (copies x T x 1797 x 64 bytes, then float32 in torch)
MAX_COPIES_X_TIMESTEPS = 4096


class _Strict(StrictModel):
    """Floats finite (no NaN/inf); ints and bools strict (``true`` is no count, ``1.0`` no int)."""

    model_config = ConfigDict(allow_inf_nan=False)


def _int(lo: int, hi: int):
    return Annotated[int, Field(strict=True, ge=lo, le=hi)]


Bool = Annotated[bool, Field(strict=True)]
Seed = _int(0, MAX_SEED)
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class ResetMode(enum.Enum):
    ZERO = "zero"
    SUBTRACT = "subtract"


class SurrogateKind(enum.Enum):
    EXPONENTIAL = "exponential"
    PIECEWISE_LINEAR = "piecewise_linear"
    FAST_SIGMOID = "fast_sigmoid"
    ARCTAN = "arctan"
    STRAIGHT_THROUGH = "straight_through"


class DataConfig(_Strict):
    dataset: Literal["digits"] = "digits"
    test_fraction: Annotated[Float, Field(gt=0.0, lt=1.0)] = 0.2

    @field_validator("test_fraction")
    @classmethod
    def _both_sets_hold_every_class(cls, v: float) -> float:
        # scikit-learn's stratified split needs at least one sample of each class on each side
        n_test = math.ceil(DIGITS_SAMPLES * v)
        if n_test < DIGITS_CLASSES or DIGITS_SAMPLES - n_test < DIGITS_CLASSES:
            raise ValueError(f"leaves {n_test} of the {DIGITS_SAMPLES} digits for testing; "
                             f"each side needs at least {DIGITS_CLASSES} (one per class)")
        return v


class EncodingConfig(_Strict):
    kind: Literal["bernoulli"] = "bernoulli"
    timesteps: _int(1, MAX_TIMESTEPS) = 6


LeakShift = _int(1, 30)


class ModelConfig(_Strict):
    hidden: Annotated[list[_int(1, 4096)], Field(min_length=1, max_length=16)] = [128]
    leak_shifts: list[LeakShift] = [3, 4]
    readout_leak_shifts: list[LeakShift] = []
    threshold: Annotated[Float, Field(gt=0.0, le=1e6)] = 1.0
    reset: ResetMode = ResetMode.ZERO
    surrogate: SurrogateKind = SurrogateKind.FAST_SIGMOID
    surrogate_scale: Annotated[Float, Field(gt=0.0, le=1e6)] | None = None  # None: its own
    bias: Bool = False

    @field_validator("leak_shifts", "readout_leak_shifts")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("leak shifts must be distinct")
        if sum(2.0**-k for k in v) >= 1.0:
            raise ValueError("the shifts remove the whole membrane (beta <= 0)")
        return v


class TrainConfig(_Strict):
    epochs: _int(1, 10000) = 8
    batch_size: _int(1, 65536) = 64
    lr: Annotated[Float, Field(gt=0.0, le=1.0)] = 3e-3
    # independent Bernoulli draws of every training sample (augmentation)
    copies: _int(1, 64) = 4
    threads: _int(1, 256) = 1  # small matrices: 1 is fastest here


class QuantConfig(_Strict):
    weight_bits: _int(2, 16) = 8
    membrane_bits: _int(4, 32) = 16


class RtlConfig(_Strict):
    simulator: Literal["icarus", "verilator"] = "icarus"
    # cocotb: Python drives every cycle (stalls possible); fast: plain-Verilog testbench
    mode: Literal["cocotb", "fast"] = "cocotb"
    samples: _int(1, DIGITS_SAMPLES) | Literal["all"] = "all"  # at most the test set
    stall_seed: Seed | None = None


class RunConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)] = "digits"
    seed: Seed = 0
    data: DataConfig = DataConfig()
    encoding: EncodingConfig = EncodingConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    quantize: QuantConfig = QuantConfig()
    rtl: RtlConfig = RtlConfig()


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a run config; raise :class:`ConfigError` with file and field."""
    p = Path(path)
    doc = read_yaml(p)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(str(p), "-", "must be a YAML mapping")
    try:
        cfg = RunConfig.model_validate(doc)
    except ValidationError as e:
        raise validation_error(str(p), e) from None
    bad = check_sizes(cfg)
    if bad is not None:
        raise ConfigError(str(p), *bad)
    return cfg


def check_sizes(cfg: RunConfig) -> tuple[str, str] | None:
    """``(field, message)`` when sections disagree on sizes, else None (checked up front)."""
    n = cfg.train.copies * cfg.encoding.timesteps
    if n > MAX_COPIES_X_TIMESTEPS:
        return "train.copies", (f"copies x encoding.timesteps is {n}, at most "
                                f"{MAX_COPIES_X_TIMESTEPS} (the coded training set is held "
                                "in memory)")
    n_test = math.ceil(DIGITS_SAMPLES * cfg.data.test_fraction)
    if cfg.rtl.samples != "all" and cfg.rtl.samples > n_test:
        return "rtl.samples", (f"{cfg.rtl.samples} is more than the {n_test} test samples "
                               f"data.test_fraction {cfg.data.test_fraction} leaves")
    return None
