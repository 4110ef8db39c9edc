"""The YAML trainer: config errors, IDX data made here, training, resume, outputs, CLI."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.errors import ConfigError, SpikeforgeError
from spikeforge.model.cli import add_parser
from spikeforge.model.config import load_train_config
from spikeforge.model.encoders import Encoding
from spikeforge.model.engine import train_epoch
from spikeforge.model.layers import LIF, Dense, DenseReadout
from spikeforge.model.network import SNN
from spikeforge.model.surrogate import Surrogate
from spikeforge.model.trainer import build_model, train_from_config


def _write_idx(path: Path, arr: np.ndarray, compress: bool) -> None:
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def _toy_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """8x8 images: class c lights up quadrant c (4 classes), plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=n)
    x = rng.integers(0, 60, size=(n, 8, 8))
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 4 * r:4 * r + 4, 4 * q:4 * q + 4] += 180
    return x, y


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    d = tmp_path / "toy"
    d.mkdir()
    for split, n, compress in (("train", 256, True), ("t10k", 64, False)):
        x, y = _toy_images(n, seed=n)
        _write_idx(d / f"{split}-images-idx3-ubyte", x, compress)
        _write_idx(d / f"{split}-labels-idx1-ubyte", y, compress)
    return d


def _config(tmp_path: Path, folder: Path, epochs: int = 2, extra: str = "") -> Path:
    p = tmp_path / f"cfg{epochs}.yaml"
    p.write_text(f"""
name: toy
seed: 3
data: {{dataset: idx, path: "{folder}"}}
encoding: {{kind: bernoulli, timesteps: 4}}
model:
  input_shape: [1, 8, 8]
  layers:
    - conv: {{channels: 4, kernel: 3, padding: 1}}
    - pool: {{size: 2, kind: sum}}
    - flatten: true
    - dropout: 0.1
    - dense: 16
    - dense: 4
  neuron: {{leak_shifts: [3, 4], threshold: 1.0, reset: subtract, surrogate: arctan}}
train: {{epochs: {epochs}, batch_size: 16, lr: 0.01, schedule: step, step_epochs: 1, gamma: 0.5}}
eval: {{timesteps: [2, 4], activity_samples: 32}}
{extra}""")
    return p


def test_config_errors_name_file_and_field(tmp_path: Path) -> None:
    def err(text: str) -> str:
        p = tmp_path / "bad.yaml"
        p.write_text(text)
        with pytest.raises(ConfigError) as e:
            load_train_config(p)
        return str(e.value)

    base = "model: {layers: [{dense: 10}]}\n"
    assert err(base + "bogus: 1\n") == f"{tmp_path}/bad.yaml: field bogus: unknown key"
    msg = err("model: {layers: [{conv: {channels: 4, kernel: 0}}, {dense: 3}]}\n")
    assert msg.startswith(f"{tmp_path}/bad.yaml: field model.layers.0.conv.kernel: ")
    assert err("model: {layers: [{dense: 0}]}\n").endswith(
        "field model.layers.0.dense: Input should be greater than or equal to 1 (got 0)")
    assert err("model: {layers: [{lstm: 3}]}\n").endswith(
        "field model.layers.0: a layer is one of dense, conv, pool, dropout, flatten")
    msg = err(base + "train: {optimizer: rmsprop}\n")
    assert "field train.optimizer" in msg
    assert "exactly one of leak_shifts and beta" in err(
        "model: {layers: [{dense: 3}], neuron: {beta: 0.5, leak_shifts: [2]}}\n")
    assert "last layer must be a dense" in err("model: {layers: [{dropout: 0.1}]}\n")
    assert "field data" in err(base + "data: {dataset: idx}\n")
    assert err("[1, 2]\n").endswith("must be a YAML mapping")
    assert "line" in err("model: [\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_train_config(tmp_path / "nope.yaml")


def test_build_model_shapes(tmp_path: Path, idx_folder: Path) -> None:
    cfg = load_train_config(_config(tmp_path, idx_folder))
    net = build_model(cfg)
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == ["Conv2d", "LIF", "Pool2d", "Flatten", "Dropout", "Dense", "LIF",
                     "DenseReadout"]
    assert net.layers[5].in_features == 4 * 4 * 4
    assert net.layers[1].params.beta == 0.8125


def test_few_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    x, y = _toy_images(128, seed=1)
    x = torch.as_tensor(x.reshape(128, 64) / 255.0, dtype=torch.float32)
    y = torch.as_tensor(y)
    net = SNN([Dense(64, 32), LIF(0.8187, 1.0, surrogate=Surrogate.EXPONENTIAL),
               DenseReadout(32, 4)])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = [train_epoch(net, x, y, encoding=Encoding.BERNOULLI, timesteps=6, optimizer=opt,
                          batch_size=32, generator=torch.Generator().manual_seed(e)).loss
              for e in range(4)]
    assert losses[-1] < 0.7 * losses[0]


def test_train_resume_and_outputs(tmp_path: Path, idx_folder: Path) -> None:
    straight = train_from_config(_config(tmp_path, idx_folder, 2), tmp_path / "a",
                                 progress=False)
    # one epoch, then resume into a two-epoch run of the same config
    train_from_config(_config(tmp_path, idx_folder, 1), tmp_path / "b", progress=False)
    resumed = train_from_config(_config(tmp_path, idx_folder, 2), tmp_path / "b", resume=True,
                                progress=False)
    assert resumed["history"][0] == straight["history"][0] | {
        "train_seconds": resumed["history"][0]["train_seconds"]}
    ka = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    kb = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    for name, w in ka["model"].items():
        assert torch.equal(w, kb["model"][name]), name
    h = straight["history"]
    assert [e["epoch"] for e in h] == [1, 2] and set(h[-1]["test_accuracy"]) == {"2", "4"}
    assert h[-1]["test_accuracy"]["4"] > 0.5  # 4 classes, chance is 0.25
    for f in ("history.json", "activity.json", "curves.png", "config.yaml", "checkpoint.pt"):
        assert (tmp_path / "a" / f).is_file(), f
    act = json.loads((tmp_path / "a" / "activity.json").read_text())
    assert act[0]["name"] == "0:conv2d" and act[0]["synops"] > 0
    assert 0 < act[1]["rate"] < 1
    with pytest.raises(SpikeforgeError, match="different config"):
        train_from_config(_config(tmp_path, idx_folder, 2, "threads: 2"), tmp_path / "b",
                          resume=True, progress=False)
    with pytest.raises(SpikeforgeError, match="does not exist; nothing to resume"):
        train_from_config(_config(tmp_path, idx_folder, 2), tmp_path / "c", resume=True,
                          progress=False)


def test_cli_parser(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = p.parse_args(["train", "c.yaml", "--out", str(tmp_path), "--resume"])
    assert args.config == "c.yaml" and args.resume and not args.quiet
    assert callable(args.func)


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("examples/train/*.yaml")),
                         ids=lambda p: p.name)
