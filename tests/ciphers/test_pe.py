"""PE (pixel-based encryption): as published with a fresh key per image (``pe``) and with one fixed key
(``pe-fixed``): round trip, per-pixel NP and colour permutation, per-image keys, parity, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cipher_helpers import images, nchw
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.ciphers.etc import CHANNEL_PERMS

NAME = "pe-fixed"  # the tests that read the key's per-pixel arrays
BOTH = pytest.mark.parametrize("name", ["pe", "pe-fixed"])
sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@BOTH
@settings(max_examples=40, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), color_shuffle=st.booleans(),
       block_size=st.sampled_from([1, 4, 16]))
def test_round_trip_any_size(name, size, seed, n, color_shuffle, block_size):
    h, w = size
    scheme = ciphers.create(name, block_size=block_size, color_shuffle=color_shuffle)
    key = scheme.generate_key(seed=seed, image_size=(h, w))  # block size does not constrain the image size
    x = images(n, h, w, seed % 1000)
    y = scheme.encrypt(x, key)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert np.array_equal(scheme.decrypt(y, key), x)
    assert np.array_equal(x, images(n, h, w, seed % 1000))  # input untouched
    assert scheme.invertible and key.block_size == block_size


@settings(max_examples=30, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
def test_np_bits_and_colour_permutation_per_pixel(size, seed):
    h, w = size
    scheme = ciphers.create(NAME, block_size=8)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(2, h, w, 1)
    y = scheme.encrypt(x, key)
    perms = CHANNEL_PERMS[key.arrays["channel_perm"]]  # (H, W, 3)
    # NP comes first, indexed by the input channel; undo it at the output position its value moved to
    out_bits = np.take_along_axis(key.arrays["negpos"], perms, axis=-1)
    undone = np.where(out_bits, 255 - y, y)
    assert np.array_equal(undone, np.take_along_axis(x, perms[None], axis=-1))
    assert np.array_equal(np.sort(undone, axis=-1), np.sort(x, axis=-1))  # per-pixel multiset unchanged


@settings(max_examples=30, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**32 - 1))
def test_without_colour_shuffle_is_elementwise_inversion(size, seed):
    h, w = size
    scheme = ciphers.create(NAME, block_size=8, color_shuffle=False)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(3, h, w, 2)
    bits = key.arrays["negpos"]
    assert bits.shape == (h, w, 3) and bits.dtype == bool
    assert not key.arrays["channel_perm"].any()
    assert np.array_equal(scheme.encrypt(x, key), np.where(bits, 255 - x, x))


def test_key_arrays_are_per_pixel_and_independent():
    full = ciphers.create(NAME, block_size=16).generate_key(seed=9, image_size=(64, 48))
    np_only = ciphers.create(NAME, block_size=16, color_shuffle=False).generate_key(seed=9, image_size=(64, 48))
    assert np.array_equal(full.arrays["negpos"], np_only.arrays["negpos"])  # separate seed children
    codes = full.arrays["channel_perm"]
    assert codes.shape == (64, 48) and set(np.unique(codes).tolist()) == set(range(6))
    assert 0.45 < full.arrays["negpos"].mean() < 0.55
    # bits differ between channels of a pixel and between pixels
    assert (full.arrays["negpos"][..., 0] != full.arrays["negpos"][..., 1]).any()


def test_key_determinism_and_per_image_keys():
    scheme = ciphers.create(NAME, block_size=16)
    k1, k2 = (scheme.generate_key(seed=4, image_size=(16, 16)) for _ in range(2))
    k3 = scheme.generate_key(seed=5, image_size=(16, 16))
    assert k1.fingerprint == k2.fingerprint != k3.fingerprint
    x = images(1, 16, 16, 3)
    assert np.array_equal(scheme.encrypt(x, k1), scheme.encrypt(x, k2))
    y3 = scheme.encrypt(x, k3)
    assert not np.array_equal(scheme.encrypt(x, k1), y3)
    assert np.array_equal(scheme.decrypt(y3, k3), x) and not np.array_equal(scheme.decrypt(y3, k1), x)


@BOTH
def test_never_jpeg_aligned(name):
    for subsampling in ("444", "420", "gray"):
        assert not ciphers.create(name, block_size=16).jpeg_aligned(subsampling)
        assert not ciphers.create(name, block_size=16, color_shuffle=False).jpeg_aligned(subsampling)
    assert not ciphers.create(name, block_size=16).blockwise


@BOTH
@settings(max_examples=20, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**32 - 1), color_shuffle=st.booleans())
def test_numpy_and_torch_give_identical_results(name, size, seed, color_shuffle):
    h, w = size
    scheme = ciphers.create(name, block_size=8, color_shuffle=color_shuffle)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(2, h, w, 6)
    y = scheme.encrypt(x, key)
    xt = nchw(x)
    yt = scheme.encrypt(xt, key)
    assert yt.dtype == torch.uint8 and yt.shape == xt.shape
    assert np.array_equal(yt.permute(0, 2, 3, 1).numpy(), y)
    assert torch.equal(scheme.decrypt(yt, key), xt)
    yf = scheme.encrypt(xt.float() / 255, key)
    assert torch.allclose(yf * 255, yt.float(), atol=1e-3)
    assert torch.allclose(scheme.decrypt(yf, key), xt.float() / 255, atol=1e-6)
    yfn = scheme.encrypt(x.astype(np.float64) / 255, key)
    assert np.allclose(yfn * 255, y, atol=1e-6)
    assert np.array_equal(scheme.encrypt(x[0], key), y[0])
    index = {"first_index": 1} if scheme.per_image_keys else {}  # image 1 of the set keeps its key
    assert torch.equal(scheme.encrypt(xt[1], key, **index), yt[1])


@BOTH
def test_bad_inputs_give_clear_errors(name):
    scheme = ciphers.create(name, block_size=16)
    with pytest.raises(ValueError, match="image size must be positive"):
        scheme.generate_key(seed=1, image_size=(0, 32))
    key = scheme.generate_key(seed=1, image_size=(30, 20))
    with pytest.raises(ValueError, match="was made for"):
        ciphers.create(name, block_size=16, color_shuffle=False).encrypt(images(1, 30, 20), key)
    with pytest.raises(ValueError, match="was made for"):
        ciphers.create(name, block_size=8).encrypt(images(1, 30, 20), key)
    with pytest.raises(ValueError, match="has no option"):
        ciphers.create(name, block_size=16, negative_positive=False)


def _fold(x: np.ndarray) -> np.ndarray:
    """What survives PE: each pixel's values folded (v and 255 - v alike), in sorted order."""
    return np.sort(np.minimum(x, 255 - x), axis=-1)


