"""Report figures (seaborn), each saved as PNG and PDF atomically by :func:`save_figure`.

Scheme colours come from the data (a palette sized to the schemes present, ``plain`` first), never from a
hard-coded scheme list; ``plain`` is drawn last, on top, in line plots. Every error bar or band is a 95% Student-t
confidence interval (:mod:`.stats`), and no figure has an empty panel. No paper value is drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ..errors import EtcbenchError
from ..io import atomic_write
from .stats import ci_halfwidth

__all__ = ["save_figure", "plot_top1_by_model_scheme", "plot_top1_vs_quality", "plot_rate_distortion",
           "plot_examples", "plot_attack_ssim", "plot_attack_grid", "plot_semantic_leakage", "plot_training_curves",
           "plot_confusion_matrices"]

log = logging.getLogger(__name__)

DPI = 150
_CONFIG_KEYS = ["dataset", "image_size", "block_size"]
_SUBSAMPLING_ORDER = {"none": 0, "444": 1, "420": 2}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
_KIND_ORDER = ["plain", "encrypted", "decrypted"]
# classes of the datasets the report knows, for chance lines (1 / classes)
_NUM_CLASSES = {"cifar10": 10}


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


def _cell_stats(data: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean, 95% CI half-width (:mod:`.stats`; NaN for one seed) and count of ``value`` per ``keys``."""
    return data.groupby(keys, sort=False)[value].agg(mean="mean", half=ci_halfwidth, n="count")


def _spread(n_seeds: int) -> str:
    return f"mean ± 95% CI over {n_seeds} seeds" if n_seeds > 1 else "1 seed"


