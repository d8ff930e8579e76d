"""The key and encryption stages: a scheme's key derived from the master secret, and a data split encrypted with a
key; and the encrypted test set the later stages make in-process from the stored plain one.

The encryption stage also writes the first few images of the split three ways (plain, encrypted as a reader would
see them, decrypted again): the report shows those and never opens a key. The workflow stores only the plain
scheme's test set (the test split at the setting's image size); every other scheme's test set is encrypted from it,
with the key, by the stage that reads it (:func:`encrypted_test_set`): bit-identical to what :func:`encrypt_split`
writes, since that resizes the split and encrypts the resized images, which are the plain set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import ciphers
from .ciphers.derive import KeyContext, MasterSecret
from .errors import EtcbenchError
from .grid import setting_id
from .io import load_npz, require_images, save_npz, write_json

__all__ = ["EncryptedTestSet", "encrypt_split", "encrypted_test_set", "make_key"]

log = logging.getLogger(__name__)


def make_key(scheme_name: str, block_size: int, image_size: int, master: MasterSecret | int,
             options: dict[str, Any], out: Path, info: Path, role: str = "defender",
             training_seed: int | None = None) -> ciphers.Key:
    """Derive ``scheme_name``'s key for ``image_size`` square images and write it (0600) with its public record.

    The key is drawn from the seed that HKDF-SHA256 derives from ``master`` (a :class:`MasterSecret`, or an int:
    the config's ``key_seed``) and the context (setting, scheme, ``role``, ``training_seed``;
    :mod:`etcbench.ciphers.derive`). The public record holds the scheme, sizes, options, fingerprint, context and
    the master's source and fingerprint: nothing that regenerates the key.
    """
    if not isinstance(master, MasterSecret):
        master = MasterSecret.from_key_seed(master)
    scheme = ciphers.create(scheme_name, block_size=block_size, **options)
    setting = setting_id({"image_size": image_size, "block_size": block_size})
    context = KeyContext(setting, scheme_name, role, training_seed)
    key = scheme.generate_key(seed=master.seed_for(context), image_size=(image_size, image_size))
    ciphers.save_key(key, out)
    write_json(info, {"scheme": key.scheme, "block_size": key.block_size, "image_size": list(key.image_size),
                      "options": key.options, "key_fingerprint": key.fingerprint, "context": context.to_dict(),
                      "master": master.describe()})
    log.info("key %s for %r (%s) written to %s (mode 0600), derived from the master %s (%s)", key.key_id,
             scheme_name, role, out, master.fingerprint, master.source)
    return key


def encrypt_split(data_path: Path, key_path: Path, out: Path | None, split: str = "test",
                  interpolation: str = "bicubic", out_examples: Path | None = None, num_examples: int = 6) -> None:
    """Resize ``split`` of the data to the key's image size, encrypt it and write it to ``out`` with the key's
    fingerprint.

    With ``out_examples``, the first ``num_examples`` images are also written plain, encrypted (a grayscale plane
    as one channel) and decrypted again, for the report. Without ``out`` only those images are resized and
    encrypted (the same images: each image is resized and encrypted on its own, the first with the key's first
    per-image key).
    """
    if out is None and out_examples is None:
        raise EtcbenchError("nothing to write: give out, out_examples or both")
    key, scheme = ciphers.load_scheme(key_path)
    data = load_npz(data_path)
    if f"{split}_x" not in data:
        raise EtcbenchError(f"{data_path} has no split {split!r}")
    x = require_images(data[f"{split}_x"], f"{data_path} ({split}_x)")
    if out is None:
        x = x[:num_examples]
    height, width = key.image_size
    if height != width:
        raise EtcbenchError(f"key {key_path} is for {height}x{width} images; the splits are resized to squares")
    if x.shape[1:3] != (height, width):  # torch (the training resize) only where a resize is needed
        from .data.transforms import resize_numpy

        x = resize_numpy(x, height, interpolation)
    y = scheme.encrypt(x, key)
    if out is not None:
        save_npz(out, x=y, y=data[f"{split}_y"], key_fingerprint=np.array(key.fingerprint),
                 scheme=np.array(key.scheme))
    if out_examples is not None:
        shown = y[:num_examples]
        save_npz(out_examples, plain=x[:num_examples], encrypted=shown[..., 0] if shown.shape[-1] == 1 else shown,
                 decrypted=scheme.decrypt(shown, key), scheme=np.array(key.scheme))
    log.info("%d %s images encrypted with %s key %s", len(y), split, key.scheme, key.key_id)


@dataclass
class EncryptedTestSet:
    """A test set encrypted in-process: the images (``x``) with their labels, the plain images they were
    encrypted from, and the key with its scheme."""

    x: np.ndarray
    y: np.ndarray
    plain: np.ndarray
    key: ciphers.Key
    scheme: Any

    @property
    def key_fingerprint(self) -> str:
        return self.key.fingerprint


def encrypted_test_set(plain_path: Path, key_path: Path, count: int | None = None) -> EncryptedTestSet:
    """The plain test set at ``plain_path`` (the plain scheme's set, written by :func:`encrypt_split`) encrypted
    with the key at ``key_path``: the set :func:`encrypt_split` would write with that key, bit for bit, made here
    instead of stored. ``count``: only the first ``count`` images (image ``j`` keeps the key of image ``j``).

    Refused with one line (:class:`EtcbenchError`) before anything is encrypted: a plain set that is not uint8
    RGB images with labels or was encrypted with a key other than a plain one, and a key for another image size.
    """
    key, scheme = ciphers.load_scheme(Path(key_path))
    data = load_npz(Path(plain_path))
    for entry in ("x", "y"):
        if entry not in data:
            raise EtcbenchError(f"{plain_path} is not a test set: it has no {entry!r} array")
    if "scheme" in data and str(data["scheme"]) != "plain":
        raise EtcbenchError(f"{plain_path} holds images encrypted with a {str(data['scheme'])!r} key; give the plain "
                            f"scheme's test set")
    plain = require_images(data["x"], str(plain_path))
    if len(data["y"]) != len(plain):
        raise EtcbenchError(f"{plain_path} holds {len(plain)} images but {len(data['y'])} labels")
    if tuple(key.image_size) != tuple(plain.shape[1:3]):
        raise EtcbenchError(f"key {key_path} is for {key.image_size[0]}x{key.image_size[1]} images; {plain_path} "
                            f"holds {plain.shape[1]}x{plain.shape[2]} images")
    if count is not None:
        if not 0 < count <= len(plain):
            raise EtcbenchError(f"{count} test images wanted, but {plain_path} holds {len(plain)}")
        plain = plain[:count]
    x = scheme.encrypt(plain, key)
    log.info("%d test images of %s encrypted in-process with %s key %s", len(x), plain_path, key.scheme, key.key_id)
    return EncryptedTestSet(x=x, y=np.asarray(data["y"])[:len(plain)], plain=plain, key=key, scheme=scheme)
