"""Real JPEG (libjpeg-turbo through Pillow) at a chosen quality and chroma subsampling.

Colour images ``(N, H, W, 3)`` are coded as YCbCr JPEG with the chosen chroma subsampling; single-channel images
``(N, H, W, 1)`` (the planes of grayscale-based EtC) as grayscale JPEG, which has no chroma and ignores it.

Encoding and decoding run on every core, each worker over one contiguous share of the images. Where the platform
forks (Linux), the workers are forked processes: the images reach them copy-on-write, decoded images come back
through one shared anonymous mapping, and only the files (a few KB each) through a pipe; the per-image Python work
(Pillow's save plumbing, the payload walk) then runs in parallel too, which threads could not do under the GIL.
Elsewhere a thread pool does the same shares.

At 32-64 px the headers (quantisation and Huffman tables, frame and scan headers: several hundred bytes, the same
for every image of a setting) are a large share of each file, so :func:`split_header_payload` separates them from
the entropy-coded payload, whose size is the rate that compares schemes.
"""

from __future__ import annotations

import io
import mmap
import multiprocessing
import os
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from PIL import Image, JpegImagePlugin, features

__all__ = ["SUBSAMPLING", "encode", "encode_one", "decode", "decode_one", "roundtrip", "roundtrip_files",
           "bits_per_pixel", "split_header_payload", "payload_size", "read_subsampling", "libjpeg_version", "pack",
           "unpack", "images_of"]

Subsampling = Literal["444", "420"]
# Pillow's subsampling codes
SUBSAMPLING: dict[str, int] = {"444": 0, "420": 2}
_PIL_TO_NAME = {0: "444", 1: "422", 2: "420"}


def check_settings(quality: int, subsampling: str) -> None:
    """Raise ValueError unless ``quality`` is in 1..100 and ``subsampling`` is a known chroma subsampling."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    if subsampling not in SUBSAMPLING:
        raise ValueError(f"unknown chroma subsampling {subsampling!r}; use one of {sorted(SUBSAMPLING)}")


def encode_one(img: np.ndarray, quality: int, subsampling: str) -> bytes:
    """One ``(H, W, 3)`` or ``(H, W, 1)`` uint8 image as a JPEG file (one Pillow/libjpeg-turbo encoder call)."""
    buf = io.BytesIO()
    if img.shape[-1] == 1:
        Image.fromarray(img[..., 0], mode="L").save(buf, format="JPEG", quality=int(quality), optimize=False)
    else:
        Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=int(quality),
                                              subsampling=SUBSAMPLING[subsampling], optimize=False)
    return buf.getvalue()


def decode_one(blob: bytes) -> np.ndarray:
    """One JPEG file as ``(H, W, 3)`` uint8 (``(H, W, 1)`` for a grayscale file): one decoder call."""
    with Image.open(io.BytesIO(blob)) as im:
        if im.mode == "L":
            return np.asarray(im)[..., None]
        return np.asarray(im.convert("RGB"))


def _workers(workers: int | None) -> int:
    return workers or max(1, len(os.sched_getaffinity(0)))


_FORK = "fork" in multiprocessing.get_all_start_methods()
_FORK_LOCK = threading.Lock()  # one forked pool at a time: the children read their task from a module global
_TASK: list[Callable[[int, int], object]] = []


def _bounds(n: int, workers: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, workers + 1).astype(int).tolist()
    return list(zip(edges[:-1], edges[1:]))


def _child(conn, start: int, stop: int) -> None:  # pragma: no cover (runs in the forked child)
    try:
        result = ("ok", _TASK[0](start, stop))
    except BaseException as exc:  # sent to the parent, which raises it
        result = ("error", exc)
    try:
        conn.send_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # an exception that does not pickle
        conn.send_bytes(pickle.dumps(("error", RuntimeError(repr(exc)))))
    conn.close()


def _map_shares(task: Callable[[int, int], list], n: int, workers: int | None) -> list:
    """``task(start, stop)`` over contiguous shares of ``range(n)``, one per worker, results joined in order.

    The first share runs in this process, the others in forked children (threads where the platform does not
    fork). ``task`` may write into a :func:`_shared_array` made before the call: the children's writes land there.
    """
    workers = max(1, min(_workers(workers), n))
    shares = _bounds(n, workers)
    if workers == 1:
        return task(0, n)
    if not _FORK:
        with ThreadPoolExecutor(workers) as pool:
            return [out for part in pool.map(lambda ab: task(*ab), shares) for out in part]
    ctx = multiprocessing.get_context("fork")
    with _FORK_LOCK:
        _TASK[:] = [task]
        children = []
        try:
            for start, stop in shares[1:]:
                receive, send = ctx.Pipe(duplex=False)
                child = ctx.Process(target=_child, args=(send, start, stop), daemon=True)
                child.start()
                send.close()
                children.append((child, receive))
            parts = [task(*shares[0])]
            for child, receive in children:
                try:
                    status, value = pickle.loads(receive.recv_bytes())
                except EOFError:
                    child.join()
                    raise RuntimeError(f"a JPEG worker process died (exit code {child.exitcode})") from None
                if status == "error":
                    raise value
                parts.append(value)
            return [out for part in parts for out in part]
        finally:
            for child, receive in children:
                receive.close()
                if child.is_alive():
                    child.kill()
                child.join()
            _TASK.clear()


def _shared_array(shape: tuple[int, ...]) -> np.ndarray:
    """A uint8 array in an anonymous shared mapping: what forked workers write into it, this process sees."""
    size = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(size, 1)), dtype=np.uint8, count=size).reshape(shape)


def encode(images: np.ndarray, quality: int, subsampling: Subsampling, workers: int | None = None) -> list[bytes]:
    """Encode ``(N, H, W, 3)`` (colour) or ``(N, H, W, 1)`` (grayscale) uint8 images; one JPEG file per image."""
    _check_images(images, quality, subsampling)
    return _map_shares(lambda a, b: [encode_one(im, quality, subsampling) for im in images[a:b]], len(images),
                       workers)


def _check_images(images: np.ndarray, quality: int, subsampling: str) -> None:
    check_settings(quality, subsampling)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"expected (N, H, W, 3) or (N, H, W, 1) uint8 images, got {images.dtype} {images.shape}")


def _decoded_shape(blob: bytes) -> tuple[int, int, int]:
    """``(H, W, C)`` of a JPEG file's image, read from its header (no decoding)."""
    with Image.open(io.BytesIO(blob)) as im:
        return im.size[1], im.size[0], 1 if im.mode == "L" else 3


