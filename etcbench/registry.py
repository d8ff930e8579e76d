"""One name -> class registry, shared by the cipher schemes and the attacks.

Each registered class is built as ``cls(block_size=..., **options)``; options that the class's constructor does not
take are refused with a ``ValueError`` naming them, so a typo in a config never passes silently.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes by name for one ``kind`` of object ("scheme", "attack"); error messages name the kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: make the class constructible by ``name`` (and set its ``name`` attribute)."""

        def deco(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._classes[name] = cls
            return cls

        return deco

    def available(self) -> list[str]:
        return sorted(self._classes)

    def create(self, name: str, block_size: int, **options: Any) -> T:
        """Build the class registered as ``name`` with ``block_size`` and its options."""
        if name not in self._classes:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}")
        cls = self._classes[name]
        allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "block_size")]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"{self.kind} {name!r} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(allowed) or 'none'}")
        return cls(block_size=block_size, **options)
