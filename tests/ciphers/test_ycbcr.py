"""Colour helpers of grayscale-based EtC (etcbench.ciphers.ycbcr): YCbCr conversion, chroma subsampling, planes.

Colour conversion: libjpeg's integer fixed point, checked against the jccolor.c / jdcolor.c formulas written out
here over all 2^24 colours. Measured over all 2^24 colours: RGB -> YCbCr -> RGB (4:4:4, no subsampling) is off by
at most 1 level per channel (mean absolute error 0.33), and YCbCr -> RGB -> YCbCr of any converted colour is off by
at most 1 level; the conversion is within 1 level of Pillow's ``convert("YCbCr")`` (about half the values differ by
one: Pillow has its own fixed-point tables).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cipher_helpers import images, nchw
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from etcbench.ciphers import ycbcr
from etcbench.ciphers.ycbcr import downsample_chroma, from_plane, rgb_to_ycbcr, to_plane, upsample_chroma, ycbcr_to_rgb

FIX = {v: int(v * 65536 + 0.5) for v in (0.299, 0.587, 0.114, 0.16874, 0.33126, 0.5, 0.41869, 0.08131,
                                        1.402, 1.772, 0.71414, 0.34414)}


def all_colours() -> np.ndarray:
    """Every 24-bit colour once, as 256 images of 256 x 256 (image r, row g, column b)."""
    v = np.arange(256, dtype=np.uint8)
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    return np.stack([r, g, b], axis=-1)


def jccolor(x: np.ndarray) -> np.ndarray:
    """libjpeg's jccolor.c RGB -> YCbCr, written out directly."""
    r, g, b = (x[..., k].astype(np.int32) for k in range(3))  # every sum fits: |v| < 2^24
    half, off = 1 << 15, (128 << 16) + (1 << 15) - 1
    y = (FIX[0.299] * r + FIX[0.587] * g + FIX[0.114] * b + half) >> 16
    cb = (-FIX[0.16874] * r - FIX[0.33126] * g + FIX[0.5] * b + off) >> 16
    cr = (FIX[0.5] * r - FIX[0.41869] * g - FIX[0.08131] * b + off) >> 16
    return np.stack([y, cb, cr], axis=-1)


def jdcolor(x: np.ndarray) -> np.ndarray:
    """libjpeg's jdcolor.c YCbCr -> RGB, written out directly (clipped)."""
    y, cb, cr = (x[..., k].astype(np.int32) for k in range(3))
    cb, cr, half = cb - 128, cr - 128, 1 << 15
    r = y + ((FIX[1.402] * cr + half) >> 16)
    g = y + ((-FIX[0.34414] * cb - FIX[0.71414] * cr + half) >> 16)
    b = y + ((FIX[1.772] * cb + half) >> 16)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255)


# colour conversion ---------------------------------------------------------------------------------------------
def test_conversion_is_libjpegs_fixed_point_on_every_colour():
    """Exact against jccolor.c / jdcolor.c over all 2^24 inputs; measured bounds of the round trips (docstring)."""
    x = all_colours()
    ycc = rgb_to_ycbcr(x)
    assert ycc.dtype == np.uint8 and np.array_equal(ycc, jccolor(x))
    # every byte triple read as YCbCr, also out-of-gamut ones that need clipping
    assert np.array_equal(ycbcr_to_rgb(x), jdcolor(x))
    err = np.abs(ycbcr_to_rgb(ycc).astype(np.int16) - x)
    assert err.max() == 1 and 0.3 < err.mean() < 0.35  # RGB -> YCbCr -> RGB: at most 1 level
    assert np.abs(rgb_to_ycbcr(ycbcr_to_rgb(ycc)).astype(np.int16) - ycc).max() == 1


def test_conversion_is_within_one_level_of_pillow(natural_images):
    x = all_colours().reshape(4096, 4096, 3)
    pil = np.asarray(Image.fromarray(x).convert("YCbCr"))
    diff = np.abs(pil.astype(np.int16) - rgb_to_ycbcr(x))
    assert diff.max() == 1
    for img in natural_images:
        assert np.abs(np.asarray(Image.fromarray(img).convert("YCbCr")).astype(np.int16) - rgb_to_ycbcr(img)).max() <= 1


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_numpy_and_torch_conversions_are_bit_identical(n, h, w, seed):
    x = images(n, 2 * h, 2 * w, seed)
    xt = nchw(x)
    for fn in (rgb_to_ycbcr, ycbcr_to_rgb, downsample_chroma, upsample_chroma):
        assert np.array_equal(fn(xt).permute(0, 2, 3, 1).numpy(), fn(x)), fn.__name__
    for chroma in ("420", "444"):
        plane = to_plane(x, chroma)
        assert np.array_equal(to_plane(xt, chroma).permute(0, 2, 3, 1).numpy(), plane)
        assert np.array_equal(from_plane(nchw(plane), chroma).permute(0, 2, 3, 1).numpy(), from_plane(plane, chroma))
        # unbatched numpy (H, W, 3) and torch (3, H, W)
        assert np.array_equal(to_plane(x[0], chroma), plane[0])
        assert torch.equal(from_plane(nchw(plane)[0], chroma), nchw(from_plane(plane, chroma))[0])


