"""The key and encryption stages, and the report that shows their example images without opening a key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from etcbench import ciphers
from etcbench.encryption import encrypt_split, encrypted_test_set, make_key
from etcbench.errors import EtcbenchError
from etcbench.io import load_npz, read_json, save_npz


@pytest.fixture
def split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    save_npz(tmp_path / "data.npz", test_x=x, test_y=np.arange(5))
    return tmp_path, x


@pytest.mark.parametrize("scheme", ["etc", "etc-gray", "pe", "le"])
def test_encrypt_resizes_to_the_key_size_and_writes_decryptable_examples(split, scheme):
    tmp_path, x = split
    key = make_key(scheme, 8, 32, 3, {}, tmp_path / "k.npz", tmp_path / "k.json")
    assert read_json(tmp_path / "k.json")["key_fingerprint"] == key.fingerprint
    encrypt_split(tmp_path / "data.npz", tmp_path / "k.npz", tmp_path / "test.npz", out_examples=tmp_path / "ex.npz",
                  num_examples=2)
    test, ex = load_npz(tmp_path / "test.npz"), load_npz(tmp_path / "ex.npz")
    assert str(test["key_fingerprint"]) == key.fingerprint and len(test["x"]) == 5
    assert ex["plain"].shape == (2, 32, 32, 3)  # the 24-px images resized to the key's 32 px
    _, scheme_obj = ciphers.load_scheme(tmp_path / "k.npz")
    np.testing.assert_array_equal(scheme_obj.encrypt(ex["plain"], key)[:2].squeeze(-1) if scheme == "etc-gray"
                                  else scheme_obj.encrypt(ex["plain"], key), ex["encrypted"])
    np.testing.assert_array_equal(ex["decrypted"], scheme_obj.decrypt(test["x"][:2], key))
    if scheme != "etc-gray":  # lossless schemes give the plain images back
        np.testing.assert_array_equal(ex["decrypted"], ex["plain"])
    assert str(ex["scheme"]) == scheme


def test_encrypt_refuses_a_missing_split(split):
    tmp_path, _ = split
    make_key("etc", 8, 32, 3, {}, tmp_path / "k.npz", tmp_path / "k.json")
    with pytest.raises(EtcbenchError, match="has no split 'train'"):
        encrypt_split(tmp_path / "data.npz", tmp_path / "k.npz", tmp_path / "o.npz", split="train")


def test_the_report_draws_the_examples_with_every_key_file_removed(split):
    from etcbench.report.build import build_report

    tmp_path, _ = split
    examples = []
    for scheme in ("plain", "etc", "etc-gray"):
        make_key(scheme, 8, 32, 3, {}, tmp_path / f"{scheme}.key.npz", tmp_path / f"{scheme}.json")
        encrypt_split(tmp_path / "data.npz", tmp_path / f"{scheme}.key.npz", tmp_path / f"{scheme}.npz",
                      out_examples=tmp_path / f"{scheme}.examples.npz", num_examples=3)
        examples.append(tmp_path / f"{scheme}.examples.npz")
    for key_file in tmp_path.glob("*.key.npz"):
        key_file.unlink()
    record = {"dataset": "cifar10", "image_size": 32, "block_size": 8, "model": "vit", "scheme": "etc",
              "jpeg_quality": None, "subsampling": "none", "seed": 0, "top1": 0.5, "loss": 1.0, "n_test": 5}
    mismatch = {k: record[k] for k in ("dataset", "image_size", "block_size", "model", "scheme", "seed")}
    jpeg = {**record, "jpeg_quality": 90, "subsampling": "420", "top1": 0.4}
    (tmp_path / "eval.json").write_text(json.dumps({"records": [record, jpeg],
                                                    "key_mismatch": [{**mismatch, "test_key": "own", "top1": 0.5}]}))
    written = build_report(accuracy=[tmp_path / "eval.json"], compression=[], examples=examples, num_examples=2,
                           out_dir=tmp_path / "report")
    assert tmp_path / "report" / "figures" / "examples.png" in written
    assert not list(tmp_path.glob("*.key.npz"))


# the encrypted test sets are not stored: every stage encrypts the stored plain set with its key ---------------------
@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    """300 test images at 24 px: resized to the keys' 32 px; more than one of PE's chunks of per-image keys (256)."""
    tmp = tmp_path_factory.mktemp("split")
    rng = np.random.default_rng(1)
    save_npz(tmp / "data.npz", test_x=rng.integers(0, 256, (300, 24, 24, 3), dtype=np.uint8),
             test_y=rng.integers(0, 10, 300))
    make_key("plain", 8, 32, 3, {}, tmp / "plain.key.npz", tmp / "plain.json")
    encrypt_split(tmp / "data.npz", tmp / "plain.key.npz", tmp / "plain.npz")  # the one stored test set
    return tmp


@pytest.mark.parametrize("scheme", ["etc", "pe", "etc-gray", "le", "ele", "plain"])
def test_the_in_process_test_set_is_bit_identical_to_what_encrypt_wrote(test_split, scheme):
    tmp = test_split
    key = make_key(scheme, 8, 32, 5, {}, tmp / f"{scheme}.key.npz", tmp / f"{scheme}.json")
    encrypt_split(tmp / "data.npz", tmp / f"{scheme}.key.npz", tmp / f"{scheme}.npz")  # what the workflow stored
    stored = load_npz(tmp / f"{scheme}.npz")
    made = encrypted_test_set(tmp / "plain.npz", tmp / f"{scheme}.key.npz")
    assert made.x.dtype == stored["x"].dtype and made.x.shape == stored["x"].shape
    np.testing.assert_array_equal(made.x, stored["x"])
    np.testing.assert_array_equal(made.y, stored["y"])
    assert made.key_fingerprint == str(stored["key_fingerprint"]) == key.fingerprint
    np.testing.assert_array_equal(made.plain, load_npz(tmp / "plain.npz")["x"])
    first = encrypted_test_set(tmp / "plain.npz", tmp / f"{scheme}.key.npz", count=7)  # the attack's targets
    np.testing.assert_array_equal(first.x, stored["x"][:7])
    np.testing.assert_array_equal(first.y, stored["y"][:7])


@pytest.mark.parametrize("scheme", ["etc", "pe", "etc-gray"])
def test_examples_alone_are_the_examples_written_with_the_set(test_split, scheme):
    tmp = test_split
    make_key(scheme, 8, 32, 5, {}, tmp / f"ex-{scheme}.key.npz", tmp / f"ex-{scheme}.json")
    encrypt_split(tmp / "data.npz", tmp / f"ex-{scheme}.key.npz", tmp / "with.npz", out_examples=tmp / "a.npz",
                  num_examples=4)
    encrypt_split(tmp / "data.npz", tmp / f"ex-{scheme}.key.npz", None, out_examples=tmp / "b.npz", num_examples=4)
    a, b = load_npz(tmp / "a.npz"), load_npz(tmp / "b.npz")
    assert set(a) == set(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    with pytest.raises(EtcbenchError, match="nothing to write"):
        encrypt_split(tmp / "data.npz", tmp / f"ex-{scheme}.key.npz", None)


def test_the_in_process_test_set_refuses_bad_input(test_split, tmp_path):
    tmp = test_split
    make_key("etc", 8, 16, 5, {}, tmp_path / "small.key.npz", tmp_path / "small.json")
    make_key("etc", 8, 32, 5, {}, tmp_path / "etc.key.npz", tmp_path / "etc.json")
    encrypt_split(tmp / "data.npz", tmp_path / "etc.key.npz", tmp_path / "etc.npz")
    cases = [
        ((tmp / "plain.npz", tmp_path / "small.key.npz"), "is for 16x16 images; .*plain.npz holds 32x32 images"),
        ((tmp_path / "missing.npz", tmp_path / "etc.key.npz"), "missing.npz does not exist"),
        ((tmp / "plain.npz", tmp_path / "missing.key.npz"), "missing.key.npz"),
        ((tmp_path / "etc.npz", tmp_path / "etc.key.npz"), "encrypted with a 'etc' key; give the plain scheme's"),
        ((tmp / "data.npz", tmp_path / "etc.key.npz"), "is not a test set: it has no 'x' array"),
    ]
    for args, message in cases:
        with pytest.raises(EtcbenchError, match=message):
            encrypted_test_set(*args)
    with pytest.raises(EtcbenchError, match="301 test images wanted, but .* holds 300"):
        encrypted_test_set(tmp / "plain.npz", tmp_path / "etc.key.npz", count=301)
