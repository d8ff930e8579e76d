"""Classifiers (timm ViT and ConvMixer with patch size = block size, ResNet-18, adaptation networks), strict
pretrained loading and model cards.

The model names (:func:`available`, :data:`MODELS`) come without torch: the torch-free stages list them.
:func:`build_model`, :func:`load_pretrained` and :func:`model_card` are imported on first use (PEP 562), and only
building a model, loading weights or reading a card imports torch and timm.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .factory import DEFAULT_ARCH, MODELS, available

if TYPE_CHECKING:
    from .card import model_card
    from .factory import build_model
    from .pretrained import load_pretrained

__all__ = ["DEFAULT_ARCH", "MODELS", "available", "build_model", "load_pretrained", "model_card"]

_LAZY = {"build_model": ".factory", "load_pretrained": ".pretrained", "model_card": ".card"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
