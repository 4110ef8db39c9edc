"""Evaluate design points: the whole chain, stage by stage, cheap stages first.

:func:`evaluate_point` is the unit of work sent to a local process or a Dask
worker: it runs the stages the point's metrics need, checking each constraint
as soon as its metric is known. A point is a pure function of its settings:
the same on any worker, in any order.

Points that share a trained float network (same data, model and training
settings; post-training quantization lets weight and membrane bits, tile size
and the simulator vary without retraining) share it through ``cache_dir``: the
runner sends the first point of such a group alone and the others once it is
done, so the network is trained once when the workers share a file system.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.datasets import DATASET_SIZES
from spikeforge.errors import SpikeforgeError
from spikeforge.staging import file_mode

from .metrics import METRICS, Stage
from .study import PointSettings, qnet_sizes, train_config

__all__ = ["evaluate_point", "layout_counters", "load_data"]

@functools.lru_cache(maxsize=2)
def _tensors(dataset: str, ntr: int, nte: int, seed: int):
    """The trainer's data of these settings (:func:`spikeforge.model.trainer.load_data`),
    images flat."""
    from spikeforge.model.trainer import load_data as trainer_data

    s = {**PointSettings().model_dump(), "dataset": dataset, "train_samples": ntr,
         "test_samples": nte, "seed": seed}
    return trainer_data(train_config(s), "dse point")


def load_data(s: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` as the trainer loads them: the first
    ``train_samples`` / ``test_samples`` (0: all) of the data set's split."""
    got = _tensors(s["dataset"], s["train_samples"], s["test_samples"], s["seed"])
    x_tr, y_tr, x_te, y_te = (t.numpy() for t in got)
    return x_tr.reshape(len(x_tr), -1), y_tr, x_te.reshape(len(x_te), -1), y_te


@functools.lru_cache(maxsize=4)  # a few time-step counts per worker; ~60 MB each for 10k x 784
def _encoded(dataset: str, ntr: int, nte: int, timesteps: int, seed: int):
    from spikeforge.model.trainer import encode_spikes

    x_tr, y_tr, x_te, y_te = _tensors(dataset, ntr, nte, seed)
    s = {**PointSettings().model_dump(), "dataset": dataset, "train_samples": ntr,
         "test_samples": nte, "seed": seed, "timesteps": timesteps}
    # the test spikes the float model, the QNet reference, the mapping and the RTL all see
    return x_tr, y_tr.numpy(), encode_spikes(train_config(s), x_te), y_te.numpy()


def _spikes(s: dict[str, Any]):
    """``(x_train, y_train, test spikes [N, T, n], y_test)`` of the point's settings."""
    return _encoded(s["dataset"], s["train_samples"], s["test_samples"], s["timesteps"],
                    s["seed"])


def _train(s: dict[str, Any], cache_dir: str | None, train_key: str):
    """The trained float network of these settings, from the cache when it is there.

    Trained by the trainer (:func:`spikeforge.model.trainer.fit` of
    :func:`~dse.study.train_config`): the SNN, loop and data of ``spikeforge train``.
    """
    import torch

    from spikeforge.model.trainer import build_model, fit, predict_spikes

    torch.set_num_threads(1)  # small matrices; also makes every worker bit-identical
    cfg = train_config(s)
    path = Path(cache_dir) / f"{train_key}.pt" if cache_dir else None
    if path is not None and path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
            model = build_model(cfg)
            model.load_state_dict(blob["state"])
            model.eval()
            return model, float(blob["float_accuracy"]), 0.0
        except Exception:  # a torn or foreign file: retrain and overwrite it
            pass
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = _tensors(s["dataset"], s["train_samples"], s["test_samples"],
                                      s["seed"])  # flat images: the model's shape here
    shape = cfg.model.input_shape
    data = (x_tr.reshape(len(x_tr), *shape), y_tr, x_te.reshape(len(x_te), *shape), y_te)
    model, _ = fit(cfg, data, source="dse point", test_each_epoch=False)
    _, _, s_te, y_te = _spikes(s)
    acc = float(np.mean(predict_spikes(model, s_te, cfg.model.input_shape) == y_te))
    seconds = time.perf_counter() - t0
    if path is not None:
        _save_atomic(torch, {"state": model.state_dict(), "float_accuracy": acc}, path)
    return model, acc, seconds


def _save_atomic(torch, blob: dict[str, Any], path: Path) -> None:
    """``torch.save`` into a temporary file beside ``path``, renamed into place when complete.

    A worker that cannot write the shared folder just does not cache; an
    interrupted save removes its temporary file (the runner sweeps the files of
    a killed worker, ``.*.tmp``, when the study starts again).
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        torch.save(blob, tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if not isinstance(e, OSError):
            raise


class _Stop(Exception):
    """A point fails a constraint or cannot be built; ``status`` says which."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def _dense_weight_bits(s: dict[str, Any], n_in: int) -> int:
    """Weights of the dense network, from the settings alone (``sum n_in * n_out * wb``
    over the QNet's layers, :func:`~dse.study.qnet_sizes`: a conv counts unrolled)."""
    sizes = qnet_sizes(s)
    assert sizes[0] == n_in
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * s["weight_bits"]


