"""Image-quality and accuracy metrics."""

from __future__ import annotations

import numpy as np

__all__ = ["psnr_per_image", "ssim_per_image", "top1"]


def psnr_per_image(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """PSNR in dB of each image of a batch, vectorised over the batch.

    Same definition as ``skimage.metrics.peak_signal_noise_ratio(ref, test, data_range=255)`` applied to each
    image (checked in the tests); identical images give ``inf``.
    """
    if reference.shape != test.shape:
        raise ValueError(f"PSNR needs equal shapes, got {reference.shape} and {test.shape}")
    diff = reference.astype(np.float64) - test.astype(np.float64)
    mse = np.mean(diff.reshape(diff.shape[0], -1) ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10((data_range**2) / mse)


def ssim_per_image(reference: np.ndarray, test: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """SSIM of each image pair of a ``(N, H, W, C)`` batch, as a ``(N,)`` float64 array.

    Calls ``skimage.metrics.structural_similarity(ref, test, channel_axis=-1, data_range=data_range)`` on every
    pair, the setting of the lab's attack code with ``channel_axis`` and ``data_range`` given explicitly
    (``docs/paper.md`` section 10). ``channel_axis=-1`` is used for one-channel planes too (the SSIM of a
    ``(H, W, 1)`` image equals that of its ``(H, W)`` plane); with C channels the result is the mean of the
    per-channel SSIMs. Images need at least 7 x 7 pixels (scikit-image's default window). Identical images give 1.
    """
    from skimage.metrics import structural_similarity

    if reference.shape != test.shape:
        raise ValueError(f"SSIM needs equal shapes, got {reference.shape} and {test.shape}")
    if reference.ndim != 4:
        raise ValueError(f"SSIM needs (N, H, W, C) batches, got shape {reference.shape}")
    ref = reference.astype(np.float64)
    tst = test.astype(np.float64)
    # scikit-image has no batched SSIM: one call per image pair (its filters are vectorised over each image)
    return np.array([structural_similarity(r, t, channel_axis=-1, data_range=data_range) for r, t in zip(ref, tst)],
                    dtype=np.float64)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))
