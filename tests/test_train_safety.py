"""`spikeforge train` under hostile input: checkpoints, --out, numbers, interruptions.

Every bad input gives exit status 2, exactly one stderr line naming the file and
field (or option), no traceback, and leaves the user's files and an earlier run's
outputs as they were. A crafted checkpoint runs nothing: it is read with
``torch.load(weights_only=True)`` and checked before use.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from hostile_cases import TRAIN_CFG

from spikeforge.cli import main
from spikeforge.config import load_config
from spikeforge.errors import ConfigError, SpikeforgeError
from spikeforge.model.checkpoint import FORMAT
from spikeforge.model.config import load_train_config
from spikeforge.staging import MARKER

TINY = TRAIN_CFG.replace("seed: 0\n", "seed: 3\n", 1)  # the hostile suite's tiny config


def _cfg(folder: Path, text: str = TINY, name: str = "train.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text(text)
    return p


def _set(text: str, key: str, value: str) -> str:
    """Replace the line ``  key: ...`` (first match) of TINY-like text."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith(f"{key}:"):
            indent = line[:len(line) - len(line.lstrip())]
            lines[i] = f"{indent}{key}: {value}"
            return "\n".join(lines) + "\n"
    raise AssertionError(key)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    assert "Traceback" not in err
    assert lines[0].startswith("spikeforge: error: ")
    return lines[0]


def _snapshot(folder: Path) -> dict[str, str]:
    """Name -> SHA-256 of every file below ``folder`` (hidden ones too)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _train(cfg: Path, out: Path, *extra: str) -> int:
    return main(["train", str(cfg), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A spikeforge-made --out of one finished epoch of TINY (copied by each test)."""
    root = tmp_path_factory.mktemp("finished")
    cfg = _cfg(root)
    assert _train(cfg, root / "out") == 0
    return root


@pytest.fixture
def run(finished: Path, tmp_path: Path) -> tuple[Path, Path]:
    """``(config, out)``: a private copy of the finished run."""
    shutil.copytree(finished / "out", tmp_path / "out")
    return _cfg(tmp_path / "cfg"), tmp_path / "out"


# ------------------------------------------------------------------ the checkpoint


class _Evil:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


@pytest.mark.parametrize("how", ["torch-zip", "raw-pickle", "inside-state-dict"])
def test_malicious_checkpoint_runs_nothing(run, tmp_path, capsys, how) -> None:
    cfg, out = run
    sentinel = tmp_path / "SENTINEL"
    ckpt = out / "checkpoint.pt"
    if how == "torch-zip":
        torch.save({"model": _Evil(sentinel)}, ckpt)
    elif how == "raw-pickle":
        ckpt.write_bytes(pickle.dumps(_Evil(sentinel)))
    else:  # a real checkpoint with one value swapped for the payload
        ck = torch.load(ckpt, weights_only=True)
        ck["history"][0]["loss"] = _Evil(sentinel)
        torch.save(ck, ckpt)
    # the payload does run when unpickled the unsafe way (the test can fail)
    assert not sentinel.exists()
    before = _snapshot(out)
    assert _train(cfg, out, "--resume") == 2
    line = _one_line(capsys)
    assert str(ckpt) in line and "cannot be read" in line
    if how != "raw-pickle":  # protocol 4 stops at an operand before the GLOBAL
        assert "pickled object (posix.system)" in line or "pickled object (os.system)" in line
    assert not sentinel.exists(), "the checkpoint's pickle ran a command"
    assert _snapshot(out) == before


def test_the_payload_is_real(tmp_path) -> None:
    """The pickle the test above plants runs its command when loaded unsafely."""
    sentinel = tmp_path / "SENTINEL"
    p = tmp_path / "evil.pt"
    torch.save({"model": _Evil(sentinel)}, p)
    torch.load(p, weights_only=False)
    assert sentinel.exists()


