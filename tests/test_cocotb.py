"""The generated Verilog under cocotb (Icarus; Verilator where installed) vs the reference."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.sim.fuzz import random_qnet, random_spikes
from spikeforge.sim.protocol import compare, expected
from spikeforge.sim.runner import run_rtl, simulator_available


def _needs(simulator: str) -> None:
    reason = simulator_available(simulator)
    if reason:
        pytest.skip(f"{simulator}: {reason}")


@pytest.mark.parametrize("simulator, seed", [("icarus", s) for s in range(8)]
                         + [("verilator", s) for s in (0, 1)])
def test_cocotb_random_qnets(simulator, seed, tmp_path):
    _needs(simulator)
    net = random_qnet(100 + seed, max_width=16, max_timesteps=8)
    x = random_spikes(seed, net, 5)
    run = run_rtl(net, x, simulator=simulator, build_dir=tmp_path,
                  stall_seed=seed if seed % 2 else None, check=True)
    mismatches = compare(expected(net, x), run.result)
    assert not mismatches, "\n".join(map(str, mismatches[:3]))
    assert run.passed  # the in-simulator checker agrees
    assert (run.result.cycles > 0).all()


def test_icarus_checker_catches_a_wrong_model(tmp_path):
    """A reference that differs from the RTL must make the comparison fail."""
    _needs("icarus")
    net = random_qnet(7)
    x = random_spikes(1, net, 3)
    x[:, :, 0] = 1  # make sure something flows
    run = run_rtl(net, x, build_dir=tmp_path)
    ref = expected(net, x)
    name = net.layers[-1].name
    ref.membrane[name] = ref.membrane[name] + 1
    bad = compare(ref, run.result)
    assert len(bad) == len(x) and bad[0].what == "membrane"


def test_rtl_refuses_inputs_of_the_wrong_shape(tmp_path):
    from spikeforge.errors import SpikeforgeError

    net = random_qnet(2)
    with pytest.raises(SpikeforgeError, match="input spikes must be"):
        run_rtl(net, np.zeros((1, net.timesteps + 1, net.n_in)), build_dir=tmp_path)
