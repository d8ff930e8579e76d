"""FR-Attack: the lab's per-channel fold against a step-by-step reimplementation; exact invariances to
negative-positive inversion and colour shuffling, shapes, one channel, in the lab's form and the stretched one."""

from __future__ import annotations

import numpy as np
import pytest

import etcbench.attacks.fr
from etcbench import attacks, ciphers
from etcbench.ciphers.etc import CHANNEL_PERMS


def fr(x: np.ndarray, color: str = "mean", stretch: bool = True) -> np.ndarray:
    """The earlier etcbench form by default (mean, stretched); ``stretch=False, color="keep"`` is the lab's."""
    return attacks.create("fr", block_size=4, color=color, stretch=stretch).reconstruct(x).images


def lab_fold(x: np.ndarray) -> np.ndarray:
    """The lab's FR step by step: every value above 127 becomes 255 minus it, every channel on its own."""
    out = x.copy()
    for index in np.ndindex(x.shape):
        if int(x[index]) > 127:
            out[index] = 255 - int(x[index])
    return out


def test_default_is_the_labs_per_channel_fold(natural_images):
    x = natural_images[:2, :16, :16]
    np.testing.assert_array_equal(attacks.create("fr", block_size=4).reconstruct(x).images, lab_fold(x))
    np.testing.assert_array_equal(fr(x, "keep", stretch=False), lab_fold(x))
    assert attacks.create("fr", block_size=4).options == {"color": "keep", "stretch": False}


def test_unstretched_mean_is_the_rounded_channel_mean_of_the_fold(natural_images):
    x = natural_images[:2, :8, :8]
    expected = np.rint(lab_fold(x).astype(np.float64).mean(axis=-1, keepdims=True))
    np.testing.assert_array_equal(fr(x, "mean", stretch=False), np.broadcast_to(expected, x.shape).astype(np.uint8))


@pytest.mark.parametrize("stretch", [False, True])
@pytest.mark.parametrize("color", ["mean", "keep"])
def test_invariant_to_any_inversion_mask(natural_images, color, stretch):
    mask = np.random.default_rng(0).random(natural_images.shape) < 0.5  # per value, the finest NP there is
    inverted = np.where(mask, 255 - natural_images, natural_images)
    np.testing.assert_array_equal(fr(inverted, color, stretch), fr(natural_images, color, stretch))
    np.testing.assert_array_equal(fr(255 - natural_images, color, stretch), fr(natural_images, color, stretch))


def test_mean_mode_is_invariant_to_colour_permutation(natural_images):
    codes = np.random.default_rng(1).integers(0, 6, natural_images.shape[:3])  # a permutation per pixel
    permuted = np.take_along_axis(natural_images, CHANNEL_PERMS[codes], axis=-1)
    assert not np.array_equal(permuted, natural_images)
    out = fr(permuted, "mean")
    np.testing.assert_array_equal(out, fr(natural_images, "mean"))
    assert (out == out[..., :1]).all()  # the same value in every channel


def test_keep_mode_is_the_stretch_below_the_fold():
    x = np.random.default_rng(2).integers(0, 128, (3, 8, 8, 3), dtype=np.uint8)
    x[0, 0, 0] = (0, 127, 64)
    np.testing.assert_array_equal(fr(x, "keep"), np.rint(x * (255 / 127)).astype(np.uint8))
    assert fr(x, "keep")[0, 0, 0].tolist() == [0, 255, 129]


def test_fold_values():
    x = np.array([0, 1, 126, 127, 128, 129, 254, 255], dtype=np.uint8).reshape(1, 1, 8, 1)
    np.testing.assert_array_equal(etcbench.attacks.fr.fold(x).ravel(), [0, 1, 126, 127, 127, 126, 1, 0])
    assert fr(x, "keep").ravel().tolist() == [0, 2, 253, 255, 255, 253, 2, 0]


def test_real_ciphers_shapes_and_invariance(natural_images):
    # PE (per-pixel NP + colour shuffle) is removed exactly by the "mean" mode
    pe = ciphers.create("pe", block_size=4)
    enc = pe.encrypt(natural_images, pe.generate_key(seed=3, image_size=(64, 64)))
    np.testing.assert_array_equal(fr(enc), fr(natural_images))
    # EtC: shapes and dtype; the blocks stay where the key put them (FR does not restore positions)
    etc = ciphers.create("etc", block_size=16)
    key = etc.generate_key(seed=4, image_size=(64, 64))
    enc = etc.encrypt(natural_images, key)
    out = attacks.create("fr", block_size=16, color="mean", stretch=True).reconstruct(enc)
    assert out.images.shape == natural_images.shape and out.images.dtype == np.uint8
    # same seed, NP and colour shuffle off: the same block positions and rotations (each step has its own seed child)
    no_np_shuffle = ciphers.create("etc", block_size=16, negative_positive=False, color_shuffle=False)
    same_blocks = no_np_shuffle.encrypt(natural_images, no_np_shuffle.generate_key(seed=4, image_size=(64, 64)))
    np.testing.assert_array_equal(out.images, fr(same_blocks))


@pytest.mark.parametrize("color", ["mean", "keep"])
def test_one_channel_planes(color):
    x = np.random.default_rng(5).integers(0, 256, (2, 96, 64, 1), dtype=np.uint8)
    out = fr(x, color)
    assert out.shape == x.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.rint(np.minimum(x, 255 - x) * (255 / 127)).astype(np.uint8))
    np.testing.assert_array_equal(fr(255 - x, color), out)


def test_options_and_bad_input():
    attack = attacks.create("fr", block_size=16, color="mean", stretch=True)
    assert attack.options == {"color": "mean", "stretch": True} and not attack.needs_training
    assert attack.fit(np.zeros((1, 16, 16, 3), np.uint8), np.zeros((1, 16, 16, 3), np.uint8)) == {}
    with pytest.raises(ValueError, match="color"):
        attacks.create("fr", block_size=16, color="sorted")
    with pytest.raises(ValueError, match="uint8"):
        attack.reconstruct(np.zeros((1, 16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        attack.reconstruct(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="stretch"):
        attacks.create("fr", block_size=16, stretch="yes")