def test_downsampling_rounds_half_up_and_upsampling_replicates():
    cells = np.array([[0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [1, 1, 2, 2], [255, 255, 255, 254]], np.uint8)
    c = cells.reshape(5, 2, 2).transpose(1, 0, 2).reshape(2, 10)  # 2 x 10 image of five 2x2 cells
    c = np.stack([c, 255 - c], axis=-1)  # two chroma channels
    down = downsample_chroma(c)
    assert down.shape == (1, 5, 2)
    assert down[0, :, 0].tolist() == [0, 1, 1, 2, 255]  # (sum + 2) >> 2: 1/4 -> 0, 2/4 -> 1, 6/4 -> 2
    assert down[0, :, 1].tolist() == [255, 255, 254, 254, 0]  # 254.5 -> 255, 253.5 -> 254: half up
    up = upsample_chroma(down)
    assert up.shape == c.shape and np.array_equal(up[0::2, 0::2], down) and np.array_equal(up[1::2, 1::2], down)
    with pytest.raises(ValueError, match="even sides"):
        downsample_chroma(np.zeros((3, 4, 2), np.uint8))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 5), w=st.integers(1, 5), seed=st.integers(0, 2**16),
       task=st.sampled_from([8, 40, 1 << 17]))
def test_plane_is_the_composition_of_the_colour_steps(n, h, w, seed, task):
    """``to_plane`` / ``from_plane`` equal convert -> (downsample) -> lay out, and the inverse; also when the work
    is cut into many tasks (a few images, or even-row bands of one image)."""
    h, w = 2 * h, 2 * w
    x = images(n, h, w, seed)
    ycc = rgb_to_ycbcr(x)
    y, chroma = ycc[..., :1], ycc[..., 1:]
    down = downsample_chroma(chroma)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ycbcr, "_PIXELS_PER_TASK", task)
        p420, p444 = to_plane(x, "420"), to_plane(x, "444")
        assert p420.shape == (n, 3 * h // 2, w, 1) and p444.shape == (n, h, 3 * w, 1)
        assert np.array_equal(p420[:, :h], y)
        assert np.array_equal(p420[:, h:, : w // 2, 0], down[..., 0])
        assert np.array_equal(p420[:, h:, w // 2:, 0], down[..., 1])
        assert np.array_equal(p444, np.concatenate([y, chroma[..., :1], chroma[..., 1:]], axis=2))
        assert np.array_equal(from_plane(p420, "420"), ycbcr_to_rgb(np.concatenate([y, upsample_chroma(down)], -1)))
        assert np.array_equal(from_plane(p444, "444"), ycbcr_to_rgb(ycc))
        assert np.array_equal(rgb_to_ycbcr(x), ycc) and np.array_equal(ycbcr_to_rgb(ycc), ycbcr_to_rgb(ycc[::-1])[::-1])


def test_colour_helpers_refuse_bad_input():
    with pytest.raises(ValueError, match="even image sides"):
        to_plane(np.zeros((1, 6, 5, 3), np.uint8), "420")
    with pytest.raises(ValueError, match="uint8"):
        to_plane(np.zeros((1, 6, 6, 3), np.float32), "444")
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, 3\) numpy"):
        rgb_to_ycbcr(np.zeros((1, 6, 6, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\(\.\.\., 1, H, W\) torch"):
        from_plane(torch.zeros(1, 3, 9, 6, dtype=torch.uint8), "420")
    with pytest.raises(ValueError, match="3H/2 x W"):
        from_plane(np.zeros((1, 8, 6, 1), np.uint8), "420")
    with pytest.raises(ValueError, match="H x 3W"):
        from_plane(np.zeros((1, 8, 8, 1), np.uint8), "444")
    with pytest.raises(ValueError, match="chroma must be"):
        to_plane(np.zeros((1, 6, 6, 3), np.uint8), "422")