@settings(max_examples=25, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), start=st.integers(0, 10**6))
def test_per_image_keys_depend_on_the_image_index_only(size, seed, n, start):
    h, w = size
    scheme = ciphers.create("pe", block_size=4)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(n, h, w, seed % 97)
    y = scheme.encrypt(x, key, first_index=start)
    for i in range(n):  # encrypting image i alone at its index gives the same ciphertext
        assert np.array_equal(scheme.encrypt(x[i:i + 1], key, first_index=start + i), y[i:i + 1])
    assert np.array_equal(scheme.decrypt(y, key, first_index=start), x)
    assert np.array_equal(_fold(y), _fold(x))  # per pixel: NP and a channel permutation, nothing else


def test_one_image_gets_a_new_key_at_every_position():
    scheme = ciphers.create("pe", block_size=4)
    key = scheme.generate_key(seed=1, image_size=(16, 16))
    x = np.repeat(images(1, 16, 16, 3), 4, axis=0)  # the same image four times
    y = scheme.encrypt(x, key)
    assert all(not np.array_equal(y[i], y[j]) for i in range(4) for j in range(i + 1, 4))
    assert set(key.arrays) == {"secret"} and key.arrays["secret"].shape == (8,)
    negpos, codes = scheme.image_keys(key, 0, 4)
    assert negpos.shape == (4, 16, 16, 3) and 0.4 < negpos.mean() < 0.6
    assert set(np.unique(codes).tolist()) == set(range(6))
    assert not ciphers.create("pe", block_size=4, color_shuffle=False).image_keys(key, 0, 1)[1].any()


def test_chunked_sets_match_image_by_image():
    scheme = ciphers.create("pe", block_size=4)
    key = scheme.generate_key(seed=2, image_size=(4, 4))
    x = images(600, 4, 4, 1)  # more than one chunk of per-image keys
    y = scheme.encrypt(x, key)
    for i in (0, 255, 256, 511, 599):
        assert np.array_equal(scheme.encrypt(x[i:i + 1], key, first_index=i), y[i:i + 1])
    assert torch.equal(scheme.encrypt(nchw(x), key).permute(0, 2, 3, 1), torch.from_numpy(y))


