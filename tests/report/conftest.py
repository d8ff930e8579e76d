"""Fixtures shared by the report tests: the tidy tables of the synthetic records."""

from __future__ import annotations

import pandas as pd
import pytest

from etcbench.report import tables
from report_helpers import _accuracy_records, _compression_records


@pytest.fixture(scope="module")
def acc() -> pd.DataFrame:
    return tables.accuracy_table(_accuracy_records())


@pytest.fixture(scope="module")
def comp() -> pd.DataFrame:
    return tables.compression_table(_compression_records())
