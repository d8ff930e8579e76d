"""EtC cipher: round trip, each step's own property, key determinism, numpy/torch parity."""

from __future__ import annotations

import stat

import numpy as np
import pytest
import torch
from cipher_helpers import grid, images
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.ciphers.blocks import from_blocks, to_blocks
from etcbench.ciphers.etc import CHANNEL_PERMS, dihedral_maps
from etcbench.errors import EtcbenchError

ONLY = {"scramble": False, "rotate_flip": False, "negative_positive": False, "color_shuffle": False}


def only(step: str, **kw) -> dict:
    return {**ONLY, step: True, **kw}




@settings(max_examples=40, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), options=st.fixed_dictionaries({
    "scramble": st.booleans(), "rotate_flip": st.booleans(), "negative_positive": st.booleans(),
    "color_shuffle": st.booleans(), "np_fraction": st.sampled_from(["random", "half"])}))
def test_round_trip_any_options(grid, seed, n, options):
    m, bh, bw = grid
    scheme = ciphers.create("etc", block_size=m, **options)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(n, m * bh, m * bw, seed % 1000)
    y = scheme.encrypt(x, key)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert np.array_equal(scheme.decrypt(y, key), x)
    # the input is never modified in place
    assert np.array_equal(x, images(n, m * bh, m * bw, seed % 1000))


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1))
def test_scrambling_moves_whole_blocks(grid, seed):
    m, bh, bw = grid
    scheme = ciphers.create("etc", block_size=m, **only("scramble"))
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 1)
    y = scheme.encrypt(x, key)
    perm = key.arrays["block_perm"]
    assert sorted(perm.tolist()) == list(range(bh * bw))
    assert np.array_equal(to_blocks(y, m), to_blocks(x, m)[:, perm])


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1))
def test_rotation_flip_is_one_of_eight_symmetries(grid, seed):
    m, bh, bw = grid
    scheme = ciphers.create("etc", block_size=m, **only("rotate_flip"))
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(1, m * bh, m * bw, 2)
    xb, yb = to_blocks(x, m)[0], to_blocks(scheme.encrypt(x, key), m)[0]
    for j, code in enumerate(key.arrays["rot_flip"]):  # checking the result block by block is fine in a test
        expected = np.rot90(xb[j], k=int(code) % 4, axes=(0, 1))
        expected = expected[:, ::-1] if code >= 4 else expected
        assert np.array_equal(yb[j], expected)


def test_eight_distinct_symmetries():
    maps = dihedral_maps(4)
    assert len({tuple(r) for r in maps}) == 8
    assert all(sorted(r) == list(range(16)) for r in maps)


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), frac=st.sampled_from(["random", "half"]))
def test_negative_positive_reverses_values_of_selected_blocks(grid, seed, frac):
    m, bh, bw = grid
    scheme = ciphers.create("etc", block_size=m, **only("negative_positive", np_fraction=frac))
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 3)
    xb, yb = to_blocks(x, m), to_blocks(scheme.encrypt(x, key), m)
    flags = key.arrays["negpos"]
    assert np.array_equal(yb[:, flags], 255 - xb[:, flags])
    assert np.array_equal(yb[:, ~flags], xb[:, ~flags])
    if frac == "half":
        assert flags.sum() == (bh * bw) // 2


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1))
def test_colour_shuffle_is_a_true_permutation_per_block(grid, seed):
    m, bh, bw = grid
    scheme = ciphers.create("etc", block_size=m, **only("color_shuffle"))
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 4)
    xb, yb = to_blocks(x, m), to_blocks(scheme.encrypt(x, key), m)
    perms = CHANNEL_PERMS[key.arrays["channel_perm"]]  # (n, 3)
    assert np.array_equal(yb, np.take_along_axis(xb, perms[None, :, None, None, :], axis=-1))
    # the multiset of channel values of every pixel is unchanged
    assert np.array_equal(np.sort(yb, axis=-1), np.sort(xb, axis=-1))


def test_legacy_channel_bug_is_lossy_and_not_invertible():
    scheme = ciphers.create("etc", block_size=4, **only("color_shuffle", legacy_channel_bug=True))
    key = scheme.generate_key(seed=7, image_size=(32, 32))
    x = images(1, 32, 32, 5)
    y = scheme.encrypt(x, key)
    assert not np.array_equal(np.sort(y, axis=-1), np.sort(x, axis=-1))
    with pytest.raises(ValueError, match="cannot be inverted"):
        scheme.decrypt(y, key)


