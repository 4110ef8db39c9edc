"""Neurons by hand, the fused time loop against the step functions, the hardware leak."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge.model.kernels import lif_sequence, lif_sequence_reference
from spikeforge.model.layers import LIF
from spikeforge.model.neurons import (
    LIFParams,
    LIFState,
    RefractoryState,
    ShiftLIFParams,
    lif_step,
    refractory_lif_step,
    run_steps,
    shift_leak,
    shift_lif_step,
)
from spikeforge.model.surrogate import Surrogate
from spikeforge.qnet import SPIKING_RESETS, InputSpec, Layer, QNet, Reset
from spikeforge.reference import layer_step, simulate


def _run(params: LIFParams, currents: list[float]) -> tuple[list[float], float]:
    x = torch.tensor(currents, dtype=torch.float64).view(-1, 1, 1)
    zeros = torch.zeros(1, 1, dtype=torch.float64)
    if params.refractory:
        spikes, state = run_steps(refractory_lif_step, x, RefractoryState(zeros, zeros.clone()),
                                  params)
        v = state.v
    else:
        spikes, v = run_steps(lif_step, x, zeros, params)
        if isinstance(v, LIFState):
            v = v.v
    return spikes.flatten().tolist(), float(v)


# Binary fractions, so the trajectories are exact in floating point.
CASES = [
    # (beta, theta, reset, refractory, currents, spikes, final membrane)
    (0.5, 1.0, Reset.ZERO, 0, [0.75, 0.75, 0.5, 1.5, 0.0], [0, 1, 0, 1, 0], 0.0),
    (0.5, 1.0, Reset.SUBTRACT, 0, [0.75, 0.75, 0.5, 1.5, 0.0], [0, 1, 0, 1, 0], 0.390625),
    (1.0, 1.0, Reset.ZERO, 0, [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.0),  # IF
    (1.0, 1.0, Reset.SUBTRACT, 0, [0.75, 0.75, 0.75, 0.75], [0, 1, 1, 1], 0.0),  # IF
    (0.75, 2.0, Reset.ZERO, 0, [-1.0, 1.0, 1.0, 1.0], [0, 0, 0, 0], 1.890625),  # leak, no spike
    (1.0, 1.0, Reset.ZERO, 2, [1.0] * 6, [1, 0, 0, 1, 0, 0], 0.0),  # refractory, held
    (1.0, 1.0, Reset.SUBTRACT, 1, [1.5] * 4, [1, 0, 1, 0], 1.0),
    (0.5, 1.0, Reset.ZERO, 1, [2.0, 0.5, 0.5, 0.5], [1, 0, 0, 0], 0.75),
    # snnTorch's subtraction: v = beta v + I - theta s_prev (theta leaves at the next step,
    # unleaked); 0.75, 1.125 (spike, kept), 0.5625 + 0.5 - 1, 0.03125 + 1.5, 0.765625 - 1
    (0.5, 1.0, Reset.SUBTRACT_UNLEAKED, 0, [0.75, 0.75, 0.5, 1.5, 0.0], [0, 1, 0, 1, 0],
     -0.234375),
    (1.0, 1.0, Reset.SUBTRACT_UNLEAKED, 0, [0.75] * 4, [0, 1, 1, 1], 1.0),  # IF: no pending
]


@pytest.mark.parametrize("case", CASES)
def test_neuron_trajectories_by_hand(case) -> None:
    beta, theta, reset, refractory, currents, spikes, v_end = case
    params = LIFParams(beta=beta, threshold=theta, reset=reset, refractory=refractory)
    got_spikes, got_v = _run(params, currents)
    assert got_spikes == spikes
    assert got_v == v_end
    # the fused loop (or the refractory fallback) gives the same spikes
    x = torch.tensor(currents, dtype=torch.float64).view(-1, 1, 1)
    assert lif_sequence(x, params).flatten().tolist() == spikes


def test_subtract_unleaked_step_state_and_refusals() -> None:
    params = LIFParams(beta=0.5, threshold=1.0, reset=Reset.SUBTRACT_UNLEAKED)
    s, state = lif_step(torch.tensor([[1.5]]), torch.zeros(1, 1), params)
    assert isinstance(state, LIFState) and state.v.item() == 1.5 and state.s.item() == 1.0
    s, state = lif_step(torch.tensor([[0.0]]), state, params)  # 0.75 - 1
    assert s.item() == 0.0 and state.v.item() == -0.25
    with pytest.raises(ValueError, match="refractory period is not supported"):
        LIFParams(beta=0.5, threshold=1.0, reset=Reset.SUBTRACT_UNLEAKED, refractory=1)
    with pytest.raises(ValueError, match="SUBTRACT_UNLEAKED"):
        LIFParams(beta=0.5, threshold=1.0, reset=Reset.NONE)


@pytest.mark.parametrize("reset", SPIKING_RESETS)
def test_fused_if_layer_equals_qnet_reference(reset) -> None:
    """The training loop (C kernels or torch) on integer currents: the reference's spikes."""
    rng = np.random.default_rng(7)
    n_in, n_out, t_steps, batch, theta = 10, 5, 25, 6, 13
    w = rng.integers(-7, 8, size=(n_out, n_in))
    layer = Layer(name="l", n_in=n_in, n_out=n_out, weight_bits=4, weights=w, threshold=theta,
                  membrane_bits=16, reset=reset, fire=True)
    s_in = rng.integers(0, 2, size=(batch, t_steps, n_in)).astype(np.uint8)
    ref = simulate(QNet(layers=(layer,), timesteps=t_steps, input=InputSpec(n_in)), s_in)
    currents = torch.from_numpy((s_in @ w.T).astype(np.float32)).transpose(0, 1)
    spikes = lif_sequence(currents, LIFParams(beta=1.0, threshold=float(theta), reset=reset))
    np.testing.assert_array_equal(spikes.transpose(0, 1).numpy().astype(np.uint8),
                                  ref.spikes["l"])
    assert 0 < ref.spikes["l"].sum() < ref.spikes["l"].size