def _mutate(ck: dict, what: str) -> None:
    if what == "wrong-shape":
        k = next(iter(ck["model"]))
        ck["model"][k] = torch.zeros(3, 3)
    elif what == "wrong-dtype":
        k = next(iter(ck["model"]))
        ck["model"][k] = ck["model"][k].double()
    elif what == "missing-weight":
        ck["model"].pop(next(iter(ck["model"])))
    elif what == "extra-weight":
        ck["model"]["bogus.weight"] = torch.zeros(1)
    elif what == "missing-key":
        del ck["optimizer"]
    elif what == "extra-key":
        ck["payload"] = 1
    elif what == "not-a-dict":
        pass  # the test saves a list instead
    elif what == "other-fingerprint":
        ck["fingerprint"] = "0" * 64
    elif what == "old-format":
        ck["format"] = "something-else"
    elif what == "epoch-string":
        ck["epoch"] = "1"
    elif what == "epoch-bool":
        ck["epoch"] = True
    elif what == "history-short":
        ck["history"] = []
    elif what == "history-not-list":
        ck["history"] = {"a": 1}
    elif what == "history-loss-string":
        ck["history"][0]["loss"] = "low"
    elif what == "optimizer-state-shape":
        st = ck["optimizer"]["state"]
        st[0]["exp_avg"] = torch.zeros(2)
    elif what == "optimizer-state-index":
        ck["optimizer"]["state"][99] = ck["optimizer"]["state"][0]
    elif what == "optimizer-group-betas":
        ck["optimizer"]["param_groups"][0]["betas"] = (0.5, 0.5)
    elif what == "optimizer-lr-string":
        ck["optimizer"]["param_groups"][0]["lr"] = "fast"
    elif what == "scheduler-extra":
        ck["scheduler"]["optimizer"] = {}
    elif what == "scheduler-negative":
        ck["scheduler"]["last_epoch"] = -5
    elif what == "scheduler-lambda":
        ck["scheduler"]["lr_lambdas"] = [{"x": 1}]
    else:
        raise AssertionError(what)


MUTATIONS = ["wrong-shape", "wrong-dtype", "missing-weight", "extra-weight", "missing-key",
             "extra-key", "not-a-dict", "other-fingerprint", "old-format", "epoch-string",
             "epoch-bool", "history-short", "history-not-list", "history-loss-string",
             "optimizer-state-shape", "optimizer-state-index", "optimizer-group-betas",
             "optimizer-lr-string", "scheduler-extra", "scheduler-negative", "scheduler-lambda"]


@pytest.mark.parametrize("what", MUTATIONS)
def test_mistyped_checkpoint_one_line(run, capsys, what) -> None:
    cfg, out = run
    ckpt = out / "checkpoint.pt"
    ck = torch.load(ckpt, weights_only=True)
    _mutate(ck, what)
    torch.save([1, 2] if what == "not-a-dict" else ck, ckpt)
    before = _snapshot(out)
    assert _train(cfg, out, "--resume") == 2
    line = _one_line(capsys)
    assert str(ckpt) in line
    assert "field " in line
    assert _snapshot(out) == before


@pytest.mark.parametrize("damage", ["random-bytes", "truncated", "empty", "zip-of-text",
                                    "folder"])
