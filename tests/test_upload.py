"""What the client uploads in the JPEG-trained arm: images resized, encrypted once with the key (throw-away keys drawn
from a generator for per-image-key schemes), JPEG-coded at the arm's quality (a grayscale plane at its own) and
decoded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from etcbench import ciphers, jpeg
from etcbench.data.transforms import resize_numpy, to_nchw
from etcbench.recipes import JpegArm
from etcbench.upload import client_upload

SIZE, BLOCK = 32, 8


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["etc", "etc-gray"])
def test_the_upload_is_the_jpeg_of_the_ciphertext_of_the_resized_image(images, name, monkeypatch):
    scheme = ciphers.create(name, block_size=BLOCK)
    key = scheme.generate_key(seed=1, image_size=(SIZE, SIZE))
    arm = JpegArm(quality=60, subsampling="444")
    monkeypatch.setattr("etcbench.upload.CHUNK", 2)  # chunks of a batch give the whole batch's result
    out = client_upload(images, scheme, key, arm, image_size=SIZE)
    sub = arm.subsampling_for(scheme.plane_subsampling)  # etc-gray: its plane's 4:2:0, whatever the arm says
    assert sub == ("420" if name == "etc-gray" else "444")
    expected = jpeg.roundtrip(scheme.encrypt(resize_numpy(images, SIZE), key), 60, sub)[0]
    assert out.dtype == np.uint8 and out.shape == expected.shape and np.array_equal(out, expected)
    assert out.shape[1:] == tuple(np.roll(scheme.encrypted_shape(SIZE, SIZE), -1))


def test_per_image_keys_are_drawn_once_from_the_generator(images):
    scheme = ciphers.create("pe", block_size=BLOCK)
    key = scheme.generate_key(seed=1, image_size=(SIZE, SIZE))
    arm = JpegArm(quality=90, subsampling="444")
    first, again = (client_upload(images, scheme, key, arm, image_size=SIZE,
                                  generator=torch.Generator().manual_seed(7)) for _ in range(2))
    other = client_upload(images, scheme, key, arm, image_size=SIZE, generator=torch.Generator().manual_seed(8))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    fresh = scheme.encrypt_fresh(to_nchw(resize_numpy(images, SIZE)), torch.Generator().manual_seed(7))
    expected = jpeg.roundtrip(np.ascontiguousarray(fresh.permute(0, 2, 3, 1).numpy()), 90, "444")[0]
    assert np.array_equal(first, expected)
