"""Assemble the report: tables and figures from the result files, never edited by hand.

The report reads result files only (records, and the example images the encryption and attack stages wrote); it
opens no key and imports no cipher, model or training code.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..errors import EtcbenchError
from ..io import all_or_nothing, atomic_write, load_npz, read_json
from ..labels import jpeg_variant, transformed_label
from . import arms, figures, tables
from .confusion import confusion_from_predictions

__all__ = ["build_report"]

log = logging.getLogger(__name__)

_SETTING = ["dataset", "image_size", "block_size"]  # a setting's rows form one block of the LaTeX tables


def _draw(plot: Callable[..., list[Path]], args: tuple, stem: Path) -> list[Path]:
    """One figure, all or nothing (in a worker process: a failure leaves neither of its files)."""
    with all_or_nothing():
        return plot(*args, stem)


class _Figures:
    """The report's figures, queued while the tables are written and drawn at the end: on ``workers`` processes
    side by side (forked, so they start with matplotlib imported), or one after the other with one worker. Each
    figure is drawn from its data alone, so the order does not matter; the paths come back to the parent, whose
    :func:`all_or_nothing` removes them all if any figure fails."""

    def __init__(self, workers: int = 1) -> None:
        self.workers, self.queue = max(1, int(workers)), []

    def add(self, plot: Callable[..., list[Path]], *args: Any, stem: Path) -> None:
        self.queue.append((plot, args, Path(stem)))

    def draw(self, written: list[Path]) -> None:
        """Draw the queued figures; ``written``: the file list of the enclosing :func:`all_or_nothing`, which the
        workers' files join."""
        workers = min(self.workers, len(self.queue))
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for plot, args, stem in self.queue:  # atomic_write hands their files to the enclosing all_or_nothing
                plot(*args, stem)
            return
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = [pool.submit(_draw, plot, args, stem) for plot, args, stem in self.queue]
            failure = None
            for future in futures:  # every figure ends (drawn or removed) before the first failure is raised
                try:
                    written.extend(future.result())
                except Exception as exc:  # re-raised below, after the others ended
                    failure = failure or exc
            if failure is not None:
                raise failure


