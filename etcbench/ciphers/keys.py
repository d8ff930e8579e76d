"""Secret keys: a frozen record of the arrays a scheme drew from its seed, saved as a 0600 ``.npz``.

A key file holds only arrays (never pickles). The key's *fingerprint* (SHA-256 over its canonical bytes) is
the only thing about a key that may appear in logs, result records and reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EtcbenchError
from ..io import save_npz

__all__ = ["Key", "save_key", "load_key", "require_encrypted_with", "KEY_FILE_MODE"]

KEY_FILE_MODE = 0o600
_META = "__meta__"


@dataclass(frozen=True, eq=False)
class Key:
    """Everything needed to encrypt and decrypt: the scheme's settings and the arrays drawn from the seed.

    Args:
        scheme: registry name of the scheme that made it.
        block_size: block size M in pixels.
        image_size: ``(H, W)`` the key was drawn for.
        options: the scheme's options (which steps are on, and how they are drawn).
        arrays: the secret arrays, e.g. ``block_perm``, ``rot_flip``, ``negpos``, ``channel_perm``.
    """

    scheme: str
    block_size: int
    image_size: tuple[int, int]
    options: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def _meta(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "block_size": int(self.block_size),
            "image_size": [int(s) for s in self.image_size],
            "options": self.options,
        }

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 hex digest of the scheme settings and every key array (dtype, shape and bytes), computed once."""
        h = hashlib.sha256(json.dumps(self._meta(), sort_keys=True).encode())
        for name in sorted(self.arrays):
            a = np.ascontiguousarray(self.arrays[name])
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    @property
    def key_id(self) -> str:
        """Short form of the fingerprint for file names and tables."""
        return self.fingerprint[:16]

    def __repr__(self) -> str:  # never show the secret arrays
        h, w = self.image_size
        return f"Key(scheme={self.scheme!r}, block_size={self.block_size}, image_size=({h}, {w}), id={self.key_id})"


def save_key(key: Key, path: str | os.PathLike) -> None:
    """Write ``key`` to ``path`` (mode 0600, atomically). Returns nothing; log ``key.fingerprint`` only."""
    stored = {**key._meta(), "fingerprint": key.fingerprint}  # checked against the arrays on every load
    meta = np.frombuffer(json.dumps(stored, sort_keys=True).encode(), dtype=np.uint8)
    save_npz(path, mode=KEY_FILE_MODE, **{_META: meta}, **key.arrays)


def load_key(path: str | os.PathLike) -> Key:
    """Read a key file written by :func:`save_key`.

    Refuses (one line each): a missing file, a file group or others can read, a file that is not a key (truncated,
    corrupt, another format), and a key whose arrays or settings no longer match the fingerprint stored with them
    (an altered or damaged key would otherwise encrypt, decrypt and be recorded as another key).
    """
    path = Path(path)
    if not path.is_file():
        raise EtcbenchError(f"key file {path} does not exist")
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        mode = stat.S_IMODE(path.stat().st_mode)
        raise EtcbenchError(f"key file {path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode())
    except Exception as exc:
        raise EtcbenchError(f"key file {path} is not a valid etcbench key ({type(exc).__name__}: {exc})") from exc
    try:
        key = Key(scheme=meta["scheme"], block_size=meta["block_size"], image_size=tuple(meta["image_size"]),
                  options=meta["options"], arrays=arrays)
        stored = meta.get("fingerprint")
    except (KeyError, TypeError, AttributeError) as exc:
        raise EtcbenchError(f"key file {path} is not a valid etcbench key (its settings lack {exc})") from None
    if stored is None:
        raise EtcbenchError(f"key file {path} has no stored fingerprint (written by an older etcbench); make it again")
    if stored != key.fingerprint:
        raise EtcbenchError(f"key file {path} does not match its stored fingerprint: altered or damaged")
    return key


def require_encrypted_with(data: dict[str, Any], fingerprint: str, data_path: str | os.PathLike,
                           key_name: str) -> None:
    """Refuse an image set (its ``key_fingerprint`` entry) that was not encrypted with the key of ``fingerprint``.

    ``key_name`` names that key for the message: ``"key results/keys/etc.key.npz"``, ``"the model's key"``.
    """
    if str(data["key_fingerprint"]) != fingerprint:
        raise EtcbenchError(f"{data_path} was not encrypted with {key_name}")
