"""The compression stage (etcbench.compression): the rate of whole files and of their entropy-coded payload, the
header size, per pixel of the RGB image for every scheme."""

from __future__ import annotations

import numpy as np
import pytest

from etcbench import ciphers, jpeg
from etcbench.compression import compress_paths, compress_set
from etcbench.io import read_json, save_npz


def _encrypted_set(tmp_path, images: np.ndarray, scheme_name: str, block_size: int):
    """A key, the plain set the stage encrypts with it, and the encrypted set the encryption stage would store."""
    scheme = ciphers.create(scheme_name, block_size=block_size)
    key = scheme.generate_key(seed=3, image_size=images.shape[1:3])
    ciphers.save_key(key, tmp_path / f"{scheme_name}.key.npz")
    y = np.zeros(len(images), np.int64)
    save_npz(tmp_path / f"{scheme_name}.npz", x=scheme.encrypt(images, key), y=y,
             key_fingerprint=np.array(key.fingerprint))
    save_npz(tmp_path / "plain-ref.npz", x=images, y=y, key_fingerprint=np.array("plain"))
    return tmp_path / f"{scheme_name}.npz", tmp_path / "plain-ref.npz", tmp_path / f"{scheme_name}.key.npz"


@pytest.mark.parametrize(("scheme", "subsampling"), [("plain", "420"), ("etc", "444"), ("etc-gray", "420")])
def test_records_hold_file_and_payload_rates(tmp_path, natural_images, scheme, subsampling):
    images = np.ascontiguousarray(natural_images[:, ::2, ::2])  # 32 x 32: headers are a large share of a file
    enc, plain, key = _encrypted_set(tmp_path, images, scheme, 8)
    records = compress_set(plain, key, [30, 90], subsampling, tmp_path / "out")
    for record in records:
        assert read_json(compress_paths(tmp_path / "out", record["jpeg_quality"], subsampling)[1])["record"] == record
        # the same numbers from the files themselves
        pixels = 32 * 32
        header_bpp = record["header_bytes"] * 8 / pixels
        assert record["bpp"] == pytest.approx(record["payload_bpp"] + header_bpp, rel=1e-12)
        assert 0 < record["payload_bpp"] < record["bpp"] and record["payload_bpp_std"] >= 0
        # several hundred bytes of tables at 32 px: several bits per pixel of the file are header
        assert 250 < record["header_bytes"] < 800 and header_bpp > 2
    assert records[0]["payload_bpp"] < records[1]["payload_bpp"]
    assert records[0]["header_bytes"] == pytest.approx(records[1]["header_bytes"])  # tables scale, sizes do not


def test_payload_rate_is_the_payload_of_the_files(tmp_path, natural_images):
    images = np.ascontiguousarray(natural_images[:, ::2, ::2])
    enc, plain, key = _encrypted_set(tmp_path, images, "plain", 8)
    record = compress_set(plain, key, [50], "420", tmp_path / "out")[0]
    blobs = jpeg.encode(images, 50, "420")
    payload = np.array([jpeg.payload_size(b) for b in blobs])
    sizes = np.array([len(b) for b in blobs])
    assert record["payload_bpp"] == pytest.approx(float((payload * 8 / (32 * 32)).mean()), rel=1e-12)
    assert record["payload_bpp_std"] == pytest.approx(float((payload * 8 / (32 * 32)).std()), rel=1e-12)
    assert record["bpp"] == pytest.approx(float((sizes * 8 / (32 * 32)).mean()), rel=1e-12)
    assert record["header_bytes"] == pytest.approx(float((sizes - payload).mean()), rel=1e-12)


def test_the_stored_set_is_the_encoder_s_files(tmp_path, natural_images):
    from etcbench.io import load_npz

    images = np.ascontiguousarray(natural_images[:, ::2, ::2])
    enc, plain, key = _encrypted_set(tmp_path, images, "etc", 8)
    compress_set(plain, key, [70], "444", tmp_path / "out")
    stored = load_npz(compress_paths(tmp_path / "out", 70, "444")[0])
    assert jpeg.unpack(stored["jpeg"], stored["offsets"]) == jpeg.encode(load_npz(enc)["x"], 70, "444")
    assert (int(stored["jpeg_quality"]), str(stored["subsampling"])) == (70, "444")
    assert str(stored["key_fingerprint"]) == str(load_npz(enc)["key_fingerprint"])