def test_refractory_zero_equals_plain_lif() -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 4, 6, dtype=torch.float64)
    p0 = LIFParams(beta=0.8, threshold=0.6, reset=Reset.SUBTRACT)
    zeros = torch.zeros(4, 6, dtype=torch.float64)
    s_plain, _ = run_steps(lif_step, x, zeros, p0)
    s_ref, _ = run_steps(refractory_lif_step, x, RefractoryState(zeros, zeros.clone()), p0)
    assert torch.equal(s_plain, s_ref)


@pytest.mark.parametrize("reset", SPIKING_RESETS)
@pytest.mark.parametrize("beta", [1.0, 0.8187])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("kind", [Surrogate.EXPONENTIAL, Surrogate.PIECEWISE_LINEAR])
def test_fused_loop_equals_step_loop(reset, beta, learn, kind) -> None:
    torch.manual_seed(3)
    theta = torch.tensor(0.7, dtype=torch.float64, requires_grad=True) if learn else 0.7
    params = LIFParams(beta=beta, threshold=theta, reset=reset, surrogate=kind)
    x = (torch.randn(9, 5, 7, dtype=torch.float64) * 0.8).requires_grad_(True)
    w = torch.randn(9, 5, 7, dtype=torch.float64)
    wrt = [x, theta] if learn else [x]
    s1 = lif_sequence(x, params)
    g1 = torch.autograd.grad((s1 * w).sum(), wrt)
    s2 = lif_sequence_reference(x, params)
    g2 = torch.autograd.grad((s2 * w).sum(), wrt)
    assert torch.equal(s1, s2)
    assert 0 < float(s1.detach().sum()) < s1.numel()
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_learnable_threshold_is_trained() -> None:
    torch.manual_seed(0)
    lif = LIF(0.9, 1.0, learn_threshold=True, surrogate=Surrogate.FAST_SIGMOID)
    assert [n for n, _ in lif.named_parameters()] == ["threshold"]
    x = torch.rand(10, 8, 5) * 0.5
    opt = torch.optim.SGD(lif.parameters(), lr=0.1)
    before = lif(x).detach().sum().item()
    for _ in range(5):
        loss = -lif(x).mean()  # more spikes: a lower threshold
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(lif.threshold.detach()) < 1.0
    assert lif(x).detach().sum().item() >= before
    fixed = LIF(0.9, 1.0)
    assert list(fixed.parameters()) == []


