"""Grayscale-based EtC (etc-gray, etc-gray-444); its colour helpers (etcbench.ciphers.ycbcr) are in test_ycbcr.py.

JPEG survival (natural images, grayscale JPEG quality 90 of the plane, measured when this test was written):
with M = 8 or 16 the decrypted images lose at most ~0.15 dB PSNR per image (mean ~0.01 dB) against a grayscale
JPEG of the unencrypted plane (~37.7 dB for 4:2:0, ~40.0 dB for 4:4:4); with M = 4 (not aligned to the 8x8 DCT
blocks) they lose 4-5 dB on average (1.5 dB at least).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from cipher_helpers import images, nchw
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from etcbench import ciphers
from etcbench.ciphers.blocks import to_blocks
from etcbench.ciphers.etc_gray import EtCGray, EtCGray444
from etcbench.ciphers.ycbcr import from_plane, to_plane
from etcbench.metrics import psnr_per_image

NAMES = {"etc-gray": "420", "etc-gray-444": "444"}
OFF = {"scramble": False, "rotate_flip": False, "negative_positive": False}

# (block size, blocks down, blocks across) of a 4:2:0-compatible image: sides are multiples of 2M
gray_grid = st.tuples(st.sampled_from([2, 4, 8]), st.integers(1, 3), st.integers(1, 3))
options = st.fixed_dictionaries({"scramble": st.booleans(), "rotate_flip": st.booleans(),
                                 "negative_positive": st.booleans(),
                                 "np_fraction": st.sampled_from(["random", "half"])})


def colour_round_trip(x, chroma: str):
    return from_plane(to_plane(x, chroma), chroma)


def gray_jpeg(planes: np.ndarray, quality: int = 90) -> np.ndarray:
    """Grayscale JPEG (Pillow, mode "L") of ``(N, Hp, Wp, 1)`` planes, decoded."""
    out = []
    for plane in planes[..., 0]:
        buf = io.BytesIO()
        Image.fromarray(plane, mode="L").save(buf, format="JPEG", quality=quality)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            assert im.mode == "L"
            out.append(np.asarray(im))
    return np.stack(out)[..., None]


# the scheme ------------------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(NAMES)), grid=gray_grid, seed=st.integers(0, 2**32 - 1), n=st.integers(1, 3),
       options=options)
def test_round_trip_is_the_colour_round_trip_exactly(name, grid, seed, n, options):
    m, bh, bw = grid
    h, w = 2 * m * bh, 2 * m * bw
    chroma = NAMES[name]
    scheme = ciphers.create(name, block_size=m, **options)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(n, h, w, seed % 1000)
    y = scheme.encrypt(x, key)
    assert y.dtype == np.uint8 and y.shape == (n, *scheme.encrypted_shape(h, w)[1:], 1)
    assert np.array_equal(scheme.decrypt(y, key), colour_round_trip(x, chroma))
    # the block steps alone are an exact bijection of the plane
    plane = to_plane(x, chroma)
    plan = scheme.plan(key)
    assert plan.bijective and np.array_equal(plan.apply(plane), y)
    assert np.array_equal(plan.inverse().apply(y), plane)
    # torch gives the same, both ways
    yt = scheme.encrypt(nchw(x), key)
    assert yt.shape == (n, 1, *y.shape[1:3]) and np.array_equal(yt.permute(0, 2, 3, 1).numpy(), y)
    assert torch.equal(scheme.decrypt(yt, key), nchw(colour_round_trip(x, chroma)))
    assert np.array_equal(x, images(n, h, w, seed % 1000))  # the input is not modified


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(NAMES)), grid=gray_grid, seed=st.integers(0, 2**32 - 1),
       frac=st.sampled_from(["random", "half"]))
def test_without_negative_positive_every_block_keeps_its_values(name, grid, seed, frac):
    m, bh, bw = grid
    h, w = 2 * m * bh, 2 * m * bw
    scheme = ciphers.create(name, block_size=m, negative_positive=False, np_fraction=frac)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(2, h, w, 1)
    pb = to_blocks(to_plane(x, NAMES[name]), m).reshape(2, -1, m * m)
    yb = to_blocks(scheme.encrypt(x, key), m).reshape(2, -1, m * m)
    perm = key.arrays["block_perm"]
    assert sorted(perm.tolist()) == list(range(pb.shape[1]))
    # the multiset of values of output block j is that of plane block block_perm[j]
    assert np.array_equal(np.sort(yb, axis=-1), np.sort(pb[:, perm], axis=-1))


@settings(max_examples=25, deadline=None)
@given(name=st.sampled_from(sorted(NAMES)), grid=gray_grid, seed=st.integers(0, 2**32 - 1),
       frac=st.sampled_from(["random", "half"]))
def test_negative_positive_alone_inverts_the_flagged_blocks(name, grid, seed, frac):
    m, bh, bw = grid
    h, w = 2 * m * bh, 2 * m * bw
    scheme = ciphers.create(name, block_size=m, **{**OFF, "negative_positive": True}, np_fraction=frac)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(2, h, w, 3)
    pb, yb = to_blocks(to_plane(x, NAMES[name]), m), to_blocks(scheme.encrypt(x, key), m)
    flags = key.arrays["negpos"]
    assert np.array_equal(yb[:, flags], 255 - pb[:, flags])
    assert np.array_equal(yb[:, ~flags], pb[:, ~flags])
    if frac == "half":
        assert flags.sum() == flags.size // 2


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(NAMES)), grid=gray_grid, seed=st.integers(0, 2**32 - 1))
def test_scrambling_and_rotation_move_whole_blocks(name, grid, seed):
    m, bh, bw = grid
    h, w = 2 * m * bh, 2 * m * bw
    x = images(1, h, w, 2)
    pb = to_blocks(to_plane(x, NAMES[name]), m)[0, ..., 0]
    scramble = ciphers.create(name, block_size=m, **{**OFF, "scramble": True})
    key = scramble.generate_key(seed=seed, image_size=(h, w))
    assert np.array_equal(to_blocks(scramble.encrypt(x, key), m)[0, ..., 0], pb[key.arrays["block_perm"]])
    rotate = ciphers.create(name, block_size=m, **{**OFF, "rotate_flip": True})
    key = rotate.generate_key(seed=seed, image_size=(h, w))
    yb = to_blocks(rotate.encrypt(x, key), m)[0, ..., 0]
    for j, code in enumerate(key.arrays["rot_flip"]):  # block by block is fine in a test
        expected = np.rot90(pb[j], k=int(code) % 4)
        assert np.array_equal(yb[j], expected[:, ::-1] if code >= 4 else expected)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(NAMES)), grid=gray_grid, seed=st.integers(0, 2**32 - 1))
def test_parity_batching_and_float_input(name, grid, seed):
    m, bh, bw = grid
    h, w = 2 * m * bh, 2 * m * bw
    scheme = ciphers.create(name, block_size=m)
    key = scheme.generate_key(seed=seed, image_size=(h, w))
    x = images(3, h, w, 6)
    xt = nchw(x)
    y, yt = scheme.encrypt(x, key), scheme.encrypt(xt, key)
    assert np.array_equal(yt.permute(0, 2, 3, 1).numpy(), y)
    assert np.array_equal(scheme.encrypt(x[1], key), y[1]) and torch.equal(scheme.encrypt(xt[2], key), yt[2])
    rt = scheme.decrypt(y, key)
    assert np.array_equal(scheme.decrypt(y[0], key), rt[0]) and torch.equal(scheme.decrypt(yt[1], key), nchw(rt)[1])
    for dtype in (np.float32, np.float64):
        yf = scheme.encrypt(x.astype(dtype) / 255, key)
        assert yf.dtype == dtype and np.array_equal(yf, y.astype(dtype) / 255)
        xf = scheme.decrypt(y.astype(dtype) / 255, key)
        assert xf.dtype == dtype and np.array_equal(xf, rt.astype(dtype) / 255)
    yf = scheme.encrypt(xt.float() / 255, key)
    assert yf.dtype == torch.float32 and torch.equal(yf, yt.float() / 255)
    # float input is quantised by rounding to the nearest level (values off by less than half a level)
    for off in (-0.3, 0.3):
        assert np.array_equal(scheme.encrypt(np.clip(x + off, 0, 255) / 255, key), y / 255)
        assert torch.equal(scheme.encrypt((xt.float() + off).clamp(0, 255) / 255, key), yt.float() / 255)
    assert torch.equal(scheme.decrypt(yt.double() / 255, key), nchw(rt).double() / 255)


def test_shapes_and_the_plane_subsampling():
    x = images(2, 64, 64)
    for name, rows, cols in (("etc-gray", 96, 64), ("etc-gray-444", 64, 192)):
        scheme = ciphers.create(name, block_size=8)
        key = scheme.generate_key(seed=1, image_size=(64, 64))
        assert scheme.encrypted_shape(64, 64) == (1, rows, cols)
        assert scheme.encrypt(x, key).shape == (2, rows, cols, 1)
        assert scheme.encrypt(nchw(x), key).shape == (2, 1, rows, cols)
        assert scheme.encrypt(x[0], key).shape == (rows, cols, 1)
        assert scheme.encrypt(nchw(x)[0], key).shape == (1, rows, cols)
        assert scheme.decrypt(scheme.encrypt(x, key), key).shape == x.shape
        assert key.image_size == (64, 64) and key.arrays["block_perm"].shape == (rows // 8 * cols // 8,)
        assert scheme.plane_subsampling == scheme.chroma == NAMES[name]
    assert isinstance(ciphers.create("etc-gray", block_size=8), EtCGray)
    assert type(ciphers.create("etc-gray-444", block_size=8)) is EtCGray444
    assert ciphers.create("etc", block_size=8).plane_subsampling is None
    assert ciphers.create("etc", block_size=8).encrypted_shape(32, 48) == (3, 32, 48)


def test_jpeg_alignment_is_that_of_grayscale_jpeg():
    for name in NAMES:
        for subsampling in ("444", "420", "gray"):
            assert ciphers.create(name, block_size=8).jpeg_aligned(subsampling)
            assert ciphers.create(name, block_size=16).jpeg_aligned(subsampling)
            assert not ciphers.create(name, block_size=4).jpeg_aligned(subsampling)
            assert not ciphers.create(name, block_size=12).jpeg_aligned(subsampling)


def test_bad_sizes_and_planes_give_clear_errors():
    scheme = ciphers.create("etc-gray", block_size=8)
    with pytest.raises(ValueError, match=r"multiples of 2 x block size = 16.*got 24x32"):
        scheme.generate_key(seed=1, image_size=(24, 32))
    with pytest.raises(ValueError, match="got 32x40"):
        scheme.encrypted_shape(32, 40)
    ciphers.create("etc-gray-444", block_size=8).generate_key(seed=1, image_size=(24, 40))  # 4:4:4 needs M only
    with pytest.raises(ValueError, match="multiples of the block size 8"):
        ciphers.create("etc-gray-444", block_size=8).generate_key(seed=1, image_size=(24, 36))
    key = scheme.generate_key(seed=1, image_size=(64, 64))
    message = rf"\(N, 96, 64, 1\) numpy planes of 96x64 for key {key.key_id} \(64x64 images, chroma 4:2:0\)"
    with pytest.raises(ValueError, match=message):
        scheme.decrypt(np.zeros((2, 64, 64, 3), np.uint8), key)  # RGB images are not planes
    with pytest.raises(ValueError, match=r"\(N, 1, 96, 64\) torch planes of 96x64"):
        scheme.decrypt(torch.zeros(2, 96, 64, 1, dtype=torch.uint8), key)  # channels-last torch is refused
    with pytest.raises(ValueError, match="dtype int16"):
        scheme.decrypt(np.zeros((96, 64, 1), np.int16), key)
    with pytest.raises(ValueError, match="generated for 64x64"):
        scheme.encrypt(images(1, 32, 64), key)
    with pytest.raises(ValueError, match="np_fraction"):
        ciphers.create("etc-gray", block_size=8, np_fraction="most")
    with pytest.raises(ValueError, match="has no option color_shuffle"):
        ciphers.create("etc-gray", block_size=8, color_shuffle=True)


def test_keys_of_other_schemes_options_and_sizes_are_refused():
    x = images(1, 32, 32)
    gray = ciphers.create("etc-gray", block_size=8)
    key = gray.generate_key(seed=1, image_size=(32, 32))
    for other in (ciphers.create("etc-gray-444", block_size=8), ciphers.create("etc", block_size=8),
                  ciphers.create("etc-gray", block_size=16), ciphers.create("etc-gray", block_size=8, scramble=False)):
        with pytest.raises(ValueError, match="was made for"):
            other.encrypt(x, key)
        if other.plane_subsampling is not None:  # etc refuses the one-channel plane before looking at the key
            with pytest.raises(ValueError, match="was made for"):
                other.decrypt(gray.encrypt(x, key), key)
    etc_key = ciphers.create("etc", block_size=8).generate_key(seed=1, image_size=(32, 32))
    with pytest.raises(ValueError, match="was made for"):
        gray.encrypt(x, etc_key)


def test_keys_are_deterministic_and_steps_independent(tmp_path):
    scheme = ciphers.create("etc-gray", block_size=8)
    k1, k2 = (scheme.generate_key(seed=5, image_size=(32, 32)) for _ in range(2))
    assert k1.fingerprint == k2.fingerprint != scheme.generate_key(seed=6, image_size=(32, 32)).fingerprint
    ciphers.save_key(k1, tmp_path / "k.npz")
    loaded = ciphers.load_key(tmp_path / "k.npz")
    x = images(2, 32, 32)
    rebuilt = ciphers.create(loaded.scheme, loaded.block_size, **loaded.options)
    assert np.array_equal(rebuilt.encrypt(x, loaded), scheme.encrypt(x, k1))
    no_rot = ciphers.create("etc-gray", block_size=8, rotate_flip=False).generate_key(seed=5, image_size=(32, 32))
    for name in ("block_perm", "negpos"):
        assert np.array_equal(k1.arrays[name], no_rot.arrays[name])
    assert not no_rot.arrays["rot_flip"].any() and k1.arrays["rot_flip"].any()


# JPEG survival: the point of the scheme --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NAMES))
def test_aligned_blocks_survive_grayscale_jpeg(name, natural_images):
    x = natural_images
    chroma = NAMES[name]
    reference = psnr_per_image(x, from_plane(gray_jpeg(to_plane(x, chroma)), chroma))
    assert reference.mean() > 33
    for m in (8, 16):
        scheme = ciphers.create(name, block_size=m)
        key = scheme.generate_key(seed=3, image_size=x.shape[1:3])
        psnr = psnr_per_image(x, scheme.decrypt(gray_jpeg(scheme.encrypt(x, key)), key))
        assert np.abs(psnr - reference).max() < 0.5, (m, psnr - reference)
    scheme = ciphers.create(name, block_size=4)  # blocks smaller than JPEG's 8x8: scrambling breaks its blocks
    key = scheme.generate_key(seed=3, image_size=x.shape[1:3])
    loss = reference - psnr_per_image(x, scheme.decrypt(gray_jpeg(scheme.encrypt(x, key)), key))
    assert loss.mean() > 2.5 and loss.min() > 1


@pytest.mark.parametrize("name", ["etc-gray", "etc-gray-444"])
def test_public_layout_is_the_key_free_part_of_encryption(name, natural_images):
    scheme = ciphers.create(name, block_size=16, scramble=False, rotate_flip=False, negative_positive=False)
    key = scheme.generate_key(seed=4, image_size=(64, 64))
    layout = scheme.public_layout(natural_images)
    # with every keyed step off, encryption is exactly the public layout, and decryption its public inverse
    assert np.array_equal(layout, scheme.encrypt(natural_images, key))
    assert np.array_equal(scheme.from_public_layout(layout), scheme.decrypt(layout, key))
    assert scheme.from_public_layout(layout).shape == natural_images.shape


def test_rgb_schemes_have_the_identity_as_public_layout(natural_images):
    scheme = ciphers.create("etc", block_size=16)
    assert np.array_equal(scheme.public_layout(natural_images), natural_images)
    assert np.array_equal(scheme.from_public_layout(natural_images), natural_images)
