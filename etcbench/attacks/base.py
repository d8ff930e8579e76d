"""The interface shared by every ciphertext-only attack, and the attack registry.

Threat model (``docs/paper.md`` of the suite, section 10): the attacker knows the algorithm and the block size, but
not the target key; they may encrypt their *own* plain images with keys of their own (never the target key).

Layouts. Attacks work on images in the scheme's *encrypted layout*: ``(N, H, W, 3)`` uint8 for most schemes, one
grayscale plane ``(N, Hp, Wp, 1)`` for grayscale-based EtC (``Scheme.encrypted_shape``). A reconstruction is an
estimate of the plain image *in the same layout* (the key-free part of encryption, ``Scheme.public_layout``,
applied to the plain image), which the attack stage converts back to RGB with the public inverse
(``Scheme.from_public_layout``) before scoring it against the plain test image.

Life cycle of an attack object::

    attack = attacks.create("itn", block_size=16, **options)
    stats = attack.fit(plain_layout, encrypted, seed=0, device=dev)   # attacker's own pairs (skipped if not needed)
    result = attack.reconstruct(target_encrypted)                      # the target key's test images
    result.images                                                      # (N, Hp, Wp, C) uint8, same layout

``fit`` receives the attacker's plain images already in the public layout and the same images encrypted with the
attacker's keys (several keys, images spread over them); it must not see the target key or target images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..ciphers.blocks import check_block_size
from ..ciphers.registry import SCHEMES
from ..registry import Configurable, Registry, option_names

__all__ = ["ATTACKS", "Attack", "Reconstruction", "available", "create", "default_options", "register_attack"]


@dataclass
class Reconstruction:
    """What an attack returns for a batch of encrypted images.

    Attributes:
        images: ``(N, Hp, Wp, C)`` uint8 estimates of the plain images in the encrypted layout.
        extra: attack-specific arrays, e.g. the jigsaw solver's estimated block positions ``positions`` of shape
            ``(N, n)`` (encrypted block ``j`` of image ``i`` was placed at position ``positions[i, j]``).
    """

    images: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class Attack(Configurable):
    """Base class: a named ciphertext-only attack with options fixed at construction.

    Subclasses set ``name`` (through :func:`register_attack`), ``needs_training`` and implement
    :meth:`reconstruct` (and :meth:`fit` when ``needs_training``).
    """

    name: ClassVar[str] = ""
    needs_training: ClassVar[bool] = False

    def __init__(self, block_size: int) -> None:
        self.block_size = check_block_size(block_size)

    def fit(self, plain: np.ndarray, encrypted: np.ndarray, *, seed: int = 0, device: Any = "cpu",
            progress: bool = False) -> dict[str, Any]:
        """Train on the attacker's own pairs; returns training statistics (JSON-serialisable)."""
        if self.needs_training:
            raise NotImplementedError
        return {}

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        raise NotImplementedError

    @classmethod
    def not_applicable(cls, scheme: str) -> str | None:
        """Why the attack cannot run against the scheme named ``scheme`` (one line), or ``None`` when it can."""
        return None

    @classmethod
    def algorithm_options(cls, scheme: str, key_options: dict[str, Any]) -> dict[str, Any]:
        """Options the attacker knows from the algorithm (Kerckhoffs: its settings, not the key) of the scheme
        ``scheme`` configured with ``key_options``; configured attack options override them. None by default."""
        return {}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(block_size={self.block_size}{', ' + opts if opts else ''})"


ATTACKS: Registry[Attack] = Registry("attack", group="etcbench.attacks", base=Attack)
register_attack = ATTACKS.register
available = ATTACKS.available
create = ATTACKS.create


def default_options(attack: str, scheme: str, options: dict[str, Any]) -> dict[str, Any]:
    """The configured options of ``attack``, plus the lab's choice of network where the config leaves it open:
    the pixel-wise inverse network against PE (which has no blocks), the block-wise one otherwise; attacks that
    estimate a scheme's key structure (``scheme`` option) are told the scheme."""
    options = dict(options)
    if attack in ("itn", "gan", "gan-paired") and "arch" not in options:
        options["arch"] = "block" if SCHEMES.get(scheme).blockwise else "pixel"
    if "scheme" in option_names(ATTACKS.get(attack)):
        options["scheme"] = scheme
    return options

