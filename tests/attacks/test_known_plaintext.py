"""Known-plaintext attack (etcbench.attacks.known_plaintext): exact key recovery from k plain/encrypted pairs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.attacks.known_plaintext import (
    SUPPORTED,
    RecoveredKey,
    attack,
    key_recovery_share,
    recover_key,
    secret_arrays,
)
from etcbench.ciphers.base import Scheme
from etcbench.errors import EtcbenchError
from etcbench.metrics import ssim_per_image

# (scheme, block size, options); every scheme with a known-plaintext attack except pe (per-image keys, tested apart)
SCHEMES = [
    ("plain", 4, {}),
    ("etc", 4, {}),
    ("etc", 8, {"np_fraction": "half"}),
    ("etc", 4, {"scramble": False, "color_shuffle": False}),
    ("etc-gray", 8, {}),
    ("etc-gray-444", 4, {}),
    ("le", 4, {}),
    ("ele", 4, {}),
    ("pixel-shuffle", 8, {}),
    ("pixel-shuffle", 4, {"negative_positive": True}),
    ("pe-fixed", 4, {}),
]
IDS = [f"{n}-M{m}" + "".join(f"-{k}={v}" for k, v in o.items()) for n, m, o in SCHEMES]
SIZE = (32, 32)
KS = (1, 2, 4, 8)


def _noise(n: int, seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def natural32(natural_images: np.ndarray) -> np.ndarray:
    """Sixteen 32x32 natural images (the 64x64 tiles at half resolution), astronaut and coffee interleaved."""
    tiles = natural_images[:, ::2, ::2]
    return np.ascontiguousarray(tiles[np.random.default_rng(0).permutation(len(tiles))])


@pytest.fixture(scope="module")
def posterised32(natural32: np.ndarray) -> np.ndarray:
    """The same images with four levels per channel: large flat regions, where single pairs leave entries open."""
    return natural32 // 64 * 64 + 32


def _setup(name: str, m: int, options: dict, seed: int = 11, size: tuple[int, int] = SIZE):
    scheme = ciphers.create(name, block_size=m, **options)
    return scheme, scheme.generate_key(seed=seed, image_size=size)


def _assert_determined_entries_are_true(rec: RecoveredKey, key: ciphers.Key) -> None:
    for name in rec.used:
        det = rec.determined[name]
        assert det.shape == np.shape(key.arrays[name])
        np.testing.assert_array_equal(rec.key.arrays[name][det], key.arrays[name][det], err_msg=name)


def _reference(scheme: Scheme, key: ciphers.Key, targets: np.ndarray) -> np.ndarray:
    """What exact decryption gives: the images, or their colour round trip for grayscale-plane schemes."""
    return scheme.decrypt(scheme.encrypt(targets, key), key) if scheme.plane_subsampling else targets


# ------------------------------------------------------------------------------------------ exact recovery

@pytest.mark.parametrize(("name", "m", "options"), SCHEMES, ids=IDS)
def test_noise_pairs_give_the_whole_key_and_decrypt_held_out_natural_images(name, m, options, natural32):
    scheme, key = _setup(name, m, options)
    plain = _noise(8, seed=1)
    rec = recover_key(scheme, plain, scheme.encrypt(plain, key), SIZE)
    assert rec.pairs == 8 and rec.transfers and rec.reproduces_pairs
    assert rec.used == secret_arrays(scheme)
    assert rec.determined_share == 1.0 and key_recovery_share(rec, key) == 1.0
    for array in rec.used:
        np.testing.assert_array_equal(rec.key.arrays[array], key.arrays[array])
    assert rec.key.fingerprint == key.fingerprint  # every array, including the public ones of switched-off steps
    targets = natural32[:4]
    decrypted, rec2 = attack(scheme, plain, scheme.encrypt(plain, key), scheme.encrypt(targets, key))
    assert decrypted.dtype == np.uint8
    np.testing.assert_array_equal(decrypted, _reference(scheme, key, targets))
    assert rec2.key.fingerprint == key.fingerprint


@pytest.mark.parametrize(("name", "m", "options"), SCHEMES, ids=IDS)
def test_natural_pairs_flag_only_true_entries_and_more_pairs_never_lose_any(name, m, options, natural32,
                                                                          posterised32):
    scheme, key = _setup(name, m, options)
    targets = natural32[8:12]
    for images in (natural32[:8], posterised32[:8]):
        encrypted = scheme.encrypt(images, key)
        shares, previous = [], None
        for k in KS:
            rec = recover_key(scheme, images, encrypted, SIZE, pairs=k)
            _assert_determined_entries_are_true(rec, key)
            if previous is not None:  # nested pair sets: an entry determined by k pairs stays determined
                for array in rec.used:
                    assert (rec.determined[array] | ~previous.determined[array]).all(), (k, array)
            assert key_recovery_share(rec, key) >= rec.determined_share
            if name in ("plain", "etc", "etc-gray", "etc-gray-444", "pe-fixed"):
                assert rec.reproduces_pairs
            if rec.determined_share == 1.0:
                np.testing.assert_array_equal(rec.decrypt(scheme.encrypt(targets, key)),
                                              _reference(scheme, key, targets))
            shares.append(rec.determined_share)
            previous = rec
        assert shares == sorted(shares), shares


def test_flat_regions_leave_entries_open_that_more_pairs_close(posterised32):
    """Posterised natural images: one pair leaves flat blocks / gray pixels undetermined; eight pairs fix them."""
    for name, m in (("etc", 4), ("etc-gray-444", 4), ("pixel-shuffle", 4), ("pe-fixed", 4)):
        scheme, key = _setup(name, m, {})
        encrypted = scheme.encrypt(posterised32[:8], key)
        shares = [recover_key(scheme, posterised32[:8], encrypted, SIZE, pairs=k).determined_share for k in KS]
        assert shares[0] < 0.95 and shares[-1] > shares[0], (name, shares)


def test_a_flat_block_leaves_its_position_and_turn_open_but_not_its_colour_inversion():
    scheme, key = _setup("etc", 4, {"color_shuffle": False}, size=(16, 16))
    plain = _noise(2, seed=3, size=(16, 16))
    plain[:, :4, :4] = 90  # block 0 and block 5: the same flat value in both pairs
    plain[:, 4:8, 4:8] = 90
    rec = recover_key(scheme, plain, scheme.encrypt(plain, key), (16, 16))
    open_ = np.flatnonzero(~rec.determined["block_perm"])
    assert sorted(key.arrays["block_perm"][open_]) == [0, 5]
    np.testing.assert_array_equal(~rec.determined["rot_flip"], ~rec.determined["block_perm"])
    assert rec.determined["negpos"].all()  # 90 vs 165: the inversion is visible even in a flat block
    _assert_determined_entries_are_true(rec, key)
    assert rec.reproduces_pairs  # the guess swaps two equal blocks: it still explains the pairs


@pytest.mark.parametrize("name", ["le", "ele"])
def test_independent_flags_are_never_determined_yet_the_recovered_ones_decrypt(name, natural32):
    scheme, key = _setup(name, 4, {"independent_flags": True})
    plain = _noise(8, seed=2)
    rec = recover_key(scheme, plain, scheme.encrypt(plain, key), SIZE)
    assert not rec.determined["flags"].any()
    assert rec.determined["nibble_perm"].all()
    np.testing.assert_array_equal(rec.key.arrays["nibble_perm"], key.arrays["nibble_perm"])
    assert rec.reproduces_pairs  # flipping a whole cycle's flags gives the same cipher: an equivalent key
    np.testing.assert_array_equal(rec.decrypt(scheme.encrypt(natural32[:4], key)), natural32[:4])


# ------------------------------------------------------------------------------------------ PE

def test_pe_recovers_each_pairs_own_key_which_decrypts_no_other_image(natural32):
    scheme, key = _setup("pe", 4, {})
    plain, targets = natural32[:4], natural32[4:8]
    encrypted = scheme.encrypt(plain, key)  # images 0..3 of the key's stream
    rec = recover_key(scheme, plain, encrypted, SIZE)
    assert rec.transfers is False and rec.reproduces_pairs
    assert rec.image_arrays["negpos"].shape == (4, *SIZE, 3) and rec.image_arrays["channel_perm"].shape == (4, *SIZE)
    negpos, codes = scheme.image_keys(key, 0, 4)
    for array, truth in (("negpos", negpos), ("channel_perm", codes)):
        det = rec.image_determined[array]
        np.testing.assert_array_equal(rec.image_arrays[array][det], truth[det])
    assert rec.image_determined_share > 0.9
    assert key_recovery_share(rec, key) == 0.0  # the secret is not recovered
    assert key_recovery_share(rec, key, first_index=0) >= rec.image_determined_share
    chance = (3 * 1 / 2 + 1 / 6) / 4  # three NP bits and one of six colour codes per pixel, guessed at random
    assert abs(key_recovery_share(rec, key, first_index=4) - chance) < 0.03  # the next images' keys are unrelated
    for i in range(4):  # each per-image key decrypts its own pair
        np.testing.assert_array_equal(rec.decrypt(encrypted[i:i + 1], pair=i), plain[i:i + 1])
    target_encrypted = scheme.encrypt(targets, key, first_index=4)
    for i in range(4):  # ... and no other image
        wrong = rec.decrypt(target_encrypted, pair=i)
        assert (wrong != targets).any(axis=(1, 2, 3)).all()
        assert ssim_per_image(targets, wrong).max() < 0.5
    decrypted, _ = attack(scheme, plain, encrypted, target_encrypted)  # falls back to the identity guess
    np.testing.assert_array_equal(decrypted, target_encrypted)


# ------------------------------------------------------------------------------------------ hypothesis

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), data_seed=st.integers(0, 2**32 - 1), m=st.sampled_from([2, 4, 8]),
       k=st.integers(1, 3), steps=st.tuples(*[st.booleans()] * 4), np_fraction=st.sampled_from(["random", "half"]))
def test_etc_recovery_from_noise_is_exact(seed, data_seed, m, k, steps, np_fraction):
    options = dict(zip(("scramble", "rotate_flip", "negative_positive", "color_shuffle"), steps),
                   np_fraction=np_fraction)
    scheme, key = _setup("etc", m, options, seed=seed, size=(16, 16))
    plain = _noise(k + 1, seed=data_seed, size=(16, 16))
    rec = recover_key(scheme, plain[:k], scheme.encrypt(plain[:k], key), (16, 16))
    assert rec.determined_share == 1.0 and key_recovery_share(rec, key) == 1.0
    assert rec.key.fingerprint == key.fingerprint
    np.testing.assert_array_equal(rec.decrypt(scheme.encrypt(plain[k:], key)), plain[k:])


# ------------------------------------------------------------------------------------------ bad input

class _Toy(Scheme):
    name = "toy"


def test_bad_input_is_one_line_naming_the_problem():
    scheme, key = _setup("etc", 4, {}, size=(16, 16))
    plain = _noise(2, seed=0, size=(16, 16))
    enc = scheme.encrypt(plain, key)
    mixed = np.concatenate([enc[:1], scheme.encrypt(plain[1:], scheme.generate_key(seed=99, image_size=(16, 16)))])
    le_key = ciphers.create("le", block_size=4).generate_key(0, (16, 16))
    cases = [
        (lambda: recover_key(scheme, plain[:0], enc[:0], (16, 16)), "k = 0"),
        (lambda: recover_key(scheme, plain, enc[:1], (16, 16)), "2 plain images but 1 encrypted"),
        (lambda: recover_key(scheme, plain, enc, (16, 16), pairs=3), "asked for 3 pairs but only 2"),
        (lambda: recover_key(scheme, plain, enc, (16, 16), pairs=0), "positive integer"),
        (lambda: recover_key(scheme, plain, enc[:, :, :8], (16, 16)), "encrypted images have shape"),
        (lambda: recover_key(scheme, plain, enc, (16, 8)), "image_size is 16x8"),
        (lambda: recover_key(scheme, plain[:, :, :, 0], enc, (16, 16)), "(k, H, W, 3)"),
        (lambda: recover_key(scheme, plain / 255, enc, (16, 16)), "uint8"),
        (lambda: recover_key(ciphers.create("etc", block_size=3), plain, enc, (16, 16)), "do not fit"),
        (lambda: recover_key(ciphers.create("etc-gray", block_size=16), plain, enc, (16, 16)), "do not fit"),
        (lambda: recover_key(_Toy(4), plain, enc, (16, 16)), "scheme 'toy' has no known-plaintext attack"),
        (lambda: recover_key(ciphers.create("etc", block_size=4, legacy_channel_bug=True), plain, enc, (16, 16)),
         "lossy"),
        (lambda: recover_key(scheme, plain, mixed, (16, 16)), "not encryptions under one 'etc' key"),
        (lambda: key_recovery_share(recover_key(scheme, plain, enc, (16, 16)), le_key), "cannot be compared"),
        (lambda: attack(scheme, plain, enc, enc[:, :8]), "target images must be"),
        (lambda: recover_key(scheme, plain, enc, (16, 16)).decrypt(enc, pair=0), "without pair="),
    ]
    for call, words in cases:
        with pytest.raises(EtcbenchError) as info:
            call()
        message = str(info.value)
        assert words in message and "\n" not in message, message
    assert "pe" in SUPPORTED and "etc-gray" in SUPPORTED


@pytest.mark.parametrize("name", ["etc-gray", "le", "ele", "pixel-shuffle", "pe-fixed"])
def test_pairs_encrypted_with_two_keys_are_refused(name):
    scheme = ciphers.create(name, block_size=4)
    plain = _noise(4, seed=5, size=(16, 16))
    first, second = (scheme.generate_key(seed=s, image_size=(16, 16)) for s in (1, 2))
    mixed = np.concatenate([scheme.encrypt(plain[:2], first), scheme.encrypt(plain[2:], second)])
    with pytest.raises(EtcbenchError, match="the pairs are not"):
        recover_key(scheme, plain, mixed, (16, 16))


def test_the_result_never_prints_key_arrays():
    scheme, key = _setup("etc", 4, {}, size=(16, 16))
    plain = _noise(1, seed=0, size=(16, 16))
    text = repr(recover_key(scheme, plain, scheme.encrypt(plain, key), (16, 16)))
    assert text.startswith("RecoveredKey(scheme='etc', pairs=1") and "array" not in text
