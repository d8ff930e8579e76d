"""Key derivation: HKDF-SHA256 against RFC 5869, contexts that never share key material, master secret files."""

import itertools
import os
import stat
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.ciphers.derive import (
    MASTER_BYTES,
    KeyContext,
    derive_seed,
    hkdf_sha256,
    master_fingerprint,
    master_from_key_seed,
    read_master_file,
)
from etcbench.errors import EtcbenchError

# RFC 5869, appendix A, test cases 1-3 (SHA-256): IKM, salt, info, L, OKM
RFC5869 = [
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    (bytes(range(0x50)).hex(), bytes(range(0x60, 0xb0)).hex(), bytes(range(0xb0, 0x100)).hex(), 82,
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8"
     "367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"),
    ("0b" * 22, "", "", 42,
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "length", "okm"), RFC5869)
def test_hkdf_matches_the_rfc_test_vectors(ikm, salt, info, length, okm):
    assert hkdf_sha256(bytes.fromhex(ikm), bytes.fromhex(info), length, bytes.fromhex(salt)).hex() == okm


def test_hkdf_refuses_impossible_lengths():
    for length in (0, 255 * 32 + 1):
        with pytest.raises(EtcbenchError, match="1 to 8160 bytes"):
            hkdf_sha256(b"x", b"", length)


def test_contexts_are_validated():
    for bad, match in (({"role": "admin"}, "key role 'admin'"), ({"role": "attacker"}, "attacker N"),
                       ({"setting": ""}, "needs a setting"), ({"seed": -1}, "non-negative"),
                       ({"seed": True}, "non-negative")):
        with pytest.raises(EtcbenchError, match=match):
            KeyContext(**{"setting": "s64-m16", "scheme": "etc", **bad})


@settings(max_examples=200, deadline=None)
@given(a=st.tuples(st.sampled_from(["s32-m4", "s64-m16", "s64-m8"]), st.sampled_from(sorted(ciphers.available())),
                   st.sampled_from(["defender", "other", "attacker 0", "attacker 7"]), st.none() | st.integers(0, 5)),
       b=st.tuples(st.sampled_from(["s32-m4", "s64-m16", "s64-m8"]), st.sampled_from(sorted(ciphers.available())),
                   st.sampled_from(["defender", "other", "attacker 0", "attacker 7"]), st.none() | st.integers(0, 5)))
def test_different_contexts_give_different_seeds_and_equal_ones_the_same(a, b):
    master = master_from_key_seed(7)
    seed_a, seed_b = derive_seed(master, KeyContext(*a)), derive_seed(master, KeyContext(*b))
    assert (seed_a == seed_b) == (a == b)
    assert 0 <= seed_a < 2**256


def test_the_seed_depends_on_the_master():
    context = KeyContext("s64-m16", "etc")
    seeds = {derive_seed(master_from_key_seed(s), context) for s in range(50)}
    assert len(seeds) == 50
    assert derive_seed(master_from_key_seed(20220413), context) == derive_seed(master_from_key_seed(20220413), context)
    with pytest.raises(EtcbenchError, match="32 bytes"):
        derive_seed(b"short", context)
    for bad in (-1, True, "3"):
        with pytest.raises(EtcbenchError, match="key_seed must be"):
            master_from_key_seed(bad)


def test_no_two_schemes_settings_or_roles_share_a_block_permutation():
    """The keys of one benchmark: every scheme with a block permutation, two settings, defender/other/attackers,
    two training seeds. Before derivation, EtC, ELE and pixel shuffling of one setting drew the same permutation."""
    master = master_from_key_seed(20220413)
    keys = {}
    for setting, (size, block) in {"s64-m16": (64, 16), "s32-m4": (32, 4)}.items():
        for name in ("etc", "ele", "le", "pixel-shuffle", "pe-fixed", "etc-gray-444"):
            if name == "etc-gray-444" and block % 8:
                continue
            scheme = ciphers.create(name, block_size=block)
            for role, seed in itertools.product(["defender", "other", "attacker 0", "attacker 1"], [None, 0, 1]):
                context = KeyContext(setting, name, role, seed)
                keys[context] = scheme.generate_key(seed=derive_seed(master, context), image_size=(size, size))
    assert len(keys) == 2 * 5 * 12 + 12
    perms = [(c, k.arrays[name]) for c, k in keys.items() for name in k.arrays if "perm" in name]
    assert len(perms) >= len(keys)
    same = [(a[0], b[0]) for a, b in itertools.combinations(perms, 2)
            if a[1].shape == b[1].shape and a[1].size > 4 and np.array_equal(a[1], b[1])]
    assert not same, same[:3]
    assert len({k.fingerprint for k in keys.values()}) == len(keys)


def test_a_master_file_is_created_once_0600_and_read_back(tmp_path):
    path = tmp_path / "keys" / "master.secret"
    with pytest.raises(EtcbenchError, match="does not exist"):
        read_master_file(path)
    old = os.umask(0o022)
    try:
        master = read_master_file(path, create=True)
    finally:
        os.umask(old)
    assert len(master) == MASTER_BYTES and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_master_file(path) == master == read_master_file(path, create=True)
    assert master_fingerprint(master) != master_fingerprint(read_master_file(tmp_path / "b", create=True))
    assert master.hex()[:16] not in master_fingerprint(master) and len(master_fingerprint(master)) == 16
    assert sorted(p.name for p in path.parent.iterdir()) == ["master.secret"]  # no temporary file left


def test_processes_creating_the_master_at_once_all_get_the_same_one(tmp_path):
    path, got = tmp_path / "master.secret", []
    threads = [threading.Thread(target=lambda: got.append(read_master_file(path, create=True))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 and len(set(got)) == 1 and got[0] == path.read_bytes()


def test_a_bad_master_file_is_refused(tmp_path):
    path = tmp_path / "master.secret"
    path.write_bytes(os.urandom(32))
    path.chmod(0o644)
    with pytest.raises(EtcbenchError, match=r"readable by others \(mode 644\); chmod 600"):
        read_master_file(path)
    path.chmod(0o600)
    path.write_bytes(b"short")
    with pytest.raises(EtcbenchError, match="holds 5 bytes, not 32"):
        read_master_file(path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(EtcbenchError, match="is not a file"):
        read_master_file(tmp_path / "dir")
