"""Image-quality and accuracy metrics."""

from __future__ import annotations

import numpy as np

__all__ = ["psnr_per_image", "top1"]


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


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))
