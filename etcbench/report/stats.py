"""Spread over seeds: the mean and its Student-t confidence interval, for the tables and the error bars.

With ``n`` seeds the interval is ``mean ± t(1 - (1 - confidence) / 2, n - 1) * s / sqrt(n)`` (``s``: sample
standard deviation, ddof = 1), the usual small-sample interval of a mean; with 3 seeds the t quantile is 4.30, so
the 95% interval is about 2.5 standard deviations wide on each side. One seed has no interval (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

__all__ = ["ci_halfwidth", "ci_interval"]


def ci_halfwidth(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the Student-t confidence interval of the mean of ``values`` (NaN for fewer than 2)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return math.nan
    return float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))


def ci_interval(confidence: float = 0.95) -> Callable[[Sequence[float]], tuple[float, float]]:
    """``values -> (low, high)``: the interval as seaborn's ``errorbar`` callable takes it."""

    def interval(values: Sequence[float]) -> tuple[float, float]:
        x = np.asarray(values, dtype=float)
        mean, half = float(np.nanmean(x)), ci_halfwidth(x, confidence)
        return (mean, mean) if math.isnan(half) else (mean - half, mean + half)

    return interval
