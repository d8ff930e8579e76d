"""The key and encryption stages, and the report that shows their example images without opening a key."""

from __future__ import annotations

import json

import numpy as np
import pytest

from etcbench import ciphers
from etcbench.encryption import encrypt_split, make_key
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