def test_damaged_checkpoint_one_line(run, capsys, damage) -> None:
    cfg, out = run
    ckpt = out / "checkpoint.pt"
    data = ckpt.read_bytes()
    if damage == "random-bytes":
        ckpt.write_bytes(os.urandom(4096))
    elif damage == "truncated":
        ckpt.write_bytes(data[:len(data) // 2])
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "zip-of-text":
        import zipfile

        ckpt.unlink()
        with zipfile.ZipFile(ckpt, "w") as z:
            z.writestr("archive/data.pkl", "not a pickle")
    else:
        ckpt.unlink()
        ckpt.mkdir()
    before = _snapshot(out)
    assert _train(cfg, out, "--resume") == 2
    line = _one_line(capsys)
    assert str(ckpt) in line
    assert _snapshot(out) == before


def test_checkpoint_holds_plain_values_only(run) -> None:
    _, out = run
    ck = torch.load(out / "checkpoint.pt", weights_only=True, map_location="cpu")
    assert ck["format"] == FORMAT and ck["epoch"] == 1 and len(ck["fingerprint"]) == 64
    assert isinstance(ck["config"], dict) and ck["config"]["seed"] == 3
    assert oct((out / "checkpoint.pt").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_resume_extends_a_run(run, capsys) -> None:
    cfg, out = run
    cfg.write_text(_set(TINY, "epochs", "2"))
    assert _train(cfg, out, "--resume") == 0
    h = json.loads((out / "history.json").read_text())
    assert [e["epoch"] for e in h] == [1, 2]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_resume_with_another_config_one_line(run, capsys) -> None:
    cfg, out = run
    cfg.write_text(TINY.replace("- dense: 8", "- dense: 9"))
    before = _snapshot(out)
    assert _train(cfg, out, "--resume") == 2
    line = _one_line(capsys)
    assert "checkpoint.pt" in line and "different config" in line
    assert _snapshot(out) == before


# ------------------------------------------------------------------ --resume and --out


def test_resume_without_checkpoint(run, tmp_path, capsys) -> None:
    cfg, out = run
    (out / "checkpoint.pt").unlink()
    before = _snapshot(out)
    assert _train(cfg, out, "--resume") == 2
    line = _one_line(capsys)
    assert "checkpoint.pt" in line and "no checkpoint" in line
    assert _snapshot(out) == before
    missing = tmp_path / "nowhere"
    assert _train(cfg, missing, "--resume") == 2
    line = _one_line(capsys)
    assert str(missing) in line and "--resume" in line
    assert not missing.exists()


def test_resume_into_a_folder_spikeforge_did_not_make(tmp_path, capsys) -> None:
    cfg = _cfg(tmp_path / "cfg")
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    assert _train(cfg, user, "--resume") == 2
    line = _one_line(capsys)
    assert str(user) in line and "not made by spikeforge" in line
    assert _snapshot(user) == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}
    # an empty folder without the marker, even with a checkpoint.pt-free look, is not a run
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _train(cfg, empty, "--resume") == 2
    assert "not made by spikeforge" in _one_line(capsys)
    assert list(empty.iterdir()) == []


def test_resume_into_a_user_folder_with_a_checkpoint(tmp_path, capsys) -> None:
    """A folder of someone else's files is refused before its checkpoint.pt is opened."""
    cfg = _cfg(tmp_path / "cfg")
    user = tmp_path / "user"
    user.mkdir()
    sentinel = tmp_path / "SENTINEL"
    torch.save({"model": _Evil(sentinel)}, user / "checkpoint.pt")
    assert _train(cfg, user, "--resume") == 2
    assert "not made by spikeforge" in _one_line(capsys)
    assert not sentinel.exists()


def test_out_is_an_existing_file(tmp_path, capsys) -> None:
    cfg = _cfg(tmp_path / "cfg")
    f = tmp_path / "result.bin"
    f.write_bytes(b"keep me")
    for extra in ((), ("--resume",)):
        assert _train(cfg, f, *extra) == 2
        line = _one_line(capsys)
        assert str(f) in line and "not a folder" in line
        assert f.read_bytes() == b"keep me"


def test_out_holding_the_config(tmp_path, capsys) -> None:
    folder = tmp_path / "work"
    cfg = _cfg(folder)
    for out in (folder, folder / ".."):
        assert _train(cfg, out) == 2
        line = _one_line(capsys)
        assert "holds the input" in line
    assert _train(cfg, cfg) == 2  # --out is the config itself
    _one_line(capsys)
    assert sorted(p.name for p in folder.iterdir()) == ["train.yaml"]
    assert cfg.read_text() == TINY


def test_out_a_non_empty_user_folder(tmp_path, capsys) -> None:
    cfg = _cfg(tmp_path / "cfg")
    user = tmp_path / "user"
    user.mkdir()
    (user / "history.json").write_text("my own history")
    assert _train(cfg, user) == 2
    assert "not made by spikeforge" in _one_line(capsys)
    assert (user / "history.json").read_text() == "my own history"
    assert sorted(p.name for p in user.iterdir()) == ["history.json"]


def test_unrecorded_file_in_a_spikeforge_folder_is_not_replaced(run, capsys) -> None:
    cfg, out = run
    marker = json.loads((out / MARKER).read_text())
    marker["outputs"].remove("curves.png")
    (out / MARKER).write_text(json.dumps(marker))
    (out / "curves.png").write_bytes(b"a user's picture")
    before = _snapshot(out)
    assert _train(cfg, out) == 2
    line = _one_line(capsys)
    assert "curves.png" in line and "not written by spikeforge" in line
    assert _snapshot(out) == before


def test_fresh_run_records_every_output(run) -> None:
    _, out = run
    names = set(json.loads((out / MARKER).read_text())["outputs"])
    files = {p.name for p in out.iterdir()} - {MARKER}
    assert files == {"checkpoint.pt", "history.json", "activity.json", "curves.png",
                     "config.yaml"}
    assert files <= names


def test_failure_before_writing_leaves_no_folder(tmp_path, capsys) -> None:
    # the data (64 values an image) does not fit input_shape [63]: found after --out was claimed
    cfg = _cfg(tmp_path / "cfg", TINY.replace("input_shape: [64]", "input_shape: [63]"))
    out = tmp_path / "a" / "b" / "out"
    assert _train(cfg, out) == 2
    line = _one_line(capsys)
    assert str(cfg) in line and "field model.input_shape" in line
    assert not (tmp_path / "a").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _train(cfg, empty) == 2
    _one_line(capsys)
    assert list(empty.iterdir()) == []


def test_labels_beyond_the_readout_one_line(tmp_path, capsys) -> None:
    cfg = _cfg(tmp_path / "cfg", TINY.replace("- dense: 10", "- dense: 4"))
    out = tmp_path / "out"
    assert _train(cfg, out) == 2
    line = _one_line(capsys)
    assert str(cfg) in line and "field model.layers.1" in line and "classes" in line
    assert not out.exists()


# ------------------------------------------------------------------ interruptions


def test_ctrl_c_in_the_first_epoch_leaves_nothing(tmp_path, capsys, monkeypatch) -> None:
    import spikeforge.model.trainer as trainer

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "train_epoch", interrupted)
    cfg = _cfg(tmp_path / "cfg")
    out = tmp_path / "out"
    assert _train(cfg, out) == 130
    assert not out.exists()


def test_ctrl_c_while_saving_a_checkpoint(run, capsys, monkeypatch) -> None:
    """An interrupted save leaves the old checkpoint and no temporary file."""
    cfg, out = run
    cfg.write_text(_set(TINY, "epochs", "2"))
    old = (out / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def half_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_save)
    assert _train(cfg, out, "--resume") == 130
    assert (out / "checkpoint.pt").read_bytes() == old
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")
                and p.name != MARKER]


