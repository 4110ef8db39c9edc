"""The DSE trains through the trainer: hidden widths or a layer list, no LIFMLP."""

from __future__ import annotations

import copy

import pytest

from spikeforge.dse import run_study, study_from_dict
from spikeforge.dse.study import PointSettings, qnet_sizes, train_config
from spikeforge.errors import ConfigError

BASE = {"dataset": "digits", "train_samples": 200, "test_samples": 50, "hidden": [8],
        "epochs": 1, "batch_size": 64, "timesteps": 2, "copies": 2, "map_samples": 8}
CONV = [{"conv": {"channels": 2, "kernel": 3, "stride": 1, "padding": 1}},
        {"pool": {"size": 2}}, {"flatten": True}]


def _study(**base):
    return study_from_dict({
        "name": "trainer_path", "base": BASE | base,
        "parameters": {"weight_bits": {"choices": [3, 6]}},
        "objectives": {"accuracy": "max"}, "record": ["dense_weight_bits", "float_accuracy"],
        "search": {"method": "grid"}}, source="study.yaml")


def _quiet():
    from rich.console import Console

    return Console(quiet=True)


def test_hidden_widths_are_the_trainers_dense_layers():
    s = PointSettings.model_validate(BASE).model_dump(mode="json")
    cfg = train_config(s)
    assert [spec.dense for spec in cfg.model.layers] == [8, 10]  # + the digits' 10 classes
    assert cfg.model.input_shape == [64]
    assert cfg.model.neuron.leak_shifts == [3, 4]
    assert cfg.train.epochs == 2  # epochs x copies
    assert cfg.data.train_limit == 200 and cfg.data.test_limit == 50
    assert qnet_sizes(s) == [64, 8, 10]


def test_layer_list_point_runs_without_lifmlp(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from spikeforge.model import mlp

    def no_mlp(*a, **k):
        raise AssertionError("the DSE built a LIFMLP")

    monkeypatch.setattr(mlp.LIFMLP, "__init__", no_mlp)
    study = _study(layers=CONV, input_shape=[1, 8, 8])
    s = study.point_settings({"weight_bits": 3})
    assert qnet_sizes(s) == [64, 2 * 8 * 8, 10]  # the pool of spikes folds into the readout
    res = run_study(study, tmp_path / "out", workers=0, console=_quiet())
    assert [r["status"] for r in res.rows] == ["ok", "ok"], [r["message"] for r in res.rows]
    for r in res.rows:
        assert r["dense_weight_bits"] == (64 * 128 + 128 * 10) * r["weight_bits"]
        assert 0.0 <= r["accuracy"] <= 1.0 and 0.0 <= r["float_accuracy"] <= 1.0


def test_layers_as_a_parameter():
    d = {"name": "layers", "base": BASE, "objectives": {"accuracy": "max"},
         "parameters": {"layers": {"choices": [[{"dense": 8}], [{"dense": 4}, {"dense": 4}]]}},
         "search": {"method": "grid"}}
    study = study_from_dict(d, source="study.yaml")
    sizes = [qnet_sizes(study.point_settings(v)) for v in study.grid()]
    assert sorted(sizes) == [[64, 4, 4, 10], [64, 8, 10]]


@pytest.mark.parametrize("change,text", [
    ({"input_shape": [1, 28, 28]}, "input_shape"),
    ({"layers": [{"lstm": 4}]}, "layers"),
    ({"epochs": 1000, "copies": 64}, "epochs x copies"),
])
def test_bad_model_settings_refused_up_front(change, text):
    with pytest.raises(ConfigError) as e:
        _study(**change)
    assert text in str(e.value)


def test_layer_list_changes_the_training_key():
    from spikeforge.dse.study import TRAIN_FIELDS, settings_key

    a = PointSettings.model_validate(BASE).model_dump(mode="json")
    b = copy.deepcopy(a) | {"layers": [{"dense": 8}]}
    assert settings_key(a, TRAIN_FIELDS) != settings_key(b, TRAIN_FIELDS)
