"""Fast full-set verification (plain-Verilog testbench) and the `sim` / `verify` CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.qnet import save_qnet
from spikeforge.sim.fast import run_fast
from spikeforge.sim.fuzz import random_qnet, random_spikes
from spikeforge.sim.protocol import compare, expected
from spikeforge.sim.tools import simulator_available

N_FUZZ = 60  # random QNets through Icarus in the default suite; `-m slow` runs 1,000


def _needs(sim: str) -> None:
    reason = simulator_available(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")


def _check(seed: int, sim: str, tmp_path, samples: int = 6) -> None:
    net = random_qnet(seed, max_width=16, max_timesteps=8)
    x = random_spikes(seed, net, samples)
    run = run_fast(net, x, simulator=sim, build_dir=tmp_path / f"s{seed}")
    assert not run.result.errors, run.result.errors[:3]
    mism = compare(expected(net, x), run.result)
    assert not mism, "\n".join(map(str, mism[:3]))


@pytest.mark.parametrize("block", range(6))
def test_fast_icarus_random_qnets(block, tmp_path):
    _needs("icarus")
    for seed in range(2000 + block * N_FUZZ // 6, 2000 + (block + 1) * N_FUZZ // 6):
        _check(seed, "icarus", tmp_path)


def test_fast_verilator_random_qnets(tmp_path):
    _needs("verilator")
    _check(3, "verilator", tmp_path, samples=20)


def test_fast_testbench_reports_a_broken_design(tmp_path):
    """A wrong reference must be caught: the comparison is not vacuous."""
    _needs("icarus")
    net = random_qnet(5)
    x = random_spikes(5, net, 4)
    x[:, :, :] = 1
    run = run_fast(net, x, simulator="icarus", build_dir=tmp_path)
    ref = expected(net, x)
    first = net.layers[0].name
    if first in ref.spikes:
        ref.spikes[first][0, 0] ^= 1
    else:
        ref.membrane[first][0, 0] += 1
    bad = compare(ref, run.result)
    assert [m.sample for m in bad] == [0]


@pytest.mark.slow
@pytest.mark.parametrize("block", range(10))
def test_fast_icarus_random_qnets_long(block, tmp_path):
    _needs("icarus")
    for seed in range(10_000 + block * 100, 10_000 + (block + 1) * 100):
        _check(seed, "icarus", tmp_path)


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def qnet_and_inputs(tmp_path):
    net = random_qnet(21, max_width=10)
    qpath, _ = save_qnet(net, tmp_path / "net")
    x = random_spikes(2, net, 5)
    np.savez(tmp_path / "in.npz", spikes=x)
    return net, qpath, tmp_path / "in.npz", x


@pytest.mark.parametrize("mode", ["fast", "cocotb"])
def test_cli_sim_writes_outputs(qnet_and_inputs, tmp_path, mode, capsys):
    _needs("icarus")
    net, qpath, inputs, x = qnet_and_inputs
    out = tmp_path / f"out-{mode}"
    assert main(["sim", str(qpath), "--inputs", str(inputs), "--simulator", "icarus",
                 "--mode", mode, "--out", str(out)]) == 0
    with np.load(out / "outputs.npz") as d:
        ref = expected(net, x)
        for layer in net.layers:
            assert d[f"membrane.{layer.name}"].shape == (len(x), layer.n_out)
            assert d[f"membrane.{layer.name}"].dtype == np.int64
            np.testing.assert_array_equal(d[f"membrane.{layer.name}"], ref.membrane[layer.name])
            for c in ("synaptic_events", "neuron_updates", "spikes_out"):
                np.testing.assert_array_equal(d[f"counters.{layer.name}.{c}"],
                                              ref.counters[layer.name][c])
            if layer.fire:
                assert d[f"spikes.{layer.name}"].dtype == np.uint8
                np.testing.assert_array_equal(d[f"spikes.{layer.name}"], ref.spikes[layer.name])


def test_cli_verify_reports_zero_mismatches_and_energy(qnet_and_inputs, tmp_path, capsys):
    _needs("icarus")
    _, qpath, inputs, x = qnet_and_inputs
    out = tmp_path / "v"
    assert main(["verify", str(qpath), "--inputs", str(inputs), "--out", str(out)]) == 0
    assert json.loads((out / "mismatches.json").read_text())["mismatches"] == 0
    energy = json.loads((out / "energy.json").read_text())
    assert energy["source"].startswith("rtl counters")
    assert (out / "energy.png").stat().st_size > 0
    assert "0 mismatching" in capsys.readouterr().out


@pytest.mark.parametrize("make_bad, field", [
    (lambda x: x[:, :-1], "shape"),
    (lambda x: x.astype(np.float32) * 0.5, "dtype"),
    (lambda x: x * 2, "0 or 1"),
])
def test_cli_bad_inputs_one_line(qnet_and_inputs, tmp_path, capsys, make_bad, field):
    _, qpath, _, x = qnet_and_inputs
    bad = tmp_path / "bad.npz"
    np.savez(bad, spikes=make_bad(x))
    out = tmp_path / "never"
    assert main(["verify", str(qpath), "--inputs", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and field in err[0]
    assert not out.exists()


def test_cli_pixels_missing_file_and_unknown_simulator(qnet_and_inputs, tmp_path, capsys):
    _, qpath, inputs, _ = qnet_and_inputs
    px = tmp_path / "px.npz"
    np.savez(px, pixels=np.zeros((2, 7), dtype=np.uint8))
    cases = [
        (["--inputs", str(px)], "pixels"),
        (["--inputs", str(tmp_path / "nope.npz")], "does not exist"),
        (["--inputs", str(inputs), "--simulator", "ghdl"], "unknown simulator"),
    ]
    for extra, words in cases:
        out = tmp_path / "never"
        assert main(["sim", str(qpath), *extra, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0]
        assert not out.exists()
