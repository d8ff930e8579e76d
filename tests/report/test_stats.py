"""The seeds' confidence interval: known quantiles, invariances, coverage, and its use as seaborn's error bar."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench.report.stats import ci_halfwidth, ci_interval


def test_known_quantiles():
    # t(0.975, 2) = 4.3027 and sd([1, 2, 3]) = 1
    assert ci_halfwidth([1.0, 2.0, 3.0]) == pytest.approx(4.3027 / math.sqrt(3), rel=1e-4)
    # t(0.95, 4) = 2.1318 for a 90% interval of 5 values
    x = [2.0, 4.0, 4.0, 5.0, 5.0]
    assert ci_halfwidth(x, 0.90) == pytest.approx(2.1318 * np.std(x, ddof=1) / math.sqrt(5), rel=1e-4)
    assert math.isnan(ci_halfwidth([3.0])) and math.isnan(ci_halfwidth([]))
    assert ci_halfwidth([1.0, math.nan, 2.0, 3.0]) == ci_halfwidth([1.0, 2.0, 3.0])  # missing values are ignored
    with pytest.raises(ValueError, match="confidence"):
        ci_halfwidth([1.0, 2.0], 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=8), st.floats(0.1, 10), st.floats(-100, 100))
def test_affine_invariance(values, scale, shift):
    x = np.asarray(values)
    assert ci_halfwidth(scale * x + shift) == pytest.approx(scale * ci_halfwidth(x), rel=1e-6, abs=1e-6)
    assert ci_halfwidth(x, 0.99) >= ci_halfwidth(x, 0.95) >= ci_halfwidth(x, 0.5)


def test_covers_the_true_mean_95_percent_of_the_time():
    # 3 seeds per cell, as in config/paper.yaml; a normal-quantile interval covers about 82% there
    rng = np.random.default_rng(0)
    samples = rng.normal(10.0, 2.0, size=(4000, 3))
    half = np.array([ci_halfwidth(s) for s in samples])
    covered = np.abs(samples.mean(axis=1) - 10.0) <= half
    assert covered.mean() == pytest.approx(0.95, abs=0.012)


def test_seaborn_draws_the_interval_as_the_error_bar():
    data = pd.DataFrame({"x": ["a"] * 3 + ["b"] * 3, "y": [1.0, 2.0, 3.0, 5.0, 5.0, 8.0]})
    fig, ax = plt.subplots()
    sns.barplot(data=data, x="x", y="y", errorbar=ci_interval(0.95), ax=ax)
    bars = sorted((tuple(sorted(line.get_ydata())) for line in ax.lines), key=lambda t: t[0])
    plt.close(fig)
    expected = [(m - ci_halfwidth(v), m + ci_halfwidth(v)) for v in ([1.0, 2.0, 3.0], [5.0, 5.0, 8.0])
                for m in [float(np.mean(v))]]
    assert np.allclose(bars, expected)
    assert ci_interval()([4.0]) == (4.0, 4.0)  # one seed: no bar
