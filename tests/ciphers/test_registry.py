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
