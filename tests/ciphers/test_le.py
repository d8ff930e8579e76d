"""LE (Tanaka) and the nibble helpers: layout, round trip, Tanaka parity, shared key, flag rule, numpy/torch parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cipher_helpers import grid, images, nchw, tanaka_le, tanaka_nibbles
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.ciphers.blocks import to_blocks
from etcbench.ciphers.nibbles import NibblePairPlan, merge_nibbles, split_nibbles, tanaka_positions


# nibble helpers ------------------------------------------------------------------------------------------------
def test_nibble_layout_on_a_hand_made_pixel():
    x = np.array([[[[0x12, 0xAB, 0xF0]]]], dtype=np.uint8)  # one 1x1 image
    z = split_nibbles(x)
    assert z.shape == (1, 1, 1, 6) and z.dtype == np.uint8
    assert z[0, 0, 0].tolist() == [0x2, 0xB, 0x0, 0x1, 0xA, 0xF]  # lower R, G, B, then upper R, G, B
    zt = split_nibbles(nchw(x))
    assert zt.shape == (1, 6, 1, 1) and zt[0, :, 0, 0].tolist() == [0x2, 0xB, 0x0, 0x1, 0xA, 0xF]
    assert np.array_equal(merge_nibbles(z), x) and torch.equal(merge_nibbles(zt), nchw(x))


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), n=st.integers(1, 3), seed=st.integers(0, 1000))
def test_split_and_merge_are_exact_inverses(h, w, n, seed):
    x = images(n, h, w, seed)
    z = split_nibbles(x)
    assert z.max() <= 15 and np.array_equal(merge_nibbles(z), x)
    assert np.array_equal(merge_nibbles(z[0]), x[0])  # unbatched
    xt = nchw(x)
    assert np.array_equal(split_nibbles(xt).permute(0, 2, 3, 1).numpy(), z)
    assert torch.equal(merge_nibbles(split_nibbles(xt)), xt)


def test_split_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        split_nibbles(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="nibble"):
        merge_nibbles(np.zeros((1, 4, 4, 3), np.uint8))


def test_tanaka_positions():
    assert tanaka_positions(1).tolist() == [0, 1, 2, 3, 4, 5]
    pos = tanaka_positions(2)  # 4 pixels: Tanaka = 12 lower halves then 12 upper halves
    assert sorted(pos.tolist()) == list(range(24))
    assert pos[3] == 6 and pos[12] == 3 and pos[12 + 3 * 3 + 2] == 3 * 6 + 5


# LE ------------------------------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), independent=st.booleans())
def test_round_trip_and_tanaka_parity(grid, seed, n, independent):
    m, bh, bw = grid
    scheme = ciphers.create("le", block_size=m, independent_flags=independent)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(n, m * bh, m * bw, seed % 1000)
    y = scheme.encrypt(x, key)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert np.array_equal(scheme.decrypt(y, key), x)
    assert np.array_equal(x, images(n, m * bh, m * bw, seed % 1000))  # input untouched
    assert np.array_equal(y, tanaka_le(x, key.arrays["nibble_perm"], key.arrays["flags"], m))
    # the executed (two-gather byte) plan equals the six-channel plan
    assert np.array_equal(y, merge_nibbles(scheme.plan(key).apply(split_nibbles(x))))
    assert np.array_equal(x, merge_nibbles(scheme.plan(key).inverse().apply(split_nibbles(y))))


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), independent=st.booleans())
def test_every_block_is_a_pure_nibble_shuffle_with_the_flag_rule(grid, seed, independent):
    m, bh, bw = grid
    scheme = ciphers.create("le", block_size=m, independent_flags=independent)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    perm, flags = key.arrays["nibble_perm"], key.arrays["flags"]
    length = 6 * m * m
    assert sorted(perm.tolist()) == list(range(length))
    mask = flags ^ flags[perm]  # reversed once at the source or once at the destination
    x = images(2, m * bh, m * bw, 1)
    xn, yn = tanaka_nibbles(x, m), tanaka_nibbles(scheme.encrypt(x, key), m)
    undone = yn ^ (15 * mask).astype(np.uint8)
    assert np.array_equal(np.sort(undone, axis=2), np.sort(xn, axis=2))  # same multiset in every block
    assert np.array_equal(undone, xn[:, :, perm])  # output k takes input perm[k], the same in every block
    # the compiled six-channel plan carries exactly this mask, in Tanaka order inside every block
    plan_mask = scheme.plan(key).mask.reshape(1, m * bh, m * bw, 6)
    block_masks = to_blocks(plan_mask, m)[0].reshape(bh * bw, length)[:, tanaka_positions(m)]
    assert np.array_equal(block_masks, np.broadcast_to(mask, (bh * bw, length)))


def test_flags_follow_tanaka_code_or_are_independent():
    for m in (2, 4):
        length = 6 * m * m
        key = ciphers.create("le", block_size=m).generate_key(seed=5, image_size=(16, 16))
        perm, flags = key.arrays["nibble_perm"], key.arrays["flags"]
        assert np.array_equal(flags, perm > length / 2)
        assert flags.sum() == length // 2 - 1  # 47 of 96 for M = 4, as `key > key.size / 2`
    ind = ciphers.create("le", block_size=4, independent_flags=True)
    keys = [ind.generate_key(seed=s, image_size=(32, 32)) for s in range(20)]
    assert any(not np.array_equal(k.arrays["flags"], k.arrays["nibble_perm"] > 48) for k in keys)
    assert 0.4 < np.mean([k.arrays["flags"].mean() for k in keys]) < 0.6
    # the permutation comes from its own seed child: switching the flag rule leaves it unchanged
    tanaka = ciphers.create("le", block_size=4).generate_key(seed=3, image_size=(32, 32))
    other = ind.generate_key(seed=3, image_size=(32, 32))
    assert np.array_equal(tanaka.arrays["nibble_perm"], other.arrays["nibble_perm"])


def test_one_key_shared_by_all_blocks():
    scheme = ciphers.create("le", block_size=4)
    key = scheme.generate_key(seed=11, image_size=(16, 24))
    tile = images(2, 4, 4, 3)
    x = np.tile(tile, (1, 4, 6, 1))  # every block identical
    yb = to_blocks(scheme.encrypt(x, key), 4)
    assert np.array_equal(yb, np.broadcast_to(yb[:, :1], yb.shape))
    assert not np.array_equal(yb[:, 0], tile)



def test_key_determinism_and_properties(tmp_path):
    scheme = ciphers.create("le", block_size=4)
    k1, k2 = (scheme.generate_key(seed=1234, image_size=(32, 32)) for _ in range(2))
    k3 = scheme.generate_key(seed=1235, image_size=(32, 32))
    assert k1.fingerprint == k2.fingerprint != k3.fingerprint
    x = images(2, 32, 32)
    assert np.array_equal(scheme.encrypt(x, k1), scheme.encrypt(x, k2))
    assert not np.array_equal(scheme.encrypt(x, k1), scheme.encrypt(x, k3))
    ciphers.save_key(k1, tmp_path / "k.npz")
    assert np.array_equal(scheme.encrypt(x, ciphers.load_key(tmp_path / "k.npz")), scheme.encrypt(x, k1))
    assert scheme.invertible and not any(scheme.jpeg_aligned(s) for s in ("444", "420", "gray"))
    assert scheme.options == {"independent_flags": False}
    assert k1.arrays["nibble_perm"].shape == (96,) and k1.arrays["flags"].dtype == bool


def test_bad_inputs_give_clear_errors():
    scheme = ciphers.create("le", block_size=8)
    with pytest.raises(ValueError, match="not a multiple of the block size 8"):
        scheme.generate_key(seed=1, image_size=(12, 16))
    key = scheme.generate_key(seed=1, image_size=(16, 16))
    with pytest.raises(ValueError, match="was made for"):
        ciphers.create("le", block_size=8, independent_flags=True).encrypt(images(1, 16, 16), key)
    with pytest.raises(ValueError, match="has no option"):
        ciphers.create("le", block_size=8, flags="x")


def test_pair_plan_rejects_other_shapes():
    plan = ciphers.create("etc", block_size=4).plan(ciphers.create("etc", block_size=4).generate_key(1, (8, 8)))
    with pytest.raises(ValueError, match="nibble"):
        NibblePairPlan.from_nibble_plan(plan)
