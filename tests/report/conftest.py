"""Fixtures shared by the report tests: the tidy tables of the synthetic records, and a check of every figure a
report test saves: no empty axes (report_helpers.assert_no_empty_axes)."""

from __future__ import annotations

import pandas as pd
import pytest
from report_helpers import _accuracy_records, _compression_records, assert_no_empty_axes

from etcbench.report import figures, tables


@pytest.fixture(autouse=True)
def saved_figures(monkeypatch) -> list:
    """Every figure the report code saves during a test is first checked for empty axes; returns the figures saved
    (closed, still inspectable), in order."""
    saved, original = [], figures.save_figure

    def checked(fig, stem):
        assert_no_empty_axes(fig)
        saved.append(fig)
        return original(fig, stem)

    monkeypatch.setattr(figures, "save_figure", checked)
    return saved


@pytest.fixture(scope="module")
def acc() -> pd.DataFrame:
    return tables.accuracy_table(_accuracy_records())


@pytest.fixture(scope="module")
def comp() -> pd.DataFrame:
    return tables.compression_table(_compression_records())
