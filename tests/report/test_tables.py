"""Report tables (etcbench.report.tables): tidy tables (sort, dtypes, NA round trip, errors, summary), table files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from report_helpers import HEADER_BYTES, JPEG, MODELS, SCHEMES, SEEDS, _accuracy_records, _compression_records

from etcbench.errors import EtcbenchError
from etcbench.report import tables


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
    for col in ("header_bytes", "payload_bpp", "payload_bpp_std"):
        assert comp[col].dtype == np.float64, col
    assert (comp["payload_bpp"] < comp["bpp"]).all()
    with pytest.raises(EtcbenchError, match="payload_bpp"):  # records written before the payload rate
        tables.compression_table([{k: v for k, v in r.items() if k != "payload_bpp"} for r in _compression_records()])


def _bd_records() -> list[dict]:
    """plain and two schemes at 4 qualities: 'half' needs half plain's payload (and plain's header) at the same
    PSNR, 'apart' has PSNR far below plain's range; 'lossless' has one finite point. A second setting has no plain."""
    base = {"dataset": "cifar10", "image_size": 32, "block_size": 8, "subsampling": "420", "bpp_std": 0.1,
            "payload_bpp_std": 0.1, "psnr_std": 0.5, "n_images": 100, "jpeg_aligned": True, "jpeg_mode": "ycbcr",
            "header_bytes": 625.0}
    header_bpp = 625 * 8 / (32 * 32)
    records = []
    for i, quality in enumerate((30, 50, 70, 90)):
        payload, psnr = 0.5 * 1.6 ** i, 28.0 + 2.5 * i + 0.2 * i * i
        for scheme, pay, db in (("plain", payload, psnr), ("half", payload / 2, psnr), ("apart", payload, psnr - 20),
                                ("lossless", payload, psnr if i == 0 else math.inf)):
            point = dict(base, scheme=scheme, jpeg_quality=quality, payload_bpp=pay, bpp=pay + header_bpp, psnr=db)
            records.append(point)
            # elsewhere: plain alone at 4:4:4 of this setting, the other schemes alone in a 4-px setting
            records.append(dict(point, subsampling="444") if scheme == "plain" else dict(point, block_size=4))
    return records


def test_bd_rate_table_known_values():
    comp = tables.compression_table(_bd_records())
    bd = tables.bd_rate_table(comp)
    assert list(bd.columns) == tables.BD_RATE_COLUMNS
    # plain-less setting (block 4) and the plain-only subsampling 444 give no rows; plain is never a test curve
    assert bd[["block_size", "subsampling"]].drop_duplicates().values.tolist() == [[8, "420"]]
    assert bd["scheme"].tolist() == ["apart", "half", "lossless"] and set(bd["anchor"]) == {"plain"}
    assert bd["n_points"].tolist() == [4, 4, 1] and (bd["n_points_anchor"] == 4).all()
    assert bd["n_points"].dtype == np.int64 and bd["bd_rate_payload_pct"].dtype == np.float64
    row = bd.set_index("scheme")
    assert row.loc["half", "bd_rate_payload_pct"] == pytest.approx(-50.0, abs=1e-9)
    assert row.loc["half", "bd_psnr_payload_db"] > 0
    # the same header on both: on whole files the saving looks smaller than on the payload
    assert -50 < row.loc["half", "bd_rate_file_pct"] < -5
    assert np.isnan(row.loc["apart", "bd_rate_payload_pct"]) and np.isnan(row.loc["apart", "bd_rate_file_pct"])
    assert row.loc["apart", "bd_psnr_payload_db"] == pytest.approx(-20.0, abs=1e-9)  # same rates, 20 dB lower
    deltas = ["bd_rate_payload_pct", "bd_psnr_payload_db", "bd_rate_file_pct"]
    assert row.loc[["lossless"], deltas].isna().all(axis=None)


