"""Fast full-set verification (plain-Verilog testbench) and the `sim` / `verify` CLI."""

from __future__ import annotations

import json
import signal
import sys
import time

import numpy as np
import pytest

from spikeforge.cli import main
from spikeforge.encoding import onchip_rate_encode, sample_seeds
from spikeforge.errors import SpikeforgeError
from spikeforge.qnet import save_qnet
from spikeforge.sim.fast import run_fast, shards
from spikeforge.sim.fuzz import random_qnet, random_spikes
from spikeforge.sim.protocol import compare, expected
from spikeforge.sim.tools import run_children, simulator_available

N_FUZZ = 60  # random QNets through Icarus in the default suite; `-m slow` runs 1,000


def _needs(sim: str) -> None:
    reason = simulator_available(sim)
    if reason:
        pytest.skip(f"{sim}: {reason}")


def _check(seed: int, sim: str, tmp_path, samples: int = 6, jobs: int | None = None) -> None:
    net = random_qnet(seed, max_width=16, max_timesteps=8)
    x = random_spikes(seed, net, samples)
    run = run_fast(net, x, simulator=sim, build_dir=tmp_path / f"s{seed}", jobs=jobs)
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


# ----------------------------------------------------------------------------- shards


def test_shards_cover_every_sample_in_order():
    for n in (1, 2, 3, 7, 10, 101):
        for jobs in (1, 2, 3, 4, 16):
            parts = shards(n, jobs)
            assert len(parts) == min(n, jobs)
            assert parts[0][0] == 0 and parts[-1][1] == n
            assert all(a < b for a, b in parts)
            assert all(parts[i][1] == parts[i + 1][0] for i in range(len(parts) - 1))
            sizes = [b - a for a, b in parts]
            assert max(sizes) - min(sizes) <= 1


def _same(a, b) -> None:
    """Two RTL results are identical in every field."""
    da, db = a.to_npz_dict(), b.to_npz_dict()
    assert da.keys() == db.keys()
    for k in da:
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_sharded_run_equals_unsharded_and_reference(sim, tmp_path):
    """Shards of 1..N samples (N = 1, N below the shard count, uneven shards) give the
    unsharded run's result, in sample order, and that equals the reference."""
    _needs(sim)
    seeds = (2101, 2102, 2103) if sim == "icarus" else (2104,)
    for seed in seeds:
        net = random_qnet(seed, max_width=12, max_timesteps=6)
        x = random_spikes(seed, net, 7)
        x[3] = 0  # a silent sample among busy ones
        one = run_fast(net, x, simulator=sim, build_dir=tmp_path / f"{seed}-1", jobs=1)
        assert one.jobs == 1 and not one.result.errors, one.result.errors[:3]
        assert not compare(expected(net, x), one.result)
        for jobs, n in ((2, 7), (3, 7), (4, 2), (8, 7), (3, 1)):
            run = run_fast(net, x[:n], simulator=sim, build_dir=tmp_path / f"{seed}-{jobs}-{n}",
                           jobs=jobs)
            assert run.jobs == min(jobs, n)
            assert not run.result.errors, run.result.errors[:3]
            if n == len(x):
                _same(run.result, one.result)
            mism = compare(expected(net, x[:n]), run.result)
            assert not mism, "\n".join(map(str, mism[:3]))


def test_sharded_encoder_run_keeps_each_samples_seed(tmp_path):
    """Pixels and their seeds travel together: shard k's samples keep their own seeds."""
    _needs("icarus")
    net = random_qnet(404)
    rng = np.random.default_rng(4)
    px = rng.integers(0, 256, (5, net.n_in)).astype(np.uint8)
    seeds = sample_seeds(5, base=29)
    ref = expected(net, onchip_rate_encode(px, net.timesteps, seeds))
    one = run_fast(net, px, simulator="icarus", build_dir=tmp_path / "one", seeds=seeds, jobs=1)
    assert not one.result.errors and not compare(ref, one.result)
    for jobs in (2, 3, 6):
        run = run_fast(net, px, simulator="icarus", build_dir=tmp_path / f"j{jobs}",
                       seeds=seeds, jobs=jobs)
        assert not run.result.errors
        _same(run.result, one.result)
    # swapping two samples' seeds changes what those samples see: seeds are per sample
    swapped = seeds[[1, 0, 2, 3, 4]]
    ref2 = expected(net, onchip_rate_encode(px, net.timesteps, swapped))
    run = run_fast(net, px, simulator="icarus", build_dir=tmp_path / "sw", seeds=swapped, jobs=2)
    assert not compare(ref2, run.result)


