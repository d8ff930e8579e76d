"""CIFAR-10: locate or download the archive, decode it safely, verify its content, pick stratified subsets.

The integrity check is :data:`CONTENT_SHA256`, a digest of the *decoded* pixels and labels (see
:func:`etcbench.io.sha256_arrays`), not the archive's md5: re-packed copies of the official archive hold the
same pixels and labels but differ byte-wise, so only the decoded content identifies the data set.

Batches are unpickled with a restricted :class:`pickle.Unpickler` that resolves only the three globals numpy
needs to rebuild an ``ndarray`` (``_reconstruct``, ``ndarray``, ``dtype``); any other global is refused.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from etcbench.errors import EtcbenchError
from etcbench.io import all_or_nothing, atomic_write, save_npz, sha256_arrays, write_json

try:  # numpy >= 2: the implementation lives in numpy._core (numpy.core is a deprecated alias)
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _np_reconstruct

__all__ = [
    "OFFICIAL_URL",
    "KNOWN_MD5",
    "CONTENT_SHA256",
    "CLASSES",
    "ARCHIVE_ENV",
    "read_archive",
    "resolve_archive",
    "stratified_subset",
    "prepare",
    "md5_file",
    "archive_source",
]

log = logging.getLogger(__name__)

OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
KNOWN_MD5 = {
    "c58f30108f718f92721af3b95e74349a": "official",
    "56503bbfd5890fc94de2001c20a421b8": "re-packed copy (same pixels, re-created filenames)",
}
#: ``sha256_arrays(train_x, train_y, test_x, test_y)`` of the decoded data in the official order: train =
#: data_batch_1..5 concatenated, test = test_batch; x uint8 ``(N, 32, 32, 3)`` NHWC, y int64.
CONTENT_SHA256 = "b7d593c4d8cf1260dce77e8332de59a8bcc39684afdfd329a4a5a59a6e555452"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
ARCHIVE_ENV = "ETCBENCH_CIFAR10_ARCHIVE"
ARCHIVE_NAME = "cifar-10-python.tar.gz"

_PREFIX = "cifar-10-batches-py/"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_META = "batches.meta"
_MEMBERS = (*_TRAIN_BATCHES, _TEST_BATCH, _META)
_N_TRAIN, _N_TEST, _SIDE = 50_000, 10_000, 32
_PIXELS = 3 * _SIDE * _SIDE

# Errors a damaged pickle can raise beyond UnpicklingError (bad opcodes, bad numpy state, ...).
_PICKLE_ERRORS = (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError)
# Errors a truncated, corrupt or non-gzip/tar file raises while it is streamed.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` of an exception, collapsed to a single line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals needed to rebuild a numpy array."""

    _ALLOWED: dict[tuple[str, str], Any] = {
        ("numpy.core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _np_reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name}") from None


def _unpickle(fh: IO[bytes]) -> Any:
    """Unpickle a Python-2 era CIFAR batch (byte strings stay ``bytes``) with the restricted unpickler."""
    return _BatchUnpickler(fh, encoding="bytes").load()


def _decode_batch(obj: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one unpickled batch and return its ``(data, labels)`` as ``(N, 3072)`` uint8 and ``(N,)`` int64."""
    if not isinstance(obj, dict):
        raise EtcbenchError(f"{what} is not a CIFAR-10 batch (a {type(obj).__name__}, expected a dict)")
    try:
        data, labels = obj[b"data"], obj[b"labels"]
    except KeyError as exc:
        raise EtcbenchError(f"{what} lacks the key {exc.args[0]!r}") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise EtcbenchError(f"{what} has data {got}, expected uint8 (N, {_PIXELS})")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EtcbenchError(f"{what} has labels that are not integers ({_one_line(exc)})") from None
    if y.shape != (data.shape[0],):
        raise EtcbenchError(f"{what} has labels of shape {y.shape} for {data.shape[0]} images")
    return data, y


def _to_nhwc(data: list[np.ndarray]) -> np.ndarray:
    """Concatenate ``(N, 3072)`` R|G|B-plane rows into one contiguous uint8 ``(N, 32, 32, 3)`` array."""
    x = np.concatenate(data).reshape(-1, 3, _SIDE, _SIDE)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def _read(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Stream the archive once; return the verified arrays and the class names of ``batches.meta``."""
    name = f"CIFAR-10 archive {path}"
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    meta: Any = None
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below; opened apart to tell "missing" from "corrupt"
    except FileNotFoundError:
        raise EtcbenchError(f"{name} does not exist") from None
    except OSError as exc:
        raise EtcbenchError(f"{name} cannot be read ({_one_line(exc)})") from None
    with fh:
        try:
            with tarfile.open(fileobj=fh, mode="r|gz") as tf:
                for member in tf:
                    if not member.name.startswith(_PREFIX) or member.name[len(_PREFIX) :] not in _MEMBERS:
                        continue  # readme.html, the folder entry
                    short = member.name[len(_PREFIX) :]
                    what = f"{name}: member {member.name}"
                    src = tf.extractfile(member) if member.isfile() else None
                    if src is None:
                        raise EtcbenchError(f"{what} is not a regular file")
                    try:
                        obj = _unpickle(src)
                    except _PICKLE_ERRORS as exc:
                        raise EtcbenchError(f"{what} is not a valid CIFAR-10 pickle ({_one_line(exc)})") from None
                    if short == _META:
                        meta = obj
                    else:
                        batches[short] = _decode_batch(obj, what)
        except EtcbenchError:
            raise
        except _ARCHIVE_ERRORS as exc:
            raise EtcbenchError(f"{name} is truncated or not a gzip tar file ({_one_line(exc)})") from None

    missing = [_PREFIX + m for m in _MEMBERS if m not in batches and not (m == _META and meta is not None)]
    if missing:
        raise EtcbenchError(f"{name} lacks member(s) {', '.join(missing)}")

    train = [batches[b] for b in _TRAIN_BATCHES]
    test_data, test_y = batches[_TEST_BATCH]
    arrays = {
        "train_x": _to_nhwc([d for d, _ in train]),
        "train_y": np.concatenate([y for _, y in train]),
        "test_x": _to_nhwc([test_data]),
        "test_y": test_y,
    }
    expected = {"train_x": (_N_TRAIN, _SIDE, _SIDE, 3), "train_y": (_N_TRAIN,)}
    expected |= {"test_x": (_N_TEST, _SIDE, _SIDE, 3), "test_y": (_N_TEST,)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise EtcbenchError(f"{name} decodes to {key} of shape {arrays[key].shape}, expected {shape}")
    digest = sha256_arrays(arrays["train_x"], arrays["train_y"], arrays["test_x"], arrays["test_y"])
    if digest != CONTENT_SHA256:
        raise EtcbenchError(f"{name} content digest mismatch: decoded pixels/labels differ from CIFAR-10 ({digest})")

    try:
        classes = [n.decode("ascii") if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]
    except (TypeError, KeyError, UnicodeDecodeError) as exc:
        raise EtcbenchError(f"{name}: {_PREFIX}{_META} has no readable label_names ({_one_line(exc)})") from None
    if tuple(classes) != CLASSES:
        raise EtcbenchError(f"{name}: {_PREFIX}{_META} label_names {classes} differ from CIFAR-10's {list(CLASSES)}")
    return arrays, classes


def read_archive(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Decode and verify a ``cifar-10-python.tar.gz``.

    The archive is streamed once (members may come in any order); each batch is unpickled with a restricted
    unpickler, the R|G|B planes are turned into NHWC, and the digest of the result must equal
    :data:`CONTENT_SHA256`.

    Args:
        path: the archive.

    Returns:
        ``train_x`` uint8 ``(50000, 32, 32, 3)``, ``train_y`` int64 ``(50000,)``, ``test_x`` uint8
        ``(10000, 32, 32, 3)``, ``test_y`` int64 ``(10000,)``, in the official order.

    Raises:
        EtcbenchError: the file is missing, unreadable, truncated, not a gzip tar, lacks a member, holds
            something other than CIFAR-10 batches, or decodes to other pixels/labels than CIFAR-10.
    """
    arrays, _ = _read(Path(path))
    return arrays


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file (only to recognise known archives; integrity is :data:`CONTENT_SHA256`)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def archive_source(md5: str) -> str:
    """``"official"``, ``"re-packed copy"`` or ``"unknown"`` for an archive md5."""
    known = KNOWN_MD5.get(md5)
    if known is None:
        return "unknown"
    return "official" if known == "official" else "re-packed copy"


def _log_archive(path: Path, how: str) -> str:
    """Log where the archive came from and what its md5 says; returns the md5."""
    try:
        md5 = md5_file(path)
    except OSError as exc:
        raise EtcbenchError(f"CIFAR-10 archive {path} cannot be read ({_one_line(exc)})") from None
    if md5 in KNOWN_MD5:
        log.info("CIFAR-10 archive %s (%s): md5 %s, %s", path, how, md5, KNOWN_MD5[md5])
    else:
        log.warning(
            "CIFAR-10 archive %s (%s): unknown md5 %s; accepted only if its decoded content digest matches",
            path, how, md5,
        )
    return md5


def _download(dest: Path, timeout: float = 60.0) -> None:
    """Download :data:`OFFICIAL_URL` to ``dest`` atomically; nothing is left behind on failure."""
    hint = f"set {ARCHIVE_ENV} or dataset.archive to a local copy of {ARCHIVE_NAME}"
    log.info("downloading %s to %s", OFFICIAL_URL, dest)
    try:
        with atomic_write(dest, output=False) as out:  # a cache, kept for the next run
            h = hashlib.md5(usedforsecurity=False)
            with urllib.request.urlopen(OFFICIAL_URL, timeout=timeout) as resp:
                while block := resp.read(1 << 20):
                    h.update(block)
                    out.write(block)
            md5 = h.hexdigest()
            if md5 not in KNOWN_MD5:
                raise EtcbenchError(f"download of {OFFICIAL_URL} has unexpected md5 {md5}; {hint}")
    except EtcbenchError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise EtcbenchError(f"download of {OFFICIAL_URL} failed ({_one_line(exc)}); {hint}") from None


def resolve_archive(configured: str | os.PathLike | None, cache_dir: Path) -> Path:
    """Find the CIFAR-10 archive: the configured path, else ``$ETCBENCH_CIFAR10_ARCHIVE``, else a download.

    A download goes to ``cache_dir/cifar-10-python.tar.gz`` (reused when already there) through a temporary
    file that is moved into place only if its md5 is one of :data:`KNOWN_MD5`.

    Args:
        configured: ``dataset.archive`` from the config, or ``None``/empty for "not set".
        cache_dir: where a download is stored.

    Returns:
        The archive's path (its content is verified later by :func:`read_archive`).

    Raises:
        EtcbenchError: a configured or environment path is not a file, or the download failed.
    """
    env = os.environ.get(ARCHIVE_ENV)
    if configured:
        path, how = Path(configured).expanduser(), "dataset.archive"
    elif env:
        path, how = Path(env).expanduser(), f"${ARCHIVE_ENV}"
    else:
        path = Path(cache_dir).expanduser() / ARCHIVE_NAME
        how = "cached download"
        if not path.is_file():
            _download(path)
            how = f"downloaded from {OFFICIAL_URL}"
        _log_archive(path, how)
        return path
    if not path.exists():
        raise EtcbenchError(f"CIFAR-10 archive {path} (from {how}) does not exist")
    if not path.is_file():
        raise EtcbenchError(f"CIFAR-10 archive {path} (from {how}) is not a file")
    _log_archive(path, how)
    return path


def stratified_subset(labels: np.ndarray, size: int, seed: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Pick a deterministic, class-balanced random subset of indices.

    With ``k`` distinct classes in ``labels`` (10 for CIFAR-10), each class gets ``size // k`` images and the
    first ``size % k`` classes (in sorted label order) one more. Every index gets a random rank from
    ``np.random.default_rng(seed).permutation(len(labels))`` (independent of ``exclude``); within each class the
    lowest-ranked candidates are taken, so for a fixed seed a smaller subset is (up to the remainder) contained
    in a larger one.

    Args:
        labels: 1-D integer class labels.
        size: number of indices to return (>= 0).
        seed: non-negative seed.
        exclude: indices that must not be picked (e.g. the validation set when picking the training set).

    Returns:
        Sorted int64 indices into ``labels``.

    Raises:
        EtcbenchError: bad arguments, or a class has fewer than its quota of (non-excluded) images.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise EtcbenchError(f"labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 0:
        raise EtcbenchError(f"subset size must be a non-negative integer, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise EtcbenchError(f"seed must be a non-negative integer, got {seed!r}")
    n = labels.shape[0]
    classes, cls = np.unique(labels, return_inverse=True)
    k = len(classes)
    if size == 0:
        return np.empty(0, dtype=np.int64)
    if k == 0:
        raise EtcbenchError(f"cannot pick {size} images from an empty label array")

    rank = np.random.default_rng(seed).permutation(n)
    candidate = np.ones(n, dtype=bool)
    if exclude is not None:
        exclude = np.asarray(exclude).ravel()
        if exclude.size:
            if not np.issubdtype(exclude.dtype, np.integer) or exclude.min() < 0 or exclude.max() >= n:
                raise EtcbenchError(f"exclude must hold integer indices in [0, {n})")
            candidate[exclude] = False
    cand = np.flatnonzero(candidate)
    cand_cls = cls[cand]

    quota = np.full(k, size // k, dtype=np.int64)
    quota[: size % k] += 1
    available = np.bincount(cand_cls, minlength=k)
    short = np.flatnonzero(available < quota)
    if short.size:
        c = short[0]
        raise EtcbenchError(
            f"class {classes[c]} has {available[c]} eligible images, fewer than the {quota[c]} needed for a "
            f"stratified subset of {size}"
        )

    order = np.lexsort((rank[cand], cand_cls))  # by class, then random rank
    sorted_cls = cand_cls[order]
    start = np.cumsum(available) - available  # first position of each class in ``order``
    within = np.arange(order.size) - start[sorted_cls]
    chosen = cand[order[within < quota[sorted_cls]]]
    return np.sort(chosen).astype(np.int64, copy=False)


def _check_size(name: str, value: int, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise EtcbenchError(f"dataset {name} size must be a positive integer, got {value!r}")
    if value > limit:
        raise EtcbenchError(f"dataset {name} size {value} exceeds the {limit} CIFAR-10 images available")


def prepare(
    archive: Path,
    out_npz: Path,
    out_json: Path,
    train_size: int,
    val_size: int,
    test_size: int,
    seed: int,
) -> dict:
    """Read and verify the archive, pick stratified subsets and write them with their provenance.

    Selection (all stratified, see :func:`stratified_subset`): ``val`` from the 50,000 training images with
    ``seed + 1``; ``train`` from the training images minus ``val`` with ``seed``; ``test`` from the 10,000 test
    images with ``seed + 2``. Picking ``val`` first keeps it the same for every ``train_size`` under one seed.

    ``out_npz`` holds ``{train,val,test}_{x,y,idx}`` (x uint8 ``(N, 32, 32, 3)``, y and idx int64; idx index
    the official train/test order). ``out_json`` records the provenance. Both are written atomically, the npz
    first and the json last, and only after everything else succeeded.

    Args:
        archive: the ``cifar-10-python.tar.gz``.
        out_npz: destination of the arrays.
        out_json: destination of the provenance record.
        train_size: number of training images.
        val_size: number of validation images (disjoint from training).
        test_size: number of test images.
        seed: non-negative base seed.

    Returns:
        The provenance record written to ``out_json``.

    Raises:
        EtcbenchError: bad sizes or seed, or any problem of :func:`read_archive`.
    """
    _check_size("train", train_size, _N_TRAIN)
    _check_size("val", val_size, _N_TRAIN)
    _check_size("test", test_size, _N_TEST)
    if train_size + val_size > _N_TRAIN:
        raise EtcbenchError(
            f"dataset train size {train_size} + val size {val_size} exceed the {_N_TRAIN} CIFAR-10 training images"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise EtcbenchError(f"dataset seed must be a non-negative integer, got {seed!r}")
    archive = Path(archive)

    arrays, classes = _read(archive)
    md5 = md5_file(archive)
    val_idx = stratified_subset(arrays["train_y"], val_size, seed + 1)
    train_idx = stratified_subset(arrays["train_y"], train_size, seed, exclude=val_idx)
    test_idx = stratified_subset(arrays["test_y"], test_size, seed + 2)

    out: dict[str, np.ndarray] = {}
    for split, source, idx in (("train", "train", train_idx), ("val", "train", val_idx), ("test", "test", test_idx)):
        out[f"{split}_x"] = arrays[f"{source}_x"][idx]
        out[f"{split}_y"] = arrays[f"{source}_y"][idx]
        out[f"{split}_idx"] = idx
    record = {
        "dataset": "cifar10",
        "content_sha256": CONTENT_SHA256,
        "archive": str(archive),
        "archive_md5": md5,
        "archive_source": archive_source(md5),
        "sizes": {"train": int(train_size), "val": int(val_size), "test": int(test_size)},
        "seed": int(seed),
        "selection": "stratified; val from train images with seed+1, train from the rest with seed, "
        "test from test images with seed+2",
        "idx_sha256": {split: sha256_arrays(out[f"{split}_idx"]) for split in ("train", "val", "test")},
        "classes": classes,
    }
    writing = out_npz
    try:
        with all_or_nothing():  # the json marks completion: no npz without it
            save_npz(out_npz, **out)
            writing = out_json
            write_json(out_json, record)
    except OSError as exc:
        raise EtcbenchError(f"cannot write {writing} ({_one_line(exc)})") from None
    log.info(
        "wrote %s (train %d, val %d, test %d, seed %d) and %s", out_npz, train_size, val_size, test_size, seed, out_json
    )
    return record
