"""One name -> class (or builder) registry, shared by the cipher schemes, the attacks and the models.

Schemes and attacks are classes built as ``cls(block_size=..., **options)`` (:meth:`Registry.create`); options that
the class's constructor does not take are refused with a ``ValueError`` naming them, so a typo in a config never
passes silently. Models are builder functions that :func:`etcbench.models.build_model` looks up with
:meth:`Registry.get` and calls with its own arguments. Either way an unknown name is one ``ValueError`` line,
``unknown <kind> 'x'; available: ...``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Configurable", "Registry", "option_names"]

T = TypeVar("T")
E = TypeVar("E", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Classes or builder functions (each giving a ``T``) by name for one ``kind`` of object ("scheme", "attack",
    "model"); error messages name the kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[E], E]:
        """Decorator of a class or function: make it available as ``name`` (and set its ``name`` attribute)."""

        def deco(entry: E) -> E:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            entry.name = name  # type: ignore[attr-defined]
            self._entries[name] = entry
            return entry

        return deco

    def available(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def unknown(self, name: str) -> str:
        """The one-line message for a name that is not registered."""
        return f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}"

    def get(self, name: str) -> Callable[..., T]:
        """The class or function registered as ``name``; ``ValueError`` (:meth:`unknown`) if there is none."""
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        return self._entries[name]

    def create(self, name: str, block_size: int, **options: Any) -> T:
        """Build the class registered as ``name`` with ``block_size`` and its options."""
        cls = self.get(name)
        allowed = option_names(cls)
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ValueError(f"{self.kind} {name!r} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(allowed) or 'none'}")
        return cls(block_size=block_size, **options)


def option_names(cls: type) -> list[str]:
    """The options of a registered class: its constructor's parameters other than ``block_size``."""
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "block_size")]


class Configurable:
    """Base of registered classes that store each constructor option under its own name (schemes, attacks)."""

    @property
    def options(self) -> dict[str, Any]:
        """The options it was built with: each constructor option (:func:`option_names`) read from the attribute of
        the same name. Scheme options are stored in keys; attack options are recorded with the results."""
        return {name: getattr(self, name) for name in option_names(type(self))}
