"""Key derivation: every key's seed comes from one master secret and a context naming what the key is for.

A scheme draws its key arrays from a seed (:meth:`etcbench.ciphers.base.Scheme.generate_key`); this module makes
that seed. HKDF-SHA256 (RFC 5869, from the standard library's :mod:`hmac` and :mod:`hashlib`) expands the master
secret with the context's canonical bytes as ``info``, so that no two contexts (settings, schemes, roles, training
seeds) share key material, and knowing one key tells nothing about another.

The master secret is either

* a 32-byte file (``key_master_file``), made from the operating system's random source on first use and written
  0600: keys that nobody else can regenerate; or
* the config's ``key_seed`` (a reproducible benchmark): the master is HKDF-extracted from the seed's decimal
  digits, so anyone with the config regenerates every key. Fine for comparing schemes, not for keeping a secret.

Only :func:`master_fingerprint` of a master may appear in logs and results.

>>> master = master_from_key_seed(20220413)
>>> a = derive_seed(master, KeyContext("s64-m16", "etc", "defender"))
>>> b = derive_seed(master, KeyContext("s64-m16", "ele", "defender"))
>>> a != b and a.bit_length() <= 256
True
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EtcbenchError

__all__ = ["MASTER_BYTES", "KeyContext", "MasterSecret", "derive_seed", "hkdf_sha256", "master_fingerprint",
           "master_from_key_seed", "read_master_file"]

MASTER_BYTES = 32
# the HKDF salt: fixes this application (and the version of its context encoding) as the domain of the keys
_SALT = b"etcbench key derivation v1"
_ROLE = re.compile(r"defender|other|attacker [0-9]+")


def hkdf_sha256(ikm: bytes, info: bytes = b"", length: int = 32, salt: bytes = b"") -> bytes:
    """HKDF with SHA-256 (RFC 5869): extract a pseudorandom key from ``ikm`` with ``salt``, expand it with
    ``info`` to ``length`` bytes (at most 255 x 32).

    >>> hkdf_sha256(bytes.fromhex("0b" * 22), b"", 4).hex()  # RFC 5869 test case 3 (all three in the tests)
    '8da4e775'
    """
    if not 0 < length <= 255 * hashlib.sha256().digest_size:
        raise EtcbenchError(f"HKDF-SHA256 gives 1 to {255 * 32} bytes, not {length}")
    prk = hmac.new(salt or bytes(hashlib.sha256().digest_size), ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


@dataclass(frozen=True, repr=False)
class MasterSecret:
    """The master secret and where it came from (``key_seed`` or ``file``); its repr shows the fingerprint only."""

    secret: bytes
    source: str

    def __post_init__(self) -> None:
        _check_master(self.secret)
        if self.source not in ("key_seed", "file"):
            raise EtcbenchError(f"a master secret comes from key_seed or a file, not {self.source!r}")

    @classmethod
    def from_key_seed(cls, key_seed: int) -> MasterSecret:
        return cls(master_from_key_seed(key_seed), "key_seed")

    @classmethod
    def from_file(cls, path: str | os.PathLike, create: bool = False) -> MasterSecret:
        return cls(read_master_file(path, create), "file")

    @property
    def fingerprint(self) -> str:
        return master_fingerprint(self.secret)

    def seed_for(self, context: KeyContext) -> int:
        """:func:`derive_seed` of ``context`` under this master."""
        return derive_seed(self.secret, context)

    def describe(self) -> dict[str, str]:
        """The public record of this master: its source and fingerprint."""
        return {"source": self.source, "fingerprint": self.fingerprint}

    def __repr__(self) -> str:
        return f"MasterSecret(source={self.source!r}, fingerprint={self.fingerprint})"


@dataclass(frozen=True)
class KeyContext:
    """What a key is for; its canonical bytes are HKDF's ``info``.

    Args:
        setting: the grid setting (``s64-m16``, :func:`etcbench.grid.setting_id`: image size and block size).
        scheme: the scheme's registry name.
        role: ``defender`` (the key models are trained and tested with), ``other`` (a second key of the scheme,
            for the key-mismatch test) or ``attacker N`` (the attacker's own keys, N = 0, 1, ...).
        seed: the training seed the key belongs to (``key_per_seed``), or ``None`` for one key per setting and
            scheme.
    """

    setting: str
    scheme: str
    role: str = "defender"
    seed: int | None = None

    def __post_init__(self) -> None:
        if not _ROLE.fullmatch(self.role):
            raise EtcbenchError(f"key role {self.role!r} is not defender, other or 'attacker N'")
        if not self.setting or not self.scheme:
            raise EtcbenchError("a key context needs a setting and a scheme")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or self.seed < 0):
            raise EtcbenchError(f"a key context's seed must be a non-negative integer, not {self.seed!r}")

    def info(self) -> bytes:
        """The canonical encoding: sorted-key JSON without spaces (no two contexts encode alike)."""
        return json.dumps({"setting": self.setting, "scheme": self.scheme, "role": self.role, "seed": self.seed},
                          sort_keys=True, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, object]:
        return {"setting": self.setting, "scheme": self.scheme, "role": self.role, "seed": self.seed}


def derive_seed(master: bytes, context: KeyContext) -> int:
    """The 256-bit seed of ``context``'s key (what :meth:`Scheme.generate_key` draws from)."""
    _check_master(master)
    return int.from_bytes(hkdf_sha256(master, context.info(), 32, _SALT), "big")


def master_from_key_seed(key_seed: int) -> bytes:
    """The master secret of a reproducible benchmark: HKDF-extract of ``key_seed``'s decimal digits."""
    if isinstance(key_seed, bool) or not isinstance(key_seed, int) or key_seed < 0:
        raise EtcbenchError(f"key_seed must be a non-negative integer, not {key_seed!r}")
    return hmac.new(_SALT, f"key_seed:{key_seed}".encode(), hashlib.sha256).digest()


def master_fingerprint(master: bytes) -> str:
    """A public 16-hex-digit name of ``master`` (a one-way hash: it does not reveal the secret)."""
    _check_master(master)
    return hashlib.sha256(b"etcbench master fingerprint\0" + master).hexdigest()[:16]


def read_master_file(path: str | os.PathLike, create: bool = False) -> bytes:
    """Read a master secret file; with ``create``, make a missing one from ``os.urandom`` (mode 0600).

    Raises:
        EtcbenchError: missing (without ``create``), readable by group or others, or not exactly 32 bytes.
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise EtcbenchError(f"master secret file {path} does not exist")
        _create_master(path)
    if not path.is_file():
        raise EtcbenchError(f"master secret {path} is not a file")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise EtcbenchError(f"master secret file {path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        master = path.read_bytes()
    except OSError as exc:
        raise EtcbenchError(f"master secret file {path} cannot be read ({exc.strerror})") from None
    if len(master) != MASTER_BYTES:
        raise EtcbenchError(f"master secret file {path} holds {len(master)} bytes, not {MASTER_BYTES}")
    return master


def _create_master(path: Path) -> None:
    """Write a fresh master secret to ``path`` unless one appeared meanwhile: the complete file is linked into
    place, which fails if the name exists, so two processes never end up with different masters."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(MASTER_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _check_master(master: bytes) -> None:
    if not isinstance(master, bytes) or len(master) != MASTER_BYTES:
        raise EtcbenchError(f"a master secret is {MASTER_BYTES} bytes")