def test_ctrl_c_while_exporting_leaves_no_half_qnet(run, capsys, monkeypatch) -> None:
    import spikeforge.qnet as qnet

    cfg, out = run
    cfg.write_text(TINY + "export: {weight_bits: 6, check_samples: 4}\n")
    real = qnet.save_qnet

    def half(net, path):
        real(net, path)  # both files written into the stage, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(qnet, "save_qnet", half)
    assert _train(cfg, out, "--resume") == 130
    assert not list(out.glob("tiny.qnet.*")) and not (out / "qnet.json").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".spikeforge-stage")]
    monkeypatch.setattr(qnet, "save_qnet", real)
    assert _train(cfg, out, "--resume") == 0
    assert qnet.load_qnet(out / "tiny").layers[0].weight_bits == 6
    assert json.loads((out / "qnet.json").read_text())["samples"] == 4


# ------------------------------------------------------------------ numbers up front


def _sub(old: str, new: str) -> str:
    assert old in TINY, old
    return TINY.replace(old, new, 1)


TRAIN_BAD = [
    ("seed-negative", _sub("seed: 3", "seed: -1"), "seed"),
    ("seed-2-64", _sub("seed: 3", f"seed: {2**64}"), "seed"),
    ("seed-float", _sub("seed: 3", "seed: 1.5"), "seed"),
    ("seed-bool", _sub("seed: 3", "seed: true"), "seed"),
    ("timesteps-huge", _sub("timesteps: 2", "timesteps: 1001"), "encoding.timesteps"),
    ("timesteps-zero", _sub("timesteps: 2", "timesteps: 0"), "encoding.timesteps"),
    ("timesteps-bool", _sub("timesteps: 2", "timesteps: true"), "encoding.timesteps"),
    ("eval-timesteps-huge", _sub("timesteps: [2]", "timesteps: [2, 5000]"), "eval.timesteps.1"),
    ("epochs-huge", _sub("epochs: 1", "epochs: 10001"), "train.epochs"),
    ("batch-huge", _sub("batch_size: 32", "batch_size: 100000"), "train.batch_size"),
    ("train-limit-bool", _sub("train_limit: 64", "train_limit: true"), "data.train_limit"),
    ("hidden-huge", _sub("- dense: 8", "- dense: 100000"), "model.layers.0.dense"),
    ("lr-nan", _sub("epochs: 1", "epochs: 1\n  lr: .nan"), "train.lr"),
    ("lr-inf", _sub("epochs: 1", "epochs: 1\n  lr: .inf"), "train.lr"),
    ("weight-decay-nan", _sub("epochs: 1", "epochs: 1\n  weight_decay: .nan"),
     "train.weight_decay"),
    ("warmup-inf", _sub("epochs: 1", "epochs: 1\n  warmup_epochs: .inf"),
     "train.warmup_epochs"),
    ("threshold-inf", _sub("leak_shifts: [3, 4]", "leak_shifts: [3, 4]\n    threshold: .inf"),
     "model.neuron.threshold"),
    ("dropout-nan", _sub("- dense: 8", "- dropout: .nan"), "model.layers.0.dropout"),
    ("input-shape-huge", _sub("input_shape: [64]", "input_shape: [100000000]"),
     "model.input_shape.0"),
    ("parameters-too-many", _sub("- dense: 8", "- dense: 65536\n    - dense: 65536"),
     "model.layers.1"),
    ("activations-too-many",
     _sub("batch_size: 32", "batch_size: 65536").replace("timesteps: 2", "timesteps: 1000"),
     "train.batch_size"),
]


