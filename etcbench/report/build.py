"""Assemble the report: tables and figures from the result files, never edited by hand.

The report reads result files only (records, and the example images the encryption and attack stages wrote); it
opens no key and imports no cipher, model or training code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from ..errors import EtcbenchError
from ..io import all_or_nothing, atomic_write, load_npz, read_json
from . import figures, tables

__all__ = ["build_report"]

log = logging.getLogger(__name__)


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
) -> list[Path]:
    """Write ``accuracy``, ``summary`` and ``compression`` tables and the figures under ``out_dir``.

    ``examples`` are the example image files of the encryption stage (one per scheme). If any step fails, the files
    this call already wrote are removed again, so no half-made report is left.
    """
    with all_or_nothing() as written:
        _build(accuracy, compression, out_dir, examples or [], num_examples)
        if attacks:
            _build_attacks(attacks, attack_examples or [], out_dir, position_leaks)
        if config is not None:
            with atomic_write(out_dir / "config.yaml", binary=False) as fh:
                fh.write("# resolved configuration of this run (defaults filled in; the key seed is left out)\n")
                yaml.safe_dump(config, fh, sort_keys=False)
    log.info("report: %d files in %s", len(written), out_dir)
    return written


def _build(accuracy: list[Path], compression: list[Path], out_dir: Path, examples: list[Path],
           num_examples: int) -> None:
    evaluations = [read_json(p) for p in accuracy]
    acc = tables.accuracy_table([r for e in evaluations for r in e["records"]])
    tables.write_table(acc, out_dir / "accuracy", "Top-1 accuracy per model, scheme, JPEG setting and seed")
    tables.write_table(
        tables.accuracy_summary(acc), out_dir / "summary",
        "Top-1 (%) on uncompressed test images: mean, std and 95% CI half-width over seeds")
    tables.write_table(tables.key_mismatch_table([r for e in evaluations for r in e.get("key_mismatch", [])]),
                       out_dir / "key_mismatch",
                       "Top-1 with the model's own key, another key of its scheme, and no encryption")
    fig_dir = out_dir / "figures"
    figures.plot_top1_by_model_scheme(acc, fig_dir / "top1_by_model_scheme")
    figures.plot_top1_vs_quality(acc, fig_dir / "top1_vs_jpeg_quality")
    if compression:
        comp = tables.compression_table([read_json(p)["record"] for p in compression])
        tables.write_table(comp, out_dir / "compression",
                           "JPEG bits per pixel and PSNR after decryption against the plain image")
        figures.plot_rate_distortion(comp, fig_dir / "jpeg_bpp_psnr")
    if examples:
        figures.plot_examples(_load_examples(examples, num_examples), fig_dir / "examples")


def _build_attacks(records: list[Path], examples: list[Path], out_dir: Path,
                   position_leaks: list[Path] | None = None) -> None:
    table = tables.attack_table([r for p in records for r in read_json(p)["records"]])
    tables.write_table(table, out_dir / "attacks",
                       "Attacks: SSIM and PSNR of reconstructions against the plain test images (also at the native "
                       "size), each learned attack's plain-scheme control (under_trained: its native SSIM below "
                       f"{tables.CONTROL_SSIM}), semantic leakage (top-1 of the plain-trained model), share of the key "
                       "recovered, jigsaw layout scores")
    figures.plot_attack_ssim(table, out_dir / "figures" / "attack_ssim")
    if table["semantic_top1"].notna().any():
        figures.plot_semantic_leakage(table, out_dir / "figures" / "attack_semantic")
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
    figures.plot_attack_grid(plain, reconstructions, out_dir / "figures" / "attack_examples")
