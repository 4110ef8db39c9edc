"""The `spikeforge run` configuration: a YAML file validated by pydantic.

Every error becomes one :class:`ConfigError` line that names the file and the
field (``model.hidden.0``), never a traceback.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from spikeforge.errors import ConfigError
from spikeforge.configbase import StrictModel, validation_error
from spikeforge.yamlio import read_yaml

__all__ = ["RunConfig", "load_config", "read_yaml"]  # read_yaml: from spikeforge.yamlio


_Strict = StrictModel


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
    test_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2


class EncodingConfig(_Strict):
    kind: Literal["bernoulli"] = "bernoulli"
    timesteps: Annotated[int, Field(ge=1, le=1000)] = 6


LeakShift = Annotated[int, Field(ge=1, le=30)]


class ModelConfig(_Strict):
    hidden: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=1)] = [128]
    leak_shifts: list[LeakShift] = [3, 4]
    readout_leak_shifts: list[LeakShift] = []
    threshold: Annotated[float, Field(gt=0.0)] = 1.0
    reset: ResetMode = ResetMode.ZERO
    surrogate: SurrogateKind = SurrogateKind.FAST_SIGMOID
    surrogate_scale: Annotated[float, Field(gt=0.0)] | None = None  # None: the surrogate's own
    bias: bool = False

    @field_validator("leak_shifts", "readout_leak_shifts")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("leak shifts must be distinct")
        if sum(2.0**-k for k in v) >= 1.0:
            raise ValueError("the shifts remove the whole membrane (beta <= 0)")
        return v


class TrainConfig(_Strict):
    epochs: Annotated[int, Field(ge=1, le=10000)] = 8
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    lr: Annotated[float, Field(gt=0.0, le=1.0)] = 3e-3
    # independent Bernoulli draws of every training sample (augmentation)
    copies: Annotated[int, Field(ge=1, le=64)] = 4
    threads: Annotated[int, Field(ge=1, le=256)] = 1  # small matrices: 1 is fastest here


class QuantConfig(_Strict):
    weight_bits: Annotated[int, Field(ge=2, le=16)] = 8
    membrane_bits: Annotated[int, Field(ge=4, le=32)] = 16


class RtlConfig(_Strict):
    simulator: Literal["icarus", "verilator"] = "icarus"
    # cocotb: Python drives every cycle (stalls possible); fast: plain-Verilog testbench
    mode: Literal["cocotb", "fast"] = "cocotb"
    samples: Annotated[int, Field(ge=1)] | Literal["all"] = "all"
    stall_seed: int | None = None


class RunConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "digits"
    seed: int = 0
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
        return RunConfig.model_validate(doc)
    except ValidationError as e:
        raise validation_error(str(p), e) from None