@pytest.mark.parametrize(("text", "field"), [b[1:] for b in TRAIN_BAD],
                         ids=[b[0] for b in TRAIN_BAD])
def test_bad_train_numbers_refused_up_front(run, tmp_path, capsys, text, field) -> None:
    cfg_path = _cfg(tmp_path / "bad", text)
    with pytest.raises(ConfigError) as e:
        load_train_config(cfg_path)
    assert e.value.field == field, str(e.value)
    # a new --out is not created
    out = tmp_path / "new" / "out"
    assert _train(cfg_path, out) == 2
    line = _one_line(capsys)
    assert f"{cfg_path}: field {field}:" in line
    assert not (tmp_path / "new").exists()
    # an earlier run's folder is untouched (config.yaml not rewritten), fresh or --resume
    _, old = run
    before = _snapshot(old)
    for extra in ((), ("--resume",)):
        assert _train(cfg_path, old, *extra) == 2
        assert f"field {field}:" in _one_line(capsys)
        assert _snapshot(old) == before


def test_limits_are_inclusive(tmp_path) -> None:
    for key, value in (("seed", str(2**64 - 1)), ("seed", "0"), ("timesteps", "1000"),
                       ("epochs", "10000")):
        load_train_config(_cfg(tmp_path, _set(TINY, key, value)))


@pytest.mark.parametrize("seed", [0, 2**64 - 1])
def test_edge_seeds_train(tmp_path, seed) -> None:
    cfg = _cfg(tmp_path / "cfg", _set(TINY, "seed", str(seed)))
    out = tmp_path / "out"
    assert _train(cfg, out) == 0
    h = json.loads((out / "history.json").read_text())
    assert len(h) == 1 and h[0]["loss"] is not None
    assert _train(cfg, out, "--resume") == 0  # nothing left to train; checks and reloads


RUN_MODEL = ("data:\n  dataset: digits\nmodel:\n  input_shape: [64]\n"
             "  layers: [{dense: 16}, {dense: 10}]\n")
