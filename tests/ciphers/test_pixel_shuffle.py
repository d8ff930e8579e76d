"""Block scrambling + pixel shuffling for ViT: round trip, layout, shared-block shuffle, model transformation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cipher_helpers import images, nchw
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.ciphers.blocks import to_blocks
from etcbench.ciphers.keys import Key
from etcbench.ciphers.pixel_shuffle import (
    transform_patch_embedding,
    transform_patch_embedding_affine,
    transform_position_embedding,
)

NAME = "pixel-shuffle"
OFF = {"scramble": False, "shuffle": False, "negative_positive": False}
grid = st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=40, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3), options=st.fixed_dictionaries({
    "scramble": st.booleans(), "shuffle": st.booleans(), "negative_positive": st.booleans()}))
def test_round_trip_any_options(grid, seed, n, options):
    m, bh, bw = grid
    scheme = ciphers.create(NAME, block_size=m, **options)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(n, m * bh, m * bw, seed % 1000)
    y = scheme.encrypt(x, key)
    assert y.dtype == np.uint8 and y.shape == x.shape
    assert np.array_equal(scheme.decrypt(y, key), x)
    assert np.array_equal(x, images(n, m * bh, m * bw, seed % 1000))  # input untouched
    assert scheme.invertible


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1))
def test_scrambling_moves_whole_blocks(grid, seed):
    m, bh, bw = grid
    scheme = ciphers.create(NAME, block_size=m, **{**OFF, "scramble": True})
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 1)
    perm = key.arrays["block_perm"]
    assert sorted(perm.tolist()) == list(range(bh * bw))
    assert np.array_equal(to_blocks(scheme.encrypt(x, key), m), to_blocks(x, m)[:, perm])


@settings(max_examples=25, deadline=None)
@given(m=st.sampled_from([2, 4, 8]), bh=st.integers(1, 4), bw=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
       negative_positive=st.booleans())
def test_every_block_gets_the_same_in_block_permutation(m, bh, bw, seed, negative_positive):
    scheme = ciphers.create(NAME, block_size=m, scramble=False, negative_positive=negative_positive)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    tile = images(1, m, m, seed % 97)
    x = np.tile(tile, (1, bh, bw, 1))  # every block identical
    yb = to_blocks(scheme.encrypt(x, key), m)[0]
    assert (yb == yb[:1]).all()


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1))
def test_block_multisets_unchanged_without_np(grid, seed):
    m, bh, bw = grid
    scheme = ciphers.create(NAME, block_size=m)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 2)
    xb, yb = to_blocks(x, m), to_blocks(scheme.encrypt(x, key), m)
    flat = lambda b: np.sort(b.reshape(*b.shape[:2], -1), axis=-1)  # noqa: E731
    assert np.array_equal(flat(yb), flat(xb[:, key.arrays["block_perm"]]))


@settings(max_examples=25, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), negative_positive=st.booleans())
def test_layout_matches_torch_unfold(grid, seed, negative_positive):
    """``F.unfold`` flattens patches in (channel, row, column) order, like timm's patch embedding."""
    m, bh, bw = grid
    scheme = ciphers.create(NAME, block_size=m, negative_positive=negative_positive)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 3)
    a = key.arrays
    ux = F.unfold(nchw(x).float(), kernel_size=m, stride=m)  # (N, 3*M*M, n)
    uy = F.unfold(nchw(scheme.encrypt(x, key)).float(), kernel_size=m, stride=m)
    expected = ux[:, a["pixel_perm"]][:, :, a["block_perm"]]
    negpos = torch.from_numpy(a["negpos"])[None, :, None]
    assert torch.equal(uy, torch.where(negpos, 255 - expected, expected))


def test_hand_made_key_moves_the_expected_values():
    m = 2
    scheme = ciphers.create(NAME, block_size=m, scramble=False, negative_positive=True)
    key = scheme.generate_key(seed=0, image_size=(2, 4))
    k_red = np.ravel_multi_index((0, 0, 1), (3, m, m))  # red value of the top-right pixel
    k_blue = np.ravel_multi_index((2, 1, 0), (3, m, m))  # blue value of the bottom-left pixel
    pixel_perm = np.arange(3 * m * m)
    pixel_perm[[k_red, k_blue]] = [k_blue, k_red]
    negpos = np.zeros(3 * m * m, dtype=bool)
    negpos[np.ravel_multi_index((1, 1, 1), (3, m, m))] = True  # green value of the bottom-right pixel
    key = Key(key.scheme, key.block_size, key.image_size, key.options,
              {"block_perm": np.arange(2), "pixel_perm": pixel_perm, "negpos": negpos})
    x = images(1, 2, 4, 4)
    y = scheme.encrypt(x, key)
    expected = x.copy()
    for col0 in (0, 2):  # both blocks, same moves
        expected[0, 0, col0 + 1, 0] = x[0, 1, col0, 2]
        expected[0, 1, col0, 2] = x[0, 0, col0 + 1, 0]
        expected[0, 1, col0 + 1, 1] = 255 - x[0, 1, col0 + 1, 1]
    assert np.array_equal(y, expected)