def test_bd_rate_table_on_the_synthetic_compression_table(comp):
    bd = tables.bd_rate_table(comp)
    assert bd["subsampling"].tolist() == ["444", "420"] and set(bd["scheme"]) == {"etc"}
    row = bd.set_index("subsampling")
    # 4:4:4: etc's q90 point is lossless (inf PSNR), one point left: no delta
    assert row.loc["444", "n_points"] == 1 and np.isnan(row.loc["444", "bd_rate_payload_pct"])
    # 4:2:0: two points each, same PSNR (30 and 34 dB), straight lines: the mean log-rate gap of the two ends
    header = HEADER_BYTES * 8 / (64 * 64)
    plain = np.array([1.5, 3.1]) - header
    gap = np.log10(plain + 0.3).mean() - np.log10(plain).mean()
    assert row.loc["420", "bd_rate_payload_pct"] == pytest.approx((10 ** gap - 1) * 100, rel=1e-9)
    file_gap = np.log10(np.array([1.8, 3.4])).mean() - np.log10(np.array([1.5, 3.1])).mean()
    assert row.loc["420", "bd_rate_file_pct"] == pytest.approx((10 ** file_gap - 1) * 100, rel=1e-9)
    assert row.loc["420", "bd_rate_payload_pct"] > row.loc["420", "bd_rate_file_pct"] > 0


def test_bd_rate_table_without_plain_is_empty_and_writes(comp, tmp_path):
    bd = tables.bd_rate_table(comp.loc[comp["scheme"] != "plain"])
    assert bd.empty and list(bd.columns) == tables.BD_RATE_COLUMNS
    csv = tables.write_table(bd, tmp_path / "bd_rate", "BD")[0]
    assert csv.read_text().startswith("dataset,image_size")
    with pytest.raises(EtcbenchError, match="payload_bpp"):
        tables.bd_rate_table(comp.drop(columns=["payload_bpp"]))


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
    assert not [c for c in summary.columns if "paper" in c]  # the paper column is the comparison table's alone
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
    # the CSV keeps machine names and full precision
    assert csv.splitlines()[0] == ",".join(tables.SUMMARY_COLUMNS) and "82.0" in csv and "2.828427" in csv
    assert md.startswith("## Top-1 (%) mean_std over seeds\n")
    # Markdown and LaTeX: human names, percentages with one decimal, counts without decimals, no paper note
    header = md.splitlines()[2]
    assert "Top-1 (%)" in header and "95% CI ± (pp)" in header and "Seeds" in header and "top1_mean" not in header
    vit_plain = next(line for line in md.splitlines() if "| vit " in line and "| plain " in line)
    assert [c.strip() for c in vit_plain.strip("|").split("|")][-4:] == ["82.0", "2.8", "25.4", "2"]
    assert "82.0000" not in md and "2.0000" not in md and "not available" not in md and "paper" not in md.lower()
    assert r"\caption{Top-1 (\%) mean\_std over seeds}" in tex and r"\label{tab:summary}" in tex
    assert r"Top-1 (\%)" in tex and r"95\% CI $\pm$ (pp)" in tex and "top1" not in tex.replace("tab:", "")
    assert "82.0 & 2.8 & 25.4 & 2" in tex and "not available" not in tex
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")


def _key_record(scheme, role, source="key_seed", seed=None, master="0123456789abcdef"):
    return {"scheme": scheme, "block_size": 16, "image_size": [64, 64], "options": {},
            "key_fingerprint": f"{scheme}-{role}-".ljust(64, "f"),
            "context": {"setting": "s64-m16", "scheme": scheme, "role": role, "seed": seed},
            "master": {"source": source, "fingerprint": master}}


def test_the_key_table_lists_contexts_and_fingerprints_and_says_where_the_master_came_from(tmp_path):
    records = [_key_record("etc", "other"), _key_record("etc", "defender"), _key_record("plain", "defender")]
    table = tables.key_table(records)
    assert list(table.columns) == tables.KEY_COLUMNS
    assert table[["scheme", "role"]].values.tolist() == [["plain", "defender"], ["etc", "defender"],
                                                         ["etc", "other"]]
    assert table["key_id"].str.len().eq(16).all() and table["training_seed"].isna().all()
    caption = tables.key_caption(table)
    assert "HKDF-SHA256" in caption and "key_seed" in caption and "not secret" in caption
    secret = tables.key_table([_key_record("etc", "defender", "file", seed=2)])
    assert secret.loc[0, "training_seed"] == 2
    assert "master secret file (fingerprint 0123456789abcdef)" in tables.key_caption(secret)
    md = tables.write_table(table, tmp_path / "keys", caption)[1].read_text(encoding="utf-8")
    assert "| Role " in md and "| Master from " in md and "| Key fingerprint " in md
    with pytest.raises(EtcbenchError, match="key record 0 has no derivation context"):
        tables.key_table([{k: v for k, v in _key_record("etc", "defender").items() if k != "context"}])
