"""Bjontegaard delta rate and delta PSNR between two rate-distortion curves (G. Bjontegaard, "Calculation of
average PSNR differences between RD-curves", VCEG-M33, 2001).

Each curve is a set of points (rate, PSNR), one per encoder setting (here: per JPEG quality). With
:math:`r = \\log_{10}(\\text{rate})`:

* **BD-rate** fits :math:`r` as a cubic polynomial of PSNR for each curve, :math:`\\hat r_A(D)` (anchor) and
  :math:`\\hat r_T(D)` (test), integrates both over the PSNR interval the two curves share,
  :math:`[D_\\text{lo}, D_\\text{hi}] = [\\max(\\min D_A, \\min D_T), \\min(\\max D_A, \\max D_T)]`, and turns the mean
  log-rate difference into a percentage:

  .. math:: \\Delta r = \\frac{1}{D_\\text{hi} - D_\\text{lo}} \\int_{D_\\text{lo}}^{D_\\text{hi}}
            \\hat r_T(D) - \\hat r_A(D)\\, dD, \\qquad
            \\text{BD-rate} = (10^{\\Delta r} - 1) \\cdot 100\\ \\%.

  Negative: the test curve needs fewer bits for the same quality (-50 %: half the rate).
* **BD-PSNR** fits PSNR as a cubic polynomial of :math:`r` and averages the PSNR difference (test - anchor, dB)
  over the shared log-rate interval the same way. Positive: the test curve has the higher PSNR at the same rate.

A curve of fewer than 4 points is fitted with the polynomial of degree (points - 1), which passes through them (2
points: a straight line); each curve gets its own degree. Fewer than 2 points, or curves whose intervals do not
overlap (or meet in a single value), give NaN. The points need not be sorted.

>>> rate, psnr = [0.5, 1.0, 2.0, 4.0], [30.0, 33.0, 36.0, 39.0]
>>> round(bd_rate(rate, psnr, [r / 2 for r in rate], psnr), 9)   # half the bits for the same PSNR
-50.0
>>> round(bd_psnr(rate, psnr, rate, [p + 1 for p in psnr]), 9)   # 1 dB more at the same rate
1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bd_rate", "bd_psnr", "MIN_POINTS"]

# fewest points a curve needs (a straight line through two)
MIN_POINTS = 2
_MAX_DEGREE = 3


def _curve(rate: Sequence[float], psnr: Sequence[float], which: str) -> tuple[np.ndarray, np.ndarray]:
    """The curve as float arrays ``(log10 rate, psnr)``; ValueError on mismatched lengths or bad values."""
    rate, psnr = np.asarray(rate, dtype=np.float64).ravel(), np.asarray(psnr, dtype=np.float64).ravel()
    if rate.shape != psnr.shape:
        raise ValueError(f"{which} curve: {rate.size} rates but {psnr.size} PSNR values")
    if not np.isfinite(rate).all() or not np.isfinite(psnr).all():
        raise ValueError(f"{which} curve: rates and PSNR values must be finite (drop lossless points first)")
    if (rate <= 0).any():
        raise ValueError(f"{which} curve: rates must be positive, got {rate[rate <= 0][0]!r}")
    return np.log10(rate), psnr


def _mean_of_fit(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Mean over ``[lo, hi]`` of the polynomial of degree min(3, points - 1) fitted to ``y(x)`` by least squares.

    The fit runs on ``x`` centred and scaled to about [-1, 1], which keeps the cubic well conditioned (PSNR values
    near 40 would otherwise give powers near 64,000 beside 1).
    """
    degree = min(_MAX_DEGREE, len(np.unique(x)) - 1)
    centre, scale = (x.max() + x.min()) / 2.0, (x.max() - x.min()) / 2.0
    coeffs = np.polyfit((x - centre) / scale, y, degree)
    antiderivative = np.polyint(coeffs)
    u_lo, u_hi = (lo - centre) / scale, (hi - centre) / scale
    return float((np.polyval(antiderivative, u_hi) - np.polyval(antiderivative, u_lo)) / (u_hi - u_lo))


def _mean_difference(x_anchor: np.ndarray, y_anchor: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Mean of (test fit - anchor fit) over the shared range of x; NaN without two points each or an overlap."""
    if len(x_anchor) < MIN_POINTS or len(x_test) < MIN_POINTS:
        return math.nan
    lo, hi = max(x_anchor.min(), x_test.min()), min(x_anchor.max(), x_test.max())
    if not hi > lo:
        return math.nan
    return _mean_of_fit(x_test, y_test, lo, hi) - _mean_of_fit(x_anchor, y_anchor, lo, hi)


def bd_rate(rate_anchor: Sequence[float], psnr_anchor: Sequence[float], rate_test: Sequence[float],
            psnr_test: Sequence[float]) -> float:
    """Bjontegaard delta rate (%) of the test curve against the anchor curve, at equal PSNR.

    Args:
        rate_anchor, psnr_anchor: the anchor curve's points (rates in any positive unit, e.g. bits per pixel; PSNR
            in dB).
        rate_test, psnr_test: the test curve's points, in the same units.

    Returns:
        ``(10 ** mean(log10 rate_test - log10 rate_anchor) - 1) * 100`` over the shared PSNR interval (module
        docstring); NaN when a curve has fewer than 2 points or the PSNR intervals do not overlap.

    Raises:
        ValueError: a curve's rate and PSNR lengths differ, a rate is not positive, or a value is not finite.
    """
    log_a, psnr_a = _curve(rate_anchor, psnr_anchor, "anchor")
    log_t, psnr_t = _curve(rate_test, psnr_test, "test")
    diff = _mean_difference(psnr_a, log_a, psnr_t, log_t)
    return math.nan if math.isnan(diff) else (10.0 ** diff - 1.0) * 100.0


def bd_psnr(rate_anchor: Sequence[float], psnr_anchor: Sequence[float], rate_test: Sequence[float],
            psnr_test: Sequence[float]) -> float:
    """Bjontegaard delta PSNR (dB) of the test curve against the anchor curve, at equal rate.

    Same arguments and errors as :func:`bd_rate`. Returns the mean of (test PSNR - anchor PSNR), each fitted as a
    polynomial of log10(rate), over the shared log-rate interval; NaN when a curve has fewer than 2 points or the
    rate intervals do not overlap.
    """
    log_a, psnr_a = _curve(rate_anchor, psnr_anchor, "anchor")
    log_t, psnr_t = _curve(rate_test, psnr_test, "test")
    return _mean_difference(log_a, psnr_a, log_t, psnr_t)