def test_key_determinism_and_fingerprint(tmp_path):
    scheme = ciphers.create("etc", block_size=8)
    k1, k2 = (scheme.generate_key(seed=1234, image_size=(32, 32)) for _ in range(2))
    k3 = scheme.generate_key(seed=1235, image_size=(32, 32))
    assert k1.fingerprint == k2.fingerprint != k3.fingerprint
    assert len(k1.fingerprint) == 64
    x = images(3, 32, 32)
    assert np.array_equal(scheme.encrypt(x, k1), scheme.encrypt(x, k2))
    assert not np.array_equal(scheme.encrypt(x, k1), scheme.encrypt(x, k3))
    path = tmp_path / "k.npz"
    ciphers.save_key(k1, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = ciphers.load_key(path)
    assert loaded.fingerprint == k1.fingerprint
    assert np.array_equal(scheme.encrypt(x, loaded), scheme.encrypt(x, k1))
    assert k1.fingerprint not in repr(k1) and "block_perm" not in repr(k1)


def test_switching_one_step_off_keeps_the_others():
    full = ciphers.create("etc", block_size=8).generate_key(seed=9, image_size=(64, 64))
    no_rot = ciphers.create("etc", block_size=8, rotate_flip=False).generate_key(seed=9, image_size=(64, 64))
    for name in ("block_perm", "negpos", "channel_perm"):
        assert np.array_equal(full.arrays[name], no_rot.arrays[name])
    assert not no_rot.arrays["rot_flip"].any()


def test_key_file_mode_is_enforced(tmp_path):
    key = ciphers.create("etc", block_size=8).generate_key(seed=1, image_size=(16, 16))
    path = tmp_path / "k.npz"
    ciphers.save_key(key, path)
    path.chmod(0o644)
    with pytest.raises(EtcbenchError, match="readable by others"):
        ciphers.load_key(path)
    path.chmod(0o600)
    path.write_bytes(b"not a key")
    with pytest.raises(EtcbenchError, match="not a valid etcbench key"):
        ciphers.load_key(path)


@settings(max_examples=20, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1))
def test_numpy_and_torch_give_identical_results(grid, seed):
    m, bh, bw = grid
    scheme = ciphers.create("etc", block_size=m)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 6)
    y = scheme.encrypt(x, key)
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    yt = scheme.encrypt(xt, key)
    assert yt.dtype == torch.uint8 and yt.shape == xt.shape
    assert np.array_equal(yt.permute(0, 2, 3, 1).numpy(), y)
    assert torch.equal(scheme.decrypt(yt, key), xt)
    # float input in [0, 1] gives the uint8 result / 255
    yf = scheme.encrypt(xt.float() / 255, key)
    assert torch.allclose(yf * 255, yt.float(), atol=1e-3)
    # batched equals unbatched
    assert np.array_equal(scheme.encrypt(x[0], key), y[0])
    assert torch.equal(scheme.encrypt(xt[1], key), yt[1])


def test_bad_shapes_give_clear_errors():
    scheme = ciphers.create("etc", block_size=16)
    with pytest.raises(ValueError, match="not a multiple of the block size 16"):
        scheme.generate_key(seed=1, image_size=(30, 32))
    key = scheme.generate_key(seed=1, image_size=(32, 32))
    other = ciphers.create("etc", block_size=8)
    with pytest.raises(ValueError, match="was made for"):
        other.encrypt(images(1, 32, 32), key)
    with pytest.raises(ValueError, match="unknown scheme"):
        ciphers.create("nope", block_size=8)


def test_blocks_round_trip_and_row_major_order():
    x = images(2, 8, 12)
    b = to_blocks(x, 4)
    assert b.shape == (2, 6, 4, 4, 3)
    assert np.array_equal(b[:, 1], x[:, 0:4, 4:8])
    assert np.array_equal(b[:, 3], x[:, 4:8, 0:4])
    assert np.array_equal(from_blocks(b, 8, 12), x)
    t = torch.from_numpy(x)
    assert np.array_equal(to_blocks(t, 4).numpy(), b)


def test_plain_scheme_is_identity():
    scheme = ciphers.create("plain", block_size=8)
    key = scheme.generate_key(seed=0, image_size=(16, 16))
    x = images(2, 16, 16)
    assert np.array_equal(scheme.encrypt(x, key), x) and np.array_equal(scheme.decrypt(x, key), x)