def test_fresh_training_keys_are_drawn_per_call_and_per_image():
    scheme = ciphers.create("pe", block_size=4)
    x = nchw(np.repeat(images(1, 8, 8, 5), 3, axis=0))
    gen = torch.Generator().manual_seed(0)
    a, b = scheme.encrypt_fresh(x, gen), scheme.encrypt_fresh(x, gen)
    assert not torch.equal(a, b) and not torch.equal(a[0], a[1])
    assert torch.equal(scheme.encrypt_fresh(x, torch.Generator().manual_seed(0)), a)  # seeded
    as_numpy = a.permute(0, 2, 3, 1).numpy()
    assert np.array_equal(_fold(as_numpy), _fold(x.permute(0, 2, 3, 1).numpy()))
    with pytest.raises(ValueError, match="first_index"):
        scheme.encrypt(images(1, 8, 8), scheme.generate_key(seed=0, image_size=(8, 8)), first_index=-1)


@settings(max_examples=30, deadline=None)
@given(size=sizes, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), start=st.integers(0, 10**4),
       inverse=st.booleans(), color_shuffle=st.booleans())
def test_the_compact_key_path_is_the_index_reference(size, seed, n, start, inverse, color_shuffle):
    """What ``pe`` runs (uint8 NP bits and colour codes, elementwise, in thread-pool chunks of images) gives
    the straightforward per-pixel gather with int64 indices (``apply_pixel_keys``), on numpy uint8 and float and
    on torch, encrypting and decrypting; the compact keys are the same words of the stream."""
    from etcbench.ciphers.pe import apply_pixel_keys

    h, w = size
    scheme = ciphers.create("pe", block_size=4, color_shuffle=color_shuffle)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(n, h, w, seed % 1000)
    negpos, codes = scheme.image_keys(key, start, n)
    bits, small_codes = scheme.image_states(key, start, n)
    assert bits.dtype == small_codes.dtype == np.uint8
    np.testing.assert_array_equal(bits, negpos[..., 0] + 2 * negpos[..., 1] + 4 * negpos[..., 2])
    np.testing.assert_array_equal(small_codes, codes)
    # the documented derivation: pixel p of image i takes word i * H * W + p of the secret's PCG64 stream
    stream = np.random.PCG64(np.random.SeedSequence(key.arrays["secret"].astype(np.uint64).tolist()))
    stream.advance(start * h * w)
    words = stream.random_raw(n * h * w).reshape(n, h, w)
    np.testing.assert_array_equal(bits, words % 8)
    np.testing.assert_array_equal(codes, (words >> np.uint64(3)) % 6 if color_shuffle else 0)
    expected = apply_pixel_keys(x, negpos, codes, inverse)
    run = scheme.decrypt if inverse else scheme.encrypt
    np.testing.assert_array_equal(run(x, key, first_index=start), expected)
    floats = x.astype(np.float32) / 255
    np.testing.assert_allclose(run(floats, key, first_index=start), apply_pixel_keys(floats, negpos, codes, inverse),
                               atol=1e-6)
    assert torch.equal(run(nchw(x), key, first_index=start), nchw(expected))


def test_fresh_training_keys_are_applied_as_drawn():
    """``encrypt_fresh`` applies exactly the NP bits and colour codes it draws from the generator (in that order)."""
    from etcbench.ciphers.pe import apply_pixel_keys

    scheme = ciphers.create("pe", block_size=4)
    x = nchw(images(5, 6, 7, 3))
    y = scheme.encrypt_fresh(x, torch.Generator().manual_seed(11))
    g = torch.Generator().manual_seed(11)
    negpos = torch.randint(0, 2, (5, 3, 6, 7), generator=g).bool()
    codes = torch.randint(0, 6, (5, 6, 7), generator=g)
    assert torch.equal(y, apply_pixel_keys(x, negpos, codes, inverse=False))
    floats = x.float() / 255
    assert torch.allclose(scheme.encrypt_fresh(floats, torch.Generator().manual_seed(11)), y.float() / 255)
