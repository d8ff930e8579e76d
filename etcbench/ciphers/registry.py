"""Name -> scheme class registry: ``ciphers.create("etc", block_size=16, ...)``."""

from __future__ import annotations

import inspect
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
    cls = _REGISTRY[name]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "block_size")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"scheme {name!r} has no option {', '.join(unknown)}; its options: {', '.join(allowed) or 'none'}")
    return cls(block_size=block_size, **options)
