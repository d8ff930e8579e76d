"""Real JPEG (libjpeg-turbo through Pillow) at a chosen quality and chroma subsampling.

Colour images ``(N, H, W, 3)`` are coded as YCbCr JPEG with the chosen chroma subsampling; single-channel images
``(N, H, W, 1)`` (the planes of grayscale-based EtC) as grayscale JPEG, which has no chroma and ignores it.

Encoding and decoding run on every core: Pillow releases the GIL inside libjpeg-turbo, so a thread pool over
chunks of images scales without copying the batch into other processes.
"""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from PIL import Image, JpegImagePlugin, features

__all__ = ["SUBSAMPLING", "encode", "decode", "roundtrip", "bits_per_pixel", "read_subsampling", "libjpeg_version"]

Subsampling = Literal["444", "420"]
# Pillow's subsampling codes
SUBSAMPLING: dict[str, int] = {"444": 0, "420": 2}
_PIL_TO_NAME = {0: "444", 1: "422", 2: "420"}


def check_settings(quality: int, subsampling: str) -> None:
    """Raise ValueError unless ``quality`` is in 1..100 and ``subsampling`` is a known chroma subsampling."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"unknown chroma subsampling {subsampling!r}; use one of {sorted(SUBSAMPLING)}")


def _encode_one(img: np.ndarray, quality: int, subsampling: str) -> bytes:
    buf = io.BytesIO()
    if img.shape[-1] == 1:
        Image.fromarray(img[..., 0], mode="L").save(buf, format="JPEG", quality=int(quality), optimize=False)
    else:
        Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=int(quality),
                                              subsampling=SUBSAMPLING[subsampling], optimize=False)
    return buf.getvalue()


def _decode_one(blob: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        if im.mode == "L":
            return np.asarray(im)[..., None]
        return np.asarray(im.convert("RGB"))


def _workers(workers: int | None) -> int:
    return workers or max(1, len(os.sched_getaffinity(0)))


def encode(images: np.ndarray, quality: int, subsampling: Subsampling, workers: int | None = None) -> list[bytes]:
    """Encode ``(N, H, W, 3)`` (colour) or ``(N, H, W, 1)`` (grayscale) uint8 images; one JPEG file per image."""
    check_settings(quality, subsampling)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected (N, H, W, 3) or (N, H, W, 1) uint8 images, got {images.dtype} {images.shape}")
    with ThreadPoolExecutor(_workers(workers)) as pool:
        return list(pool.map(lambda im: _encode_one(im, quality, subsampling), images, chunksize=64))


def decode(blobs: list[bytes], workers: int | None = None) -> np.ndarray:
    """Decode JPEG files into one ``(N, H, W, 3)`` uint8 array (``(N, H, W, 1)`` for grayscale files)."""
    with ThreadPoolExecutor(_workers(workers)) as pool:
        return np.stack(list(pool.map(_decode_one, blobs, chunksize=64)))


def roundtrip(images: np.ndarray, quality: int, subsampling: Subsampling,
              workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Encode and decode; returns ``(decoded images, file sizes in bytes)``."""
    blobs = encode(images, quality, subsampling, workers)
    return decode(blobs, workers), np.array([len(b) for b in blobs], dtype=np.int64)


def bits_per_pixel(nbytes: np.ndarray, height: int, width: int) -> np.ndarray:
    """File size in bits divided by the number of pixels (headers included)."""
    return np.asarray(nbytes, dtype=np.float64) * 8.0 / (height * width)


def read_subsampling(blob: bytes) -> str:
    """Chroma subsampling written in a JPEG file's frame header ("444", "422" or "420"; "gray": one component)."""
    with Image.open(io.BytesIO(blob)) as im:
        if im.mode == "L":
            return "gray"
        return _PIL_TO_NAME.get(JpegImagePlugin.get_sampling(im), "other")


def libjpeg_version() -> str:
    return f"libjpeg-turbo {features.version('libjpeg_turbo')}" if features.check("libjpeg_turbo") else "libjpeg"