def test_examples_validate_and_build(path: Path) -> None:
    cfg = load_train_config(path)
    net = build_model(cfg)
    x = torch.rand(2, *cfg.model.input_shape)
    from spikeforge.model.encoders import encode

    with torch.no_grad():
        scores = net(encode(cfg.encoding.kind, x, 2, torch.Generator().manual_seed(0)))
    assert scores.shape == (2, cfg.model.layers[-1].dense)


def test_export_writes_a_checked_qnet(tmp_path: Path, idx_folder: Path) -> None:
    from spikeforge.model.encoders import encode
    from spikeforge.qnet import load_qnet
    from spikeforge.reference import simulate

    extra = "export: {weight_bits: 8, membrane_bits: 16, check_samples: 40}"
    res = train_from_config(_config(tmp_path, idx_folder, 2, extra), tmp_path / "e",
                            progress=False)
    rep = json.loads((tmp_path / "e" / "qnet.json").read_text())
    assert rep == res["qnet"] and rep["samples"] == 40 and rep["timesteps"] == 4
    net = load_qnet(tmp_path / "e" / "toy")
    assert [layer.n_out for layer in net.layers] == [256, 16, 4]
    assert net.meta["neuron_order"]["fc1"] == {"order": "yxc", "shape": [4, 8, 8]}
    # qnet.json's accuracy is the reference's on the same seeded spikes
    cfg = load_train_config(_config(tmp_path, idx_folder, 2, extra))
    x = np.stack([_toy_images(64, seed=64)[0][:40] / 255.0]).reshape(40, 1, 8, 8)
    y = _toy_images(64, seed=64)[1][:40]
    s = encode(cfg.encoding.kind, torch.as_tensor(x, dtype=torch.float32), 4,
               torch.Generator().manual_seed(cfg.seed))
    pred = simulate(net, s.reshape(4, 40, -1).transpose(0, 1).numpy().astype(np.uint8)).predictions
    assert rep["qnet_accuracy"] == pytest.approx(float((pred == y).mean()))
    assert rep["qnet_accuracy"] > 0.5 and rep["agreement"] > 0.8


def test_export_refuses_direct_input(tmp_path: Path, idx_folder: Path) -> None:
    p = _config(tmp_path, idx_folder, 1, "export: {weight_bits: 4}")
    p.write_text(p.read_text().replace("kind: bernoulli", "kind: direct"))
    with pytest.raises(ConfigError, match=r"field export: a QNet reads spikes"):
        load_train_config(p)


def test_resume_a_finished_run_to_export_it(tmp_path: Path, idx_folder: Path) -> None:
    train_from_config(_config(tmp_path, idx_folder, 1), tmp_path / "r", progress=False)
    before = (tmp_path / "r" / "checkpoint.pt").read_bytes()
    extra = "export: {weight_bits: 6, check_samples: 0}"
    res = train_from_config(_config(tmp_path, idx_folder, 1, extra), tmp_path / "r",
                            resume=True, progress=False)
    assert (tmp_path / "r" / "checkpoint.pt").read_bytes() == before  # nothing trained
    assert len(res["history"]) == 1 and (tmp_path / "r" / "toy.qnet.yaml").is_file()
    rep = json.loads((tmp_path / "r" / "qnet.json").read_text())
    assert rep["samples"] == 0 and rep["qnet_accuracy"] is None and rep["weight_bits"] == 6


def test_build_model_takes_subtract_unleaked(tmp_path: Path, idx_folder: Path) -> None:
    """The config's reset is a qnet.Reset: snnTorch's subtraction reaches the LIF layers."""
    from spikeforge.qnet import Reset

    p = _config(tmp_path, idx_folder)
    p.write_text(p.read_text().replace("reset: subtract,", "reset: subtract_unleaked,"))
    net = build_model(load_train_config(p))
    lifs = [m for m in net.layers if isinstance(m, LIF)]
    assert lifs and all(m.params.reset is Reset.SUBTRACT_UNLEAKED for m in lifs)
    torch.manual_seed(0)
    scores = net((torch.rand(4, 3, 1, 8, 8) < 0.5).float())
    assert scores.shape == (3, 4)
    scores.sum().backward()  # the surrogate gradient flows through the torch loop
