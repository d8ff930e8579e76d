"""Per-image SSIM and PSNR against scikit-image's reference functions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from etcbench.metrics import psnr_per_image, ssim_per_image


def noisy(x: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, x.shape)
    return np.clip(np.rint(x + noise), 0, 255).astype(np.uint8)


def test_identical_images_give_ssim_one_and_psnr_inf(natural_images):
    ssim = ssim_per_image(natural_images, natural_images)
    assert ssim.shape == (len(natural_images),) and ssim.dtype == np.float64
    np.testing.assert_allclose(ssim, 1.0)
    assert np.isinf(psnr_per_image(natural_images, natural_images)).all()


def test_noisy_pairs_match_skimage(natural_images):
    test = noisy(natural_images, 20.0)
    ssim, psnr = ssim_per_image(natural_images, test), psnr_per_image(natural_images, test)
    expected_ssim = [structural_similarity(r, t, channel_axis=-1, data_range=255) for r, t in zip(natural_images, test)]
    expected_psnr = [peak_signal_noise_ratio(r, t, data_range=255) for r, t in zip(natural_images, test)]
    np.testing.assert_allclose(ssim, expected_ssim, rtol=1e-12)
    np.testing.assert_allclose(psnr, expected_psnr, rtol=1e-12)
    assert (ssim < 1).all() and (ssim > 0).all()
    # more noise, lower scores, image by image
    worse = noisy(natural_images, 60.0)
    assert (ssim_per_image(natural_images, worse) < ssim).all()
    assert (psnr_per_image(natural_images, worse) < psnr).all()


def test_one_channel_planes_match_skimage(natural_images):
    gray = natural_images[..., :1]  # e.g. grayscale-based EtC planes, (N, H, W, 1)
    test = noisy(gray, 15.0, seed=1)
    expected = [structural_similarity(r[..., 0], t[..., 0], data_range=255) for r, t in zip(gray, test)]
    np.testing.assert_allclose(ssim_per_image(gray, test), expected, rtol=1e-12)
    expected_psnr = [peak_signal_noise_ratio(r, t, data_range=255) for r, t in zip(gray, test)]
    np.testing.assert_allclose(psnr_per_image(gray, test), expected_psnr, rtol=1e-12)


def test_data_range_is_passed_through():
    rng = np.random.default_rng(2)
    ref = rng.random((2, 16, 16, 3))
    test = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1)
    expected = [structural_similarity(r, t, channel_axis=-1, data_range=1.0) for r, t in zip(ref, test)]
    np.testing.assert_allclose(ssim_per_image(ref, test, data_range=1.0), expected, rtol=1e-12)


def test_shape_mismatch_is_a_value_error(natural_images):
    with pytest.raises(ValueError, match="equal shapes"):
        ssim_per_image(natural_images, natural_images[:, :32])
    with pytest.raises(ValueError, match="equal shapes"):
        psnr_per_image(natural_images, natural_images[:3])
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        ssim_per_image(natural_images[0], natural_images[0])
