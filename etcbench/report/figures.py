"""Report figures (seaborn), each saved as PNG and PDF atomically by :func:`save_figure`.

Scheme colours come from the data (a palette sized to the schemes present, ``plain`` first), never from a
hard-coded scheme list. Paper values are not available and are never drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..errors import EtcbenchError  # noqa: E402
from ..io import atomic_write  # noqa: E402
from .stats import ci_interval  # noqa: E402

__all__ = ["save_figure", "plot_top1_by_model_scheme", "plot_top1_vs_quality", "plot_rate_distortion",
           "plot_examples", "plot_attack_ssim", "plot_attack_grid", "plot_semantic_leakage"]

log = logging.getLogger(__name__)

DPI = 150
_CONFIG_KEYS = ["dataset", "image_size", "block_size"]
_SUBSAMPLING_ORDER = {"none": 0, "444": 1, "420": 2}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_DASHES = ["", (4, 2), (1, 1.5), (6, 2, 1, 2)]
_KIND_ORDER = ["plain", "encrypted", "decrypted"]


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Save ``fig`` as ``stem.png`` and ``stem.pdf`` (each atomically), then close it.

    Timestamps are left out of the metadata so that reruns give identical files.

    Args:
        fig: the figure.
        stem: output path without suffix.

    Returns:
        The PNG and PDF paths.
    """
    stem = Path(stem)
    paths = []
    try:
        for ext, metadata in (("png", {"Software": None}), ("pdf", {"CreationDate": None})):
            path = stem.parent / f"{stem.name}.{ext}"
            with atomic_write(path) as fh:
                fig.savefig(fh, format=ext, dpi=DPI, bbox_inches="tight", metadata=metadata)
            paths.append(path)
    finally:
        plt.close(fig)
    log.info("wrote figure %s.{png,pdf}", stem)
    return paths


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise EtcbenchError(f"{what} table lacks column(s) {', '.join(missing)}")


