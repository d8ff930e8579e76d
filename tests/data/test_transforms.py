"""Batch transforms: resize, the recipes' augmentations (crop + flip, flip, RandomResizedCrop), normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench.data.transforms import (
    augment_batch,
    normalize,
    random_crop_flip,
    random_flip,
    random_resized_crop,
    resize,
    resize_numpy,
    to_nchw,
)


def test_resize_numpy_and_torch_agree():
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    a = resize_numpy(x, 32, "bicubic")
    b = resize(to_nchw(x), 32, "bicubic").permute(0, 2, 3, 1).numpy()
    assert a.dtype == np.uint8 and a.shape == (3, 32, 32, 3) and np.array_equal(a, b)
    # nearest 2x upsampling repeats every pixel
    assert np.array_equal(resize_numpy(x, 32, "nearest")[:, ::2, ::2], x)


def test_random_crop_flip_moves_whole_images_and_is_seeded():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = random_crop_flip(x, 2, torch.Generator().manual_seed(1))
    b = random_crop_flip(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(random_crop_flip(x, 2, torch.Generator().manual_seed(2)), a)
    # without padding only flips happen: each image is itself or its mirror
    c = random_crop_flip(x, 0, torch.Generator().manual_seed(3))
    for i in range(2):
        assert torch.equal(c[i], x[i]) or torch.equal(c[i], x[i].flip(-1))
    # with padding, every output value is either padding (0) or a value of the same image and channel
    for i in range(2):
        for ch in range(3):
            values = set(a[i, ch].flatten().tolist()) - {0.0}
            assert values <= set(x[i, ch].flatten().tolist())


def test_normalize_maps_negative_positive_to_negation():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(normalize(255 - x), -normalize(x))


def test_random_resized_crop_of_the_whole_image_is_a_resize():
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    y = random_resized_crop(x, 64, (1.0, 1.0), (1.0, 1.0), "bilinear", torch.Generator().manual_seed(0))
    assert torch.equal(y, resize(x, 64, "bilinear"))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), side=st.sampled_from([8, 16]))
def test_random_resized_crop_picks_one_window_per_image(seed, side):
    # every pixel of the source is its own position, so a nearest-neighbour upsampling of a square window shows
    # which window was taken: the output's 2x2 cells must be one contiguous side x side window of the image
    pos = torch.arange(32 * 32).reshape(1, 1, 32, 32)
    x = torch.stack([pos % 256, pos // 256, torch.zeros_like(pos)], 1)[:, :, 0].to(torch.uint8).repeat(3, 1, 1, 1)
    area = (side / 32) ** 2
    y = random_resized_crop(x, 2 * side, (area, area), (1.0, 1.0), "nearest", torch.Generator().manual_seed(seed))
    assert y.shape == (3, 3, 2 * side, 2 * side)
    for img in y:
        cells = img[:, ::2, ::2].long()
        index = cells[0] + 256 * cells[1]
        top, left = divmod(int(index[0, 0]), 32)
        expected = (torch.arange(side)[:, None] + top) * 32 + torch.arange(side)[None] + left
        assert torch.equal(index, expected)
        assert torch.equal(img, cells.to(torch.uint8).repeat_interleave(2, 1).repeat_interleave(2, 2))


def test_augment_batch_dispatches_and_is_seeded():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert augment_batch(x, "none", 64) is x
    assert torch.equal(augment_batch(x, "flip", 64, generator=g()), random_flip(x, g()))
    assert torch.equal(augment_batch(x, "crop_flip", 64, padding=4, generator=g()), random_crop_flip(x, 4, g()))
    rrc = augment_batch(x, "random_resized_crop", 64, scale=(0.05, 1.0), interpolation="bilinear", generator=g())
    assert rrc.shape == (4, 3, 64, 64) and torch.equal(
        rrc, random_resized_crop(x, 64, (0.05, 1.0), interpolation="bilinear", generator=g()))
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_batch(x, "mixup", 64)