def _decode_into(out: np.ndarray, blobs: list[bytes], start: int) -> None:
    for i, blob in enumerate(blobs, start):
        img = decode_one(blob)
        if img.shape != out.shape[1:]:
            raise ValueError(f"JPEG file {i} holds a {img.shape} image, file 0 a {out.shape[1:]} one: "
                             "a set's files must share one size and colour mode")
        out[i] = img


def decode(blobs: list[bytes], workers: int | None = None) -> np.ndarray:
    """Decode JPEG files into one ``(N, H, W, 3)`` uint8 array (``(N, H, W, 1)`` for grayscale files)."""
    if not blobs:
        raise ValueError("no JPEG files to decode")
    out = _shared_array((len(blobs), *_decoded_shape(blobs[0])))

    def share(a: int, b: int) -> list:
        _decode_into(out, blobs[a:b], a)
        return []

    _map_shares(share, len(blobs), workers)
    return out


def roundtrip_files(images: np.ndarray, quality: int, subsampling: Subsampling,
                    workers: int | None = None) -> tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray]:
    """Encode and decode, keeping the files: ``(JPEG files, decoded images, file sizes, entropy-coded payload
    sizes)``, sizes in bytes. What the compression stage runs (it stores the files).

    Each worker encodes, measures and decodes its own share of the images in one pass.
    A file's size less its payload size is its header size (:func:`split_header_payload`).
    """
    _check_images(images, quality, subsampling)
    out = _shared_array(images.shape)

    def share(a: int, b: int) -> list:
        blobs = [encode_one(im, quality, subsampling) for im in images[a:b]]
        _decode_into(out, blobs, a)
        return [(blob, payload_size(blob)) for blob in blobs]

    coded = _map_shares(share, len(images), workers)
    blobs = [blob for blob, _ in coded]
    nbytes = np.array([len(b) for b in blobs], dtype=np.int64)
    payload = np.array([size for _, size in coded], dtype=np.int64)
    return blobs, out, nbytes, payload


def roundtrip(images: np.ndarray, quality: int, subsampling: Subsampling,
              workers: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`roundtrip_files` without the files: ``(decoded images, file sizes, payload sizes)``."""
    return roundtrip_files(images, quality, subsampling, workers)[1:]


def bits_per_pixel(nbytes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Size in bits divided by the number of pixels: of whole files (headers included) or of their payloads."""
    return np.asarray(nbytes, dtype=np.float64) * 8.0 / (height * width)


# markers without a length field: TEM, RST0-7, SOI, EOI
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8), 0xD8, 0xD9])
_SOS, _EOI = 0xDA, 0xD9