def _load_examples(paths: list[Path], k: int) -> dict[str, dict[str, np.ndarray]]:
    """The example images of each scheme (files from the encryption stage), plain first."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for path in paths:
        data = load_npz(path)
        missing = sorted({"plain", "encrypted", "decrypted", "scheme"} - set(data))
        if missing:
            raise EtcbenchError(f"{path} is not an example file of 'etcbench encrypt' (no {', '.join(missing)})")
        if not out:
            out["plain"] = {"image": data["plain"][:k]}
        name = str(data["scheme"])
        if name != "plain":
            out[name] = {"encrypted": data["encrypted"][:k], "decrypted": data["decrypted"][:k]}
    return out


def build_report(
        *,
        accuracy: list[Path],
        compression: list[Path],
        out_dir: Path,
        examples: list[Path] | None = None,
        num_examples: int = 6,
        config: dict | None = None,
        attacks: list[Path] | None = None,
        attack_examples: list[Path] | None = None,
        position_leaks: list[Path] | None = None,
        metrics: list[Path] | None = None,
        keys: list[Path] | None = None,
        workers: int = 1,
) -> list[Path]:
    """Write the tables (``accuracy``, ``summary``, ``comparison``, ``schemes``, ``key_mismatch``, ``compression``
    and the attack tables) and the figures under ``out_dir``.

    ``examples`` are the example image files of the encryption stage (one per scheme); ``metrics`` the training
    records (``metrics.json`` of ``etcbench train``) whose per-epoch history the training curves draw and whose
    parameter counts the comparison table shows; ``keys`` the keys' public records (``keygen --info``) for the key
    table, which says where the master secret came from. The confusion
    matrices are drawn from the ``predictions`` entries of the evaluation records. The figures are drawn on
    ``workers`` processes side by side. If any step fails, the files this call already wrote are removed again, so
    no half-made report is left.
    """
    trainings = [read_json(p) for p in metrics or []]
    parameters: dict[tuple, list[int]] = {}
    for t in trainings:
        rec, count = t.get("record", {}), t.get("train", {}).get("parameters")
        if count is not None and all(k in rec for k in (*_SETTING, "model")):
            setting = (rec["dataset"], int(rec["image_size"]), int(rec["block_size"]))
            parameters.setdefault((*setting, rec["model"]), []).append(int(count))
            if rec.get("scheme") == "plain":  # a transformed plain model has its original's parameters
                parameters.setdefault((*setting, transformed_label(rec["model"])), []).append(int(count))
    figs = _Figures(workers)
    with all_or_nothing() as written:
        acc, comp, mismatch = _build(accuracy, compression, out_dir, examples or [], num_examples,
                                     parameters if trainings else None, figs)
        attack_table = _build_attacks(attacks, attack_examples or [], out_dir, position_leaks, figs) \
            if attacks else None
        schemes = tables.scheme_table(acc, comp, attack_table, mismatch)
        tables.write_table(schemes, out_dir / "schemes", tables.scheme_caption(schemes), split_by=_SETTING)
        if keys:
            key_records = tables.key_table([read_json(p) for p in keys])
            tables.write_table(key_records, out_dir / "keys", tables.key_caption(key_records))
        if trainings:
            figs.add(figures.plot_training_curves, tables.history_table(trainings),
                     stem=out_dir / "figures" / "training_curves")
        if config is not None:
            with atomic_write(out_dir / "config.yaml", binary=False) as fh:
                fh.write("# resolved configuration of this run (defaults filled in; the key seed is left out)\n")
                yaml.safe_dump(config, fh, sort_keys=False)
        figs.draw(written)
    log.info("report: %d files in %s", len(written), out_dir)
    return written


def _build(accuracy: list[Path], compression: list[Path], out_dir: Path, examples: list[Path],
           num_examples: int, parameters: dict[tuple, list[int]] | None, figs: _Figures,
           ) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame]:
    """The accuracy, comparison, key-mismatch and compression tables and their figures; returns the accuracy,
    compression (``None`` without records) and key-mismatch tables. ``parameters``: the trained models' parameter
    counts for the comparison table (:func:`.tables.comparison_table`)."""
    evaluations = [read_json(p) for p in accuracy]
    acc = tables.accuracy_table([r for e in evaluations for r in e["records"]])
    tables.write_table(acc, out_dir / "accuracy", "Top-1 accuracy per model, scheme, JPEG setting and seed")
    tables.write_table(
        tables.accuracy_summary(acc), out_dir / "summary",
        "Top-1 (%) on uncompressed test images: mean, std and 95% CI half-width over seeds")
    comparison = tables.comparison_table(acc, parameters=parameters)
    tables.write_table(comparison, out_dir / "comparison", tables.comparison_caption(comparison),
                       split_by=_SETTING)
    mismatch = tables.key_mismatch_table([r for e in evaluations for r in e.get("key_mismatch", [])])
    tables.write_table(mismatch, out_dir / "key_mismatch",
                       "Top-1 with the model's own key, another key of its scheme, and no encryption")
    transformation = [t for e in evaluations for t in e.get("transformation", [])]
    if transformation:
        table = arms.transformation_table(transformation, acc, mismatch)
        tables.write_table(table, out_dir / "model_transformation", arms.transformation_caption(table),
                           split_by=_SETTING)
    if acc["model"].map(jpeg_variant).notna().any():
        table = arms.jpeg_training_table(acc)
        tables.write_table(table, out_dir / "jpeg_training", arms.jpeg_training_caption(table), split_by=_SETTING)
    fig_dir = out_dir / "figures"
    figs.add(figures.plot_top1_by_model_scheme, acc, stem=fig_dir / "top1_by_model_scheme")
    figs.add(figures.plot_top1_vs_quality, acc, stem=fig_dir / "top1_vs_jpeg_quality")
    confusions = [confusion_from_predictions(p) for e in evaluations for p in e.get("predictions", [])]
    lacking = sum(1 for e in evaluations if not e.get("predictions"))
    if lacking:
        log.warning("%d of %d evaluation records hold no predictions for a confusion matrix (written by an older "
                    "'etcbench evaluate')", lacking, len(evaluations))
    if confusions:
        figs.add(figures.plot_confusion_matrices, confusions, stem=fig_dir / "confusion_matrices")
    comp = None
    if compression:
        comp = tables.compression_table([read_json(p)["record"] for p in compression])
        tables.write_table(comp, out_dir / "compression",
                           "JPEG bits per pixel (whole file and entropy-coded payload), header bytes and PSNR after "
                           "decryption against the plain image")
        tables.write_table(tables.bd_rate_table(comp), out_dir / "bd_rate",
                           "Bjontegaard deltas against plain JPEG of the same setting and subsampling: BD-rate (%) "
                           "and BD-PSNR (dB) on payload bpp, BD-rate on whole-file bpp")
        figs.add(figures.plot_rate_distortion, comp, stem=fig_dir / "jpeg_bpp_psnr")
    if examples:
        figs.add(figures.plot_examples, _load_examples(examples, num_examples), stem=fig_dir / "examples")
    return acc, comp, mismatch


def _build_attacks(records: list[Path], examples: list[Path], out_dir: Path, position_leaks: list[Path] | None,
                   figs: _Figures) -> pd.DataFrame:
    """The attack and position-leak tables and the attack figures; returns the attack table."""
    table = tables.attack_table([r for p in records for r in read_json(p)["records"]])
    tables.write_table(table, out_dir / "attacks",
                       "Attacks: SSIM and PSNR of reconstructions against the plain test images (also at the native "
                       "size), each learned attack's plain-scheme control (under-trained: its native SSIM below "
                       f"{tables.CONTROL_SSIM}), semantic leakage (top-1 of the plain-trained model), share of the key "
                       "recovered, jigsaw layout scores")
    figs.add(figures.plot_attack_ssim, table, stem=out_dir / "figures" / "attack_ssim")
    if table["semantic_top1"].notna().any():
        figs.add(figures.plot_semantic_leakage, table, stem=out_dir / "figures" / "attack_semantic")
    if position_leaks:
        leak = tables.position_leak_table([read_json(p) for p in position_leaks])
        tables.write_table(leak, out_dir / "position_leak",
                           "Position-embedding leakage: share of block positions recovered from a ViT trained on "
                           "encrypted images, against the identity guess and chance")
    reconstructions, plain = {}, None
    for path in examples:
        data = load_npz(path)
        if plain is None:
            plain = data["plain"]
        if data["plain"].shape != plain.shape:
            continue  # another setting: the figure shows the first setting's images
        for name in data["attacks"]:
            reconstructions[(str(data["scheme"]), str(name))] = data[f"x_{name}"]
    if plain is None:
        raise EtcbenchError("no attack example files for the attack example figure")
    figs.add(figures.plot_attack_grid, plain, reconstructions, stem=out_dir / "figures" / "attack_examples")
    return table
