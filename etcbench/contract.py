"""The contract every registered scheme keeps, built-in or plug-in, as checks that can be run on any name.

``etcbench check-scheme NAME`` runs them on one scheme and the registry-wide tests
(``tests/ciphers/test_registry.py``) on every one; ``docs/extending.md`` states the contract. Each check returns
what it found, so a failing plug-in gets one line saying which promise it broke:

* **keys**: the same seed gives the same key (fingerprint), another seed another key (unless the key holds no
  arrays, as the unencrypted baseline's);
* **round trip**: ``decrypt(encrypt(x)) == x`` (for grayscale-plane schemes: the plain colour round trip), with
  uint8 output of ``encrypted_shape`` and a ciphertext that differs from the input;
* **numpy/torch parity**: torch ``(N, 3, H, W)`` input gives the numpy result, encrypting and decrypting;
* **batching**: one image alone gives its row of the batch (per-image-key schemes: at its ``first_index``);
* **bad input**: a key for another image size or another scheme, and integer images that are not uint8, are
  refused with ``ValueError``;
* **JPEG alignment**: ``jpeg_aligned`` answers a bool for 4:4:4 and 4:2:0; where it says aligned, a JPEG of the
  ciphertext decrypts to an image within 2 dB (PSNR) of the JPEG of the plain image at the same quality.

Only numpy, Pillow and (for the parity check) torch on the CPU are used; :func:`quick_checks` is the subset without
torch or JPEG that the workflow runs on every plug-in scheme of a grid before any job starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .ciphers.base import Scheme
from .ciphers.registry import create

__all__ = ["Check", "check_scheme", "quick_checks"]

_JPEG_QUALITY = 90
_JPEG_TOLERANCE_DB = 2.0


@dataclass(frozen=True)
class Check:
    """One promise of the contract and whether the scheme kept it."""

    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}" + (f": {self.detail}" if self.detail else "")


def _test_images(n: int, height: int, width: int) -> np.ndarray:
    """``n`` natural ``height x width`` crops (scikit-image's astronaut photograph, shipped in its wheel)."""
    from skimage import data

    photo = data.astronaut()
    rows, cols = photo.shape[0] - height, photo.shape[1] - width
    starts = np.linspace(0, 1, n)
    return np.stack([photo[int(s * rows):int(s * rows) + height, int(s * cols):int(s * cols) + width] for s in starts])


def _round_trip_of(scheme: Scheme, x: np.ndarray) -> np.ndarray:
    s = scheme.plane_subsampling
    if s is None:
        return x
    from .ciphers.ycbcr import from_plane, to_plane

    return from_plane(to_plane(x, s), s)


def _run(name: str, fn: Callable[[], str | None]) -> Check:
    """A check: ``fn`` raises AssertionError (a broken promise) or returns a detail; any other exception fails it."""
    try:
        return Check(name, True, fn() or "")
    except AssertionError as exc:
        return Check(name, False, str(exc))
    except Exception as exc:  # a crash inside the scheme is a failed promise too
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def _at(scheme: Scheme, index: int) -> dict[str, int]:
    return {"first_index": index} if scheme.per_image_keys else {}


def quick_checks(name: str, options: Mapping[str, Any] | None = None, block_size: int = 8,
                 image_size: tuple[int, int] = (32, 48)) -> list[Check]:
    """Keys, round trip and batching on numpy, on a few small images: no torch, no JPEG (fractions of a second)."""
    checks: list[Check] = []
    try:
        scheme = create(name, block_size, **dict(options or {}))
    except Exception as exc:
        return [Check("builds", False, f"{type(exc).__name__}: {exc}")]
    checks.append(Check("builds", True, repr(scheme)))
    h, w = image_size
    x = _test_images(3, h, w)
    state: dict[str, Any] = {}

    def keys() -> str:
        a, b, c = (scheme.generate_key(seed=s, image_size=(h, w)) for s in (11, 11, 12))
        assert a.fingerprint == b.fingerprint, "the same seed gave two different keys"
        assert a.fingerprint != c.fingerprint or not a.arrays, "two seeds gave the same key"
        assert a.scheme == name, f"the key names scheme {a.scheme!r}, not {name!r}"
        state["key"] = a
        return f"fingerprint {a.fingerprint}"

    def round_trip() -> str:
        key = state["key"]
        y = scheme.encrypt(x, key)
        c, rows, cols = scheme.encrypted_shape(h, w)
        assert isinstance(y, np.ndarray) and y.dtype == np.uint8, f"encrypt gave {type(y).__name__} {y.dtype}"
        assert y.shape == (len(x), rows, cols, c), f"encrypt gave shape {y.shape}, encrypted_shape says " \
                                                   f"{(len(x), rows, cols, c)}"
        assert name == "plain" or y.shape != x.shape or not np.array_equal(y, x), "the ciphertext is the image"
        back = scheme.decrypt(y, key)
        assert np.array_equal(back, _round_trip_of(scheme, x)), "decrypt(encrypt(x)) is not x"
        state["y"] = y
        return f"{len(x)} images {h}x{w} -> {y.shape[1:]}"

    def batching() -> str:
        key, y = state["key"], state["y"]
        for i in range(len(x)):
            assert np.array_equal(scheme.encrypt(x[i], key, **_at(scheme, i)), y[i]), \
                f"image {i} alone encrypts differently from its row of the batch"
        return "one image alone = its row of the batch"

    for check_name, fn in (("keys", keys), ("round trip", round_trip), ("batching", batching)):
        checks.append(_run(check_name, fn))
        if not checks[-1].ok:
            break
    return checks


def check_scheme(name: str, options: Mapping[str, Any] | None = None, block_size: int = 16,
                 image_size: tuple[int, int] = (64, 96)) -> list[Check]:
    """Every check of the contract (the module docstring), in order; the checks after a failed one that need its
    result are not run."""
    checks = quick_checks(name, options, block_size, image_size)
    if not all(c.ok for c in checks):
        return checks
    scheme = create(name, block_size, **dict(options or {}))
    h, w = image_size
    x = _test_images(3, h, w)
    key = scheme.generate_key(seed=11, image_size=(h, w))
    y = scheme.encrypt(x, key)

    def parity() -> str:
        import torch

        xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
        yt = scheme.encrypt(xt, key)
        assert torch.is_tensor(yt) and yt.dtype == torch.uint8, "torch input did not give a uint8 tensor"
        assert np.array_equal(yt.permute(0, 2, 3, 1).numpy(), y), "torch and numpy ciphertexts differ"
        back = scheme.decrypt(yt, key)
        assert np.array_equal(back.permute(0, 2, 3, 1).numpy(), scheme.decrypt(y, key)), \
            "torch and numpy decryptions differ"
        return "encrypt and decrypt, CPU"

    def bad_input() -> str:
        refused = []
        other_size = (h + block_size, w) if scheme.blockwise else (h + 1, w)
        for what, call in (
                ("a key for another image size",
                 lambda: scheme.encrypt(x, scheme.generate_key(seed=11, image_size=other_size))),
                ("a key of another scheme",
                 lambda: scheme.encrypt(x, create("plain" if name != "plain" else "etc", block_size)
                                        .generate_key(seed=11, image_size=(h, w)))),
                ("int32 images", lambda: scheme.encrypt(x.astype(np.int32), key))):
            try:
                call()
            except ValueError:
                refused.append(what)
                continue
            raise AssertionError(f"{what} was accepted (expected ValueError)")
        return "refused: " + ", ".join(refused)

    def jpeg_alignment() -> str:
        declared = {s: scheme.jpeg_aligned(s) for s in ("444", "420")}
        assert all(isinstance(v, bool) for v in declared.values()), f"jpeg_aligned gave {declared}"
        found = []
        for subsampling, aligned in declared.items():
            if not aligned or scheme.plane_subsampling is not None:
                found.append(f"{subsampling}: {'aligned' if aligned else 'not aligned'} (declared)")
                continue
            gap = _jpeg_gap(scheme, key, x, subsampling)
            assert gap <= _JPEG_TOLERANCE_DB, (f"declared JPEG-aligned at {subsampling}, but the decrypted JPEG of "
                                               f"the ciphertext is {gap:.1f} dB below the JPEG of the image")
            found.append(f"{subsampling}: aligned, {gap:+.2f} dB")
        return "; ".join(found)

    for check_name, fn in (("numpy/torch parity", parity), ("bad input", bad_input),
                           ("JPEG alignment", jpeg_alignment)):
        checks.append(_run(check_name, fn))
    return checks


def _jpeg_gap(scheme: Scheme, key: Any, x: np.ndarray, subsampling: str) -> float:
    """PSNR of the plain JPEG minus PSNR of the decrypted JPEG of the ciphertext, in dB (same quality)."""
    from skimage.metrics import peak_signal_noise_ratio

    from .jpeg import roundtrip

    plain = roundtrip(x, _JPEG_QUALITY, subsampling, workers=1)[0]
    through = scheme.decrypt(roundtrip(scheme.encrypt(x, key), _JPEG_QUALITY, subsampling, workers=1)[0], key)
    return float(peak_signal_noise_ratio(x, plain) - peak_signal_noise_ratio(x, through))
