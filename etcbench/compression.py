"""The compression stage: JPEG-code an encrypted test set (the plain test set encrypted in-process with the key) at
several qualities, store the JPEG files, decode and
decrypt them, and record the rate (bits per pixel of the RGB image: of the whole files, ``bpp``, and of their
entropy-coded payload alone, ``payload_bpp``, with the mean header size ``header_bytes``) and the distortion (PSNR
against the plain images)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import ciphers, jpeg
from .encryption import encrypted_test_set
from .errors import EtcbenchError
from .io import save_npz, write_json
from .manifest import manifest
from .metrics import psnr_per_image

__all__ = ["compress_paths", "compress_set"]

log = logging.getLogger(__name__)


def compress_paths(out_dir: Path, quality: int, subsampling: str) -> tuple[Path, Path]:
    """The JPEG files (.npz, :func:`.jpeg.pack`) and the record (.json) :func:`compress_set` writes for one JPEG
    quality."""
    stem = Path(out_dir) / f"q{quality}-{subsampling}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def compress_set(plain: Path, key_path: Path, qualities: list[int], subsampling: str, out_dir: Path,
                 workers: int | None = None, dataset: str = "cifar10") -> list[dict[str, Any]]:
    """Code the plain test set ``plain`` encrypted with ``key_path`` (in-process:
    :func:`etcbench.encryption.encrypted_test_set`) at each quality; write the JPEG files (not the decoded images:
    the evaluation decodes them) and a record per quality; the PSNR is against ``plain``.

    Every setting is checked before anything is encrypted or written. Returns the records.
    """
    key, scheme = ciphers.load_scheme(key_path)
    if scheme.plane_subsampling is not None and subsampling != scheme.plane_subsampling:
        raise EtcbenchError(f"{key.scheme} builds {scheme.plane_subsampling} chroma into its grayscale plane (a "
                            f"grayscale JPEG has no chroma subsampling): use --subsampling {scheme.plane_subsampling}")
    if len(set(qualities)) != len(qualities):
        raise EtcbenchError(f"--quality needs distinct values in 1..100, got {' '.join(map(str, qualities))}")
    for quality in qualities:
        jpeg.check_settings(quality, subsampling)
    enc = encrypted_test_set(plain, key_path)
    h, w = enc.plain.shape[1:3]
    c = enc.x.shape[-1]
    records = []
    for quality in qualities:
        started = time.time()
        blobs, decoded, nbytes, payload = jpeg.roundtrip_files(enc.x, quality, subsampling, workers)
        bpp = jpeg.bits_per_pixel(nbytes, h, w)  # per pixel of the RGB image, whatever the encrypted layout
        payload_bpp = jpeg.bits_per_pixel(payload, h, w)  # the entropy-coded data alone, headers left out
        psnr = psnr_per_image(enc.plain, scheme.decrypt(decoded, key))
        record = {"dataset": dataset, "image_size": int(h), "block_size": key.block_size, "scheme": key.scheme,
                  "jpeg_quality": quality, "subsampling": subsampling, "bpp": float(bpp.mean()),
                  "bpp_std": float(bpp.std()), "header_bytes": float((nbytes - payload).mean()),
                  "payload_bpp": float(payload_bpp.mean()), "payload_bpp_std": float(payload_bpp.std()),
                  "psnr": float(psnr.mean()), "psnr_std": float(psnr.std()),
                  "n_images": int(len(decoded)), "jpeg_aligned": scheme.jpeg_aligned(subsampling),
                  "jpeg_mode": "gray" if c == 1 else "ycbcr", "key_fingerprint": key.fingerprint}
        out_images, out_record = compress_paths(out_dir, quality, subsampling)
        data, offsets = jpeg.pack(blobs)
        save_npz(out_images, jpeg=data, offsets=offsets, y=enc.y, key_fingerprint=np.array(key.fingerprint),
                 jpeg_quality=np.array(quality), subsampling=np.array(subsampling))
        write_json(out_record, {"record": record, "manifest": manifest("compress", started, time.time(),
                                                                      encoder=jpeg.libjpeg_version())})
        log.info("%s q%d %s: %.3f bpp (payload %.3f bpp, header %.0f bytes), PSNR %.2f dB", key.scheme, quality,
                 subsampling, record["bpp"], record["payload_bpp"], record["header_bytes"], record["psnr"])
        records.append(record)
    return records
