"""Jigsaw-puzzle-solver attack (etcbench.attacks.jigsaw) and the layout scores (etcbench.attacks.layout)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

from etcbench import attacks, ciphers
from etcbench.attacks.jigsaw import (
    Jigsaw,
    apply_variants,
    assemble,
    compose_variants,
    decode_variant,
    encode_variant,
    global_candidates,
    invert_variant,
)
from etcbench.attacks.layout import direct_comparison, grid_symmetry_map, neighbour_comparison
from etcbench.ciphers import from_blocks, to_blocks
from etcbench.ciphers.etc import CHANNEL_PERMS

OFF = {"rotate_flip": False, "negative_positive": False, "color_permutation": False}


def _ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in zip(a, b)])


def _global_variants(images: np.ndarray) -> list[np.ndarray]:
    """The 96 whole-image rotations/flips x inversions x colour permutations of square images."""
    out = []
    for g in range(8):
        im = np.rot90(images, g % 4, axes=(1, 2))
        im = im[:, :, ::-1] if g >= 4 else im
        for neg in (False, True):
            for perm in CHANNEL_PERMS:
                out.append(np.ascontiguousarray((255 - im if neg else im)[..., perm]))
    return out


# ------------------------------------------------------------------------------------------ scramble only

@pytest.mark.parametrize("block_size, index", [(16, 0), (16, 6), (8, 9), (8, 11)])
@pytest.mark.parametrize("seed", [0, 1])
def test_scramble_only_recovered_exactly(natural_images, block_size, index, seed):
    plain = natural_images[index:index + 1]
    n = (64 // block_size) ** 2
    perm = np.random.default_rng(seed).permutation(n)
    scrambled = from_blocks(to_blocks(plain, block_size)[:, perm], 64, 64)
    out = Jigsaw(block_size, **OFF).reconstruct(scrambled)
    assert out.images.shape == plain.shape and out.images.dtype == np.uint8
    np.testing.assert_array_equal(out.images, plain)
    np.testing.assert_array_equal(out.extra["positions"][0], perm)
    np.testing.assert_array_equal(out.extra["variants"], 0)
    assert direct_comparison(out.extra["positions"], perm[None])[0] == 1.0


def test_scramble_only_with_cipher_scores(natural_images):
    """Measured (seed 3): M=16 direct 0.90, neighbour 0.93, SSIM 0.95; 12 of 16 tiles exact."""
    scheme = ciphers.create("etc", block_size=16, rotate_flip=False, negative_positive=False, color_shuffle=False)
    key = scheme.generate_key(seed=3, image_size=(64, 64))
    out = Jigsaw(16, **OFF).reconstruct(scheme.encrypt(natural_images, key))
    truth = np.broadcast_to(key.arrays["block_perm"], out.extra["positions"].shape)
    assert direct_comparison(out.extra["positions"], truth).mean() >= 0.8
    assert neighbour_comparison(out.extra["positions"], truth).mean() >= 0.85
    assert _ssim(out.images, natural_images).mean() >= 0.9
    assert (out.images == natural_images).all(axis=(1, 2, 3)).sum() >= 10


def test_rectangular_colour_scramble_only(natural_images):
    from skimage import data

    plain = data.astronaut()[64:128, 128:256][None]  # 4 x 8 grid
    perm = np.random.default_rng(1).permutation(32)
    scrambled = from_blocks(to_blocks(plain, 16)[:, perm], 64, 128)
    out = Jigsaw(16, **OFF).reconstruct(scrambled)
    np.testing.assert_array_equal(out.images, plain)
    np.testing.assert_array_equal(out.extra["positions"][0], perm)


# -------------------------------------------------------------------------------------------- full EtC

def test_full_etc_m16_scores(natural_images):
    """Measured (seed 3, 16 tiles, M=16): up to global symmetry direct 0.79, neighbour 0.83, SSIM 0.92
    (as is: direct 0.19, neighbour 0.02, SSIM 0.27 -- the global orientation/inversion/colours are arbitrary)."""
    scheme = ciphers.create("etc", block_size=16)
    key = scheme.generate_key(seed=3, image_size=(64, 64))
    out = Jigsaw(16).reconstruct(scheme.encrypt(natural_images, key))
    pos, var = out.extra["positions"], out.extra["variants"]
    assert pos.shape == var.shape == (16, 16) and pos.dtype == var.dtype == np.int64
    assert (np.sort(pos, axis=1) == np.arange(16)).all() and var.min() >= 0 and var.max() < 96
    # the documented global rule: the identity is the most frequent piece variant (square grid: every variant's
    # inverse is an allowed global symmetry; ties go to the lowest code)
    assert all(np.bincount(v, minlength=96).argmax() == 0 for v in var)
    truth = np.broadcast_to(key.arrays["block_perm"], pos.shape)
    nb = neighbour_comparison(pos, truth, up_to_symmetry=True)
    assert nb.mean() >= 0.7  # chance is about 2/16 for a random layout
    assert direct_comparison(pos, truth, up_to_symmetry=True).mean() >= 0.65
    best = np.max([_ssim(v, natural_images) for v in _global_variants(out.images)], axis=0)
    assert best.mean() >= 0.85
    assert _ssim(scheme.encrypt(natural_images, key), natural_images).mean() < 0.3  # the no-attack floor
    # where the layout is right, the pieces' variants undo their encryption up to ONE global transform (a flat
    # piece may come back in an equivalent orientation: its rotations look alike, so count the majority)
    enc = encode_variant(key.arrays["rot_flip"], key.arrays["negpos"], key.arrays["channel_perm"])
    solved = np.flatnonzero(nb == 1.0)
    assert len(solved) >= 8
    agree = [np.bincount(compose_variants(enc, var[i]), minlength=96).max() / 16 for i in solved]
    assert np.mean(agree) >= 0.9 and min(agree) >= 0.75


def test_full_etc_m8_above_chance(natural_images):
    """Measured (seed 3, M=8, 64 pieces): up to symmetry neighbour 0.23, direct 0.05 (chance ~ 0.03)."""
    scheme = ciphers.create("etc", block_size=8)
    key = scheme.generate_key(seed=3, image_size=(64, 64))
    out = Jigsaw(8).reconstruct(scheme.encrypt(natural_images[:8], key))
    truth = np.broadcast_to(key.arrays["block_perm"], out.extra["positions"].shape)
    assert neighbour_comparison(out.extra["positions"], truth, up_to_symmetry=True).mean() >= 0.15


# ----------------------------------------------------------------------------------------- unencrypted

def test_unencrypted_input_comes_back(natural_images):
    out = Jigsaw(16, **OFF).reconstruct(natural_images)
    assert _ssim(out.images, natural_images).mean() >= 0.9
    full = Jigsaw(16).reconstruct(natural_images)  # all variants allowed: the global rule picks the identity
    assert np.median(_ssim(full.images, natural_images)) >= 0.95
    assert (full.images == natural_images).all(axis=(1, 2, 3)).sum() >= 5


# --------------------------------------------------------------------------------- 1 channel, bad input

def test_grayscale_rectangular_planes():
    x = np.random.default_rng(0).integers(0, 256, (2, 48, 32, 1), dtype=np.uint8)
    out = Jigsaw(8).reconstruct(x)
    assert out.images.shape == x.shape and out.images.dtype == np.uint8
    pos, var = out.extra["positions"], out.extra["variants"]
    assert pos.shape == var.shape == (2, 24)
    assert (np.sort(pos, axis=1) == np.arange(24)).all()
    assert (decode_variant(var)[2] == 0).all()  # no colour permutation for one channel
    np.testing.assert_array_equal(out.images, assemble(to_blocks(x, 8), pos, var, 48, 32))


def test_grayscale_plane_scramble_only(natural_images):
    plane = natural_images[:2].mean(axis=3, keepdims=True).astype(np.uint8)[:, :, :48]  # (2, 64, 48, 1)
    perm = np.random.default_rng(2).permutation(12)
    out = Jigsaw(16, **OFF).reconstruct(from_blocks(to_blocks(plane, 16)[:, perm], 64, 48))
    assert out.images.shape == plane.shape
    assert neighbour_comparison(out.extra["positions"], np.broadcast_to(perm, (2, 12)), grid=(4, 3)).mean() >= 0.5


@pytest.mark.parametrize("bad, match", [
    (np.zeros((64, 64, 3), np.uint8), "shape"),
    (np.zeros((1, 64, 64, 2), np.uint8), "shape"),
    (np.zeros((1, 64, 64, 3), np.float32), "uint8"),
    (np.zeros((1, 60, 64, 3), np.uint8), "multiple of the block size"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        Jigsaw(16).reconstruct(bad)


def test_registry_and_options():
    attack = attacks.create("jigsaw", block_size=8, negative_positive=False)
    assert isinstance(attack, Jigsaw) and not attack.needs_training
    assert attack.options == {"rotate_flip": True, "negative_positive": False, "color_permutation": True,
                              "batch_size": None}
    with pytest.raises(ValueError):
        attacks.create("jigsaw", block_size=8, bogus=1)
    with pytest.raises(ValueError):
        Jigsaw(8, batch_size=0)


def test_batch_size_does_not_change_the_result(natural_images):
    scheme = ciphers.create("etc", block_size=16)
    y = scheme.encrypt(natural_images[:5], scheme.generate_key(seed=1, image_size=(64, 64)))
    a, b = Jigsaw(16, batch_size=2).reconstruct(y), Jigsaw(16).reconstruct(y)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.extra["variants"], b.extra["variants"])


# ----------------------------------------------------------------------------------------------- variants

variant = st.integers(0, 95)


@given(st.lists(st.tuples(st.integers(0, 7), st.booleans(), st.integers(0, 5)), min_size=1, max_size=4),
       st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_variant_encoding_matches_the_cipher(params, seed):
    """EtC's per-block rotation/flip, NP and colour permutation is apply_variants with encode_variant."""
    n = len(params)
    m = 4
    plain = np.random.default_rng(seed).integers(0, 256, (1, m, n * m, 3), dtype=np.uint8)
    scheme = ciphers.create("etc", block_size=m)
    key = scheme.generate_key(seed=0, image_size=(m, n * m))
    arrays = {"block_perm": np.arange(n), "rot_flip": np.array([p[0] for p in params]),
              "negpos": np.array([p[1] for p in params]), "channel_perm": np.array([p[2] for p in params])}
    key = type(key)(key.scheme, key.block_size, key.image_size, key.options, arrays)
    enc = to_blocks(scheme.encrypt(plain, key), m)
    v = encode_variant(arrays["rot_flip"], arrays["negpos"], arrays["channel_perm"])[None]
    np.testing.assert_array_equal(apply_variants(to_blocks(plain, m), v), enc)
    np.testing.assert_array_equal(apply_variants(enc, invert_variant(v)), to_blocks(plain, m))


