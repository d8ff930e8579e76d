"""Classifiers (timm ViT and ConvMixer with patch size = block size, ResNet-18, adaptation networks), strict
pretrained loading and model cards."""

from .card import model_card
from .factory import MODELS, build_model
from .pretrained import load_pretrained

__all__ = ["MODELS", "build_model", "load_pretrained", "model_card"]
