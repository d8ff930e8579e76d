"""Keyed block-wise image ciphers behind one registry.

    >>> from etcbench import ciphers
    >>> scheme = ciphers.create("etc", block_size=16)
    >>> key = scheme.generate_key(seed=1234, image_size=(224, 224))
    >>> key.scheme, key.block_size, key.image_size
    ('etc', 16, (224, 224))
    >>> scheme.encrypted_shape(224, 224)
    (3, 224, 224)

``scheme.encrypt(x, key)`` / ``scheme.decrypt(y, key)`` take numpy ``(N, H, W, 3)`` or torch ``(N, 3, H, W)``
images (uint8, or float in [0, 1]) on any device and give identical results for both. Grayscale-based EtC
(``etc-gray``, ``etc-gray-444``) encrypts to one-channel YCbCr planes instead (``scheme.encrypted_shape``); its colour
conversion and plane layout are in :mod:`.ycbcr`.
"""

from __future__ import annotations

from . import ele, etc, etc_gray, le, pe, pixel_shuffle, plain  # noqa: F401  (register the schemes)
from .base import GatherScheme, Scheme
from .blocks import from_blocks, to_blocks
from .keys import Key, load_key, require_encrypted_with, save_key
from .plan import GatherPlan
from .registry import SCHEMES, available, create, load_scheme, register_scheme

__all__ = [
    "GatherPlan",
    "GatherScheme",
    "Key",
    "SCHEMES",
    "Scheme",
    "available",
    "create",
    "from_blocks",
    "load_key",
    "load_scheme",
    "register_scheme",
    "require_encrypted_with",
    "save_key",
    "to_blocks",
]
