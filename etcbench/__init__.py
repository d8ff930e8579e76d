"""etcbench: a reproducible benchmark suite for privacy-preserving image classification with keyed block-wise
image encryption (EtC) and isotropic networks (ViT, ConvMixer)."""

from __future__ import annotations

__version__ = "0.1.0"
