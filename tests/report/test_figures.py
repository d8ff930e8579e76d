"""Report figures (etcbench.report.figures): figure files (PNG and PDF) of the tidy tables and example grids.

Every figure saved here is first checked for empty axes (the autouse fixture ``saved_figures`` of conftest.py, with
report_helpers.assert_no_empty_axes), so each figure function's test also checks that it leaves no empty panel."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from report_helpers import assert_no_empty_axes, data_artists
from scipy import stats

from etcbench.errors import EtcbenchError
from etcbench.report import figures, tables

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


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


def test_rate_distortion_draws_payload_rate_with_plain_on_top_and_no_empty_panel(comp, tmp_path, monkeypatch):
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, stem: drawn.append(fig) or [])
    # a second setting with 4:2:0 only (as a grayscale-plane scheme has): one panel there, not an empty 4:4:4 one
    gray = comp.loc[(comp["scheme"] == "etc") & (comp["subsampling"] == "420")].assign(block_size=8)
    figures.plot_rate_distortion(pd.concat([comp, gray], ignore_index=True), tmp_path / "rd")
    axes = drawn[0].axes
    assert len(axes) == 3  # 2 panels for block 16, 1 for block 8
    for ax in axes:
        lines = [line for line in ax.get_lines() if line.get_label() in set(comp["scheme"])]
        assert lines, ax.get_title()
        assert "payload" in ax.get_xlabel()
        if any(line.get_label() == "plain" for line in lines):
            plain = next(line for line in lines if line.get_label() == "plain")
            assert lines[-1] is plain and plain.get_zorder() > max(x.get_zorder() for x in lines[:-1])
            assert plain.get_marker() != lines[0].get_marker()
    # x is the payload rate, not the whole file's
    first = next(ax for ax in axes if "4:4:4" in ax.get_title())
    plain = next(line for line in first.get_lines() if line.get_label() == "plain")
    expected = comp.loc[(comp["scheme"] == "plain") & (comp["subsampling"] == "444"), "payload_bpp"]
    np.testing.assert_allclose(plain.get_xdata(), expected.to_numpy())


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


def _half(values) -> float:
    """95% Student-t half-width of the mean, computed here with scipy (independently of etcbench.report.stats)."""
    x = np.asarray(values, dtype=float)
    return stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))


def test_the_empty_axes_check_catches_empty_panels():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4)
    axes[0].plot([1, 2], [3, 4])
    axes[1].axhline(0.5)  # a reference line alone is no data
    axes[2].bar([0, 1], [np.nan, np.nan])  # empty bar slots
    axes[3].set_axis_off()  # switched off: not a panel
    with pytest.raises(AssertionError, match="empty axes"):
        assert_no_empty_axes(fig)
    assert data_artists(axes[0]) and not data_artists(axes[1]) and not data_artists(axes[2])
    fig.delaxes(axes[1])
    fig.delaxes(axes[2])
    assert_no_empty_axes(fig)
    plt.close(fig)


def _wide_grid(acc: pd.DataFrame) -> pd.DataFrame:
    """The synthetic table plus a second setting with other models and schemes, and grayscale EtC for the ViT only:
    the layout that made the bar chart a strip of empty bar slots."""
    base = acc.loc[acc["jpeg_quality"].isna()]
    gray = base.loc[(base["model"] == "vit") & (base["scheme"] == "etc")].assign(scheme="etc-gray")
    small = pd.concat([base.loc[base["model"] == "vit"].assign(model=m, scheme=s, image_size=32, block_size=4)
                       for m, s in (("resnet18", "plain"), ("resnet18_tanaka", "le"), ("resnet18_madono", "ele"))])
    return pd.concat([acc, gray, small], ignore_index=True)


def test_top1_heatmap_has_a_panel_per_setting_sized_to_its_cells(acc, tmp_path, saved_figures):
    data = _wide_grid(acc)
    width, _ = _check_figure(figures.plot_top1_by_model_scheme(data, tmp_path / "h"), tmp_path / "h")
    assert width < 2000  # the bar chart of this grid was thousands of pixels wide
    fig = saved_figures[-1]
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 2
    shapes = sorted(ax.images[0].get_array().shape for ax in panels)
    assert shapes == [(2, 3), (3, 3)]  # (models, schemes) of each setting: 64 px: 2 x 3, 32 px: 3 x 3
    big = next(ax for ax in panels if "64 px" in ax.get_title())
    assert [t.get_text() for t in big.get_xticklabels()] == ["plain", "etc", "etc-gray"]
    grid = big.images[0].get_array()
    assert np.ma.is_masked(grid[0, 2]) and grid[1, 0] == pytest.approx(82.0)  # convmixer has no etc-gray cell
    texts = {t.get_text() for t in big.texts}
    assert f"82.0\n±{_half([80.0, 84.0]):.1f}" in texts and "82.0\n±25.4" in texts


def test_top1_vs_quality_draws_only_panels_with_data_and_plain_on_top(acc, tmp_path, saved_figures):
    # a second setting where only the ViT was tested on JPEG images
    extra = acc.loc[acc["model"] == "vit"].assign(image_size=32, block_size=4)
    extra = pd.concat([extra, acc.loc[(acc["model"] == "convmixer") & acc["jpeg_quality"].isna()].assign(
        image_size=32, block_size=4)])
    data = pd.concat([acc, extra], ignore_index=True)
    _check_figure(figures.plot_top1_vs_quality(data, tmp_path / "q"), tmp_path / "q")
    fig = saved_figures[-1]
    assert len(fig.axes) == 3 and sorted(ax.get_title() for ax in fig.axes) == [
        "convmixer (cifar10, 64 px, block 16)", "vit (cifar10, 32 px, block 4)", "vit (cifar10, 64 px, block 16)"]
    _, palette = figures._scheme_palette(data["scheme"])
    for ax in fig.axes:
        lines = [line for line in ax.get_lines() if len(line.get_xdata()) > 1 and line.get_linestyle() == "-"]
        plain = [line for line in lines if line.get_color() == palette["plain"]]
        others = [line for line in lines if line.get_color() != palette["plain"]]
        assert plain and others and min(x.get_zorder() for x in plain) > max(x.get_zorder() for x in others)
    # error bars: the 95% interval of the two seeds at quality 50, 4:4:4, ViT on plain: 70 and 74 %
    ax = next(ax for ax in fig.axes if ax.get_title().startswith("vit (cifar10, 64"))
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    half = _half([70.0, 74.0])
    assert any(np.allclose(seg, [[50, 72 - half], [50, 72 + half]]) for seg in segments)


def _history(acc: pd.DataFrame) -> pd.DataFrame:
    metrics = []
    for rec in acc.loc[acc["jpeg_quality"].isna()].to_dict("records"):
        lift = 0.05 * (rec["scheme"] == "plain") + 0.02 * rec["seed"]
        metrics.append({"record": rec, "history": [
            {"epoch": e, "train_loss": 2.0 / e + rec["seed"] / 10, "train_top1": 0.2 * e + lift,
             "val_top1": 0.15 * e + lift, "val_loss": 2.0} for e in (1, 2, 3)]})
    return tables.history_table(metrics)


def test_training_curves(acc, tmp_path, saved_figures):
    history = _history(acc)
    _check_figure(figures.plot_training_curves(history, tmp_path / "t"), tmp_path / "t")
    fig = saved_figures[-1]
    assert [ax.get_ylabel() for ax in fig.axes] == ["training loss", "training top-1 (%)", "validation top-1 (%)"]
    _, palette = figures._scheme_palette(history["scheme"])
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 4  # one per model and scheme
        assert lines[-1].get_color() == palette["plain"] or lines[-2].get_color() == palette["plain"]
        plain = [line for line in lines if line.get_color() == palette["plain"]]
        assert min(x.get_zorder() for x in plain) > max(x.get_zorder() for x in lines if x not in plain)
    # the band is the 95% interval over the two seeds: train top-1 at epoch 1 of vit on plain is 25 and 27 %
    band = list(fig.axes[1].collections)
    tops = {round(float(v[1]), 6) for coll in band for path in coll.get_paths() for v in path.vertices if v[0] == 1}
    assert round(26.0 + _half([25.0, 27.0]), 6) in tops and round(26.0 - _half([25.0, 27.0]), 6) in tops
    # a quantity nobody recorded: its panel is switched off and says so, not left empty
    _check_figure(figures.plot_training_curves(history.assign(val_top1=np.nan), tmp_path / "v"), tmp_path / "v")
    off = saved_figures[-1].axes[2]
    assert not off.axison and "not recorded" in off.texts[0].get_text()


def test_confusion_matrices_sum_seeds_and_normalise_rows(tmp_path, saved_figures):
    names = ["airplane", "automobile", "bird"]
    base = {"dataset": "cifar10", "image_size": 64, "block_size": 16, "labels": [0, 1, 2], "class_names": names}
    records = [{**base, "model": "vit", "scheme": "etc", "seed": 0, "matrix": [[8, 2, 0], [1, 9, 0], [0, 0, 0]]},
               {**base, "model": "vit", "scheme": "etc", "seed": 1, "matrix": [[6, 2, 2], [0, 10, 0], [5, 0, 5]]}]
    records += [{**base, "model": m, "scheme": s, "seed": 0, "matrix": np.eye(3, dtype=int).tolist()}
                for m, s in (("vit", "plain"), ("convmixer", "plain"), ("convmixer", "etc"), ("vit", "pe"))]
    _check_figure(figures.plot_confusion_matrices(records, tmp_path / "c"), tmp_path / "c")
    fig = saved_figures[-1]
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 5 and len(fig.axes) == 6  # 5 panels of a 2 x 4 grid (3 removed) and the colour bar
    assert [ax.get_title().split(":")[0] for ax in panels] == ["convmixer on plain", "vit on plain",
                                                               "convmixer on etc", "vit on etc", "vit on pe"]
    etc = panels[3]
    summed = np.array([[14, 4, 2], [1, 19, 0], [5, 0, 5]], dtype=float)
    np.testing.assert_allclose(etc.images[0].get_array(), summed / summed.sum(axis=1, keepdims=True))
    assert [t.get_text() for t in etc.get_yticklabels()] == names
    assert f"{100 * 38 / 50:.1f}%" in etc.get_title()  # diagonal 14 + 19 + 5 of 50 images
    with pytest.raises(EtcbenchError, match="classes"):
        figures.plot_confusion_matrices([{**records[0], "matrix": [[1, 2], [3, 4]]}], tmp_path / "bad")
    with pytest.raises(EtcbenchError, match="no confusion"):
        figures.plot_confusion_matrices([], tmp_path / "none")
