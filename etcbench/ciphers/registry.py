"""Name -> scheme class registry: ``ciphers.create("etc", block_size=16, ...)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import Scheme

__all__ = ["register_scheme", "create", "available"]

_REGISTRY: dict[str, type[Scheme]] = {}


def register_scheme(name: str) -> Callable[[type[Scheme]], type[Scheme]]:
    """Class decorator that makes a scheme constructible by ``name``."""

    def deco(cls: type[Scheme]) -> type[Scheme]:
        if name in _REGISTRY:
            raise ValueError(f"scheme {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def available() -> list[str]:
    return sorted(_REGISTRY)


def create(name: str, block_size: int, **options: Any) -> Scheme:
    """Build the scheme registered as ``name`` with its options."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown scheme {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name](block_size=block_size, **options)
