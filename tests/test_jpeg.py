"""JPEG stage: real libjpeg-turbo files, subsampling in the header, rate falls with quality, EtC compatibility."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio

from etcbench import ciphers, jpeg
from etcbench.metrics import psnr_per_image


@pytest.mark.parametrize("subsampling", ["444", "420"])
def test_header_records_the_requested_subsampling(natural_images, subsampling):
    blobs = jpeg.encode(natural_images[:2], 75, subsampling)
    assert all(b[:2] == b"\xff\xd8" for b in blobs)
    assert {jpeg.read_subsampling(b) for b in blobs} == {subsampling}


@pytest.mark.parametrize("subsampling", ["444", "420"])
def test_bits_per_pixel_fall_as_quality_falls(natural_images, subsampling):
    bpp = [jpeg.bits_per_pixel(jpeg.roundtrip(natural_images, q, subsampling)[1], 64, 64).mean()
           for q in (95, 75, 50, 25, 10)]
    assert all(a > b for a, b in zip(bpp, bpp[1:])), bpp


def test_single_channel_images_are_grayscale_jpeg(natural_images):
    gray = natural_images[:, :, :, 1:2]
    blobs = jpeg.encode(gray, 75, "420")
    assert {jpeg.read_subsampling(b) for b in blobs} == {"gray"}
    decoded, nbytes, _ = jpeg.roundtrip(gray, 90, "444")
    assert decoded.shape == gray.shape and psnr_per_image(gray, decoded).mean() > 30
    # one component instead of three: fewer bytes than the colour files at the same quality
    assert nbytes.sum() < jpeg.roundtrip(natural_images, 90, "444")[1].sum()


def test_roundtrip_keeps_shape_and_is_close(natural_images):
    decoded, nbytes, _ = jpeg.roundtrip(natural_images, 90, "444", workers=2)
    assert decoded.shape == natural_images.shape and decoded.dtype == np.uint8
    assert (nbytes > 100).all()
    assert psnr_per_image(natural_images, decoded).mean() > 30


def test_psnr_matches_scikit_image(natural_images):
    decoded, *_ = jpeg.roundtrip(natural_images, 40, "420")
    ours = psnr_per_image(natural_images, decoded)
    ref = [peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(natural_images, decoded)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10)
    assert np.isinf(psnr_per_image(natural_images[:1], natural_images[:1])[0])


def _rate_psnr(images: np.ndarray, block: int, quality: int, subsampling: str) -> tuple[float, float]:
    scheme = ciphers.create("etc", block_size=block)
    key = scheme.generate_key(seed=5, image_size=images.shape[1:3])
    decoded, nbytes, _ = jpeg.roundtrip(scheme.encrypt(images, key), quality, subsampling)
    psnr = psnr_per_image(images, scheme.decrypt(decoded, key)).mean()
    return jpeg.bits_per_pixel(nbytes, *images.shape[1:3]).mean(), psnr


def test_aligned_etc_stays_jpeg_compatible_and_misaligned_does_not(natural_images):
    plain, plain_nbytes, _ = jpeg.roundtrip(natural_images, 75, "444")
    plain_bpp = jpeg.bits_per_pixel(plain_nbytes, 64, 64).mean()
    plain_psnr = psnr_per_image(natural_images, plain).mean()
    for block in (8, 16):  # whole 8x8 DCT blocks at 4:4:4: rate and quality stay close to plain JPEG
        bpp, psnr = _rate_psnr(natural_images, block, 75, "444")
        assert abs(psnr - plain_psnr) < 0.5 and bpp < plain_bpp * 1.15, (block, bpp, psnr)
    # 4-px blocks cut through DCT blocks: clearly worse on both counts
    bpp4, psnr4 = _rate_psnr(natural_images, 4, 75, "444")
    assert bpp4 > plain_bpp * 1.5 and psnr4 < plain_psnr - 3


def test_chroma_subsampling_needs_16_pixel_blocks(natural_images):
    # at 4:2:0 one chroma sample covers 2x2 pixels and the MCU is 16x16: 16-px blocks beat 8-px blocks
    bpp16, psnr16 = _rate_psnr(natural_images, 16, 75, "420")
    bpp8, psnr8 = _rate_psnr(natural_images, 8, 75, "420")
    assert psnr16 > psnr8 + 2 and bpp16 < bpp8


def test_bad_settings_are_rejected(natural_images):
    with pytest.raises(ValueError, match="quality"):
        jpeg.encode(natural_images, 0, "444")
    with pytest.raises(ValueError, match="subsampling"):
        jpeg.encode(natural_images, 50, "411")
    with pytest.raises(ValueError, match="uint8"):
        jpeg.encode(natural_images.astype(np.float32), 50, "444")
    assert ciphers.create("etc", block_size=16).jpeg_aligned("420")
    assert not ciphers.create("etc", block_size=8).jpeg_aligned("420")
    assert ciphers.create("etc", block_size=8).jpeg_aligned("444")


# --- header / payload split -------------------------------------------------------------------------------------

def _segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def test_split_of_a_hand_made_file_counts_stuffed_bytes_and_restarts_as_payload():
    scan = b"\x12\xff\x00\x34\xff\xd0\x56\xff\xd7\x78"  # data, stuffed FF 00, RST0, data, RST7, data
    blob = (b"\xff\xd8" + _segment(0xE0, b"JFIF\x00" + bytes(9)) + _segment(0xDB, bytes(65))
            + _segment(0xDD, b"\x00\x01")
            + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + scan + b"\xff\xd9")
    header, payload = jpeg.split_header_payload(blob)
    assert payload == scan and len(header) == len(blob) - len(scan)
    assert header.startswith(b"\xff\xd8") and header.endswith(b"\x00\x3f\x00\xff\xd9")
    assert jpeg.payload_size(blob) == len(scan)
    # two scans (as in a progressive file): both payloads, the second SOS header in the header
    sos = _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    two = b"\xff\xd8" + sos + b"\x01\x02" + sos + b"\x03\xff\x00" + b"\xff\xd9"
    assert jpeg.split_header_payload(two)[1] == b"\x01\x02\x03\xff\x00"


@pytest.mark.parametrize("subsampling", ["444", "420"])
@pytest.mark.parametrize("quality", [10, 50, 95])
def test_header_and_payload_add_up_on_real_files(natural_images, quality, subsampling):
    for blob in jpeg.encode(natural_images, quality, subsampling):
        header, payload = jpeg.split_header_payload(blob)
        assert len(header) + len(payload) == len(blob) and len(payload) == jpeg.payload_size(blob)
        assert header[:2] == b"\xff\xd8" and header[-2:] == b"\xff\xd9" and len(payload) > 50


def test_the_header_of_small_files_is_large_and_the_same_for_every_image(natural_images):
    small = np.ascontiguousarray(natural_images[:, ::2, ::2])  # 32 x 32
    for subsampling in ("444", "420"):
        headers = {jpeg.split_header_payload(b)[0] for b in jpeg.encode(small, 50, subsampling)}
        assert len(headers) == 1, subsampling  # tables and frame header depend on the settings only
        assert 500 < len(headers.pop()) < 800, subsampling  # JFIF, 2 DQT, SOF, 4 DHT, SOS: several hundred bytes
    gray = {jpeg.split_header_payload(b)[0] for b in jpeg.encode(small[..., :1], 50, "444")}
    assert len(gray) == 1 and 250 < len(gray.pop()) < 500  # one table of each kind
    # a flat image: its payload is a handful of bytes, its header almost the whole file (~5 bpp at 32 x 32)
    flat = jpeg.encode(np.full((1, 32, 32, 3), 120, np.uint8), 50, "420")[0]
    assert jpeg.payload_size(flat) < 20 and jpeg.bits_per_pixel(np.array([len(flat)]), 32, 32)[0] > 4


def test_restart_markers_count_as_payload(natural_images):
    import io

    from PIL import Image

    def save(**options):
        buf = io.BytesIO()
        Image.fromarray(natural_images[0]).save(buf, format="JPEG", quality=50, subsampling=2, **options)
        return buf.getvalue()

    plain, restarts = save(), save(restart_marker_blocks=1)
    assert restarts.count(b"\xff\xd0") >= 1
    h0, p0 = jpeg.split_header_payload(plain)
    h1, p1 = jpeg.split_header_payload(restarts)
    assert len(h1) == len(h0) + 6  # the DRI segment; every RSTn sits in the payload
    assert len(p1) > len(p0) + 2 * 7 and len(h1) + len(p1) == len(restarts)


def test_roundtrip_sizes_are_those_of_the_encoded_files(natural_images):
    decoded, nbytes, payload = jpeg.roundtrip(natural_images, 60, "420", workers=2)
    blobs = jpeg.encode(natural_images, 60, "420")
    np.testing.assert_array_equal(decoded, jpeg.decode(blobs))
    assert nbytes.tolist() == [len(b) for b in blobs]
    assert payload.tolist() == [len(jpeg.split_header_payload(b)[1]) for b in blobs]
    assert payload.dtype == np.int64 and (payload < nbytes).all()
    assert len(set((nbytes - payload).tolist())) == 1  # the same header on every image


def test_malformed_files_raise():
    blob = jpeg.encode(np.full((1, 16, 16, 3), 90, np.uint8), 75, "444")[0]
    with pytest.raises(ValueError, match="SOI"):
        jpeg.split_header_payload(b"\x89PNG\r\n" + blob)
    with pytest.raises(ValueError, match="SOI"):
        jpeg.payload_size(b"")
    for cut in (3, 5, 40, len(blob) // 2, len(blob) - 2, len(blob) - 1):  # inside a segment, a scan, at the end
        with pytest.raises(ValueError, match="truncated"):
            jpeg.split_header_payload(blob[:cut])
    with pytest.raises(ValueError, match="claims"):  # a length field past the end of the file
        jpeg.split_header_payload(b"\xff\xd8\xff\xdb\x10\x00" + bytes(10) + b"\xff\xd9")
    with pytest.raises(ValueError, match="marker should be"):
        jpeg.split_header_payload(b"\xff\xd8\x00\x00" + blob[2:])


@given(st.lists(st.binary(max_size=40), max_size=12))
def test_pack_keeps_every_file_byte_for_byte(blobs):
    data, offsets = jpeg.pack(blobs)
    assert data.dtype == np.uint8 and offsets.dtype == np.int64 and offsets.shape == (len(blobs) + 1,)
    assert jpeg.unpack(data, offsets) == blobs


def test_unpack_refuses_offsets_that_do_not_split_the_bytes():
    data, offsets = jpeg.pack([b"abc", b"de"])
    for bad in ([0, 3, 6], [1, 3, 5], [0, 4, 3, 5], [[0, 5]]):
        with pytest.raises(ValueError, match="offsets"):
            jpeg.unpack(data, np.array(bad))
    with pytest.raises(ValueError, match="uint8"):
        jpeg.unpack(data.astype(np.int16), offsets)


def test_a_stored_jpeg_set_decodes_to_what_the_encoder_gave(natural_images):
    blobs = jpeg.encode(natural_images, 60, "420")
    data, offsets = jpeg.pack(blobs)
    decoded = jpeg.images_of({"jpeg": data, "offsets": offsets})
    np.testing.assert_array_equal(decoded, jpeg.roundtrip(natural_images, 60, "420")[0])
    assert jpeg.images_of({"x": natural_images}) is natural_images
    with pytest.raises(ValueError, match="neither images"):
        jpeg.images_of({"y": np.zeros(3)})


def test_the_files_of_a_round_trip_are_what_it_decoded_and_measured(natural_images):
    blobs, decoded, nbytes, payload = jpeg.roundtrip_files(natural_images, 70, "420", workers=2)
    assert blobs == jpeg.encode(natural_images, 70, "420")
    np.testing.assert_array_equal(decoded, jpeg.decode(blobs))
    assert nbytes.tolist() == [len(b) for b in blobs] and payload.tolist() == [jpeg.payload_size(b) for b in blobs]
    again = jpeg.roundtrip(natural_images, 70, "420")
    np.testing.assert_array_equal(again[0], decoded)
    assert again[1].tolist() == nbytes.tolist() and again[2].tolist() == payload.tolist()


@pytest.mark.parametrize("fork", [True, False])
def test_every_worker_count_gives_the_serial_files_and_images(natural_images, monkeypatch, fork):
    """Forked workers (threads where the platform does not fork) return the files, sizes and decoded images of
    one serial pass, in order, for shares of unequal length too (16 images on 3 and 5 workers)."""
    monkeypatch.setattr(jpeg, "_FORK", fork)
    gray = natural_images[..., :1]
    serial = jpeg.roundtrip_files(natural_images, 70, "420", workers=1)
    serial_gray = jpeg.roundtrip_files(gray, 70, "420", workers=1)
    for workers in (2, 3, 5, 40):
        blobs, decoded, nbytes, payload = jpeg.roundtrip_files(natural_images, 70, "420", workers=workers)
        assert blobs == serial[0] and nbytes.tolist() == serial[2].tolist() and payload.tolist() == serial[3].tolist()
        np.testing.assert_array_equal(decoded, serial[1])
        np.testing.assert_array_equal(jpeg.decode(blobs, workers), serial[1])
        assert jpeg.encode(natural_images, 70, "420", workers) == serial[0]
        blobs_gray, decoded_gray = jpeg.roundtrip_files(gray, 70, "420", workers=workers)[:2]
        assert blobs_gray == serial_gray[0] and decoded_gray.shape == gray.shape
        np.testing.assert_array_equal(decoded_gray, serial_gray[1])
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("where", [1, -1])  # in this process's share, in a forked worker's
def test_a_bad_file_in_any_share_raises_and_leaves_no_worker(natural_images, where):
    blobs = jpeg.encode(natural_images, 60, "444")
    broken = list(blobs)
    broken[where] = b"not a jpeg"
    with pytest.raises(OSError, match="cannot identify image file"):
        jpeg.decode(broken, workers=2)
    mixed = blobs[:8] + jpeg.encode(natural_images[:8, :32], 60, "444")
    with pytest.raises(ValueError, match="share one size"):
        jpeg.decode(mixed, workers=2)
    with pytest.raises(ValueError, match="no JPEG files"):
        jpeg.decode([])
    assert not multiprocessing.active_children()
