"""Report figures (etcbench.report.figures): figure files (PNG and PDF) of the tidy tables and example grids."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from etcbench.errors import EtcbenchError
from etcbench.report import figures

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