@given(variant, variant, st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_variant_group_laws(v1, v2, seed):
    piece = np.random.default_rng(seed).integers(0, 256, (1, 1, 5, 5, 3), dtype=np.uint8)
    a = np.array([[v1]])
    b = np.array([[v2]])
    np.testing.assert_array_equal(apply_variants(apply_variants(piece, a), b),
                                  apply_variants(piece, compose_variants(a, b)))
    assert compose_variants(a, invert_variant(a))[0, 0] == 0
    assert tuple(int(t[0, 0]) for t in decode_variant(a)) == (v1 % 8, (v1 // 8) % 2, v1 // 16)
    with pytest.raises(ValueError):
        decode_variant(96)


# ------------------------------------------------------------------------------------------- layout scores

def test_layout_scores_hand_made():
    ident = np.arange(4)[None]
    assert direct_comparison(ident, ident)[0] == 1.0
    assert neighbour_comparison(ident, ident, (2, 2))[0] == 1.0
    swapped = np.array([[1, 0, 2, 3]])
    assert direct_comparison(swapped, ident)[0] == 0.5
    assert neighbour_comparison(swapped, ident, (2, 2))[0] == 0.25  # only (2, 3) keeps its relation
    shifted = np.array([[1, 2, 3, 0]])  # a row wrap is not a right neighbour
    assert direct_comparison(shifted, ident)[0] == 0.0
    assert neighbour_comparison(shifted, ident, (2, 2))[0] == 0.25  # only (0 above 2) survives
    # a 2 x 3 grid, the whole layout shifted one column right (wrapping): right pairs (0,1), (3,4) survive
    true = np.arange(6)[None]
    sol = np.array([[1, 2, 0, 4, 5, 3]])
    assert neighbour_comparison(sol, true, (2, 3))[0] == pytest.approx((2 + 3) / 7)
    # a rotated layout is wrong as is and right up to symmetry
    rot = grid_symmetry_map(3, 3, 1)[0][None]
    t9 = np.arange(9)[None]
    assert direct_comparison(rot, t9)[0] == pytest.approx(1 / 9)  # the centre stays
    assert neighbour_comparison(rot, t9)[0] == 0.0
    assert direct_comparison(rot, t9, up_to_symmetry=True)[0] == 1.0
    assert neighbour_comparison(rot, t9, up_to_symmetry=True)[0] == 1.0
    assert neighbour_comparison(rot, t9, up_to_symmetry=True, rotations=False)[0] == 0.0


def test_layout_scores_bad_input():
    with pytest.raises(ValueError, match="shape"):
        direct_comparison(np.zeros((2, 4), int), np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="grid"):
        neighbour_comparison(np.zeros((1, 6), int), np.arange(6)[None])
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        direct_comparison(np.full((1, 4), 4), np.arange(4)[None])


grids = st.sampled_from([(1, 1), (1, 4), (2, 2), (2, 3), (3, 3), (4, 2)])


@given(grids, st.integers(0, 2**31 - 1))
@settings(max_examples=50, deadline=None)
def test_layout_score_invariants(grid, seed):
    rows, cols = grid
    n = rows * cols
    rng = np.random.default_rng(seed)
    true = np.stack([rng.permutation(n) for _ in range(3)])
    sol = np.stack([rng.permutation(n) for _ in range(3)])
    d, nb = direct_comparison(sol, true), neighbour_comparison(sol, true, grid)
    assert ((d >= 0) & (d <= 1) & (nb >= 0) & (nb <= 1)).all()
    # relabelling the pieces changes nothing
    relabel = rng.permutation(n)
    np.testing.assert_allclose(direct_comparison(sol[:, relabel], true[:, relabel]), d)
    np.testing.assert_allclose(neighbour_comparison(sol[:, relabel], true[:, relabel], grid), nb)
    # the truth scores 1
    assert (direct_comparison(true, true) == 1).all() and (neighbour_comparison(true, true, grid) == 1).all()
    # a correct layout moved by any shape-preserving symmetry is perfect up to symmetry
    code = int(rng.choice([0, 2, 4, 6] if rows != cols else range(8)))
    moved = grid_symmetry_map(rows, cols, code)[0][true]
    assert (direct_comparison(moved, true, grid=grid, up_to_symmetry=True) == 1).all()
    assert (neighbour_comparison(moved, true, grid, up_to_symmetry=True) == 1).all()
    # up to symmetry is never below as is
    assert (direct_comparison(sol, true, grid=grid, up_to_symmetry=True) >= d).all()
    assert (neighbour_comparison(sol, true, grid, up_to_symmetry=True) >= nb).all()


# ------------------------------------------------------------------------------------------ global candidates

@pytest.mark.parametrize("shape, options, k", [
    ((2, 8, 8, 3), {}, 96),
    ((2, 8, 12, 3), {}, 4 * 2 * 6),
    ((2, 8, 8, 1), {}, 16),
    ((2, 12, 8, 1), {}, 8),
    ((2, 8, 8, 3), OFF, 1),
    ((2, 8, 12, 3), {"negative_positive": False, "color_permutation": False}, 4),
    ((2, 8, 8, 3), {"rotate_flip": False, "color_permutation": False}, 2),
    ((2, 8, 8, 3), {"rotate_flip": False, "negative_positive": False}, 6),
    ((2, 8, 8, 1), {"rotate_flip": False, "negative_positive": False}, 1),
])
def test_global_candidates_count(shape, options, k):
    x = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    cands, labels = global_candidates(x, **options)
    assert cands.shape == (k, *shape) and cands.dtype == np.uint8 and cands.flags.c_contiguous
    assert len(labels) == len(set(labels)) == k
    assert labels[0] == "id"
    np.testing.assert_array_equal(cands[0], x)
    # noise images: all candidates differ from each other
    assert len({c.tobytes() for c in cands}) == k


def test_global_candidates_labels():
    x = np.random.default_rng(1).integers(0, 256, (2, 6, 6, 3), dtype=np.uint8)
    cands, labels = global_candidates(x)
    expected = {"rot90": np.rot90(x, 1, axes=(1, 2)), "rot180": x[:, ::-1, ::-1], "rot270": np.rot90(x, 3, axes=(1, 2)),
                "flip-lr": x[:, :, ::-1], "flip-ud": x[:, ::-1], "transpose": x.transpose(0, 2, 1, 3),
                "anti-transpose": x[:, ::-1, ::-1].transpose(0, 2, 1, 3), "np": 255 - x, "bgr": x[..., ::-1],
                "gbr": x[..., [1, 2, 0]], "flip-lr+np+gbr": 255 - x[:, :, ::-1][..., [1, 2, 0]],
                "rot90+np": 255 - np.rot90(x, 1, axes=(1, 2))}
    for label, image in expected.items():
        np.testing.assert_array_equal(cands[labels.index(label)], image, err_msg=label)
    rect = x[:, :4]
    rect_labels = global_candidates(rect, negative_positive=False, color_permutation=False)[1]
    assert rect_labels == ["id", "rot180", "flip-lr", "flip-ud"]
    assert global_candidates(x[..., :1])[1][8:10] == ["np", "rot90+np"]


@given(st.sampled_from([(0, 1, 1), (1, 1, 0), (0, 0, 1), (1, 0, 0), (1, 1, 1)]), st.integers(0, 2**31 - 1))
@settings(max_examples=15, deadline=None)
def test_global_candidates_follow_the_variant_encoding(options, seed):
    """A square image is one piece: candidate k is apply_variants with the k-th enabled variant code."""
    rotate_flip, negative_positive, color_permutation = (bool(o) for o in options)
    x = np.random.default_rng(seed).integers(0, 256, (2, 5, 5, 3), dtype=np.uint8)
    cands, _ = global_candidates(x, rotate_flip=rotate_flip, negative_positive=negative_positive,
                                 color_permutation=color_permutation)
    g, neg, col = decode_variant(np.arange(96))
    enabled = (rotate_flip | (g == 0)) & (negative_positive | (neg == 0)) & (color_permutation | (col == 0))
    codes = np.flatnonzero(enabled)
    assert len(codes) == len(cands)
    for k, code in enumerate(codes):
        np.testing.assert_array_equal(cands[k], apply_variants(x[:, None], np.full((2, 1), code))[:, 0])


@given(st.integers(0, 2**31 - 1), st.sampled_from([(5, 5, 3), (4, 7, 3), (6, 6, 1), (6, 3, 1)]))
@settings(max_examples=30, deadline=None)
def test_global_candidates_undo_any_global_transform(seed, shape):
    """Each image transformed by its own random global symmetry/inversion/colour order: exactly one candidate of
    the result is the original image (drawn independently of the implementation)."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    plain = rng.integers(0, 256, (3, *shape), dtype=np.uint8)
    moved = []
    for image in plain:
        g = int(rng.choice(range(8) if h == w else [0, 2, 4, 6]))
        image = np.rot90(image, g % 4)
        image = image[:, ::-1] if g >= 4 else image
        image = 255 - image if rng.integers(2) else image
        moved.append(image[..., CHANNEL_PERMS[rng.integers(6)]] if c == 3 else image)
    cands, _ = global_candidates(np.stack(moved))
    hits = (cands == plain[None]).all(axis=(2, 3, 4))  # (K, N)
    np.testing.assert_array_equal(hits.sum(axis=0), 1)


def test_global_candidates_bad_input():
    with pytest.raises(ValueError, match="shape"):
        global_candidates(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        global_candidates(np.zeros((1, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        global_candidates(np.zeros((1, 8, 8, 3), np.float32))
