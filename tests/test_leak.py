"""The one beta <-> leak-shift rule (spikeforge.leak) and its users agree."""

from __future__ import annotations

import math

import pytest

from spikeforge import leak


def test_exact_leaks_round_trip() -> None:
    for shifts in [(), (1,), (3, 4), (2, 5, 9), (1, 2, 3, 4, 5), (15,)]:
        beta = leak.beta_from_shifts(shifts)
        assert leak.shifts_from_beta(beta) == shifts
        assert leak.leak_shifts_for(beta) == shifts
        assert leak.nearest_leak(beta) == (shifts, 0.0)


def test_edge_cases_where_the_old_converters_disagreed() -> None:
    # five shifts, exact: the export rule gave (1, 2, 3, 4, 5), the NIR rule (<= 4 terms) None
    assert leak.leak_shifts_for(1.0 - sum(2.0**-k for k in range(1, 6))) == (1, 2, 3, 4, 5)
    # 1 - 2^-16: the export rule (max shift 16) gave (16,), the NIR rule (15) None;
    # now both follow max_shift
    b16 = 1.0 - 2.0**-16
    assert leak.leak_shifts_for(b16) is None
    with pytest.raises(ValueError):
        leak.shifts_from_beta(b16)
    assert leak.shifts_from_beta(b16, max_shift=16) == (16,)
    assert leak.leak_shifts_for(b16, max_shift=16) == (16,)
    # beta outside (0, 1]: the NIR rule accepted 1 + 1e-6 as an IF neuron (within tolerance)
    for beta in [0.0, -0.5, 1.0 + 1e-6, 1.5, math.nan, math.inf]:
        assert leak.leak_shifts_for(beta) is None
        assert leak.nearest_leak(beta) == ((), math.inf)
        with pytest.raises(ValueError):
            leak.shifts_from_beta(beta)
    # inexact: exact rule refuses, tolerant rule takes the nearest
    with pytest.raises(ValueError, match="hardware leak"):
        leak.shifts_from_beta(0.8187)
    assert leak.leak_shifts_for(0.8187) is None
    assert leak.leak_shifts_for(0.8187, tolerance=2e-3) == (3, 5, 6, 7)


def test_beta_from_shifts_refuses_bad_shifts() -> None:
    for bad in [(0,), (1, 1), (True,), (1.0,), (1, 2, 3, 4, 5, 6) + tuple(range(7, 60))]:
        with pytest.raises(ValueError):
            leak.beta_from_shifts(bad)


def test_model_side_converters_are_the_one_rule() -> None:
    pytest.importorskip("torch")
    from spikeforge.model import export, lowering, nir_convention

    assert export.shifts_from_beta is leak.shifts_from_beta
    assert nir_convention.leak_shifts_for is leak.leak_shifts_for
    assert nir_convention.nearest_leak is leak.nearest_leak
    assert lowering.leak_shifts_for is leak.leak_shifts_for


def test_model_beta_from_shifts_agrees() -> None:
    """model.neurons.beta_from_shifts (torch side) gives the rule's beta and refusals."""
    pytest.importorskip("torch")
    from spikeforge.model.neurons import beta_from_shifts

    for shifts in [(), (1,), (3, 4), (2, 5, 9), (1, 2, 3, 4, 5), (15,)]:
        assert beta_from_shifts(shifts) == leak.beta_from_shifts(shifts)
    for bad in [(0,), (1, 1), (True,), (1.0,)]:
        with pytest.raises(ValueError):
            beta_from_shifts(bad)