def _with_config(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with a ``config`` label (dataset, image size, block size) for panel titles."""
    out = df.copy()
    out["config"] = [f"{d}, {s} px, block {b}" for d, s, b in zip(out["dataset"], out["image_size"], out["block_size"])]
    return out


def _configs(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df.sort_values(_CONFIG_KEYS, kind="mergesort")["config"]))


def _scheme_palette(schemes: Iterable[str]) -> tuple[list[str], dict[str, tuple[float, float, float]]]:
    """Scheme order (``plain`` first, then alphabetical) and one colour per scheme, sized to the data."""
    names = sorted(set(schemes), key=lambda s: (s != "plain", s))
    colours = sns.color_palette("colorblind" if len(names) <= 10 else "husl", n_colors=len(names))
    return names, dict(zip(names, colours))


def _subsampling_order(values: Iterable[str]) -> list[str]:
    return sorted(set(values), key=lambda s: (_SUBSAMPLING_ORDER.get(s, len(_SUBSAMPLING_ORDER)), s))


def _legend_handles(schemes: Sequence[str], palette: Mapping[str, tuple], subsamplings: Sequence[str],
                    markers: Mapping[str, str], dashes: Mapping[str, object] | None = None) -> list[Line2D]:
    handles = [Line2D([], [], color="none", label="scheme")]
    handles += [Line2D([], [], color=palette[s], lw=2, label=s) for s in schemes]
    handles.append(Line2D([], [], color="none", label="subsampling"))
    for ss in subsamplings:
        dash = (dashes or {}).get(ss, "")
        handles.append(Line2D([], [], color="0.3", marker=markers[ss], label=ss,
                              **({"dashes": dash} if dash else {"linestyle": "-"})))
    return handles


def plot_top1_by_model_scheme(acc: pd.DataFrame, stem: Path) -> list[Path]:
    """Bar chart of top-1 (%) on uncompressed test images: x = model, hue = scheme, one panel per setting.

    Bars are the mean over seeds; with more than one seed, error bars are the 95% Student-t confidence interval of
    the mean (:mod:`.stats`, as ``top1_ci95_pct`` in the summary table).

    Args:
        acc: output of :func:`etcbench.report.tables.accuracy_table`.
        stem: output path without suffix.

    Returns:
        The PNG and PDF paths.
    """
    _require(acc, [*_CONFIG_KEYS, "model", "scheme", "jpeg_quality", "seed", "top1"], "accuracy")
    data = _with_config(acc.loc[acc["jpeg_quality"].isna()])
    if data.empty:
        raise EtcbenchError("no uncompressed accuracy rows to plot (top-1 by model and scheme)")
    data["top1_pct"] = data["top1"].astype(float) * 100.0
    models = list(dict.fromkeys(sorted(data["model"])))
    schemes, palette = _scheme_palette(data["scheme"])
    configs = _configs(data)
    n_seeds = int(data.groupby(["config", "model", "scheme"])["seed"].nunique().max())
    errorbar = ci_interval(0.95) if n_seeds > 1 else None

    width = max(4.5, 0.6 * len(models) * len(schemes) + 1.5)
    fig, axes = plt.subplots(1, len(configs), figsize=(width * len(configs), 4.2), squeeze=False, sharey=True)
    for j, (ax, cfg) in enumerate(zip(axes[0], configs)):
        sub = data.loc[data["config"] == cfg]
        sns.barplot(data=sub, x="model", y="top1_pct", hue="scheme", order=[m for m in models if m in set(sub["model"])],
                    hue_order=schemes,
                    palette=palette, errorbar=errorbar, capsize=0.15 if errorbar else 0.0, err_kws={"linewidth": 1},
                    ax=ax, legend=j == len(configs) - 1)
        for container in ax.containers:
            ax.bar_label(container, fmt="%.1f", label_type="center", fontsize=7, color="white")
        ax.set(xlabel="model", ylabel="top-1 (%)", ylim=(0, 105), title=cfg if len(configs) > 1 else "")
    sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.02, 1.0), title="scheme", frameon=False)
    spread = f"mean and 95% CI over {n_seeds} seeds" if errorbar else "1 seed"
    fig.suptitle(f"Top-1 on uncompressed test images ({spread}); paper values: not available", fontsize=10)
    return save_figure(fig, stem)


def plot_top1_vs_quality(acc: pd.DataFrame, stem: Path) -> list[Path]:
    """Top-1 (%) against JPEG quality: hue = scheme, marker = subsampling, one panel per model (and setting).

    The uncompressed top-1 of each (model, scheme), mean over seeds, is drawn as a dashed horizontal line in the
    scheme's colour. With more than one seed, points are means and error bars 95% Student-t confidence intervals.

    Args:
        acc: output of :func:`etcbench.report.tables.accuracy_table`.
        stem: output path without suffix.

    Returns:
        The PNG and PDF paths.
    """
    _require(acc, [*_CONFIG_KEYS, "model", "scheme", "jpeg_quality", "subsampling", "seed", "top1"], "accuracy")
    data = _with_config(acc)
    data["top1_pct"] = data["top1"].astype(float) * 100.0
    compressed = data["jpeg_quality"].notna()
    jpeg = data.loc[compressed].copy()
    if jpeg.empty:
        raise EtcbenchError("no JPEG accuracy rows to plot (top-1 against JPEG quality)")
    jpeg["jpeg_quality"] = jpeg["jpeg_quality"].astype("int64")
    baseline = data.loc[~compressed].groupby(["config", "model", "scheme"])["top1_pct"].mean()

    models = list(dict.fromkeys(sorted(jpeg["model"])))
    configs = _configs(jpeg)
    schemes, palette = _scheme_palette(data["scheme"])
    subsamplings = _subsampling_order(jpeg["subsampling"])
    markers = {ss: _MARKERS[i % len(_MARKERS)] for i, ss in enumerate(subsamplings)}
    n_seeds = int(jpeg.groupby(["config", "model", "scheme", "subsampling", "jpeg_quality"])["seed"].nunique().max())

    fig, axes = plt.subplots(len(configs), len(models), figsize=(4.2 * len(models), 3.6 * len(configs)),
                             squeeze=False, sharex=True, sharey=True)
    for i, cfg in enumerate(configs):
        for j, model in enumerate(models):
            ax = axes[i, j]
            sub = jpeg.loc[(jpeg["config"] == cfg) & (jpeg["model"] == model)]
            if not sub.empty:
                sns.lineplot(data=sub, x="jpeg_quality", y="top1_pct", hue="scheme", style="subsampling",
                             hue_order=[s for s in schemes if s in set(sub["scheme"])], palette=palette,
                             style_order=subsamplings, markers=markers, dashes=False,
                             errorbar=ci_interval(0.95) if n_seeds > 1 else None, err_style="bars", ax=ax,
                             legend=False)
            for scheme in schemes:
                if (cfg, model, scheme) in baseline.index:
                    ax.axhline(baseline[(cfg, model, scheme)], color=palette[scheme], linestyle="--", linewidth=1)
            title = model if len(configs) == 1 else f"{model} ({cfg})"
            ax.set(title=title, xlabel="JPEG quality", ylabel="top-1 (%)", ylim=(0, 100))
    handles = _legend_handles(schemes, palette, subsamplings, markers)
    handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=1, label="uncompressed"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    spread = f"mean and 95% CI over {n_seeds} seeds" if n_seeds > 1 else "1 seed"
    fig.suptitle(f"Top-1 on JPEG-compressed test images ({spread}); dashed: uncompressed; "
                 "paper values: not available", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def plot_rate_distortion(comp: pd.DataFrame, stem: Path) -> list[Path]:
    """Rate-distortion curves: bits per pixel (x) against PSNR after decryption (y), one line per scheme.

    One panel per chroma subsampling (columns) and setting (rows); each line joins a scheme's JPEG qualities in
    order. Solid lines: the scheme's blocks are whole JPEG coding units at that subsampling (JPEG-compatible);
    dashed: they are not. A JPEG-compatible scheme lies on the plain curve; the others need more bits for less
    PSNR. Infinite PSNR (lossless) is drawn at a cap 5 dB above the largest finite value, marked and noted.

    Args:
        comp: output of :func:`etcbench.report.tables.compression_table`.
        stem: output path without suffix.

    Returns:
        The PNG and PDF paths.
    """
    _require(comp, [*_CONFIG_KEYS, "scheme", "jpeg_quality", "subsampling", "bpp", "psnr", "jpeg_aligned"],
             "compression")
    if comp.empty:
        raise EtcbenchError("no compression rows to plot (rate-distortion)")
    data = _with_config(comp).sort_values("jpeg_quality", kind="mergesort")
    data["psnr"] = data["psnr"].astype(float)
    infinite = np.isposinf(data["psnr"])
    cap = None
    if infinite.any():
        finite = data.loc[np.isfinite(data["psnr"]), "psnr"]
        cap = float(np.ceil(finite.max() + 5.0)) if not finite.empty else 100.0
        data.loc[infinite, "psnr"] = cap
        log.info("rate-distortion: %d infinite PSNR value(s) drawn at %.0f dB", int(infinite.sum()), cap)

    configs = _configs(data)
    schemes, palette = _scheme_palette(data["scheme"])
    subsamplings = _subsampling_order(data["subsampling"])
    fig, axes = plt.subplots(len(configs), len(subsamplings), figsize=(5.2 * len(subsamplings), 4.2 * len(configs)),
                             squeeze=False)
    for i, cfg in enumerate(configs):
        for j, ss in enumerate(subsamplings):
            ax = axes[i, j]
            sub = data.loc[(data["config"] == cfg) & (data["subsampling"] == ss)]
            for scheme in schemes:
                line = sub.loc[sub["scheme"] == scheme]
                if line.empty:
                    continue
                aligned = bool(line["jpeg_aligned"].all())
                ax.plot(line["bpp"], line["psnr"], color=palette[scheme], marker="o", markersize=4,
                        linestyle="-" if aligned else "--", linewidth=1.8 if aligned else 1.2)
            if cap is not None:
                ax.axhline(cap, color="0.6", linestyle=":", linewidth=1)
            ax.set(xlabel="bits per pixel", ylabel="PSNR after decryption (dB)")
            ax.set_title(f"JPEG {ss[0]}:{ss[1]}:{ss[2]}" + ("" if len(configs) == 1 else f" ({cfg})"), fontsize=10)
    handles = [Line2D([], [], color="none", label="scheme")]
    handles += [Line2D([], [], color=palette[s], lw=2, label=s) for s in schemes]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="blocks fit the JPEG grid"),
                Line2D([], [], color="0.3", linestyle="--", label="blocks do not fit")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    note = f"; inf PSNR (lossless) drawn at {cap:.0f} dB" if cap is not None else ""
    fig.suptitle(f"Rate-distortion after decryption, one point per JPEG quality{note}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def _example_rows(examples: Mapping[str, Mapping[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    if not examples:
        raise EtcbenchError("no example images to plot")
    rows = []
    for scheme, kinds in examples.items():
        if not kinds:
            raise EtcbenchError(f"example images for scheme {scheme!r} are empty")
        order = [k for k in _KIND_ORDER if k in kinds] + [k for k in kinds if k not in _KIND_ORDER]
        for kind in order:
            arr = np.asarray(kinds[kind])
            if arr.dtype != np.uint8 or not (arr.ndim == 4 and arr.shape[-1] == 3 or arr.ndim == 3) or not len(arr):
                raise EtcbenchError(f"example images {scheme}: {kind} must be a non-empty (k, H, W, 3) uint8 array, "
                                    f"got {arr.dtype} {arr.shape}")
            rows.append((f"{scheme}: {kind}", arr))
    return rows


def plot_examples(examples: Mapping[str, Mapping[str, np.ndarray]], stem: Path) -> list[Path]:
    """Grid of example images: one row per (scheme, kind), one column per image, no ticks, nearest interpolation.

    Args:
        examples: ``examples[scheme] = {"plain": (k, H, W, 3) uint8, "encrypted": ..., "decrypted": ...}``; rows
            follow the scheme order of the mapping and the kinds in the order plain, encrypted, decrypted (others
            after). Grayscale ``(k, H, W)`` arrays are also accepted.
        stem: output path without suffix.

    Returns:
        The PNG and PDF paths.
    """
    rows = _example_rows(examples)
    k = max(len(arr) for _, arr in rows)
    cell = 1.1
    fig, axes = plt.subplots(len(rows), k, figsize=(cell * k + 1.2, cell * len(rows) + 0.2), squeeze=False)
    for r, (label, arr) in enumerate(rows):
        for c in range(k):
            ax = axes[r, c]
            if c >= len(arr):
                ax.set_axis_off()
                continue
            gray = {"cmap": "gray", "vmin": 0, "vmax": 255} if arr.ndim == 3 else {}
            ax.imshow(arr[c], interpolation="nearest", **gray)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return save_figure(fig, stem)


def _attack_labels(attacks: pd.DataFrame) -> pd.DataFrame:
    """Rows with an ``attack_label``: the attack, with its number of known pairs for ``kpa`` (``kpa-4``)."""
    data = _with_config(attacks)
    pairs = data["known_pairs"] if "known_pairs" in data else pd.Series([None] * len(data), index=data.index)
    data["attack_label"] = [a if pd.isna(k) else f"{a}-{int(k)}" for a, k in zip(data["attack"], pairs)]
    return data


def _attack_bars(attacks: pd.DataFrame, value: str, error: str | None, ylabel: str, title: str, stem: Path,
                 ceiling: str | None = None) -> list[Path]:
    """Bars of ``value`` per scheme (x) and attack (hue), one panel per setting, optional error bars."""
    _require(attacks, [*_CONFIG_KEYS, "scheme", "attack", value], "attack")
    data = _attack_labels(attacks).dropna(subset=[value])
    if data.empty:
        raise EtcbenchError(f"no attack rows with {value} to plot")
    configs = _configs(data)
    schemes, _ = _scheme_palette(data["scheme"])
    found = set(data["attack_label"])
    names = (["none"] if "none" in found else []) + sorted(found - {"none"})
    colours = dict(zip(names, sns.color_palette("Greys", 1) + sns.color_palette("tab20", len(names))))
    fig, axes = plt.subplots(len(configs), 1, figsize=(max(6.0, 0.35 * len(schemes) * len(names) + 2), 3.6 *
                                                       len(configs)), squeeze=False)
    width = 0.8 / len(names)
    for ax, cfg in zip(axes[:, 0], configs):
        sub = data.loc[data["config"] == cfg]
        order = [s for s in schemes if s in set(sub["scheme"])]
        for k, name in enumerate(names):
            rows = sub.loc[sub["attack_label"] == name].set_index("scheme").reindex(order)
            x = np.arange(len(order)) + (k - (len(names) - 1) / 2) * width
            ax.bar(x, rows[value], width, yerr=None if error is None else rows[error], color=colours[name],
                   label=name, error_kw={"linewidth": 0.8})
        if ceiling is not None and sub[ceiling].notna().any():
            ax.axhline(float(sub[ceiling].dropna().iloc[0]), color="0.3", linestyle="--", linewidth=0.8,
                       label="plain images")
        ax.set_xticks(np.arange(len(order)), order, rotation=20)
        ax.set(ylabel=ylabel, ylim=(min(0.0, float(sub[value].min()) - 0.05), 1.0), title=cfg if len(configs) > 1 else "")
        ax.axhline(0, color="0.5", linewidth=0.6)
    axes[0, 0].legend(title="attack", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def plot_attack_ssim(attacks: pd.DataFrame, stem: Path) -> list[Path]:
    """SSIM of every attack's reconstructions against the plain images: mean with its 95% interval over the
    attacked images (``ssim_ci95``), as the accuracy figures show theirs.

    x = scheme, hue = attack (``none``: the encrypted image as it is; ``kpa-k``: the known-plaintext attack with
    ``k`` pairs), one panel per setting. A scheme resists an attack where its bar stays near the ``none`` floor.
    """
    return _attack_bars(attacks, "ssim", "ssim_ci95", "SSIM vs plain",
                        "Attacks: SSIM of reconstructions against the plain test images (mean, 95% interval)", stem)


def plot_semantic_leakage(attacks: pd.DataFrame, stem: Path) -> list[Path]:
    """Semantic leakage: the top-1 the plain-trained classifier of the setting reaches on each attack's
    reconstructions (dashed: its top-1 on the plain images; chance is 0.1 on CIFAR-10)."""
    return _attack_bars(attacks, "semantic_top1", None, "top-1 of the plain model",
                        "Semantic leakage: the plain-trained model classifying the reconstructions", stem,
                        ceiling="semantic_top1_plain")


def plot_attack_grid(plain: np.ndarray, reconstructions: Mapping[tuple[str, str], np.ndarray],
                     stem: Path) -> list[Path]:
    """Example reconstructions as a scheme x attack grid: one row per scheme, one column per attack, each cell the
    first attacked image (the plain image in the first column).

    Args:
        plain: ``(k, H, W, 3)`` uint8, the attacked test images (the first is shown).
        reconstructions: ``{(scheme, attack): (k, H, W, 3) uint8}``.
        stem: output path without suffix.
    """
    if not reconstructions:
        raise EtcbenchError("no attack reconstructions for the example grid")
    schemes = list(dict.fromkeys(s for s, _ in reconstructions))
    found = list(dict.fromkeys(a for _, a in reconstructions))
    attacks = (["none"] if "none" in found else []) + [a for a in found if a != "none"]
    fig, axes = plt.subplots(len(schemes), len(attacks) + 1, figsize=(1.3 * (len(attacks) + 1), 1.4 * len(schemes)),
                             squeeze=False)
    for r, scheme in enumerate(schemes):
        for c, name in enumerate(["plain", *attacks]):
            ax = axes[r, c]
            images = plain if c == 0 else reconstructions.get((scheme, name))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
            if images is None:  # the attack did not run against this scheme
                ax.set_frame_on(False)
                continue
            ax.imshow(images[0], cmap="gray" if images.shape[-1] == 1 else None)
        axes[r, 0].set_ylabel(scheme, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Attacks: the first test image, scheme by scheme (rows) and attack by attack (columns)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)


