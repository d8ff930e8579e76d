"""The names the two arms' models go by in paths and records, beside the models of the trained grid: a model trained
on JPEG-decoded ciphertexts is ``<model>@q<quality>-<subsampling>``, a plain-trained model transformed with a
scheme's key ``<model>@transformed``. Pure string functions (no numpy, no torch), shared by the grid, the stages and
the report.

>>> jpeg_label("vit", "q50-420"), transformed_label("vit")
('vit@q50-420', 'vit@transformed')
>>> base_model("vit@q50-420"), base_model("vit"), jpeg_variant("convmixer@q50-420"), jpeg_variant("vit@transformed")
('vit', 'vit', ('q50-420', 50, '420'), None)
"""

from __future__ import annotations

import re

__all__ = ["base_model", "jpeg_label", "jpeg_variant", "transformed_label"]

TRANSFORMED = "transformed"
_JPEG = re.compile(r"q(\d+)-(444|420)")


def jpeg_label(model: str, variant: str) -> str:
    """The label of ``model`` trained on ciphertexts JPEG-coded as ``variant`` (``q50-420``)."""
    return f"{model}@{variant}"


def transformed_label(model: str) -> str:
    """The label of plain-trained ``model`` transformed with a scheme's key."""
    return f"{model}@{TRANSFORMED}"


def base_model(label: str) -> str:
    """The model (its config name) a label names."""
    return label.split("@", 1)[0]


def jpeg_variant(label: str) -> tuple[str, int, str] | None:
    """``(variant, quality, subsampling)`` of a JPEG-trained model's label; None for any other label."""
    _, _, arm = label.partition("@")
    match = _JPEG.fullmatch(arm)
    return (arm, int(match[1]), match[2]) if match else None