def layout_counters(qnet, spikes: np.ndarray, ref, layout) -> dict[str, dict[str, np.ndarray]]:
    """The reference's counters for the hardware of ``layout``, from a run on any layout.

    Spikes do not depend on the layout; weight reads and synaptic events are sums
    over the input lines' spikes of what one spike on each line visits
    (:meth:`~spikeforge.hw.layout.HardwareLayout.visits`), exactly as
    :func:`spikeforge.reference.simulate` counts them with those visits.
    """
    visits = layout.visits()
    x = np.asarray(spikes)
    out = {}
    for layer in qnet.layers:
        per_line = x.sum(axis=1, dtype=np.int64)  # [N, n_in]: spikes per input line
        reads, syn = visits[layer.name]
        out[layer.name] = {**ref.counters[layer.name], "weight_reads": per_line @ reads,
                           "synaptic_events": per_line @ syn}
        x = (ref.spikes[layer.name] if layer.fire
             else np.zeros((len(x), x.shape[1], layer.n_out), dtype=np.uint8))
    return out


def _n_in(dataset: str) -> int:
    return DATASET_SIZES[dataset][2]


class _Point:
    """One point's evaluation: runs stages up to ``last`` and checks constraints."""

    def __init__(self, key: str, s: dict[str, Any], metrics: list[str],
                 constraints: list[dict[str, Any]], work_dir: Path | None):
        self.key, self.s, self.metrics = key, s, metrics
        self.constraints = constraints
        self.work_dir = work_dir
        self.values: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.last = max(METRICS[m].stage for m in metrics)
        self.layout = None  # the tiles of the mapping stage, when it ran

    def put(self, **values: float) -> None:
        self.values.update({k: float(v) for k, v in values.items()})
        for c in self.constraints:
            v = self.values.get(c["metric"])
            if v is None:
                continue
            if c.get("min") is not None and not v >= c["min"]:
                raise _Stop("infeasible", f"{c['metric']} = {v:.6g} < min {c['min']:g}")
            if c.get("max") is not None and not v <= c["max"]:
                raise _Stop("infeasible", f"{c['metric']} = {v:.6g} > max {c['max']:g}")

    def run(self, trained) -> None:
        s = self.s
        self._timed("static", lambda: self.put(
            dense_weight_bits=_dense_weight_bits(s, _n_in(s["dataset"]))))
        if self.last < Stage.TRAIN:
            return
        model, facc, train_s = trained()
        self.seconds["train"] = round(train_s, 3)
        self.put(float_accuracy=facc)
        if self.last < Stage.REFERENCE:
            return
        qnet, ref = self._timed("reference", lambda: self._reference(model))
        if self.last >= Stage.MAPPING and any(METRICS[m].stage == Stage.MAPPING
                                              for m in self.metrics):
            self._timed("mapping", lambda: self._mapping(qnet))
        # memory and energy of the hardware this point builds: known once its layout is
        self._timed("hardware", lambda: self._hardware(qnet, ref))
        if self.last >= Stage.RTL:
            self._timed("rtl", lambda: self._rtl(qnet))

    def _timed(self, name: str, fn):
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(time.perf_counter() - t0, 3)

    def _reference(self, model):
        from spikeforge.model.trainer import lower_to_qnet
        from spikeforge.reference import simulate

        s = self.s
        _, _, s_te, y_te = _spikes(s)
        try:  # the trainer's export: snn_to_qnet with the point's widths
            qnet = lower_to_qnet(model, train_config(s), source="dse point", field="quantize")
        except SpikeforgeError as e:
            raise _Stop("infeasible", str(e)) from None
        ref = simulate(qnet, s_te)
        hidden = sum(float(np.mean(ref.counters[l.name]["spikes_out"]))
                     for l in qnet.layers if l.fire)
        self.put(accuracy=float(np.mean(ref.predictions == y_te)), spikes_per_sample=hidden)
        return qnet, ref

    def _hardware(self, qnet, ref) -> None:
        """``memory_bits`` (``hw.json``'s) and energy of the layout the point builds: the
        mapping's when the mapping stage ran, else one tile per layer."""
        from spikeforge.energy import energy_report
        from spikeforge.hw.layout import HardwareLayout

        layout = self.layout if self.layout is not None else HardwareLayout.default(qnet)
        _, _, s_te, _ = _spikes(self.s)
        counters = layout_counters(qnet, s_te, ref, layout)
        energy = energy_report(qnet, counters, source="reference simulator", layout=layout)
        self.put(memory_bits=layout.memory_bits(qnet), energy_panda_pj=energy["snn_pj"],
                 energy_hw_pj=energy["hardware_pj"],
                 ee=energy["ee"] if math.isfinite(energy["ee"]) else 0.0)

    def _mapping(self, qnet) -> None:
        from spikeforge.mapping import (
            MapOptions,
            MappingError,
            PlaceMethod,
            hardware_from_dict,
            run_mapping,
        )

        s = self.s
        t = s["tile_size"]
        hw = hardware_from_dict({
            "name": f"mesh{s['mesh_rows']}x{s['mesh_cols']}_{t}",
            "mesh": {"rows": s["mesh_rows"], "cols": s["mesh_cols"]},
            "tile": {"axons": t, "neurons": t, "synapse_memory_bits": t * t * s["weight_bits"],
                     "neuron_lanes": min(s["neuron_lanes"], t)},
            "noc": {"hop_cycles": s["hop_cycles"]},
        }, source="dse point")
        _, _, s_te, _ = _spikes(s)
        try:
            st = run_mapping(qnet, hw, s_te[:s["map_samples"]],
                             MapOptions(method=PlaceMethod(s["placement"]), seed=s["seed"]))
        except MappingError as e:
            raise _Stop("infeasible", f"mapping: {e}") from None
        from spikeforge.hw.layout import layout_from_document
        from spikeforge.mapping.flow import mapping_yaml

        self.layout = layout_from_document(mapping_yaml(st), qnet, source="dse point mapping")
        self.put(tiles=len(st.partition.fragments),
                 cycles_mapped=st.analysis.predicted_cycles_per_sample,
                 cycles_generated=st.analysis.rtl_cycles_per_sample)

    def _rtl(self, qnet) -> None:
        from spikeforge.sim.fast import run_fast
        from spikeforge.sim.protocol import compare, expected

        s = self.s
        _, _, s_te, _ = _spikes(s)
        x = s_te[:s["rtl_samples"]]
        with tempfile.TemporaryDirectory(prefix=f"dse-rtl-{self.key}-",
                                         dir=self.work_dir) as build:
            run = run_fast(qnet, x, simulator=s["simulator"], build_dir=build,
                           layout=self.layout)
        mismatches = compare(expected(qnet, x, self.layout), run.result)
        self.put(cycles_rtl=float(np.mean(run.result.cycles)), rtl_mismatches=len(mismatches))

    def record(self, status: str, message: str = "") -> dict[str, Any]:
        return {"key": self.key, "status": status, "message": message,
                "metrics": {m: self.values[m] for m in self.values},
                "seconds": self.seconds, "worker": f"{platform.node()}:{os.getpid()}"}


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn brings it; without it BLAS keeps its own count
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


