"""JPEG stage: real libjpeg-turbo files, subsampling in the header, rate falls with quality, EtC compatibility."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from etcbench import ciphers, jpeg
from etcbench.metrics import psnr_per_image


@pytest.mark.parametrize("subsampling", ["444", "420"])
def test_header_records_the_requested_subsampling(natural_images, subsampling):
    blobs = jpeg.encode(natural_images[:2], 75, subsampling)
    assert all(b[:2] == b"\xff\xd8" for b in blobs)
    assert {jpeg.read_subsampling(b) for b in blobs} == {subsampling}


@pytest.mark.parametrize("subsampling", ["444", "420"])
def test_bits_per_pixel_fall_as_quality_falls(natural_images, subsampling):
    bpp = [jpeg.bits_per_pixel(jpeg.roundtrip(natural_images, q, subsampling)[1], 64, 64).mean()
           for q in (95, 75, 50, 25, 10)]
    assert all(a > b for a, b in zip(bpp, bpp[1:])), bpp


def test_single_channel_images_are_grayscale_jpeg(natural_images):
    gray = natural_images[:, :, :, 1:2]
    blobs = jpeg.encode(gray, 75, "420")
    assert {jpeg.read_subsampling(b) for b in blobs} == {"gray"}
    decoded, nbytes = jpeg.roundtrip(gray, 90, "444")
    assert decoded.shape == gray.shape and psnr_per_image(gray, decoded).mean() > 30
    # one component instead of three: fewer bytes than the colour files at the same quality
    assert nbytes.sum() < jpeg.roundtrip(natural_images, 90, "444")[1].sum()


def test_roundtrip_keeps_shape_and_is_close(natural_images):
    decoded, nbytes = jpeg.roundtrip(natural_images, 90, "444", workers=2)
    assert decoded.shape == natural_images.shape and decoded.dtype == np.uint8
    assert (nbytes > 100).all()
    assert psnr_per_image(natural_images, decoded).mean() > 30


def test_psnr_matches_scikit_image(natural_images):
    decoded, _ = jpeg.roundtrip(natural_images, 40, "420")
    ours = psnr_per_image(natural_images, decoded)
    ref = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(natural_images, decoded)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    assert np.isinf(psnr_per_image(natural_images[:1], natural_images[:1])[0])


def _rate_psnr(images: np.ndarray, block: int, quality: int, subsampling: str) -> tuple[float, float]:
    scheme = ciphers.create("etc", block_size=block)
    key = scheme.generate_key(seed=5, image_size=images.shape[1:3])
    decoded, nbytes = jpeg.roundtrip(scheme.encrypt(images, key), quality, subsampling)
    psnr = psnr_per_image(images, scheme.decrypt(decoded, key)).mean()
    return jpeg.bits_per_pixel(nbytes, *images.shape[1:3]).mean(), psnr


def test_aligned_etc_stays_jpeg_compatible_and_misaligned_does_not(natural_images):
    plain, plain_nbytes = jpeg.roundtrip(natural_images, 75, "444")
    plain_bpp = jpeg.bits_per_pixel(plain_nbytes, 64, 64).mean()
    plain_psnr = psnr_per_image(natural_images, plain).mean()
    for block in (8, 16):  # whole 8x8 DCT blocks at 4:4:4: rate and quality stay close to plain JPEG
        bpp, psnr = _rate_psnr(natural_images, block, 75, "444")
        assert abs(psnr - plain_psnr) < 0.5 and bpp < plain_bpp * 1.15, (block, bpp, psnr)
    # 4-px blocks cut through DCT blocks: clearly worse on both counts
    bpp4, psnr4 = _rate_psnr(natural_images, 4, 75, "444")
    assert bpp4 > plain_bpp * 1.5 and psnr4 < plain_psnr - 3


def test_chroma_subsampling_needs_16_pixel_blocks(natural_images):
    # at 4:2:0 one chroma sample covers 2x2 pixels and the MCU is 16x16: 16-px blocks beat 8-px blocks
    bpp16, psnr16 = _rate_psnr(natural_images, 16, 75, "420")
    bpp8, psnr8 = _rate_psnr(natural_images, 8, 75, "420")
    assert psnr16 > psnr8 + 2 and bpp16 < bpp8


def test_bad_settings_are_rejected(natural_images):
    with pytest.raises(ValueError, match="quality"):
        jpeg.encode(natural_images, 0, "444")
    with pytest.raises(ValueError, match="subsampling"):
        jpeg.encode(natural_images, 50, "411")
    with pytest.raises(ValueError, match="uint8"):
        jpeg.encode(natural_images.astype(np.float32), 50, "444")
    assert ciphers.create("etc", block_size=16).jpeg_aligned("420")
    assert not ciphers.create("etc", block_size=8).jpeg_aligned("420")
    assert ciphers.create("etc", block_size=8).jpeg_aligned("444")
