"""Attacks on encrypted images, behind one registry (see :mod:`.base` for the interface).

    >>> from etcbench import attacks
    >>> attack = attacks.create("fr", block_size=16)
    >>> attack
    FeatureReconstruction(block_size=16, color='keep', stretch=False)
    >>> attacks.available()
    ['fr', 'gan', 'gan-paired', 'itn', 'jigsaw', 'kpa', 'none', 'shared-key']

Registered: ``none`` (the encrypted image as it is), ``fr`` (feature reconstruction), ``itn`` (inverse
transformation network on the attacker's own pairs), ``gan`` (the lab's GAN-Attack: target-key ciphertexts,
unpaired, adversarial loss), ``gan-paired`` (the ITN's pairs with an adversarial term), ``jigsaw`` (a jigsaw-puzzle
solver), ``kpa`` (known-plaintext key recovery, :mod:`.known_plaintext`) and ``shared-key`` (ciphertext-only
estimation of the in-block key that pixel shuffling and LE share); :mod:`.protocol` runs them against a scheme.
:mod:`.position_leak` recovers block scrambling from a trained ViT instead of from images.
"""

from __future__ import annotations

from . import fr, gan, itn, jigsaw, protocol, shared_key  # noqa: F401  (register the attacks)
from .base import Attack, Reconstruction, available, create, register_attack

__all__ = ["Attack", "Reconstruction", "available", "create", "register_attack"]
