"""One name -> class (or builder) registry, shared by the cipher schemes, the attacks and the models.

Schemes and attacks are classes built as ``cls(block_size=..., **options)`` (:meth:`Registry.create`); options that
the class's constructor does not take are refused with a ``ValueError`` naming them, so a typo in a config never
passes silently. Models are builder functions that :func:`etcbench.models.build_model` looks up with
:meth:`Registry.get` and calls with its own arguments. Either way an unknown name is one ``ValueError`` line,
``unknown <kind> 'x'; available: ...``.

Third-party packages add schemes and attacks through Python entry points (groups ``etcbench.schemes`` and
``etcbench.attacks``; ``docs/extending.md``): the entry point's name is the registered name and its object the class.
A registry reads its group the first time it is asked for a name; an entry point that does not import, a name that
is already taken, or an object of the wrong kind is one :class:`PluginError` line naming the plug-in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import EtcbenchError

if TYPE_CHECKING:
    from importlib import metadata

__all__ = ["Configurable", "PluginError", "Registry", "option_names"]

T = TypeVar("T")
E = TypeVar("E", bound=Callable[..., Any])


class PluginError(EtcbenchError):
    """A plug-in that cannot be used: it does not import, its name is taken, or it fails its contract."""


def plugin_label(ep: metadata.EntryPoint) -> str:
    """``plug-in 'name' (group, from distribution version)``: how every message about an entry point starts."""
    dist = getattr(ep, "dist", None)
    origin = f", from {dist.metadata['Name']} {dist.version}" if dist is not None else ""
    return f"plug-in {ep.name!r} ({ep.group}{origin})"


class Registry(Generic[T]):
    """Classes or builder functions (each giving a ``T``) by name for one ``kind`` of object ("scheme", "attack",
    "model"); error messages name the kind.

    Args:
        kind: what the entries are, for messages.
        group: the entry-point group third-party packages register entries under (None: built-in entries only).
        base: the class every plug-in entry must subclass.
    """

    def __init__(self, kind: str, group: str | None = None, base: type | None = None) -> None:
        self.kind = kind
        self.group = group
        self.base = base
        self._entries: dict[str, Callable[..., T]] = {}
        self._plugins: dict[str, str] = {}  # name -> plug-in label, of the entries added from entry points
        self._discovered = group is None

    def _discover(self) -> None:
        """Register every entry point of the group, once (built-in entries are registered at import, before)."""
        if self._discovered:
            return
        from importlib import metadata  # imported here: a built-in name never needs it (about 30 ms)

        self._discovered = True
        for ep in sorted(metadata.entry_points(group=self.group), key=lambda e: e.name):
            label = plugin_label(ep)
            try:
                entry = ep.load()
            except Exception as exc:  # any failure of the plug-in's own import is reported as its problem
                self._discovered = False  # ask again next time: the same line, not a half-filled registry
                raise PluginError(f"{label}: cannot import {ep.value}: {type(exc).__name__}: {exc}") from exc
            if ep.name in self._entries and self._entries[ep.name] is not entry:
                self._discovered = False
                taken = self._plugins.get(ep.name, f"a built-in {self.kind}")
                raise PluginError(f"{label}: the {self.kind} name {ep.name!r} is registered twice (also by {taken})")
            if self.base is not None and not (isinstance(entry, type) and issubclass(entry, self.base)):
                self._discovered = False
                raise PluginError(f"{label}: {ep.value} is not a subclass of {self.base.__module__}."
                                  f"{self.base.__qualname__}")
            entry.name = ep.name  # type: ignore[attr-defined]
            self._entries[ep.name] = entry
            self._plugins[ep.name] = label

    def plugins(self) -> dict[str, str]:
        """The entries added by plug-ins: name -> ``plug-in 'name' (group, from distribution version)``."""
        self._discover()
        return dict(self._plugins)

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
        """The registered names (plug-ins included), sorted."""
        self._discover()
        return sorted(self._entries)

    def unknown(self, name: str) -> str:
        """The one-line message for a name that is not registered."""
        return f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}"

    def get(self, name: str) -> Callable[..., T]:
        """The class or function registered as ``name``; ``ValueError`` (:meth:`unknown`) if there is none."""
        if name not in self._entries:  # a built-in (or already loaded) name needs no look at the entry points
            self._discover()
        if name not in self._entries:
            raise ValueError(self.unknown(name))
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered; the entry points are read only for a name that is not built in."""
        if name not in self._entries:
            self._discover()
        return name in self._entries

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
