"""Bjontegaard deltas (etcbench.bjontegaard): exact values on known curve shifts, the invariants on random monotone
curves (hypothesis), the fewer-point fits, NaN without overlap, and errors on bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench.bjontegaard import bd_psnr, bd_rate

RATE = [0.35, 0.62, 1.1, 1.9, 3.2]
PSNR = [27.4, 30.1, 33.0, 35.2, 38.9]


def test_identical_curves_give_zero():
    assert bd_rate(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-12)
    assert bd_psnr(RATE, PSNR, RATE, PSNR) == pytest.approx(0.0, abs=1e-12)


def test_half_the_rate_at_the_same_psnr_is_minus_fifty_percent():
    assert bd_rate(RATE, PSNR, [r / 2 for r in RATE], PSNR) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(RATE, PSNR, [r * 2 for r in RATE], PSNR) == pytest.approx(100.0, abs=1e-9)


def test_one_db_more_at_the_same_rate_is_plus_one_db():
    assert bd_psnr(RATE, PSNR, RATE, [p + 1 for p in PSNR]) == pytest.approx(1.0, abs=1e-9)


def test_swapping_anchor_and_test_inverts_the_rate_ratio_and_negates_psnr():
    other_rate, other_psnr = [0.5, 0.8, 1.5, 2.4, 4.0], [27.0, 29.5, 32.8, 35.9, 38.0]
    a, b = bd_rate(RATE, PSNR, other_rate, other_psnr), bd_rate(other_rate, other_psnr, RATE, PSNR)
    assert a > 0 and (1 + a / 100) * (1 + b / 100) == pytest.approx(1.0, abs=1e-12)
    assert bd_psnr(RATE, PSNR, other_rate, other_psnr) == pytest.approx(
        -bd_psnr(other_rate, other_psnr, RATE, PSNR), abs=1e-12)


def test_a_known_value_of_the_cubic_fit():
    """Straight lines in (log10 rate, PSNR): the test curve is anchor-PSNR + 2 dB at the same rate with the slope
    10 dB per decade, so at the same PSNR it needs 10^(-2/10) of the anchor's rate: BD-rate = (10^-0.2 - 1) * 100."""
    rate = [0.25, 0.5, 1.0, 2.0, 4.0]
    psnr = [30 + 10 * math.log10(r) for r in rate]
    shifted = [p + 2 for p in psnr]
    assert bd_rate(rate, psnr, rate, shifted) == pytest.approx((10 ** -0.2 - 1) * 100, abs=1e-9)
    assert bd_psnr(rate, psnr, rate, shifted) == pytest.approx(2.0, abs=1e-9)


def test_fewer_than_four_points_fit_a_lower_degree():
    # two points each: straight lines, exact on these linear curves
    assert bd_rate([1.0, 4.0], [30.0, 36.0], [0.5, 2.0], [30.0, 36.0]) == pytest.approx(-50.0, abs=1e-9)
    assert bd_psnr([1.0, 4.0], [30.0, 36.0], [1.0, 4.0], [31.0, 37.0]) == pytest.approx(1.0, abs=1e-9)
    # three points: a parabola through them, so halving the rates is still exactly -50 %
    assert bd_rate(RATE[:3], PSNR[:3], [r / 2 for r in RATE[:3]], PSNR[:3]) == pytest.approx(-50.0, abs=1e-9)
    # three points against five: each curve its own degree (the reference fits each with degree min(3, n - 1))
    assert bd_rate(RATE[:3], PSNR[:3], RATE, PSNR) == pytest.approx(
        _reference_bd_rate(RATE[:3], PSNR[:3], RATE, PSNR), abs=1e-6)


def _reference_bd_rate(rate_a, psnr_a, rate_t, psnr_t):
    """VCEG-M33 written out another way: raw np.polyfit on PSNR, the integral by the trapezoid rule on a fine grid."""
    lo, hi = max(min(psnr_a), min(psnr_t)), min(max(psnr_a), max(psnr_t))
    grid = np.linspace(lo, hi, 200_001)
    fit_a = np.polyval(np.polyfit(psnr_a, np.log10(rate_a), min(3, len(rate_a) - 1)), grid)
    fit_t = np.polyval(np.polyfit(psnr_t, np.log10(rate_t), min(3, len(rate_t) - 1)), grid)
    return (10 ** (np.trapezoid(fit_t - fit_a, grid) / (hi - lo)) - 1) * 100


