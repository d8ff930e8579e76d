"""Name -> scheme class registry: ``ciphers.create("etc", block_size=16, ...)``, and a key file's scheme."""

from __future__ import annotations

import os

from ..registry import Registry
from .base import Scheme
from .keys import Key, load_key

__all__ = ["register_scheme", "create", "available", "load_scheme"]

SCHEMES: Registry[Scheme] = Registry("scheme", group="etcbench.schemes", base=Scheme)
register_scheme = SCHEMES.register
available = SCHEMES.available
create = SCHEMES.create


def load_scheme(path: str | os.PathLike) -> tuple[Key, Scheme]:
    """The key in the file at ``path`` and the scheme, with the key's options, that it belongs to."""
    key = load_key(path)
    return key, create(key.scheme, key.block_size, **key.options)
