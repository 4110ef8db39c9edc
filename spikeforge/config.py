"""The `spikeforge run` configuration: a YAML file validated by pydantic.

Its ``data``, ``encoding``, ``model``, ``train`` (and optional ``eval``)
sections are the trainer's (:mod:`spikeforge.trainconfig`, docs/TRAINING.md):
any offline data set, class count and layer list ``spikeforge train`` takes.
``quantize`` and ``rtl`` say how the trained network becomes a QNet and how
much of the test set runs through the Verilog. Every error becomes one
:class:`ConfigError` line that names the file and the field
(``model.layers.0.dense``), never a traceback.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from spikeforge.configbase import StrictModel, load_model
from spikeforge.datasets import DATASET_SIZES
from spikeforge.errors import ConfigError
from spikeforge.trainconfig import (
    MAX_SAMPLES,
    MAX_SEED,
    MAX_TIMESTEPS,
    DataConfig,
    DenseSpec,
    Encoding,
    EncodingConfig,
    EvalConfig,
    ExportConfig,
    ModelConfig,
    TrainConfig,
    TrainRunConfig,
    _config_error,
    _SizeError,
    model_sizes,
)
from spikeforge.yamlio import read_yaml

__all__ = ["MAX_SEED", "MAX_TIMESTEPS", "RunConfig", "check_sizes", "load_config",
           "read_yaml", "train_config"]
# read_yaml: from spikeforge.yamlio


class _Strict(StrictModel):
    """Floats finite (no NaN/inf); ints and bools strict (``true`` is no count, ``1.0`` no int)."""

    model_config = ConfigDict(allow_inf_nan=False)


def _int(lo: int, hi: int):
    return Annotated[int, Field(strict=True, ge=lo, le=hi)]


Seed = _int(0, MAX_SEED)


class QuantConfig(_Strict):
    weight_bits: _int(2, 16) = 8
    membrane_bits: _int(4, 32) = 16


class RtlConfig(_Strict):
    simulator: Literal["icarus", "verilator"] = "icarus"
    # fast: plain-Verilog testbench (the default of every command, as for sim/verify);
    # cocotb: Python drives every cycle (stalls possible)
    mode: Literal["cocotb", "fast"] = "fast"
    samples: _int(1, MAX_SAMPLES) | Literal["all"] = "all"  # at most the test set
    stall_seed: Seed | None = None


class RunConfig(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)] = "digits"
    seed: Seed = 0
    threads: _int(1, 256) = 1  # torch threads (small matrices: 1 is fastest)
    # the trainer's sections (spikeforge.trainconfig, docs/TRAINING.md)
    data: DataConfig = DataConfig()
    encoding: EncodingConfig = EncodingConfig()
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig | None = None  # None: test accuracy at encoding.timesteps
    quantize: QuantConfig = QuantConfig()
    rtl: RtlConfig = RtlConfig()


def train_config(cfg: RunConfig) -> TrainRunConfig:
    """The training config of a run: its trainer sections, exported as ``quantize`` says.

    ``export.check_samples`` is 0: the run checks the QNet itself, on the spikes
    it also sends through the RTL.
    """
    ev = cfg.eval or EvalConfig(timesteps=[cfg.encoding.timesteps])
    return TrainRunConfig(name=cfg.name, seed=cfg.seed, threads=cfg.threads, data=cfg.data,
                          encoding=cfg.encoding, model=cfg.model, train=cfg.train, eval=ev,
                          export=ExportConfig(weight_bits=cfg.quantize.weight_bits,
                                              membrane_bits=cfg.quantize.membrane_bits,
                                              check_samples=0))


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read and validate a run config; raise :class:`ConfigError` with file and field."""
    p = Path(path)
    cfg = load_model(p, RunConfig, _config_error, empty_ok=True)
    bad = check_sizes(cfg)
    if bad is not None:
        raise ConfigError(str(p), *bad)
    return cfg


def check_sizes(cfg: RunConfig) -> tuple[str, str] | None:
    """``(field, message)`` when sections disagree on sizes, else None (checked up front)."""
    if cfg.encoding.kind is Encoding.DIRECT:
        return "encoding.kind", ("a QNet reads spikes and direct input is real-valued: "
                                 "use bernoulli, latency or regular")
    try:
        model_sizes(train_config(cfg))
    except _SizeError as e:
        return e.field, e.message
    d = cfg.data
    known = DATASET_SIZES.get(d.dataset.value)
    if known is None:  # an IDX folder: its sizes are checked when it is read
        return None
    n_train, n_test, n_in, classes = known
    shape = list(cfg.model.input_shape)
    if math.prod(shape) != n_in:
        return "model.input_shape", (f"{shape} holds {math.prod(shape)} values, the "
                                     f"{d.dataset.value} images {n_in}")
    last = cfg.model.layers[-1]
    assert isinstance(last, DenseSpec)  # the model section's own rule
    if last.dense < classes:
        return f"model.layers.{len(cfg.model.layers) - 1}", (
            f"the readout has {last.dense} classes, {d.dataset.value} has {classes}")
    n_test = min(n_test, d.test_limit or n_test)
    if cfg.rtl.samples != "all" and cfg.rtl.samples > n_test:
        return "rtl.samples", (f"{cfg.rtl.samples} is more than the {n_test} test samples "
                               f"of {d.dataset.value}")
    return None
