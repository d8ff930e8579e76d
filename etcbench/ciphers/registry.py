"""Name -> scheme class registry: ``ciphers.create("etc", block_size=16, ...)``."""

from __future__ import annotations

from ..registry import Registry
from .base import Scheme

__all__ = ["register_scheme", "create", "available"]

SCHEMES: Registry[Scheme] = Registry("scheme")
register_scheme = SCHEMES.register
available = SCHEMES.available
create = SCHEMES.create