def _tiny_vit():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                              num_classes=10, depth=1)
    return model.eval()


def test_model_transformation_gives_identical_logits():
    model = _tiny_vit()
    scheme = ciphers.create(NAME, block_size=8)
    key = scheme.generate_key(seed=11, image_size=(32, 32))
    assert not np.array_equal(key.arrays["block_perm"], np.arange(16))
    x = nchw(images(4, 32, 32, 5)).float() / 255
    enc = copy.deepcopy(model)
    with torch.no_grad():
        enc.patch_embed.proj.weight.copy_(transform_patch_embedding(model.patch_embed.proj.weight, key))
        enc.pos_embed.copy_(transform_position_embedding(model.pos_embed, key, model.num_prefix_tokens))
        plain_logits = model(x)
        y = scheme.encrypt(x, key)
        assert torch.allclose(enc(y), plain_logits, atol=1e-4)
        assert not torch.allclose(model(y), plain_logits, atol=1e-2)  # the plain model is lost on encrypted input
    # pure functions: the plain model's parameters are untouched
    assert not torch.equal(enc.pos_embed, model.pos_embed)


@pytest.mark.parametrize("normalised", [False, True])
def test_model_transformation_absorbs_np_through_the_bias(normalised):
    model = _tiny_vit()
    scheme = ciphers.create(NAME, block_size=8, negative_positive=True)
    key = scheme.generate_key(seed=12, image_size=(32, 32))
    x = nchw(images(3, 32, 32, 6)).float() / 255
    y = scheme.encrypt(x, key)
    prep = (lambda t: (t - 0.5) / 0.5) if normalised else (lambda t: t)
    proj = model.patch_embed.proj
    enc = copy.deepcopy(model)
    weight, bias = transform_patch_embedding_affine(proj.weight, proj.bias, key, np_offset=0.0 if normalised else 1.0)
    with torch.no_grad():
        enc.patch_embed.proj.weight.copy_(weight)
        enc.patch_embed.proj.bias.copy_(bias)
        enc.pos_embed.copy_(transform_position_embedding(model.pos_embed, key))
        assert torch.allclose(enc(prep(y)), model(prep(x)), atol=1e-4)
    with pytest.raises(ValueError, match="transform_patch_embedding_affine"):
        transform_patch_embedding(proj.weight, key)


def test_transformations_match_on_a_flat_weight_and_without_np():
    key = ciphers.create(NAME, block_size=4).generate_key(seed=1, image_size=(8, 8))
    w = torch.randn(5, 3, 4, 4)
    b = torch.randn(5)
    flat = transform_patch_embedding(w.reshape(5, -1), key)
    assert flat.shape == (5, 48)
    assert torch.equal(flat, transform_patch_embedding(w, key).reshape(5, -1))
    w2, b2 = transform_patch_embedding_affine(w, b, key, np_offset=1.0)
    assert torch.equal(w2, transform_patch_embedding(w, key)) and torch.equal(b2, b)
    assert torch.equal(flat, w.reshape(5, -1)[:, key.arrays["pixel_perm"]])


def test_model_transformation_errors():
    key = ciphers.create(NAME, block_size=8).generate_key(seed=1, image_size=(32, 32))
    with pytest.raises(ValueError, match=r"\[D, 3, 8, 8\]"):
        transform_patch_embedding(torch.zeros(4, 3, 16, 16), key)
    with pytest.raises(ValueError, match="17"):
        transform_position_embedding(torch.zeros(1, 16, 4), key)
    assert transform_position_embedding(torch.zeros(1, 16, 4), key, num_prefix_tokens=0).shape == (1, 16, 4)
    other = ciphers.create("etc", block_size=8).generate_key(seed=1, image_size=(32, 32))
    with pytest.raises(ValueError, match="needs a 'pixel-shuffle' key"):
        transform_patch_embedding(torch.zeros(4, 3, 8, 8), other)


