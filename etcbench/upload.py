"""What the client sends in the paper's scenario: every image encrypted once with the key, JPEG-coded, and decoded
by the cloud, which trains and tests on that (the JPEG-trained arms, ``train.jpeg``).

The plain images never leave the client, so nothing is augmented before encryption: the training set is encrypted
once per key (per-image-key schemes such as PE: one throw-away key per image, drawn once), and the training job
augments the decoded ciphertexts with an augmentation that commutes with the cipher
(:mod:`etcbench.data.ciphertext_augment`). The JPEG coding is the compression stage's (:func:`etcbench.jpeg.roundtrip`,
libjpeg-turbo), so the arm's test set is, bit for bit, the stored JPEG test set of its quality and subsampling.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import jpeg
from .recipes import JpegArm

__all__ = ["client_upload"]

CHUNK = 2048  # images encrypted and coded at a time: bounds the memory of a 224-px training set to about 1 GB


def client_upload(images: np.ndarray, scheme: Any, key: Any, arm: JpegArm, *, image_size: int,
                  interpolation: str = "bicubic", generator: Any = None, workers: int | None = None) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 plain images, as the cloud receives them: resized to ``image_size`` (as the workflow's
    test sets), encrypted with ``key`` (a per-image-key scheme: with throw-away keys drawn from the torch
    ``generator``), JPEG-coded at the arm's quality and subsampling (a grayscale plane at its own) and decoded.

    Returns the decoded images in the scheme's encrypted layout: ``(N, rows, cols, channels)`` uint8.
    """
    import torch

    from .data.transforms import resize_numpy, to_nchw

    subsampling = arm.subsampling_for(scheme.plane_subsampling)
    out = []
    for i in range(0, len(images), CHUNK):  # chunks of a batch, not single images
        x = resize_numpy(np.asarray(images[i:i + CHUNK]), image_size, interpolation)
        if scheme.per_image_keys:
            gen = generator if generator is not None else torch.Generator().manual_seed(0)
            x = scheme.encrypt_fresh(to_nchw(x), gen).permute(0, 2, 3, 1).contiguous().numpy()
        else:
            x = scheme.encrypt(x, key)
        out.append(jpeg.roundtrip(np.ascontiguousarray(x), arm.quality, subsampling, workers)[0])
    return np.concatenate(out) if out else np.empty((0, *images.shape[1:]), np.uint8)
