"""Report stage: tidy tables (sort, dtypes, NA round trip, errors, summary), table files and figure files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from etcbench.errors import EtcbenchError
from etcbench.report import figures, tables

MODELS = ["vit", "convmixer"]
SCHEMES = ["plain", "etc"]
SEEDS = [0, 1]
JPEG = [(q, ss) for q in (50, 90) for ss in ("444", "420")]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _top1(model: str, scheme: str, seed: int, quality: int | None, subsampling: str) -> float:
    """Known synthetic accuracies: uncompressed vit/plain = 0.80 / 0.84 over the two seeds, and so on."""
    base = {"vit": 0.80, "convmixer": 0.70}[model] - {"plain": 0.0, "etc": 0.10}[scheme] + 0.04 * seed
    if quality is None:
        return base
    return base - (100 - quality) / 500 - (0.02 if subsampling == "420" else 0.0)


def _accuracy_records() -> list[dict]:
    records = []
    for model in MODELS:
        for scheme in SCHEMES:
            for seed in SEEDS:
                for quality, ss in [(None, "none"), *JPEG]:
                    records.append({"dataset": "cifar10", "image_size": 64, "block_size": 16, "model": model,
                                    "scheme": scheme, "jpeg_quality": quality, "subsampling": ss, "seed": seed,
                                    "top1": _top1(model, scheme, seed, quality, ss), "loss": 1.0, "n_test": 2000,
                                    "key_fingerprint": "ab12"})
    # reverse so that the table has to sort
    return records[::-1]


def _compression_records() -> list[dict]:
    records = []
    for scheme in SCHEMES:
        for quality, ss in JPEG:
            records.append({"dataset": "cifar10", "image_size": 64, "block_size": 16, "scheme": scheme,
                            "jpeg_quality": quality, "subsampling": ss, "bpp_std": 0.1, "psnr_std": 0.5,
                            "bpp": quality / 25 + (0.3 if scheme == "etc" else 0) - (0.5 if ss == "420" else 0),
                            "psnr": math.inf if (scheme, quality, ss) == ("etc", 90, "444") else 25 + quality / 10,
                            "n_images": 2000, "jpeg_aligned": scheme != "le", "jpeg_mode": "ycbcr",
                            "key_fingerprint": "cd34"})
    return records


@pytest.fixture(scope="module")
def acc() -> pd.DataFrame:
    return tables.accuracy_table(_accuracy_records())


@pytest.fixture(scope="module")
def comp() -> pd.DataFrame:
    return tables.compression_table(_compression_records())


def _check_png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
    with Image.open(io.BytesIO(data)) as img:
        assert img.width > 100 and img.height > 100
        return img.size


def _check_figure(paths: list[Path], stem: Path) -> tuple[int, int]:
    assert paths == [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    assert paths[1].read_bytes()[:4] == b"%PDF" and paths[1].stat().st_size > 1000
    assert not [p for p in stem.parent.iterdir() if p.name.endswith(".tmp")]
    return _check_png(paths[0])


# --- tables -----------------------------------------------------------------------------------------------------


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


# --- figures ----------------------------------------------------------------------------------------------------


def test_top1_by_model_scheme(acc, tmp_path):
    stem = tmp_path / "figs" / "top1_by_model_scheme"
    _check_figure(figures.plot_top1_by_model_scheme(acc, stem), stem)
    one_seed = tmp_path / "figs" / "one_seed"
    _check_figure(figures.plot_top1_by_model_scheme(acc.loc[acc["seed"] == 0], one_seed), one_seed)


def test_top1_vs_quality(acc, tmp_path):
    stem = tmp_path / "top1_vs_jpeg_quality"
    width, _ = _check_figure(figures.plot_top1_vs_quality(acc, stem), stem)
    assert width > 600  # one panel per model


def test_rate_distortion_with_infinite_psnr_and_new_scheme(comp, tmp_path):
    stem = tmp_path / "jpeg_bpp_psnr"
    _check_figure(figures.plot_rate_distortion(comp, stem), stem)
    extra = pd.concat([comp, comp.loc[comp["scheme"] == "etc"].assign(scheme="another_scheme")], ignore_index=True)
    _check_figure(figures.plot_rate_distortion(extra, tmp_path / "more"), tmp_path / "more")


def test_plots_refuse_empty_selections(acc, tmp_path):
    with pytest.raises(EtcbenchError, match="uncompressed"):
        figures.plot_top1_by_model_scheme(acc.loc[acc["jpeg_quality"].notna()], tmp_path / "x")
    with pytest.raises(EtcbenchError, match="JPEG"):
        figures.plot_top1_vs_quality(acc.loc[acc["jpeg_quality"].isna()], tmp_path / "y")
    assert list(tmp_path.iterdir()) == []


def test_examples_grid_grows_with_rows(tmp_path):
    rng = np.random.default_rng(0)

    def kinds(k: int = 4) -> dict[str, np.ndarray]:
        return {kind: rng.integers(0, 256, (k, 32, 32, 3), dtype=np.uint8) for kind in ("plain", "encrypted",
                                                                                         "decrypted")}

    one = _check_figure(figures.plot_examples({"etc": kinds()}, tmp_path / "one"), tmp_path / "one")
    two = _check_figure(figures.plot_examples({"plain": kinds(), "etc": kinds()}, tmp_path / "two"),
                        tmp_path / "two")
    assert two[1] > one[1] * 1.5
    with pytest.raises(EtcbenchError, match="uint8"):
        figures.plot_examples({"etc": {"plain": np.zeros((2, 8, 8, 3), dtype=np.float32)}}, tmp_path / "bad")