@pytest.mark.parametrize("reset", SPIKING_RESETS)
@pytest.mark.parametrize("shifts", [(), (3, 4), (2,), (1, 3)])
def test_shift_leak_neuron_equals_qnet_reference(reset, shifts) -> None:
    rng = np.random.default_rng(len(shifts))
    n_in, n_out, t_steps, batch, theta = 12, 6, 30, 8, 17
    w = rng.integers(-15, 16, size=(n_out, n_in))
    layer = Layer(name="l", n_in=n_in, n_out=n_out, weight_bits=5, weights=w, threshold=theta,
                  membrane_bits=16, leak_shifts=shifts, reset=reset, fire=True)
    s_in = rng.integers(0, 2, size=(t_steps, batch, n_in))
    v_ref = np.zeros((batch, n_out), dtype=np.int64)
    ref, s = [], None
    for t in range(t_steps):
        v_ref, s = layer_step(layer, v_ref, s_in[t], s)
        ref.append(s)
    params = ShiftLIFParams(leak_shifts=shifts, threshold=float(theta), reset=reset)
    currents = torch.from_numpy((s_in @ w.T).astype(np.float32))
    spikes, v = run_steps(shift_lif_step, currents, torch.zeros(batch, n_out), params)
    if isinstance(v, LIFState):  # a rule that subtracts at the next update keeps the spikes
        v = v.v
    np.testing.assert_array_equal(spikes.numpy().astype(np.uint8), np.stack(ref))
    np.testing.assert_array_equal(v.numpy().astype(np.int64), v_ref)
    assert (v_ref < 0).any()  # negative membranes exercise the floor of the shifts


def test_shift_leak_values_and_gradient() -> None:
    v = torch.tensor([-17.0, -1.0, 0.0, 1.0, 15.0, 16.0, 100.0], requires_grad=True)
    out = shift_leak(v, (3, 4))
    want = [x - (x >> 3) - (x >> 4) for x in [-17, -1, 0, 1, 15, 16, 100]]
    assert out.tolist() == want
    out.sum().backward()
    assert v.grad.tolist() == [0.8125] * 7


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="refractory"):
        LIFParams(beta=0.5, threshold=1.0, refractory=-1)
    with pytest.raises(ValueError, match="0-d"):
        LIFParams(beta=0.5, threshold=torch.ones(3))
    with pytest.raises(ValueError, match="distinct"):
        ShiftLIFParams(leak_shifts=(3, 3), threshold=1.0)


@pytest.mark.parametrize("kind", list(Surrogate))
@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
def test_in_place_surrogate_equals_surrogate_grad(kind: Surrogate, scale: float) -> None:
    from spikeforge.model.kernels import _surrogate_grad_
    from spikeforge.model.surrogate import surrogate_grad

    x = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    torch.testing.assert_close(_surrogate_grad_(x.clone(), kind, scale),
                               surrogate_grad(x, kind, scale), rtol=1e-12, atol=0.0)


def test_retain_freed_memory_is_harmless() -> None:
    from spikeforge.model.engine import retain_freed_memory

    assert retain_freed_memory() in (True, False)
    assert torch.ones(2_000_000).sum() == 2_000_000


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reset", SPIKING_RESETS)
@pytest.mark.parametrize("kind", list(Surrogate))
def test_native_kernels_equal_torch_loop(dtype, reset, kind) -> None:
    from spikeforge.model import native
    from spikeforge.model.kernels import Backend

    if not native.available():
        pytest.skip("no C compiler: the native LIF kernels could not be built")
    torch.manual_seed(5)
    theta = torch.tensor(0.7, dtype=dtype, requires_grad=True)
    params = LIFParams(beta=0.8125, threshold=theta, reset=reset, surrogate=kind, scale=1.3)
    x = (torch.randn(11, 4, 3, 5, dtype=dtype)).requires_grad_(True)
    w = torch.randn(11, 4, 3, 5, dtype=dtype)
    s1 = lif_sequence(x, params)
    g1 = torch.autograd.grad((s1 * w).sum(), [x, theta])
    s2 = lif_sequence(x, params, Backend.TORCH)
    g2 = torch.autograd.grad((s2 * w).sum(), [x, theta])
    assert torch.equal(s1, s2)  # the forward is exact
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
