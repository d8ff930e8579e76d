"""NibblePairPlan: the two-gather byte execution equals the six-channel nibble GatherPlan (numpy and torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cipher_helpers import images, nchw
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench.ciphers.nibbles import NibblePairPlan, merge_nibbles, nibble_plan, split_nibbles
from etcbench.ciphers.plan import GatherPlan


def random_nibble_plan(h: int, w: int, seed: int) -> GatherPlan:
    """Any permutation of the six-channel image with any mask: more general than LE/ELE plans."""
    rng = np.random.default_rng(seed)
    size = h * w * 6
    return GatherPlan(rng.permutation(size), rng.random(size) < 0.5, (h, w, 6), mask_value=15)


def reference(plan: GatherPlan, x: np.ndarray) -> np.ndarray:
    return merge_nibbles(plan.apply(split_nibbles(x)))


# batch sizes cover one image, every packing width (1, 2, 4, 8, 16 images), padded chunks and several chunks
@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), n=st.sampled_from([1, 2, 3, 5, 8, 11, 16, 17, 33]),
       seed=st.integers(0, 2**32 - 1))
def test_pair_plan_equals_nibble_plan(h, w, n, seed):
    plan = random_nibble_plan(h, w, seed)
    pair = NibblePairPlan.from_nibble_plan(plan)
    x = images(n, h, w, seed % 1000)
    expected = reference(plan, x)
    y = pair.apply(x)
    assert y.dtype == np.uint8 and y.shape == x.shape and np.array_equal(y, expected)
    assert np.array_equal(pair.apply(x[:, ::-1]), reference(plan, x[:, ::-1]))  # non-contiguous input
    assert np.array_equal(pair.inverse().apply(y), x)
    assert np.array_equal(pair.inverse().apply(y), reference(plan.inverse(), y))
    # torch, channels first: the same bytes
    yt = pair.apply(nchw(x))
    assert yt.dtype == torch.uint8 and torch.equal(yt, nchw(expected))
    assert torch.equal(pair.inverse().apply(yt), nchw(x))


@settings(max_examples=15, deadline=None)
@given(m=st.sampled_from([1, 2, 4]), bh=st.integers(1, 3), bw=st.integers(1, 3), seed=st.integers(0, 1000))
def test_pair_plan_of_block_nibble_plans(m, bh, bw, seed):
    rng = np.random.default_rng(seed)
    n, length = bh * bw, 6 * m * m
    perms = rng.permuted(np.broadcast_to(np.arange(length), (n, length)), axis=1)
    plan = nibble_plan(perms, rng.random((n, length)) < 0.5, m, m * bh, m * bw, block_perm=rng.permutation(n))
    x = images(20, m * bh, m * bw, seed)
    assert np.array_equal(NibblePairPlan.from_nibble_plan(plan).apply(x), reference(plan, x))


def test_pair_plan_fields_on_a_hand_made_plan():
    # one pixel: lower halves <- upper halves (and back), reverse the lower half of R only
    perm = np.array([3, 4, 5, 0, 1, 2])
    plan = GatherPlan(perm, np.array([True, False, False, False, False, False]), (1, 1, 6), mask_value=15)
    pair = NibblePairPlan.from_nibble_plan(plan)
    assert pair.a.tolist() == [0, 1, 2] and pair.b.tolist() == [0, 1, 2]
    assert pair.sa.tolist() == [4, 4, 4] and pair.sb.tolist() == [4, 4, 4]
    assert pair.m.tolist() == [0x0F, 0, 0]
    x = np.array([[[[0x12, 0xAB, 0xF0]]]], dtype=np.uint8)
    assert pair.apply(x)[0, 0, 0].tolist() == [0x21 ^ 0x0F, 0xBA, 0x0F]


def test_pair_plan_rejects_byte_plans():
    plan = GatherPlan(np.arange(12), np.zeros(12, bool), (2, 2, 3))
    with pytest.raises(ValueError, match="nibble"):
        NibblePairPlan.from_nibble_plan(plan)