def test_build_is_reused_only_for_the_same_sources(tmp_path):
    """A second run on the same build folder reuses the executable; another net rebuilds."""
    _needs("icarus")
    build = tmp_path / "b"
    for seed, reused in ((2201, False), (2201, True), (2202, False)):
        net = random_qnet(seed, max_width=8)
        x = random_spikes(seed, net, 3)
        run = run_fast(net, x, simulator="icarus", build_dir=build, jobs=2)
        assert ("reusing" in (build / "build.log").read_text()) == reused
        assert not run.result.errors and not compare(expected(net, x), run.result)


def test_jobs_and_threads_are_checked(tmp_path):
    net = random_qnet(5)
    x = random_spikes(5, net, 2)
    for kw in ({"jobs": 0}, {"jobs": 10_000}, {"threads": 0}):
        with pytest.raises(SpikeforgeError):
            run_fast(net, x, simulator="icarus", build_dir=tmp_path / "never", **kw)
    with pytest.raises(SpikeforgeError, match="verilator"):
        run_fast(net, x, simulator="icarus", build_dir=tmp_path / "never", threads=2)
    assert not (tmp_path / "never").exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_run_children_stops_every_group_on_an_exception(tmp_path):
    """Ctrl-C (or SIGTERM) during the wait stops every shard *and* what each started."""
    pidfiles = [tmp_path / f"pid{k}" for k in range(3)]
    cmds = [["sh", "-c", f"sleep 60 & echo $! > {f}; wait"] for f in pidfiles]

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    t0 = time.monotonic()
    try:
        with open(tmp_path / "log", "w") as log, pytest.raises(KeyboardInterrupt):
            run_children(cmds, logs=[log] * 3, cwd=tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 30
    for f in pidfiles:
        grandchild = int(f.read_text())
        deadline = time.monotonic() + 5
        while _alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(grandchild), "a shard's own child survived"


def test_run_children_statuses_in_order_and_a_failure_stops_the_rest(tmp_path):
    with open(tmp_path / "log", "w") as log:
        assert run_children([["sh", "-c", "exit 0"], ["sh", "-c", "exit 3"]],
                            logs=[log, log]) == [0, 3]
        t0 = time.monotonic()
        rcs = run_children([["sh", "-c", "exit 5"], ["sleep", "60"]], logs=[log, log])
    assert rcs[0] == 5 and rcs[1] != 0 and time.monotonic() - t0 < 30


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


def test_cli_verify_jobs(qnet_and_inputs, tmp_path, capsys):
    """--jobs shards the samples (fast mode only); the outputs are those of one process."""
    _needs("icarus")
    net, qpath, inputs, x = qnet_and_inputs
    out = tmp_path / "j3"
    assert main(["verify", str(qpath), "--inputs", str(inputs), "--jobs", "3",
                 "--out", str(out)]) == 0
    assert json.loads((out / "mismatches.json").read_text())["mismatches"] == 0
    assert sorted(p.name for p in (out / "build").glob("results-*.txt")) == [
        "results-0.txt", "results-1.txt", "results-2.txt"]
    capsys.readouterr()
    for extra, words in ((["--jobs", "2", "--mode", "cocotb"], "--mode fast"),
                         (["--jobs", "0"], "--jobs")):
        never = tmp_path / "never"
        assert main(["sim", str(qpath), "--inputs", str(inputs), *extra,
                     "--out", str(never)]) == 2
        assert words in capsys.readouterr().err
        assert not never.exists()


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