def _payload_spans(blob: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of the entropy-coded data after each SOS segment of a JPEG file, by a walk over its markers.

    A scan's data runs from the end of its SOS header to the first 0xFF not followed by 0x00 (a stuffed byte) or by
    RST0-RST7 (restart markers, which belong to the scan). Raises ValueError on a file that does not start with SOI,
    a segment cut short, a byte where a marker should be, or a file that ends before EOI.
    """
    blob = bytes(blob)
    n = len(blob)
    if blob[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG file: it does not start with the SOI marker FF D8")
    spans: list[tuple[int, int]] = []
    pos = 2
    while True:
        if pos >= n:
            raise ValueError(f"JPEG file truncated: {n} bytes and no EOI marker")
        if blob[pos] != 0xFF:
            raise ValueError(f"malformed JPEG file: byte {blob[pos]:#04x} at offset {pos} where a marker should be")
        while pos + 1 < n and blob[pos + 1] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos + 1 >= n:
            raise ValueError(f"JPEG file truncated inside a marker at offset {pos}")
        marker = blob[pos + 1]
        if marker == _EOI:
            return spans
        if marker in _STANDALONE or marker == 0x00:
            if marker in (0x00, 0xD8):
                raise ValueError(f"malformed JPEG file: marker FF {marker:02X} at offset {pos}")
            pos += 2
            continue
        if pos + 4 > n:
            raise ValueError(f"JPEG file truncated in the length of segment FF {marker:02X} at offset {pos}")
        length = int.from_bytes(blob[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > n:
            raise ValueError(f"JPEG file truncated: segment FF {marker:02X} at offset {pos} claims {length} bytes, "
                             f"{n - pos - 2} are left")
        pos = end
        if marker != _SOS:
            continue
        start = i = end
        while True:
            i = blob.find(b"\xff", i)
            if i < 0 or i + 1 >= n:
                raise ValueError(f"JPEG file truncated inside the scan that starts at offset {start}")
            nxt = blob[i + 1]
            if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                i += 2
                continue
            break
        spans.append((start, i))
        pos = i


def split_header_payload(blob: bytes) -> tuple[bytes, bytes]:
    """Split a JPEG file into its header bytes and its entropy-coded payload bytes.

    The payload is the entropy-coded data of every scan: from the end of each SOS segment header to the next marker
    other than RST0-RST7; restart markers and stuffed ``FF 00`` bytes inside a scan count as payload. Everything else
    (SOI, APPn, DQT, SOF, DHT, DRI, the SOS headers, EOI, anything after EOI) is header, so
    ``len(header) + len(payload) == len(blob)``.

    Raises:
        ValueError: the bytes do not start with SOI, a segment or scan is cut short, or there is no EOI.

    >>> import numpy as np
    >>> blob = encode(np.full((1, 32, 32, 3), 128, np.uint8), 50, "420")[0]
    >>> header, payload = split_header_payload(blob)
    >>> len(header) + len(payload) == len(blob), len(header) > 300, len(payload) < 20
    (True, True, True)
    """
    blob = bytes(blob)
    spans = _payload_spans(blob)
    header, payload, last = [], [], 0
    for start, end in spans:
        header.append(blob[last:start])
        payload.append(blob[start:end])
        last = end
    header.append(blob[last:])
    return b"".join(header), b"".join(payload)


def payload_size(blob: bytes) -> int:
    """Bytes of entropy-coded data in a JPEG file (the payload of :func:`split_header_payload`)."""
    return sum(end - start for start, end in _payload_spans(blob))


def read_subsampling(blob: bytes) -> str:
    """Chroma subsampling written in a JPEG file's frame header ("444", "422" or "420"; "gray": one component)."""
    with Image.open(io.BytesIO(blob)) as im:
        if im.mode == "L":
            return "gray"
        return _PIL_TO_NAME.get(JpegImagePlugin.get_sampling(im), "other")


def libjpeg_version() -> str:
    return f"libjpeg-turbo {features.version('libjpeg_turbo')}" if features.check("libjpeg_turbo") else "libjpeg"


def pack(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """JPEG files as one uint8 array of all their bytes and the ``(N + 1,)`` int64 offsets where each one starts
    (the last is the total): how a JPEG test set is stored, the files byte for byte, in an ``.npz``.

    >>> data, offsets = pack([b"ab", b"", b"cde"])
    >>> offsets.tolist(), unpack(data, offsets) == [b"ab", b"", b"cde"]
    ([0, 2, 2, 5], True)
    """
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs], dtype=np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).copy(), offsets


def unpack(data: np.ndarray, offsets: np.ndarray) -> list[bytes]:
    """The files :func:`pack` joined. Raises ValueError on offsets that do not split ``data``."""
    data, offsets = np.asarray(data), np.asarray(offsets)
    if data.dtype != np.uint8 or data.ndim != 1 or offsets.ndim != 1 or offsets.size < 1:
        raise ValueError(f"expected uint8 bytes and 1-D offsets, got {data.dtype} {data.shape} and {offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != data.size or np.any(np.diff(offsets) < 0):
        raise ValueError(f"offsets from {offsets[0]} to {offsets[-1]} do not split {data.size} bytes in order")
    raw = data.tobytes()
    return [raw[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def images_of(data: dict[str, np.ndarray], workers: int | None = None) -> np.ndarray:
    """The images of a stored set: its ``x``, or its JPEG files (``jpeg`` and ``offsets``, :func:`pack`) decoded."""
    if "x" in data:
        return data["x"]
    if "jpeg" in data and "offsets" in data:
        return decode(unpack(data["jpeg"], data["offsets"]), workers)
    raise ValueError("holds neither images ('x') nor JPEG files ('jpeg' and 'offsets')")
