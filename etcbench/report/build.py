"""Assemble the report: tables and figures from the result records, never edited by hand."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import yaml

from .. import ciphers
from ..errors import EtcbenchError
from ..io import atomic_write, load_npz, read_json
from . import figures, tables

__all__ = ["build_report"]

log = logging.getLogger(__name__)


def _load_examples(plain: Path, specs: list[str], k: int) -> dict[str, dict[str, np.ndarray]]:
    reference = load_npz(plain)["x"][:k]
    out: dict[str, dict[str, np.ndarray]] = {"plain": {"image": reference}}
    for spec in specs:
        try:
            name, images, key_path = spec.split("=")
        except ValueError:
            raise EtcbenchError(f"example spec {spec!r} is not SCHEME=IMAGES.npz=KEY.npz") from None
        if name == "plain":
            continue
        key = ciphers.load_key(key_path)
        scheme = ciphers.create(key.scheme, key.block_size, **key.options)
        encrypted = load_npz(images)["x"][:k]
        shown = encrypted[..., 0] if encrypted.shape[-1] == 1 else encrypted  # a grayscale plane
        out[name] = {"encrypted": shown, "decrypted": scheme.decrypt(encrypted, key)}
    return out


def build_report(
        *,
        accuracy: list[Path],
        compression: list[Path],
        out_dir: Path,
        plain: Path | None = None,
        examples: list[str] | None = None,
        num_examples: int = 6,
        config: dict | None = None,
        attacks: list[Path] | None = None,
        attack_examples: list[Path] | None = None,
) -> list[Path]:
    """Write ``accuracy``, ``summary`` and ``compression`` tables and the figures under ``out_dir``.

    If any step fails, the files this call already wrote are removed again, so no half-made report is left.
    """
    written: list[Path] = []
    try:
        _build(written, accuracy, compression, out_dir, plain, examples or [], num_examples)
        if attacks:
            _build_attacks(written, attacks, attack_examples or [], out_dir)
        if config is not None:
            with atomic_write(out_dir / "config.yaml", binary=False) as fh:
                fh.write("# resolved configuration of this run (defaults filled in; the key seed is left out)\n")
                yaml.safe_dump(config, fh, sort_keys=False)
            written.append(out_dir / "config.yaml")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    log.info("report: %d files in %s", len(written), out_dir)
    return written


def _build(written: list[Path], accuracy: list[Path], compression: list[Path], out_dir: Path, plain: Path | None,
           examples: list[str], num_examples: int) -> None:
    evaluations = [read_json(p) for p in accuracy]
    acc = tables.accuracy_table([r for e in evaluations for r in e["records"]])
    written += tables.write_table(acc, out_dir / "accuracy", "Top-1 accuracy per model, scheme, JPEG setting and seed")
    written += tables.write_table(
        tables.accuracy_summary(acc), out_dir / "summary",
        "Top-1 (%) on uncompressed test images: mean, std and 95% CI half-width over seeds")
    written += tables.write_table(tables.key_mismatch_table([r for e in evaluations for r in e.get("key_mismatch", [])]),
                                  out_dir / "key_mismatch",
                                  "Top-1 with the model's own key, another key of its scheme, and no encryption")
    fig_dir = out_dir / "figures"
    written += figures.plot_top1_by_model_scheme(acc, fig_dir / "top1_by_model_scheme")
    written += figures.plot_top1_vs_quality(acc, fig_dir / "top1_vs_jpeg_quality")
    if compression:
        comp = tables.compression_table([read_json(p)["record"] for p in compression])
        written += tables.write_table(comp, out_dir / "compression",
                                      "JPEG bits per pixel and PSNR after decryption against the plain image")
        written += figures.plot_rate_distortion(comp, fig_dir / "jpeg_bpp_psnr")
    if plain is not None and examples:
        written += figures.plot_examples(_load_examples(plain, examples, num_examples), fig_dir / "examples")


def _build_attacks(written: list[Path], records: list[Path], examples: list[Path], out_dir: Path) -> None:
    table = tables.attack_table([r for p in records for r in read_json(p)["records"]])
    written += tables.write_table(table, out_dir / "attacks",
                                  "Attacks: SSIM and PSNR of reconstructions against the plain test images")
    written += figures.plot_attack_ssim(table, out_dir / "figures" / "attack_ssim")
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
    written += figures.plot_attack_examples(plain, reconstructions, out_dir / "figures" / "attack_examples")