def test_cubic_fit_matches_a_direct_reference():
    other_rate, other_psnr = [0.5, 0.8, 1.5, 2.4, 4.0], [27.0, 29.5, 32.8, 35.9, 38.0]
    expected = _reference_bd_rate(RATE, PSNR, other_rate, other_psnr)
    assert abs(expected) > 5  # a real difference, not a trivial zero
    assert bd_rate(RATE, PSNR, other_rate, other_psnr) == pytest.approx(expected, abs=1e-6)


def test_no_overlap_or_too_few_points_give_nan():
    assert math.isnan(bd_rate(RATE, PSNR, RATE, [p + 20 for p in PSNR]))  # PSNR ranges apart
    assert math.isnan(bd_psnr(RATE, PSNR, [r * 100 for r in RATE], PSNR))  # rate ranges apart
    assert math.isnan(bd_rate(RATE, PSNR, [1.0], [33.0]))
    assert math.isnan(bd_psnr([], [], RATE, PSNR))
    # ranges that only touch: an empty interval
    assert math.isnan(bd_rate([1.0, 2.0], [30.0, 33.0], [2.0, 4.0], [33.0, 36.0]))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="anchor curve: 5 rates but 4 PSNR"):
        bd_rate(RATE, PSNR[:4], RATE, PSNR)
    with pytest.raises(ValueError, match="test curve: 4 rates but 5"):
        bd_psnr(RATE, PSNR, RATE[:4], PSNR)
    with pytest.raises(ValueError, match="positive"):
        bd_rate(RATE, PSNR, [0.0, *RATE[1:]], PSNR)
    with pytest.raises(ValueError, match="positive"):
        bd_psnr([-1.0, *RATE[1:]], PSNR, RATE, PSNR)
    with pytest.raises(ValueError, match="finite"):
        bd_rate(RATE, [*PSNR[:-1], math.inf], RATE, PSNR)


@st.composite
def monotone_curves(draw, min_points: int = 2, max_points: int = 7) -> tuple[list[float], list[float]]:
    """Rates and PSNR values that both increase, with steps wide enough for a well-posed fit."""
    n = draw(st.integers(min_points, max_points))
    log_rate = np.cumsum([draw(st.floats(-1.5, 0.5))] + [draw(st.floats(0.05, 0.5)) for _ in range(n - 1)])
    psnr = np.cumsum([draw(st.floats(15.0, 40.0))] + [draw(st.floats(0.3, 5.0)) for _ in range(n - 1)])
    return [float(r) for r in 10.0 ** log_rate], [float(p) for p in psnr]


@settings(max_examples=200, deadline=None)
@given(monotone_curves())
def test_identical_curves_give_zero_on_any_curve(curve):
    rate, psnr = curve
    assert bd_rate(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(rate, psnr, rate, psnr) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(monotone_curves(), st.floats(0.05, 20.0))
def test_scaled_rates_and_shifted_psnr_on_any_curve(curve, factor):
    rate, psnr = curve
    assert bd_rate(rate, psnr, [r * factor for r in rate], psnr) == pytest.approx((factor - 1) * 100, abs=1e-7)
    assert bd_rate(rate, psnr, [r / 2 for r in rate], psnr) == pytest.approx(-50.0, abs=1e-9)
    assert bd_psnr(rate, psnr, rate, [p + 1 for p in psnr]) == pytest.approx(1.0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(monotone_curves(), monotone_curves())
def test_swapping_anchor_and_test_on_any_curves(anchor, test):
    a, b = bd_rate(*anchor, *test), bd_rate(*test, *anchor)
    assert math.isnan(a) == math.isnan(b)
    if not math.isnan(a):
        assert (1 + a / 100) * (1 + b / 100) == pytest.approx(1.0, rel=1e-9)
    c, d = bd_psnr(*anchor, *test), bd_psnr(*test, *anchor)
    assert math.isnan(c) == math.isnan(d)
    if not math.isnan(c):
        assert c == pytest.approx(-d, abs=1e-9)
