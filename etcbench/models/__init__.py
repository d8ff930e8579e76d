"""Classifiers: timm ViT and ConvMixer with patch size = block size, and ResNet-18."""

from .factory import MODELS, build_model

__all__ = ["MODELS", "build_model"]
