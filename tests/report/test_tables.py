"""Report tables (etcbench.report.tables): tidy tables (sort, dtypes, NA round trip, errors, summary), table files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etcbench.errors import EtcbenchError
from etcbench.report import tables
from report_helpers import JPEG, MODELS, SCHEMES, SEEDS, _accuracy_records, _compression_records


def test_accuracy_table_columns_dtypes_and_sort(acc):
    assert list(acc.columns) == tables.ACCURACY_COLUMNS
    assert len(acc) == len(MODELS) * len(SCHEMES) * len(SEEDS) * (1 + len(JPEG))
    assert str(acc["jpeg_quality"].dtype) == "Int64"
    assert acc["jpeg_quality"].isna().sum() == len(MODELS) * len(SCHEMES) * len(SEEDS)
    assert acc["top1"].dtype == np.float64 and acc["seed"].dtype == np.int64 and acc["image_size"].dtype == np.int64
    assert list(acc.loc[acc["jpeg_quality"].isna(), "subsampling"].unique()) == ["none"]
    # model, scheme alphabetical; subsampling none, 444, 420; quality ascending with NA first; seed last
    first = acc.iloc[:10]
    assert set(first["model"]) == {"convmixer"} and set(first["scheme"]) == {"etc"}
    assert list(first["subsampling"]) == ["none"] * 2 + ["444"] * 4 + ["420"] * 4
    assert first["jpeg_quality"].tolist()[:6] == [pd.NA, pd.NA, 50, 50, 90, 90]
    assert list(first["seed"]) == [0, 1] * 5
    assert acc["model"].tolist() == sorted(acc["model"]) and acc.index.tolist() == list(range(len(acc)))


def test_na_quality_round_trips_through_csv(acc, tmp_path):
    csv = tables.write_table(acc, tmp_path / "accuracy", "Accuracy")[0]
    assert ",,none," in csv.read_text()
    back = pd.read_csv(csv, dtype={"jpeg_quality": "Int64"})
    for col in ("dataset", "model", "scheme", "subsampling"):
        back[col] = back[col].astype(acc[col].dtype)
    pd.testing.assert_frame_equal(back, acc)


def test_duplicate_records_raise():
    records = _accuracy_records()
    dup = dict(records[3], top1=0.5)
    with pytest.raises(EtcbenchError, match="duplicate"):
        tables.accuracy_table([*records, dup])
    comp = _compression_records()
    with pytest.raises(EtcbenchError, match="duplicate"):
        tables.compression_table([*comp, dict(comp[0])])


@pytest.mark.parametrize("key", ["top1", "jpeg_quality", "seed", "subsampling"])
def test_missing_key_raises(key):
    records = _accuracy_records()
    records[5] = {k: v for k, v in records[5].items() if k != key}
    with pytest.raises(EtcbenchError, match=key) as info:
        tables.accuracy_table(records)
    assert "\n" not in str(info.value)


def test_bad_input_raises():
    with pytest.raises(EtcbenchError, match="no accuracy records"):
        tables.accuracy_table([])
    with pytest.raises(EtcbenchError, match="no compression records"):
        tables.compression_table([])
    records = _accuracy_records()
    with pytest.raises(EtcbenchError, match="fraction"):
        tables.accuracy_table([*records[:-1], dict(records[-1], top1=43.0)])
    with pytest.raises(EtcbenchError, match="subsampling"):
        tables.accuracy_table([*records[:-1], dict(records[-1], jpeg_quality=None, subsampling="444")])
    comp = _compression_records()
    with pytest.raises(EtcbenchError, match="bpp"):
        tables.compression_table([{k: v for k, v in comp[0].items() if k != "bpp"}])


def test_compression_table(comp):
    assert list(comp.columns) == tables.COMPRESSION_COLUMNS
    assert list(comp["scheme"]) == ["etc"] * 4 + ["plain"] * 4
    assert list(comp["subsampling"][:4]) == ["444", "444", "420", "420"]
    assert list(comp["jpeg_quality"][:4]) == [50, 90, 50, 90]
    assert np.isinf(comp["psnr"]).sum() == 1 and comp["jpeg_aligned"].dtype == bool


def test_summary_known_numbers(acc):
    summary = tables.accuracy_summary(acc)
    assert list(summary.columns) == tables.SUMMARY_COLUMNS
    assert len(summary) == len(MODELS) * len(SCHEMES)
    row = summary.set_index(["model", "scheme"]).loc[("vit", "plain")]
    assert row["top1_mean_pct"] == pytest.approx(82.0)
    assert row["top1_std_pct"] == pytest.approx(np.std([80.0, 84.0], ddof=1))
    # 95% Student-t interval of the mean with 1 degree of freedom: t = 12.706
    assert row["top1_ci95_pct"] == pytest.approx(12.7062 * np.std([80.0, 84.0], ddof=1) / np.sqrt(2), rel=1e-4)
    assert row["n_seeds"] == 2
    assert (summary["paper_top1"] == "not available").all()
    one_seed = tables.accuracy_summary(acc.loc[acc["seed"] == 0])
    assert one_seed["top1_std_pct"].isna().all() and one_seed["top1_ci95_pct"].isna().all()
    assert (one_seed["n_seeds"] == 1).all()
    etc = one_seed.set_index(["model", "scheme"]).loc[("convmixer", "etc"), "top1_mean_pct"]
    assert etc == pytest.approx(60.0)


def test_write_table_files(acc, tmp_path):
    summary = tables.accuracy_summary(acc)
    paths = tables.write_table(summary, tmp_path / "summary", "Top-1 (%) mean_std over seeds")
    assert [p.name for p in paths] == ["summary.csv", "summary.md", "summary.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv", "summary.md", "summary.tex"]
    csv, md, tex = (p.read_text(encoding="utf-8") for p in paths)
    assert csv.splitlines()[0] == ",".join(tables.SUMMARY_COLUMNS) and "82.0" in csv and "not available" in csv
    assert md.startswith("## Top-1 (%) mean_std over seeds\n")
    assert "82.0000" in md and "2.8284" in md and "not available" in md
    assert md.rstrip().endswith(tables.PAPER_NOTE)
    assert "82.0000" in tex and r"\caption{Top-1 (\%) mean\_std over seeds}" in tex
    assert r"top1\_mean\_pct" in tex and r"\label{tab:summary}" in tex and "not available" in tex
    assert "top1_mean" not in tex.replace("% Paper", "")
