"""Checks every registered scheme must pass: round trip, numpy/torch parity, batched = unbatched, CUDA = CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from etcbench import ciphers

SCHEMES = ciphers.available()


def test_the_registry_holds_every_scheme():
    assert {"plain", "etc", "le", "ele", "pe", "pixel-shuffle"} <= set(SCHEMES)


@pytest.mark.parametrize("name", SCHEMES)
def test_round_trip_parity_and_batching(name):
    x = np.random.default_rng(8).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    scheme = ciphers.create(name, block_size=8)
    key = scheme.generate_key(seed=11, image_size=(32, 48))
    y = scheme.encrypt(x, key)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert np.array_equal(scheme.decrypt(y, key), x)
    assert name == "plain" or not np.array_equal(y, x)
    yt = scheme.encrypt(xt, key)
    assert yt.dtype == torch.uint8 and yt.shape == xt.shape
    assert np.array_equal(yt.permute(0, 2, 3, 1).numpy(), y)
    assert torch.equal(scheme.decrypt(yt, key), xt)
    assert np.array_equal(scheme.encrypt(x[1], key), y[1]) and torch.equal(scheme.encrypt(xt[2], key), yt[2])
    assert np.array_equal(x, np.random.default_rng(8).integers(0, 256, (3, 32, 48, 3), dtype=np.uint8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", SCHEMES)
def test_cuda_matches_cpu(name):
    x = np.random.default_rng(9).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    scheme = ciphers.create(name, block_size=16)
    key = scheme.generate_key(seed=3, image_size=(64, 64))
    yt = scheme.encrypt(xt.cuda(), key)
    assert yt.is_cuda and torch.equal(yt.cpu(), scheme.encrypt(xt, key))
    assert torch.equal(scheme.decrypt(yt, key).cpu(), xt)


@pytest.mark.parametrize("name", SCHEMES)
def test_float_input_is_the_uint8_result_over_255_or_refused(name):
    x = np.random.default_rng(5).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    scheme = ciphers.create(name, block_size=4)
    key = scheme.generate_key(seed=2, image_size=(16, 16))
    xf = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().float() / 255
    if name in ("le", "ele"):  # nibble splitting is defined on 8-bit integers only
        for fn in (scheme.encrypt, scheme.decrypt):
            with pytest.raises(ValueError, match="pass uint8"):
                fn(xf, key)
            with pytest.raises(ValueError, match="pass uint8"):
                fn(x.astype(np.float32) / 255, key)
        return
    expected = scheme.encrypt(x, key).astype(np.float32) / 255
    np.testing.assert_allclose(scheme.encrypt(xf, key).permute(0, 2, 3, 1).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(scheme.encrypt(x.astype(np.float32) / 255, key), expected, atol=1e-6)


@pytest.mark.parametrize("name", SCHEMES)
def test_bad_images_get_clear_errors(name):
    scheme = ciphers.create(name, block_size=8)
    key = scheme.generate_key(seed=1, image_size=(16, 24))
    good = np.zeros((1, 16, 24, 3), np.uint8)
    cases = {
        "generated for 16x24": np.zeros((1, 24, 16, 3), np.uint8),
        "3 colour channels": np.zeros((1, 16, 24, 4), np.uint8),
        "dtype": good.astype(np.int32),
        "3 or 4 dimensions": np.zeros((16, 24), np.uint8),
    }
    for message, bad in cases.items():
        for fn in (scheme.encrypt, scheme.decrypt):
            with pytest.raises(ValueError, match=message):
                fn(bad, key)
    with pytest.raises(ValueError, match="3 colour channels"):
        scheme.encrypt(torch.zeros(1, 16, 24, 3, dtype=torch.uint8), key)  # channels-last torch is refused
