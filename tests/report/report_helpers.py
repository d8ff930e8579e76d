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