_MODELS: dict[str, Any] = {}  # this process's last trained networks, by training key


def _trained(s: dict[str, Any], cache_dir: str | None, train_key: str):
    if train_key in _MODELS:
        model, acc, _ = _MODELS[train_key]
        return model, acc, 0.0
    got = _train(s, cache_dir, train_key)
    while len(_MODELS) >= 2:
        _MODELS.pop(next(iter(_MODELS)))
    _MODELS[train_key] = got
    return got


def evaluate_point(task: dict[str, Any]) -> dict[str, Any]:
    """Evaluate one design point through the stages its metrics need.

    Parameters
    ----------
    task : dict
        ``key`` and ``settings`` of the point; ``metrics``: names to compute;
        ``constraints``: list of ``{metric, min, max}``; ``train_key``: identity of
        its trained network; ``cache_dir``: folder for trained networks, shared by
        the workers when they share a file system (or ``None``); ``work_dir``:
        scratch for RTL builds (or ``None`` for the system's).

    Returns
    -------
    dict
        ``{key, status, message, metrics, seconds, worker}``; ``status`` is ``ok``,
        ``infeasible`` (a constraint failed or the point cannot be built: later
        stages were skipped) or ``failed`` (an unexpected error, with its last line).
    """
    work_dir = Path(task["work_dir"]) if task.get("work_dir") else None
    if work_dir is not None:
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
        except OSError:
            work_dir = None
    t0, c0 = time.perf_counter(), time.process_time()
    p = _Point(task["key"], task["settings"], task["metrics"], task["constraints"], work_dir)
    try:
        # One BLAS thread, as torch has one: a worker is one core, so N workers use N cores.
        with _one_blas_thread():
            p.run(lambda: _trained(task["settings"], task.get("cache_dir"), task["train_key"]))
        rec = p.record("ok")
    except _Stop as e:
        rec = p.record(e.status, str(e))
    except SpikeforgeError as e:
        rec = p.record("failed", str(e))
    except Exception as e:  # recorded, so a broken point is not retried forever
        rec = p.record("failed", traceback.format_exception_only(e)[-1].strip())
    rec["seconds"]["total"] = round(time.perf_counter() - t0, 3)
    # CPU seconds of this process (one thread's worth when the worker has a core to itself)
    rec["seconds"]["cpu"] = round(time.process_time() - c0, 3)
    return rec
