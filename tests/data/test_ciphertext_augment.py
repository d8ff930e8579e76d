"""Augmentation of ciphertexts: mixup and block CutMix commute with exactly the schemes declared block-safe.

Every built-in scheme is checked both ways: where :func:`block_safe_reason` says safe, augmenting ciphertexts equals
encrypting augmented plain images (mixup) or decrypts to plain images pasted block by block (block CutMix); where it
says unsafe, the same comparison fails.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.ciphers.etc import CHANNEL_PERMS
from etcbench.ciphers.ycbcr import from_plane, to_plane
from etcbench.data.ciphertext_augment import (
    AUGMENTS,
    MixDraw,
    apply,
    block_safe_reason,
    draw,
    mix,
    soft_targets,
)

N, SIZE, BLOCK = 4, 16, 4
BUILT_IN = ["plain", "etc", "etc-gray", "etc-gray-444", "pixel-shuffle", "le", "ele", "pe", "pe-fixed"]
OPTIONS = {"pixel-shuffle": {"negative_positive": True}}  # exercise NP there too
MIXUP_SAFE = {"plain", "etc", "pixel-shuffle", "pe-fixed"}
CUTMIX_SAFE = {"plain", "etc", "pixel-shuffle", "pe-fixed", "pe", "le", "ele"}
FAST = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def scheme_and_key(name: str) -> tuple[ciphers.Scheme, ciphers.Key]:
    scheme = ciphers.create(name, block_size=BLOCK, **OPTIONS.get(name, {}))
    return scheme, scheme.generate_key(seed=7, image_size=(SIZE, SIZE))


def plain_images(seed: int, n: int = N) -> torch.Tensor:
    """``n`` distinct random uint8 ``(3, SIZE, SIZE)`` images."""
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, 3, SIZE, SIZE), dtype=np.uint8))


def labels_of(n: int = N) -> torch.Tensor:
    return torch.eye(n, dtype=torch.float64)


def derangement(shift: int) -> torch.Tensor:
    """A permutation without fixed points (every image gets another partner)."""
    return torch.roll(torch.arange(N), shift)


def encrypt_float(scheme: ciphers.Scheme, key: ciphers.Key, x: torch.Tensor) -> torch.Tensor:
    """Float64 ciphertexts in [0, 1] of float64 images; uint8-only schemes get the nearest uint8 images."""
    try:
        return scheme.encrypt(x, key).double()
    except ValueError:  # LE and ELE split 8-bit values: the best they can do is the rounded image
        return scheme.encrypt((x * 255).round().to(torch.uint8), key).double() / 255


def blocks(x: torch.Tensor, m: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, H/m, W/m, C*m*m)``: one row per ``m x m`` block."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // m, m, w // m, m).permute(0, 2, 4, 1, 3, 5).reshape(n, h // m, w // m, -1)


def box_draw(data: st.DataObject, grid_h: int, grid_w: int, block: int, proper: bool) -> MixDraw:
    """A block CutMix draw with a rectangle chosen by hypothesis (``proper``: neither empty nor the whole grid, and
    every image gets another partner)."""
    low = 1 if proper else 0
    top = data.draw(st.integers(0, grid_h - low))
    bottom = data.draw(st.integers(top + low, grid_h))
    left = data.draw(st.integers(0, grid_w - low))
    right = data.draw(st.integers(left + low, grid_w))
    if proper and (bottom - top) * (right - left) == grid_h * grid_w:
        bottom -= 1
    area = (bottom - top) * (right - left)
    perm = derangement(data.draw(st.integers(1, N - 1))) if proper else torch.tensor(
        data.draw(st.permutations(range(N))))
    return MixDraw("block_cutmix", 1 - area / (grid_h * grid_w), perm, (top, bottom, left, right), block)


# the declarations -------------------------------------------------------------------------------------------------
def test_the_declarations_of_the_built_in_schemes():
    for name in BUILT_IN:
        cls = ciphers.SCHEMES.get(name)
        assert (block_safe_reason("mixup", cls) is None) == (name in MIXUP_SAFE), name
        assert (block_safe_reason("block_cutmix", cls) is None) == (name in CUTMIX_SAFE), name
        assert block_safe_reason("none", cls) is None
    assert AUGMENTS == ("none", "mixup", "block_cutmix")


def test_a_refusal_is_one_line_naming_the_scheme_and_the_augmentation():
    for name, augment in [("pe", "mixup"), ("le", "mixup"), ("etc-gray", "mixup"), ("etc-gray", "block_cutmix")]:
        reason = block_safe_reason(augment, ciphers.SCHEMES.get(name))
        assert reason and "\n" not in reason and repr(name) in reason and augment in reason
    assert "own key" in block_safe_reason("mixup", ciphers.SCHEMES.get("pe"))


def test_a_plug_in_scheme_that_declares_nothing_is_unsafe():
    class Opaque(ciphers.Scheme):
        name = "opaque"

    assert block_safe_reason("mixup", Opaque) and block_safe_reason("block_cutmix", Opaque)
    assert block_safe_reason("none", Opaque) is None


def test_block_cutmix_needs_whole_cipher_blocks_of_a_scheme_instance():
    etc8 = ciphers.create("etc", block_size=8)
    reason = block_safe_reason("block_cutmix", etc8, block_size=4)
    assert reason and "block size 4" in reason and "'etc'" in reason and "\n" not in reason
    assert block_safe_reason("block_cutmix", etc8, block_size=16) is None
    assert block_safe_reason("block_cutmix", ciphers.create("pe", block_size=8), block_size=4) is None  # pixel-wise


@pytest.mark.parametrize("augment", ["hflip", "cutmix", ""])
def test_an_unknown_augmentation_is_refused_in_one_line(augment):
    with pytest.raises(ValueError, match="unknown ciphertext augmentation") as err:
        block_safe_reason(augment, ciphers.SCHEMES.get("etc"))
    assert "\n" not in str(err.value) and "block_cutmix" in str(err.value)


# mixup ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILT_IN)
@FAST
@given(seed=st.integers(0, 2**32 - 1), lam=st.floats(0.05, 0.95), shift=st.integers(1, N - 1),
       perm=st.permutations(range(N)))
def test_mixup_commutes_exactly_where_declared_safe_and_not_elsewhere(name, seed, lam, shift, perm):
    scheme, key = scheme_and_key(name)
    x = plain_images(seed).double() / 255
    safe = block_safe_reason("mixup", type(scheme)) is None
    d = MixDraw("mixup", lam, torch.tensor(perm) if safe else derangement(shift))
    mixed_ciphertexts, _ = mix(encrypt_float(scheme, key, x), labels_of(), d)
    ciphertext_of_mixed = encrypt_float(scheme, key, mix(x, labels_of(), d)[0])
    error = float((mixed_ciphertexts - ciphertext_of_mixed).abs().max())
    if safe:
        assert error <= 1e-9, f"{name}: mixup of ciphertexts is off by {error}"
    else:
        assert error > 1e-6, f"{name} is declared unsafe for mixup but commutes (error {error})"


@FAST
@given(seed=st.integers(0, 2**32 - 1), lam=st.floats(0.1, 0.9), shift=st.integers(1, N - 1))
def test_mixed_pe_ciphertexts_are_mostly_no_pe_ciphertext_of_the_mixed_pixel(seed, lam, shift):
    """Not only image i's own key fails: for most pixels none of PE's 48 per-pixel keys gives the mixed value."""
    scheme, key = scheme_and_key("pe")
    x = plain_images(seed).double() / 255
    d = MixDraw("mixup", lam, derangement(shift))
    mixed = mix(scheme.encrypt(x, key), labels_of(), d)[0].permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)
    plain_mix = mix(x, labels_of(), d)[0].permute(0, 2, 3, 1).numpy()
    candidates = []
    for bits, perm in itertools.product(range(8), CHANNEL_PERMS):  # NP on input channels, then the colour shuffle
        flip = ((bits >> np.arange(3)) & 1).astype(bool)
        candidates.append(np.where(flip, 1 - plain_mix, plain_mix)[..., perm])
    matches = np.stack([np.abs(c - mixed).max(-1) < 1e-9 for c in candidates]).any(0)
    assert matches.mean() < 0.5


# block CutMix -----------------------------------------------------------------------------------------------------
def decrypt_cutmix(scheme: ciphers.Scheme, key: ciphers.Key, y: torch.Tensor, d: MixDraw,
                   pasted: torch.Tensor) -> torch.Tensor:
    """Decrypt cutmixed ciphertexts. Per-image-key schemes: with the key assembled the way the pixels were, image
    ``i``'s key outside the pasted rectangle and its partner's inside (PE moves no pixel, so that is its key)."""
    if not scheme.per_image_keys:
        return scheme.decrypt(y, key)
    own = scheme.decrypt(y, key)
    partners = torch.cat([scheme.decrypt(y[i:i + 1], key, first_index=int(d.perm[i])) for i in range(N)])
    return torch.where(pasted, partners, own)


@pytest.mark.parametrize("name", sorted(CUTMIX_SAFE))
@FAST
@given(seed=st.integers(0, 2**32 - 1), aug_block=st.sampled_from([BLOCK, 2 * BLOCK]), data=st.data())
def test_block_cutmix_of_ciphertexts_decrypts_to_plain_images_pasted_block_by_block(name, seed, aug_block, data):
    scheme, key = scheme_and_key(name)
    assert block_safe_reason("block_cutmix", scheme, block_size=aug_block) is None
    x = plain_images(seed)
    grid = SIZE // aug_block
    d = box_draw(data, grid, grid, aug_block, proper=False)
    y = scheme.encrypt(x, key)
    y_aug, targets = mix(y, labels_of(), d)
    assert y_aug.dtype == torch.uint8
    # the rectangle of whole blocks comes from the partner, the rest is the image's own ciphertext
    top, bottom, left, right = (b * aug_block for b in d.box)
    pasted = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    pasted[top:bottom, left:right] = True
    assert torch.equal(y_aug, torch.where(pasted, y[d.perm], y))
    # label weights: the exact fraction of pixels pasted
    fraction = float(pasted.double().mean())
    assert targets.sum(1).allclose(torch.ones(N, dtype=torch.float64))
    assert targets.allclose((1 - fraction) * labels_of() + fraction * labels_of()[d.perm])
    # every plain block of the decryption is the image's own or its partner's, and as many are the partner's as
    # were pasted
    own, partner = blocks(x, BLOCK), blocks(x[d.perm], BLOCK)
    decrypted = blocks(decrypt_cutmix(scheme, key, y_aug, d, pasted), BLOCK)
    from_own = (decrypted == own).all(-1)
    from_partner = (decrypted == partner).all(-1)
    assert (from_own | from_partner).all(), f"{name}: a decrypted block is neither image's"
    pasted_blocks = int(pasted.sum()) // BLOCK**2
    for i in range(N):
        expected = pasted_blocks if int(d.perm[i]) != i else 0
        assert int((from_partner[i] & ~from_own[i]).sum()) == expected


@pytest.mark.parametrize("name", ["etc-gray", "etc-gray-444"])
@FAST
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_block_cutmix_of_grayscale_planes_mixes_luma_and_chroma_of_two_images(name, seed, data):
    """Declared unsafe, and it is: some RGB region decrypts to neither image's (its Y and Cb/Cr differ in source)."""
    scheme, key = scheme_and_key(name)
    assert block_safe_reason("block_cutmix", type(scheme))
    x = plain_images(seed)
    planes = scheme.encrypt(x, key)  # (N, 1, rows, cols)
    rows, cols = planes.shape[-2:]
    d = box_draw(data, rows // BLOCK, cols // BLOCK, BLOCK, proper=True)
    decrypted = scheme.decrypt(mix(planes, labels_of(), d)[0], key)
    nhwc = x.permute(0, 2, 3, 1).numpy()
    round_trip = torch.from_numpy(from_plane(to_plane(nhwc, scheme.chroma), scheme.chroma)).permute(0, 3, 1, 2)
    cell = 2 * BLOCK if scheme.chroma == "420" else BLOCK  # the RGB region of one chroma block
    got, own, partner = (blocks(t, cell) for t in (decrypted, round_trip, round_trip[d.perm]))
    neither = ~(got == own).all(-1) & ~(got == partner).all(-1)
    assert neither.any()


def test_flipping_or_shifting_etc_ciphertexts_does_not_flip_or_shift_the_plain_image():
    """The control: augmentations that move pixels across or within blocks do not commute with EtC."""
    scheme, key = scheme_and_key("etc")
    x = plain_images(3)
    y = scheme.encrypt(x, key)
    assert torch.equal(scheme.decrypt(y, key), x)  # the comparison itself works
    assert not torch.equal(scheme.decrypt(y.flip(-1), key), x.flip(-1))
    assert not torch.equal(scheme.decrypt(torch.roll(y, 1, dims=-1), key), torch.roll(x, 1, dims=-1))
    assert not torch.equal(scheme.decrypt(torch.roll(y, BLOCK, dims=-1), key), torch.roll(x, BLOCK, dims=-1))


# the draws and the batch contract ---------------------------------------------------------------------------------
@FAST
@given(augment=st.sampled_from(AUGMENTS), seed=st.integers(0, 2**32 - 1), alpha=st.floats(0.1, 4.0),
       block=st.sampled_from([1, 2, 4, 8]))
def test_draws_are_seeded_and_targets_are_proper_mixtures(augment, seed, alpha, block):
    x = plain_images(seed % 1000)
    labels = torch.tensor([0, 3, 3, 9])
    a = apply(augment, x, labels, block, torch.Generator().manual_seed(seed), alpha=alpha, num_classes=10)
    b = apply(augment, x, labels, block, torch.Generator().manual_seed(seed), alpha=alpha, num_classes=10)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    x_aug, targets = a
    assert x_aug.shape == x.shape and targets.shape == (N, 10) and targets.dtype == torch.float32
    assert torch.allclose(targets.sum(1), torch.ones(N)) and (targets >= 0).all()
    d = draw(augment, tuple(x.shape), block, torch.Generator().manual_seed(seed), alpha)
    assert 0 <= d.lam <= 1 and sorted(d.perm.tolist()) == list(range(N))
    if augment == "block_cutmix":
        top, bottom, left, right = d.box
        assert 0 <= top <= bottom <= SIZE // block and 0 <= left <= right <= SIZE // block
        assert d.lam == pytest.approx(1 - (bottom - top) * (right - left) * block**2 / SIZE**2, abs=1e-12)
    if augment == "none":
        assert torch.equal(x_aug, x) and torch.equal(targets.argmax(1), labels)


def test_different_seeds_give_different_draws():
    draws = {(d.lam, tuple(d.perm.tolist())) for d in
             (draw("mixup", (N, 3, SIZE, SIZE), BLOCK, torch.Generator().manual_seed(s)) for s in range(5))}
    assert len(draws) == 5


def test_the_generator_advances():
    g = torch.Generator().manual_seed(0)
    first, second = (draw("mixup", (N, 3, SIZE, SIZE), BLOCK, g) for _ in range(2))
    assert first.lam != second.lam


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_dtype_shape_and_device(device, dtype):
    x = plain_images(1).to(device=device, dtype=dtype)
    labels = torch.tensor([1, 0, 2, 1], device=device)
    for augment in AUGMENTS:
        x_aug, targets = apply(augment, x, labels, BLOCK, torch.Generator().manual_seed(0), num_classes=3)
        assert x_aug.shape == x.shape and x_aug.device == x.device and targets.device == labels.device
        want = (torch.float32 if dtype == torch.uint8 else dtype) if augment == "mixup" else dtype
        assert x_aug.dtype == want, augment


def test_mixup_of_uint8_keeps_the_0_to_255_scale():
    x = plain_images(2)
    x_aug, _ = apply("mixup", x, labels_of(), BLOCK, torch.Generator().manual_seed(0))
    assert float(x_aug.max()) > 1 and float(x_aug.max()) <= 255 and float(x_aug.min()) >= 0


def test_soft_targets_pass_through_and_labels_become_one_hot():
    soft = torch.full((N, 5), 0.2)
    assert soft_targets(soft, N) is soft
    assert torch.equal(soft_targets(torch.tensor([4, 0, 1, 1]), N, 5).argmax(1), torch.tensor([4, 0, 1, 1]))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: apply("mixup", torch.zeros(3, 16, 16, dtype=torch.uint8), torch.arange(3), 4, num_classes=3),
     "4 dimensions"),
    (lambda: apply("block_cutmix", torch.zeros(2, 3, 16, 12), torch.arange(2), 8, num_classes=2), "does not divide"),
    (lambda: apply("block_cutmix", torch.zeros(2, 3, 16, 16), torch.arange(2), 0, num_classes=2), "positive"),
    (lambda: apply("hflip", torch.zeros(2, 3, 16, 16), torch.arange(2), 4, num_classes=2), "unknown"),
    (lambda: apply("mixup", torch.zeros(2, 3, 16, 16), torch.arange(2), 4), "num_classes"),
    (lambda: apply("mixup", torch.zeros(2, 3, 16, 16), torch.tensor([0, 5]), 4, num_classes=3), "0..2"),
    (lambda: apply("mixup", torch.zeros(2, 3, 16, 16), torch.arange(3), 4, num_classes=3), "2 integer labels"),
    (lambda: apply("mixup", torch.zeros(2, 3, 16, 16), torch.arange(2), 4, alpha=0.0, num_classes=2), "alpha"),
    (lambda: apply("mixup", torch.zeros(2, 3, 16, 16, dtype=torch.int32), torch.arange(2), 4, num_classes=2),
     "dtype"),
    (lambda: apply("mixup", np.zeros((2, 3, 16, 16)), torch.arange(2), 4, num_classes=2), "torch"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message) as err:
        call()
    assert "\n" not in str(err.value)
