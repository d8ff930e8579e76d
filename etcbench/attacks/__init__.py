"""Ciphertext-only attacks on encrypted images, behind one registry (see :mod:`.base` for the interface).

    >>> from etcbench import attacks
    >>> attack = attacks.create("fr", block_size=16)
    >>> attack
    FeatureReconstruction(block_size=16, color='keep', stretch=False)
    >>> attacks.available()
    ['fr', 'gan', 'itn', 'jigsaw', 'none']

Registered: ``none`` (the encrypted image as it is), ``fr`` (feature reconstruction), ``itn`` (inverse
transformation network), ``gan`` (the ITN trained with an adversarial loss) and ``jigsaw`` (a jigsaw-puzzle
solver); :mod:`.protocol` runs them against a scheme under the ciphertext-only threat model.
"""

from __future__ import annotations

from . import fr, gan, itn, jigsaw, protocol  # noqa: F401  (register the attacks)
from .base import Attack, Reconstruction, available, create, register_attack

__all__ = ["Attack", "Reconstruction", "available", "create", "register_attack"]