RUN_BAD = [
    ("seed-negative", RUN_MODEL + "seed: -1\n", "seed"),
    ("seed-2-64", RUN_MODEL + f"seed: {2**64}\n", "seed"),
    ("seed-bool", RUN_MODEL + "seed: true\n", "seed"),
    ("stall-seed-2-64", RUN_MODEL + f"rtl:\n  stall_seed: {2**64}\n", "rtl.stall_seed"),
    ("timesteps-huge", RUN_MODEL + "encoding:\n  timesteps: 1001\n", "encoding.timesteps"),
    ("timesteps-bool", RUN_MODEL + "encoding:\n  timesteps: true\n", "encoding.timesteps"),
    ("epochs-float", RUN_MODEL + "train:\n  epochs: 2.0\n", "train.epochs"),
    ("lr-nan", RUN_MODEL + "train:\n  lr: .nan\n", "train.lr"),
    ("threshold-inf", RUN_MODEL + "  neuron: {beta: 0.5, threshold: .inf}\n",
     "model.neuron.threshold"),
    ("scale-nan", RUN_MODEL + "  neuron: {beta: 0.5, scale: .nan}\n", "model.neuron.scale"),
    ("test-limit-zero", RUN_MODEL.replace("digits", "digits\n  test_limit: 0"),
     "data.test_limit"),
    ("bias-int", RUN_MODEL + "  bias: 1\n", "model.bias"),
    ("samples-beyond-test-set", RUN_MODEL + "rtl:\n  samples: 1000\n", "rtl.samples"),
    ("samples-beyond-test-limit", RUN_MODEL.replace("digits", "digits\n  test_limit: 20")
     + "rtl:\n  samples: 21\n", "rtl.samples"),
    ("activations-too-many", RUN_MODEL.replace("{dense: 16}", "{dense: 65536}")
     + "train:\n  batch_size: 65536\nencoding:\n  timesteps: 1000\n", "train.batch_size"),
]


@pytest.mark.parametrize(("text", "field"), [b[1:] for b in RUN_BAD], ids=[b[0] for b in RUN_BAD])
def test_bad_run_numbers_refused_up_front(tmp_path, capsys, text, field) -> None:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert e.value.field == field, str(e.value)
    out = tmp_path / "out"
    assert main(["run", str(p), "--out", str(out)]) == 2
    assert f"{p}: field {field}:" in _one_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("seed", [0, 2**64 - 1])
def test_edge_seeds_run_data_and_training(tmp_path, seed) -> None:
    """A run config's seed reaches scikit-learn's split, torch's coder and training."""
    from rich.console import Console

    from spikeforge.pipeline import RunState, pass_data, pass_train

    p = tmp_path / "cfg.yaml"
    p.write_text(f"seed: {seed}\n" + RUN_MODEL.replace("dense: 16", "dense: 4")
                 + "encoding:\n  timesteps: 2\ntrain:\n  epochs: 1\n  batch_size: 256\n")
    st = RunState(cfg=load_config(p), stage=tmp_path, console=Console(quiet=True))
    pass_data(st)
    pass_train(st)
    assert 0.0 <= st.acc_float <= 1.0


def test_checkpoint_errors_are_spikeforge_errors(run) -> None:
    from spikeforge.model.trainer import train_from_config

    cfg, out = run
    (out / "checkpoint.pt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(SpikeforgeError, match="cannot be read as a spikeforge checkpoint"):
        train_from_config(cfg, out, resume=True, progress=False)


def test_planted_pickle_in_a_real_process(run, tmp_path) -> None:
    """The whole command in its own process: one stderr line (no torch warning), no payload."""
    import subprocess
    import sys

    cfg, out = run
    sentinel = tmp_path / "SENTINEL"
    (out / "checkpoint.pt").write_bytes(pickle.dumps(_Evil(sentinel), protocol=4))
    before = _snapshot(out)
    r = subprocess.run([sys.executable, "-m", "spikeforge", "train", str(cfg), "--out", str(out),
                        "--resume", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(out / "checkpoint.pt") in lines[0]
    assert not sentinel.exists()
    assert _snapshot(out) == before