def plot_top1_by_model_scheme(acc: pd.DataFrame, stem: Path) -> list[Path]:
    """Top-1 (%) on uncompressed test images as a heatmap, one panel per setting: rows = the setting's models,
    columns = the schemes it trains (``plain`` first); each panel is as wide as its schemes, so no slot is empty.

    Each cell is annotated with the mean over seeds and, with more than one seed, the half-width of the 95%
    Student-t confidence interval of the mean (:mod:`.stats`, as ``top1_ci95_pct`` in the summary table). A model
    not trained on a scheme leaves its cell grey.

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
    cells = _cell_stats(data, ["config", "model", "scheme"], "top1_pct")
    n_seeds = int(data.groupby(["config", "model", "scheme"])["seed"].nunique().max())
    configs = _configs(data)
    layout = []
    for cfg in configs:
        sub = data.loc[data["config"] == cfg]
        layout.append((cfg, sorted(set(sub["model"])), _scheme_palette(sub["scheme"])[0]))
    widths = [len(schemes) for _, _, schemes in layout]
    rows = max(len(models) for _, models, _ in layout)
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.9")
    size = (0.95 * sum(widths) + 1.6 * len(configs) + 1.2, 0.55 * rows + 2.0)
    fig, axes = plt.subplots(1, len(configs), figsize=size, squeeze=False, gridspec_kw={"width_ratios": widths},
                             layout="constrained")
    image = None
    for ax, (cfg, models, schemes) in zip(axes[0], layout):
        grid = np.full((len(models), len(schemes)), np.nan)
        for r, model in enumerate(models):
            for c, scheme in enumerate(schemes):
                if (cfg, model, scheme) not in cells.index:
                    continue
                mean, half = cells.loc[(cfg, model, scheme), ["mean", "half"]]
                grid[r, c] = mean
                text = f"{mean:.1f}" if np.isnan(half) else f"{mean:.1f}\n±{half:.1f}"
                ax.text(c, r, text, ha="center", va="center", fontsize=7, color="white" if mean < 60 else "black")
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(np.arange(len(schemes)), schemes, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(np.arange(len(models)), models, fontsize=8)
        ax.set_title(cfg, fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), label="top-1 (%)", shrink=0.9)
    fig.suptitle(f"Top-1 (%) on uncompressed test images ({_spread(n_seeds)}); grey: not trained", fontsize=10)
    return save_figure(fig, stem)


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return -(-n // cols), cols


def plot_top1_vs_quality(acc: pd.DataFrame, stem: Path) -> list[Path]:
    """Top-1 (%) against JPEG quality: hue = scheme, marker = subsampling, one panel per (setting, model) that has
    JPEG results (no empty panel; at most three panels a row).

    The uncompressed top-1 of each (model, scheme), mean over seeds, is drawn as a dashed horizontal line in the
    scheme's colour; ``plain`` is drawn last and thicker, on top of the schemes that match it. With more than one
    seed, points are means and error bars 95% Student-t confidence intervals of the mean.

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
    points = _cell_stats(jpeg, ["config", "model", "scheme", "subsampling", "jpeg_quality"], "top1_pct")

    schemes, palette = _scheme_palette(data["scheme"])
    draw_order = [s for s in schemes if s != "plain"] + [s for s in schemes if s == "plain"]  # plain on top
    subsamplings = _subsampling_order(jpeg["subsampling"])
    markers = {ss: _MARKERS[i % len(_MARKERS)] for i, ss in enumerate(subsamplings)}
    n_seeds = int(points["n"].max())
    panels = [(cfg, model) for cfg in _configs(jpeg)
              for model in sorted(set(jpeg.loc[jpeg["config"] == cfg, "model"]))]
    nrows, ncols = _grid(len(panels))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.6 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)
    for ax, (cfg, model) in zip(axes.flat, panels):
        here = points.reset_index()
        here = here.loc[(here["config"] == cfg) & (here["model"] == model)].sort_values("jpeg_quality")
        for scheme in draw_order:
            on_top = scheme == "plain"
            for ss in subsamplings:
                line = here.loc[(here["scheme"] == scheme) & (here["subsampling"] == ss)]
                if line.empty:
                    continue
                half = line["half"].fillna(0.0) if n_seeds > 1 else None
                ax.errorbar(line["jpeg_quality"], line["mean"], yerr=half, color=palette[scheme], marker=markers[ss],
                            markersize=5 if on_top else 4, linewidth=2.2 if on_top else 1.4, capsize=2,
                            elinewidth=1, zorder=4 if on_top else 2)
            if (cfg, model, scheme) in baseline.index:
                ax.axhline(baseline[(cfg, model, scheme)], color=palette[scheme], linestyle="--",
                           linewidth=1.4 if on_top else 1, zorder=3 if on_top else 1)
        ax.set_xticks(sorted(set(here["jpeg_quality"])))
        ax.set(title=model if len(_configs(jpeg)) == 1 else f"{model} ({cfg})", xlabel="JPEG quality",
               ylabel="top-1 (%)", ylim=(0, 100))
        ax.title.set_fontsize(9)
    handles = _legend_handles(schemes, palette, subsamplings, markers)
    handles.append(Line2D([], [], color="0.3", linestyle="--", linewidth=1, label="uncompressed"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    fig.suptitle(f"Top-1 on JPEG-compressed test images ({_spread(n_seeds)}); dashed: uncompressed", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def plot_rate_distortion(comp: pd.DataFrame, stem: Path) -> list[Path]:
    """Rate-distortion curves: payload bits per pixel (x) against PSNR after decryption (y), one line per scheme.

    The rate is the entropy-coded payload of the JPEG files (``payload_bpp``), per pixel of the RGB image: at
    32-64 px the headers (tables, frame and scan headers: several hundred bytes, the same for every scheme of a
    setting) would add a constant of several bpp to every point and squash the differences between schemes.

    One panel per setting (rows) and chroma subsampling (columns), left out where the setting has no rows at that
    subsampling (no empty panels); each line joins a scheme's JPEG qualities in order. Solid lines: the
    scheme's blocks are whole JPEG coding units at that subsampling (JPEG-compatible); dashed: they are not. A
    JPEG-compatible scheme lies on the plain curve, so plain is drawn last, on top, with its own marker (squares
    with a dark edge), and is never hidden under it. Infinite PSNR (lossless) is drawn at a cap 5 dB above the
    largest finite value, marked and noted.

    Args:
        comp: output of :func:`etcbench.report.tables.compression_table`.
        stem: output path without suffix.

    Returns:
        The PNG and PDF paths.
    """
    _require(comp, [*_CONFIG_KEYS, "scheme", "jpeg_quality", "subsampling", "payload_bpp", "psnr", "jpeg_aligned"],
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
    # plain last: on top of the JPEG-compatible schemes that lie on its curve
    draw_order = [s for s in schemes if s != "plain"] + [s for s in schemes if s == "plain"]
    subsamplings = _subsampling_order(data["subsampling"])
    fig, axes = plt.subplots(len(configs), len(subsamplings), figsize=(5.2 * len(subsamplings), 4.2 * len(configs)),
                             squeeze=False)
    for i, cfg in enumerate(configs):
        for j, ss in enumerate(subsamplings):
            ax = axes[i, j]
            sub = data.loc[(data["config"] == cfg) & (data["subsampling"] == ss)]
            if sub.empty:  # e.g. a setting whose only schemes are grayscale planes at one subsampling
                fig.delaxes(ax)
                continue
            for scheme in draw_order:
                line = sub.loc[sub["scheme"] == scheme]
                if line.empty:
                    continue
                aligned = bool(line["jpeg_aligned"].all())
                if scheme == "plain":  # drawn last and on top: never hidden under another scheme's curve
                    style = {"marker": "s", "markersize": 6, "markeredgecolor": "0.1", "linewidth": 2.2, "zorder": 5}
                else:
                    style = {"marker": "o", "markersize": 4, "linewidth": 1.8 if aligned else 1.2, "zorder": 2}
                ax.plot(line["payload_bpp"], line["psnr"], color=palette[scheme], label=scheme,
                        linestyle="-" if aligned else "--", **style)
            if cap is not None:
                ax.axhline(cap, color="0.6", linestyle=":", linewidth=1)
            ax.set(xlabel="payload bits per pixel (entropy-coded data, headers excluded)",
                   ylabel="PSNR after decryption (dB)")
            ax.set_title(f"JPEG {ss[0]}:{ss[1]}:{ss[2]}" + ("" if len(configs) == 1 else f" ({cfg})"), fontsize=10)
    handles = [Line2D([], [], color="none", label="scheme")]
    handles += [Line2D([], [], color=palette[s], lw=2, label=s,
                       **({"marker": "s", "markeredgecolor": "0.1"} if s == "plain" else {})) for s in schemes]
    handles += [Line2D([], [], color="0.3", linestyle="-", label="blocks fit the JPEG grid"),
                Line2D([], [], color="0.3", linestyle="--", label="blocks do not fit")]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    note = f"; inf PSNR (lossless) drawn at {cap:.0f} dB" if cap is not None else ""
    fig.suptitle(f"Rate-distortion after decryption, one point per JPEG quality; rate: JPEG payload{note}",
                 fontsize=10)
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
                 ceiling: str | None = None, chance: bool = False) -> list[Path]:
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
        classes = _NUM_CLASSES.get(str(sub["dataset"].iloc[0]))
        if chance and classes:
            ax.axhline(1.0 / classes, color="0.3", linestyle=":", linewidth=0.8, label=f"chance (1/{classes})")
        ax.set_xticks(np.arange(len(order)), order, rotation=20)
        ax.set(ylabel=ylabel, ylim=(min(0.0, float(sub[value].min()) - 0.05), 1.0),
               title=cfg if len(configs) > 1 else "")
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
    reconstructions (dashed: its top-1 on the plain images; dotted: chance, 1 / classes, where the dataset is
    known: 0.1 on CIFAR-10)."""
    return _attack_bars(attacks, "semantic_top1", None, "top-1 of the plain model",
                        "Semantic leakage: the plain-trained model classifying the reconstructions", stem,
                        ceiling="semantic_top1_plain", chance=True)


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
            if images is None:  # the attack did not run against this scheme: no panel (the column title stays)
                ax.set_axis_off()
                continue
            ax.imshow(images[0], cmap="gray" if images.shape[-1] == 1 else None)
        axes[r, 0].set_ylabel(scheme, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Attacks: the first test image, scheme by scheme (rows) and attack by attack (columns)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, stem)


_HISTORY_PANELS = [("train_loss", "training loss", 1.0), ("train_top1", "training top-1 (%)", 100.0),
                   ("val_top1", "validation top-1 (%)", 100.0)]
_MODEL_STYLES = ["-", "--", ":", "-."]


def plot_training_curves(history: pd.DataFrame, stem: Path) -> list[Path]:
    """Training curves per epoch: training loss, training top-1 and validation top-1 (columns), one row of panels
    per setting, one line per (model, scheme): colour = scheme, line style = model, ``plain`` drawn last, on top.

    Lines are means over seeds; with more than one seed a band shows the 95% Student-t confidence interval of the
    mean (:mod:`.stats`). A quantity no model of a setting recorded leaves its panel out (switched off, labelled).

    Args:
        history: output of :func:`etcbench.report.tables.history_table`.
        stem: output path without suffix.

    Returns:
        The PNG and PDF paths.
    """
    _require(history, [*_CONFIG_KEYS, "model", "scheme", "seed", "epoch", *(c for c, _, _ in _HISTORY_PANELS)],
             "training history")
    if history.empty:
        raise EtcbenchError("no training history to plot (training curves)")
    data = _with_config(history)
    configs = _configs(data)
    schemes, palette = _scheme_palette(data["scheme"])
    models = sorted(set(data["model"]))
    styles = {m: _MODEL_STYLES[i % len(_MODEL_STYLES)] for i, m in enumerate(models)}
    n_seeds = int(data.groupby(["config", "model", "scheme", "epoch"])["seed"].nunique().max())
    fig, axes = plt.subplots(len(configs), len(_HISTORY_PANELS), figsize=(4.2 * len(_HISTORY_PANELS),
                                                                           3.2 * len(configs)), squeeze=False)
    for i, cfg in enumerate(configs):
        sub = data.loc[data["config"] == cfg]
        cells = sorted(set(zip(sub["model"], sub["scheme"])), key=lambda c: (c[1] == "plain", c[1], c[0]))
        for j, (column, label, scale) in enumerate(_HISTORY_PANELS):
            ax = axes[i, j]
            drawn = False
            for model, scheme in cells:
                rows = sub.loc[(sub["model"] == model) & (sub["scheme"] == scheme)].dropna(subset=[column])
                if rows.empty:
                    continue
                rows = rows.assign(value=rows[column].astype(float) * scale)
                line = _cell_stats(rows, ["epoch"], "value").sort_index()
                on_top = scheme == "plain"
                ax.plot(line.index, line["mean"], color=palette[scheme], linestyle=styles[model],
                        marker="o" if len(line) <= 12 else None, markersize=3,
                        linewidth=2.2 if on_top else 1.4, zorder=4 if on_top else 2)
                if (line["n"] > 1).any():
                    ax.fill_between(line.index, line["mean"] - line["half"], line["mean"] + line["half"],
                                    color=palette[scheme], alpha=0.15, linewidth=0, zorder=1)
                drawn = True
            if not drawn:
                ax.text(0.5, 0.5, f"{label}: not recorded", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set(xlabel="epoch", ylabel=label)
            if scale == 100.0:
                ax.set_ylim(0, 100)
            ax.set_title(label if len(configs) == 1 else f"{label} ({cfg})", fontsize=9)
    handles = [Line2D([], [], color="none", label="scheme")]
    handles += [Line2D([], [], color=palette[s], lw=2, label=s) for s in schemes]
    handles.append(Line2D([], [], color="none", label="model"))
    handles += [Line2D([], [], color="0.3", linestyle=styles[m], label=m) for m in models]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    fig.suptitle(f"Training curves ({_spread(n_seeds)}{', band' if n_seeds > 1 else ''})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, stem)


def plot_confusion_matrices(confusions: Sequence[Mapping], stem: Path, max_cols: int = 4) -> list[Path]:
    """Confusion matrices on the uncompressed own-key test images: one panel per (setting, scheme, model), the
    seeds' matrices summed, each row (true class) normalised to 1; class names on the axes where the records give
    them (CIFAR-10), class indices otherwise. The panel title gives the top-1 (%) the summed matrix implies.

    Args:
        confusions: confusion records (:func:`.confusion.confusion_from_predictions`: dataset, image_size,
            block_size, model, scheme, seed, ``labels``, ``class_names`` and ``matrix``, rows = true class).
        stem: output path without suffix.
        max_cols: panels per row at most.

    Returns:
        The PNG and PDF paths.
    """
    if not confusions:
        raise EtcbenchError("no confusion matrices to plot (evaluation records without 'predictions')")
    groups: dict[tuple, dict] = {}
    for i, rec in enumerate(confusions):
        missing = [k for k in (*_CONFIG_KEYS, "model", "scheme", "labels", "matrix") if k not in rec]
        if missing:
            raise EtcbenchError(f"confusion record {i} lacks key(s) {', '.join(missing)}")
        matrix = np.asarray(rec["matrix"], dtype=np.int64)
        labels = list(rec["labels"])
        if matrix.shape != (len(labels), len(labels)):
            raise EtcbenchError(f"confusion record {i}: a {matrix.shape} matrix for {len(labels)} classes")
        key = (rec["dataset"], int(rec["image_size"]), int(rec["block_size"]), rec["scheme"], rec["model"])
        if key in groups:
            if groups[key]["labels"] != labels:
                raise EtcbenchError(f"confusion records of {key} have different classes")
            groups[key]["matrix"] = groups[key]["matrix"] + matrix
            groups[key]["seeds"] += 1
        else:
            groups[key] = {"matrix": matrix, "labels": labels, "names": rec.get("class_names") or labels, "seeds": 1}
    order = sorted(groups, key=lambda k: (k[0], k[1], k[2], k[3] != "plain", k[3], k[4]))
    settings = {k[:3] for k in order}
    nrows, ncols = _grid(len(order), max_cols)
    k = max(len(g["labels"]) for g in groups.values())
    cell = max(2.6, 0.22 * k)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols + 1.4, (cell + 0.5) * nrows + 0.6), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(order):]:
        fig.delaxes(ax)
    image = None
    for n, (ax, key) in enumerate(zip(axes.flat, order)):
        group = groups[key]
        matrix = group["matrix"].astype(float)
        totals = matrix.sum(axis=1, keepdims=True)
        shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        ticks = np.arange(len(group["labels"]))
        names = [str(c) for c in group["names"]]
        if len(ticks) <= 20:
            ax.set_xticks(ticks, names, rotation=90, fontsize=6)
            ax.set_yticks(ticks, names, fontsize=6)
        top1 = 100.0 * np.trace(matrix) / max(matrix.sum(), 1.0)
        setting = "" if len(settings) == 1 else f"\n{key[0]}, {key[1]} px, block {key[2]}"
        ax.set_title(f"{key[4]} on {key[3]}: {top1:.1f}%{setting}", fontsize=8)
        if n % ncols == 0:
            ax.set_ylabel("true class", fontsize=7)
        if n >= len(order) - ncols:
            ax.set_xlabel("predicted class", fontsize=7)
    fig.colorbar(image, ax=[ax for ax in axes.flat if ax in fig.axes], shrink=0.6,
                 label="share of the true class")
    seeds = sorted({g["seeds"] for g in groups.values()})
    fig.suptitle("Confusion matrices, uncompressed test images with the model's own key (rows normalised; "
                 f"{'/'.join(map(str, seeds))} seed(s) summed)", fontsize=10)
    return save_figure(fig, stem)
