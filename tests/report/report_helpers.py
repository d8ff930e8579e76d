"""Helpers shared by the report tests: synthetic accuracy and compression records with known numbers."""

from __future__ import annotations

import math

MODELS = ["vit", "convmixer"]
SCHEMES = ["plain", "etc"]
SEEDS = [0, 1]
JPEG = [(q, ss) for q in (50, 90) for ss in ("444", "420")]


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


HEADER_BYTES = 600.0  # a 64 x 64 file's header: 600 * 8 / 4096 = 1.17 bpp


def _compression_records() -> list[dict]:
    records = []
    for scheme in SCHEMES:
        for quality, ss in JPEG:
            bpp = quality / 25 + (0.3 if scheme == "etc" else 0) - (0.5 if ss == "420" else 0)
            records.append({"dataset": "cifar10", "image_size": 64, "block_size": 16, "scheme": scheme,
                            "jpeg_quality": quality, "subsampling": ss, "bpp_std": 0.1, "psnr_std": 0.5,
                            "bpp": bpp, "header_bytes": HEADER_BYTES,
                            "payload_bpp": bpp - HEADER_BYTES * 8 / (64 * 64), "payload_bpp_std": 0.1,
                            "psnr": math.inf if (scheme, quality, ss) == ("etc", 90, "444") else 25 + quality / 10,
                            "n_images": 2000, "jpeg_aligned": scheme != "le", "jpeg_mode": "ycbcr",
                            "key_fingerprint": "cd34"})
    return records


def data_artists(ax) -> list:
    """The artists of ``ax`` that show data: lines with a finite point in data coordinates (reference lines such as
    ``axhline``, drawn partly in axes coordinates, do not count), patches (bars) of finite non-zero size, images with
    an unmasked pixel, and collections (error bars, bands, markers, meshes) with something to draw."""
    import numpy as np
    from matplotlib.patches import Rectangle

    found = []
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if line.get_transform().contains_branch(ax.transData) and (np.isfinite(x) & np.isfinite(y)).any():
            found.append(line)
    for patch in ax.patches:
        if not isinstance(patch, Rectangle) or (np.isfinite([patch.get_width(), patch.get_height()]).all()
                                                and patch.get_width() != 0 and patch.get_height() != 0):
            found.append(patch)
    found += [im for im in ax.images if np.ma.count(im.get_array()) > 0]
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), dtype=float)
        if len(coll.get_paths()) or (offsets.size and np.isfinite(offsets).any()):
            found.append(coll)
    return found


def assert_no_empty_axes(fig) -> None:
    """Every visible axes of ``fig`` (axis switched on) shows data (:func:`data_artists`): no empty panel, no empty
    colour-bar, no panel left over from a grid larger than the data."""
    empty = [ax.get_title() or f"axes {i}" for i, ax in enumerate(fig.axes)
             if ax.get_visible() and ax.axison and not data_artists(ax)]
    assert not empty, f"empty axes: {empty}"
