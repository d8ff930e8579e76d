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

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["Attack", "Reconstruction", "available", "create", "register_attack"]


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


class Attack:
    """Base class: a named ciphertext-only attack with options fixed at construction.

    Subclasses set ``name`` (through :func:`register_attack`), ``needs_training`` and implement
    :meth:`reconstruct` (and :meth:`fit` when ``needs_training``).
    """

    name: ClassVar[str] = ""
    needs_training: ClassVar[bool] = False

    def __init__(self, block_size: int) -> None:
        if not isinstance(block_size, (int, np.integer)) or block_size < 1:
            raise ValueError(f"block size must be a positive integer, got {block_size!r}")
        self.block_size = int(block_size)

    @property
    def options(self) -> dict[str, Any]:
        """The attack's options (recorded with its results)."""
        return {}

    def fit(self, plain: np.ndarray, encrypted: np.ndarray, *, seed: int = 0, device: Any = "cpu",
            progress: bool = False) -> dict[str, Any]:
        """Train on the attacker's own pairs; returns training statistics (JSON-serialisable)."""
        if self.needs_training:
            raise NotImplementedError
        return {}

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(block_size={self.block_size}{', ' + opts if opts else ''})"


_REGISTRY: dict[str, type[Attack]] = {}


def register_attack(name: str) -> Callable[[type[Attack]], type[Attack]]:
    """Class decorator that makes an attack constructible by ``name``."""

    def deco(cls: type[Attack]) -> type[Attack]:
        if name in _REGISTRY:
            raise ValueError(f"attack {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, block_size: int, **options: Any) -> Attack:
    """Build the attack registered as ``name`` with its options (unknown options are a ``ValueError``)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown attack {name!r}; available: {', '.join(available())}")
    cls = _REGISTRY[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "block_size")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"attack {name!r} has no option {', '.join(unknown)}; its options: {', '.join(allowed) or 'none'}")
    return cls(block_size=block_size, **options)