def test_position_embedding_keeps_the_class_token():
    key = ciphers.create(NAME, block_size=8).generate_key(seed=2, image_size=(16, 32))
    pos = torch.arange(9 * 2, dtype=torch.float32).reshape(1, 9, 2)
    out = transform_position_embedding(pos, key)
    assert torch.equal(out[:, 0], pos[:, 0])
    assert torch.equal(out[:, 1:], pos[:, 1 + torch.from_numpy(key.arrays["block_perm"])])


def test_jpeg_alignment_and_options():
    assert not ciphers.create(NAME, block_size=16).jpeg_aligned("444")
    assert not ciphers.create(NAME, block_size=16, shuffle=False, negative_positive=True).jpeg_aligned("444")
    only_scramble = ciphers.create(NAME, block_size=16, shuffle=False)
    assert only_scramble.jpeg_aligned("420") and only_scramble.jpeg_aligned("444")
    assert not ciphers.create(NAME, block_size=8, shuffle=False).jpeg_aligned("420")
    with pytest.raises(ValueError, match="has no option"):
        ciphers.create(NAME, block_size=8, color_shuffle=True)


def test_key_determinism_and_independent_steps():
    scheme = ciphers.create(NAME, block_size=8, negative_positive=True)
    k1, k2 = (scheme.generate_key(seed=5, image_size=(32, 32)) for _ in range(2))
    assert k1.fingerprint == k2.fingerprint != scheme.generate_key(seed=6, image_size=(32, 32)).fingerprint
    no_shuffle = ciphers.create(NAME, block_size=8, shuffle=False, negative_positive=True).generate_key(5, (32, 32))
    for name in ("block_perm", "negpos"):
        assert np.array_equal(k1.arrays[name], no_shuffle.arrays[name])
    assert np.array_equal(no_shuffle.arrays["pixel_perm"], np.arange(192))
    assert k1.arrays["negpos"].shape == (192,) and 0 < k1.arrays["negpos"].sum() < 192


@settings(max_examples=20, deadline=None)
@given(grid=grid, seed=st.integers(0, 2**32 - 1), negative_positive=st.booleans())
def test_numpy_and_torch_give_identical_results(grid, seed, negative_positive):
    m, bh, bw = grid
    scheme = ciphers.create(NAME, block_size=m, negative_positive=negative_positive)
    key = scheme.generate_key(seed=seed, image_size=(m * bh, m * bw))
    x = images(2, m * bh, m * bw, 6)
    y = scheme.encrypt(x, key)
    xt = nchw(x)
    yt = scheme.encrypt(xt, key)
    assert yt.dtype == torch.uint8 and yt.shape == xt.shape
    assert np.array_equal(yt.permute(0, 2, 3, 1).numpy(), y)
    assert torch.equal(scheme.decrypt(yt, key), xt)
    yf = scheme.encrypt(xt.float() / 255, key)
    assert torch.allclose(yf * 255, yt.float(), atol=1e-3)
    yfn = scheme.encrypt(x.astype(np.float32) / 255, key)
    assert np.allclose(yfn * 255, y, atol=1e-3)
    assert np.array_equal(scheme.encrypt(x[0], key), y[0])
    assert torch.equal(scheme.encrypt(xt[1], key), yt[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    scheme = ciphers.create(NAME, block_size=16, negative_positive=True)
    key = scheme.generate_key(seed=3, image_size=(64, 64))
    xt = nchw(images(4, 64, 64))
    assert torch.equal(scheme.encrypt(xt.cuda(), key).cpu(), scheme.encrypt(xt, key))
    w = torch.randn(8, 3, 16, 16)
    assert torch.equal(transform_patch_embedding_affine(w.cuda(), None, key, 1.0)[0].cpu(),
                       transform_patch_embedding_affine(w, None, key, 1.0)[0])


def test_bad_inputs_give_clear_errors():
    scheme = ciphers.create(NAME, block_size=16)
    with pytest.raises(ValueError, match="not a multiple of the block size 16"):
        scheme.generate_key(seed=1, image_size=(30, 32))
    key = scheme.generate_key(seed=1, image_size=(32, 32))
    with pytest.raises(ValueError, match="was made for"):
        ciphers.create(NAME, block_size=16, shuffle=False).encrypt(images(1, 32, 32), key)
    with pytest.raises(ValueError, match="block size must be a positive integer"):
        ciphers.create(NAME, block_size=0)
