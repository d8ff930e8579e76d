"""ELE (Madono et al.): round trip, block scrambling + per-block LE keys, Madono-order parity, numpy/torch parity."""

from __future__ import annotations

import numpy as np
import pytest
from cipher_helpers import grid, images, tanaka_le, tanaka_nibbles
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.ciphers.blocks import from_blocks, to_blocks
from etcbench.ciphers.keys import Key


def shuffle_blocks(x: np.ndarray, block_perm: np.ndarray, m: int) -> np.ndarray:
    return from_blocks(to_blocks(x, m)[:, block_perm], x.shape[1], x.shape[2])


@settings(max_examples=40, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), independent=st.booleans())
def test_round_trip_and_written_order_parity(grid, seed, n, independent):
    m, bh, bw = grid
    scheme = ciphers.create("ele", block_size=m, independent_flags=independent)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(n, m * bh, m * bw, seed % 1000)
    y = scheme.encrypt(x, key)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert np.array_equal(scheme.decrypt(y, key), x)
    assert np.array_equal(x, images(n, m * bh, m * bw, seed % 1000))  # input untouched
    a = key.arrays
    # written order: scramble first, then LE with the key of the output (scrambled) position
    expected = tanaka_le(shuffle_blocks(x, a["block_perm"], m), a["nibble_perm"], a["flags"], m)
    assert np.array_equal(y, expected)


@settings(max_examples=20, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1))
def test_madono_order_is_the_same_cipher_with_reindexed_keys(grid, seed):
    m, bh, bw = grid
    scheme = ciphers.create("ele", block_size=m)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    a = key.arrays
    x = images(2, m * bh, m * bw, 5)
    # Madono's code: per-block LE keyed by the source position i, then the block shuffle
    inv = np.argsort(a["block_perm"])
    madono = shuffle_blocks(tanaka_le(x, a["nibble_perm"][inv], a["flags"][inv], m), a["block_perm"], m)
    assert np.array_equal(scheme.encrypt(x, key), madono)


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), independent=st.booleans())
def test_blocks_move_by_block_perm_and_values_are_a_shuffle_up_to_reversal(grid, seed, independent):
    m, bh, bw = grid
    scheme = ciphers.create("ele", block_size=m, independent_flags=independent)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    a = key.arrays
    nb, length = bh * bw, 6 * m * m
    assert sorted(a["block_perm"].tolist()) == list(range(nb))
    assert a["nibble_perm"].shape == (nb, length) and a["flags"].shape == (nb, length)
    assert all(sorted(row.tolist()) == list(range(length)) for row in a["nibble_perm"])
    x = images(2, m * bh, m * bw, 9)
    xn, yn = tanaka_nibbles(x, m), tanaka_nibbles(scheme.encrypt(x, key), m)
    folded = np.minimum(yn, 15 - yn)  # v and 15 - v fold together: reversal-blind
    # output block j holds the nibbles of input block block_perm[j], up to reversal
    assert np.array_equal(np.sort(folded, axis=2), np.sort(np.minimum(xn, 15 - xn)[:, a["block_perm"]], axis=2))
    # undoing the reversal (flags[j] XOR flags[j, perm[j]]) gives exactly the gathered input nibbles
    mask = a["flags"] ^ np.take_along_axis(a["flags"], a["nibble_perm"], axis=1)
    undone = yn ^ (15 * mask).astype(np.uint8)
    gathered = np.take_along_axis(xn[:, a["block_perm"]], np.broadcast_to(a["nibble_perm"], undone.shape), axis=2)
    assert np.array_equal(undone, gathered)
    # so the multiset of nibble values of the whole image is preserved once the reversal is undone
    assert np.array_equal(np.sort(undone.ravel()), np.sort(xn.ravel()))


def test_identical_blocks_encrypt_differently_per_position():
    scheme = ciphers.create("ele", block_size=4)
    key = scheme.generate_key(seed=17, image_size=(16, 16))
    x = np.tile(images(1, 4, 4, 2), (1, 4, 4, 1))  # 16 identical blocks
    yb = to_blocks(scheme.encrypt(x, key), 4)[0].reshape(16, -1)
    assert len({row.tobytes() for row in yb}) == 16  # a different key in every block
    assert len({row.tobytes() for row in key.arrays["nibble_perm"]}) == 16


def test_flags_follow_each_block_key():
    length = 96
    key = ciphers.create("ele", block_size=4).generate_key(seed=8, image_size=(32, 32))
    perms, flags = key.arrays["nibble_perm"], key.arrays["flags"]
    assert np.array_equal(flags, perms > length / 2)
    assert (flags.sum(axis=1) == length // 2 - 1).all()
    ind = ciphers.create("ele", block_size=4, independent_flags=True).generate_key(seed=8, image_size=(32, 32))
    assert not np.array_equal(ind.arrays["flags"], ind.arrays["nibble_perm"] > length / 2)
    assert 0.4 < ind.arrays["flags"].mean() < 0.6
    # separate seed children: the permutations do not depend on the flag rule
    assert np.array_equal(ind.arrays["nibble_perm"], perms)
    assert np.array_equal(ind.arrays["block_perm"], key.arrays["block_perm"])



def test_key_determinism_and_properties():
    scheme = ciphers.create("ele", block_size=4)
    k1, k2 = (scheme.generate_key(seed=99, image_size=(32, 32)) for _ in range(2))
    k3 = scheme.generate_key(seed=100, image_size=(32, 32))
    assert k1.fingerprint == k2.fingerprint != k3.fingerprint
    x = images(2, 32, 32)
    assert np.array_equal(scheme.encrypt(x, k1), scheme.encrypt(x, k2))
    assert not np.array_equal(scheme.encrypt(x, k1), scheme.encrypt(x, k3))
    assert scheme.invertible and not any(scheme.jpeg_aligned(s) for s in ("444", "420", "gray"))
    assert type(scheme).name == "ele" and type(ciphers.create("le", block_size=4)).name == "le"
    # an LE key does not fit ELE
    le_key = ciphers.create("le", block_size=4).generate_key(seed=99, image_size=(32, 32))
    with pytest.raises(ValueError, match="was made for"):
        scheme.encrypt(x, le_key)
    assert isinstance(k1, Key) and "nibble_perm" not in repr(k1)
