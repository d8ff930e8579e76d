"""Tests of etcbench.data.cifar: decoding, integrity checks, archive resolution, stratified subsets, prepare."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench.data import cifar
from etcbench.data.cifar import (
    ARCHIVE_ENV,
    CLASSES,
    CONTENT_SHA256,
    KNOWN_MD5,
    prepare,
    read_archive,
    resolve_archive,
    stratified_subset,
)
from etcbench.errors import EtcbenchError
from etcbench.io import load_npz, read_json, sha256_arrays


@pytest.fixture(scope="module")
def archive(cifar_archive: Path) -> Path:
    return cifar_archive


@pytest.fixture(scope="module")
def data(archive: Path) -> dict[str, np.ndarray]:
    return read_archive(archive)


def _write_tar(path: Path, members: dict[str, bytes], compresslevel: int = 1) -> None:
    with tarfile.open(path, "w:gz", compresslevel=compresslevel) as tf:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- decoding and integrity


def test_shapes_and_dtypes(data: dict[str, np.ndarray]) -> None:
    assert data["train_x"].shape == (50_000, 32, 32, 3) and data["train_x"].dtype == np.uint8
    assert data["test_x"].shape == (10_000, 32, 32, 3) and data["test_x"].dtype == np.uint8
    assert data["train_y"].shape == (50_000,) and data["train_y"].dtype == np.int64
    assert data["test_y"].shape == (10_000,) and data["test_y"].dtype == np.int64
    assert data["train_x"].flags.c_contiguous and data["test_x"].flags.c_contiguous


def test_class_counts_and_first_labels(data: dict[str, np.ndarray]) -> None:
    assert np.array_equal(np.bincount(data["train_y"], minlength=10), np.full(10, 5000))
    assert np.array_equal(np.bincount(data["test_y"], minlength=10), np.full(10, 1000))
    assert data["test_y"][:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert data["train_y"][:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


def test_channel_mean(data: dict[str, np.ndarray]) -> None:
    mean = data["train_x"].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(mean, [125.307, 122.950, 113.865], atol=0.01)


def test_content_digest(data: dict[str, np.ndarray]) -> None:
    assert sha256_arrays(data["train_x"], data["train_y"], data["test_x"], data["test_y"]) == CONTENT_SHA256


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tar.gz"
    with pytest.raises(EtcbenchError, match="does not exist") as info:
        read_archive(missing)
    assert str(missing) in str(info.value)


def test_not_gzip(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.tar.gz"
    bogus.write_bytes(b"this is not a tar file\n" * 100)
    with pytest.raises(EtcbenchError, match="truncated or not a gzip tar file") as info:
        read_archive(bogus)
    assert str(bogus) in str(info.value) and "\n" not in str(info.value)


def test_truncated_archive_and_prepare_writes_nothing(archive: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.tar.gz"
    with open(archive, "rb") as fh:
        truncated.write_bytes(fh.read(1 << 20))
    with pytest.raises(EtcbenchError, match="truncated or not a gzip tar file") as info:
        read_archive(truncated)
    assert str(truncated) in str(info.value) and "\n" not in str(info.value)

    out = tmp_path / "out"
    with pytest.raises(EtcbenchError, match="truncated"):
        prepare(truncated, out / "cifar.npz", out / "cifar.json", 100, 100, 100, seed=0)
    assert not out.exists() or _listing(out) == []
    assert _listing(tmp_path) == ["truncated.tar.gz"]


def test_missing_member(tmp_path: Path) -> None:
    small = tmp_path / "small.tar.gz"
    meta = pickle.dumps({b"label_names": [c.encode() for c in CLASSES]}, protocol=4)
    _write_tar(small, {"cifar-10-batches-py/batches.meta": meta})
    with pytest.raises(EtcbenchError, match="lacks member") as info:
        read_archive(small)
    assert str(small) in str(info.value) and "data_batch_1" in str(info.value)


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


def test_restricted_unpickler_refuses_other_globals(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    _write_tar(evil, {"cifar-10-batches-py/data_batch_1": pickle.dumps({b"data": _Evil()}, protocol=4)})
    with pytest.raises(EtcbenchError, match="forbidden global") as info:
        read_archive(evil)
    assert str(evil) in str(info.value)


def test_one_pixel_changed_is_a_digest_mismatch(archive: Path, tmp_path: Path) -> None:
    modified = tmp_path / "modified.tar.gz"
    n_bytes = 10_000 * 3072
    # compresslevel=0 (stored deflate blocks) keeps re-packing the 180 MB fast; it is still a valid gzip
    with tarfile.open(archive, "r|gz") as src, tarfile.open(modified, "w:gz", compresslevel=0) as dst:
        for member in src:
            payload = src.extractfile(member) if member.isfile() else None
            if member.name.endswith("/test_batch"):
                raw = bytearray(payload.read())
                # the pixel payload is one pickled byte string: opcode T (BINSTRING) or B (BINBYTES) + int32 length
                header = n_bytes.to_bytes(4, "little")
                pos = max(raw.find(b"T" + header), raw.find(b"B" + header))
                assert pos > 0
                raw[pos + 5 + 1234] ^= 0x01
                payload = io.BytesIO(bytes(raw))
            dst.addfile(member, payload)
    message = "content digest mismatch: decoded pixels/labels differ from CIFAR-10"
    with pytest.raises(EtcbenchError, match=message) as info:
        read_archive(modified)
    assert str(modified) in str(info.value)


# --------------------------------------------------------------------------- resolve_archive


def test_resolve_prefers_configured_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured, from_env = tmp_path / "configured.tar.gz", tmp_path / "env.tar.gz"
    configured.write_bytes(b"a")
    from_env.write_bytes(b"b")
    monkeypatch.setenv(ARCHIVE_ENV, str(from_env))
    assert resolve_archive(str(configured), tmp_path / "cache") == configured
    assert resolve_archive(None, tmp_path / "cache") == from_env
    assert resolve_archive("", tmp_path / "cache") == from_env
    assert not (tmp_path / "cache").exists()


def test_resolve_missing_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    missing = tmp_path / "missing.tar.gz"
    with pytest.raises(EtcbenchError, match="does not exist") as info:
        resolve_archive(str(missing), tmp_path / "cache")
    assert str(missing) in str(info.value)
    monkeypatch.setenv(ARCHIVE_ENV, str(missing))
    with pytest.raises(EtcbenchError, match="does not exist") as info:
        resolve_archive(None, tmp_path / "cache")
    assert str(missing) in str(info.value) and ARCHIVE_ENV in str(info.value)


class _FakeResponse(io.BytesIO):
    pass


def test_download_failures_leave_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    cache = tmp_path / "cache"
    calls: list[str] = []

    def wrong_content(url: str, timeout: float) -> _FakeResponse:
        calls.append(url)
        return _FakeResponse(b"not the archive" * 1000)

    monkeypatch.setattr(cifar.urllib.request, "urlopen", wrong_content)
    with pytest.raises(EtcbenchError, match="unexpected md5") as info:
        resolve_archive(None, cache)
    assert calls == [cifar.OFFICIAL_URL]
    assert ARCHIVE_ENV in str(info.value) and "dataset.archive" in str(info.value)
    assert _listing(cache) == []

    def offline(url: str, timeout: float) -> _FakeResponse:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(cifar.urllib.request, "urlopen", offline)
    with pytest.raises(EtcbenchError, match="failed") as info:
        resolve_archive(None, cache)
    assert ARCHIVE_ENV in str(info.value) and "\n" not in str(info.value)
    assert _listing(cache) == []


def test_download_success_and_reuse(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ARCHIVE_ENV, raising=False)
    cache = tmp_path / "cache"
    calls: list[str] = []

    def serve_local(url: str, timeout: float) -> io.BufferedReader:
        calls.append(url)
        return open(archive, "rb")

    monkeypatch.setattr(cifar.urllib.request, "urlopen", serve_local)
    path = resolve_archive(None, cache)
    assert path == cache / "cifar-10-python.tar.gz"
    assert _listing(cache) == ["cifar-10-python.tar.gz"]
    assert hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest() in KNOWN_MD5
    assert resolve_archive(None, cache) == path  # cached: no second download
    assert calls == [cifar.OFFICIAL_URL]


# --------------------------------------------------------------------------- stratified_subset


def test_stratified_subset_on_cifar(data: dict[str, np.ndarray]) -> None:
    y = data["train_y"]
    a = stratified_subset(y, 1000, seed=0)
    assert np.array_equal(a, stratified_subset(y, 1000, seed=0))
    assert not np.array_equal(a, stratified_subset(y, 1000, seed=1))
    assert a.dtype == np.int64 and np.all(np.diff(a) > 0)
    assert np.array_equal(np.bincount(y[a], minlength=10), np.full(10, 100))
    b = stratified_subset(y, 1003, seed=5, exclude=a)
    assert np.intersect1d(a, b).size == 0
    assert np.bincount(y[b], minlength=10).tolist() == [101, 101, 101] + [100] * 7


def test_stratified_subset_too_few() -> None:
    labels = np.repeat(np.arange(10), 3)
    with pytest.raises(EtcbenchError, match="class"):
        stratified_subset(labels, 40, seed=0)
    with pytest.raises(EtcbenchError, match="class"):
        stratified_subset(labels, 21, seed=0, exclude=np.arange(0, 30, 3))  # each class keeps 2 of 3
    with pytest.raises(EtcbenchError):
        stratified_subset(labels, -1, seed=0)
    with pytest.raises(EtcbenchError):
        stratified_subset(labels, 5, seed=0, exclude=np.array([30]))


@st.composite
def _subset_case(draw: st.DrawFn) -> tuple[np.ndarray, int, int, np.ndarray]:
    n_classes = draw(st.integers(1, 10))
    labels = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=1, max_size=300)), dtype=np.int64)
    excl_mask = np.array(draw(st.lists(st.booleans(), min_size=labels.size, max_size=labels.size)), dtype=bool)
    size = draw(st.integers(0, labels.size))
    seed = draw(st.integers(0, 2**32))
    return labels, size, seed, np.flatnonzero(excl_mask)


@settings(max_examples=150, deadline=None)
@given(_subset_case())
def test_stratified_subset_invariants(case: tuple[np.ndarray, int, int, np.ndarray]) -> None:
    labels, size, seed, exclude = case
    classes = np.unique(labels)
    k = classes.size
    quota = np.array([size // k + (i < size % k) for i in range(k)])
    keep = np.ones(labels.size, dtype=bool)
    keep[exclude] = False
    available = np.array([np.count_nonzero(labels[keep] == c) for c in classes])
    if np.any(available < quota):
        with pytest.raises(EtcbenchError):
            stratified_subset(labels, size, seed, exclude=exclude)
        return
    idx = stratified_subset(labels, size, seed, exclude=exclude)
    assert idx.dtype == np.int64 and idx.size == size
    assert np.all(np.diff(idx) > 0)  # sorted, unique
    assert np.intersect1d(idx, exclude).size == 0
    assert [np.count_nonzero(labels[idx] == c) for c in classes] == quota.tolist()
    assert np.array_equal(idx, stratified_subset(labels, size, seed, exclude=exclude))


# --------------------------------------------------------------------------- prepare


def test_prepare_validates_sizes(tmp_path: Path) -> None:
    npz, js = tmp_path / "c.npz", tmp_path / "c.json"
    for sizes in [(0, 10, 10), (10, -1, 10), (10, 10, 10_001), (45_000, 5_001, 10), (50_001, 10, 10)]:
        with pytest.raises(EtcbenchError, match="size"):
            prepare(tmp_path / "never-read.tar.gz", npz, js, *sizes, seed=0)
    assert _listing(tmp_path) == []


def test_prepare(archive: Path, data: dict[str, np.ndarray], tmp_path: Path) -> None:
    npz, js = tmp_path / "out" / "cifar.npz", tmp_path / "out" / "cifar.json"
    record = prepare(archive, npz, js, train_size=1003, val_size=500, test_size=250, seed=7)
    assert _listing(tmp_path / "out") == ["cifar.json", "cifar.npz"]
    arrays = load_npz(npz)
    assert sorted(arrays) == sorted(f"{s}_{k}" for s in ("train", "val", "test") for k in ("x", "y", "idx"))
    for split, source, size in (("train", "train", 1003), ("val", "train", 500), ("test", "test", 250)):
        idx = arrays[f"{split}_idx"]
        assert idx.shape == (size,) and idx.dtype == np.int64
        assert arrays[f"{split}_x"].shape == (size, 32, 32, 3) and arrays[f"{split}_x"].dtype == np.uint8
        assert arrays[f"{split}_y"].dtype == np.int64
        assert np.array_equal(arrays[f"{split}_x"], data[f"{source}_x"][idx])
        assert np.array_equal(arrays[f"{split}_y"], data[f"{source}_y"][idx])
        assert record["idx_sha256"][split] == sha256_arrays(idx)
    assert np.intersect1d(arrays["train_idx"], arrays["val_idx"]).size == 0
    assert np.bincount(arrays["val_y"], minlength=10).tolist() == [50] * 10
    assert read_json(js) == record
    assert record["dataset"] == "cifar10" and record["content_sha256"] == CONTENT_SHA256
    assert record["sizes"] == {"train": 1003, "val": 500, "test": 250} and record["seed"] == 7
    assert record["classes"] == list(CLASSES)
    assert record["archive_md5"] in KNOWN_MD5
    assert record["archive_source"] in {"official", "re-packed copy"}
    # the documented seeds: val with seed + 1, train with seed excluding val, test with seed + 2
    assert np.array_equal(arrays["val_idx"], stratified_subset(data["train_y"], 500, 8))
    assert np.array_equal(arrays["train_idx"], stratified_subset(data["train_y"], 1003, 7, exclude=arrays["val_idx"]))
    assert np.array_equal(arrays["test_idx"], stratified_subset(data["test_y"], 250, 9))
