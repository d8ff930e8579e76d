"""Atomic file writes, all-or-nothing output sets, JSON helpers and checksums.

Every output of etcbench is written through :func:`atomic_write` (a temporary file in the destination folder,
then ``os.replace``), so a killed job never leaves a half-written file; inside :func:`all_or_nothing` (every CLI
stage runs in one) a failing stage also removes the whole files it already wrote, so it leaves no partial output.
"""

from __future__ import annotations

import contextlib
import contextvars
import glob
import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EtcbenchError

__all__ = ["all_or_nothing", "atomic_write", "default_file_mode", "json_object", "write_json", "read_json", "save_npz",
           "load_npz", "sha256_file", "sha256_arrays"]


# the outputs written so far in the innermost all_or_nothing block (None outside any)
_written: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("etcbench_written", default=None)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[list[Path]]:
    """Collect the outputs :func:`atomic_write` puts in place inside the block; remove them all if it fails.

    Blocks nest: an inner block that succeeds hands its files to the outer one. Files written with
    ``output=False`` (a download cache, a training job's resumable state) are kept.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> try:
    ...     with all_or_nothing():
    ...         write_json(folder / "a.json", {"done": False})
    ...         raise RuntimeError("the stage fails after its first file")
    ... except RuntimeError:
    ...     pass
    >>> sorted(p.name for p in folder.iterdir())
    []
    >>> folder.rmdir()
    """
    written: list[Path] = []
    outer = _written.get()
    token = _written.set(written)
    try:
        yield written
    except BaseException:
        for path in reversed(written):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    finally:
        _written.reset(token)
    if outer is not None:
        outer.extend(written)


def default_file_mode() -> int:
    """The permission bits ``open`` gives a new file under the current umask: ``0o666 & ~umask``.

    >>> old = os.umask(0o027)
    >>> oct(default_file_mode())
    '0o640'
    >>> _ = os.umask(old)
    """
    return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux shows it without changing it (os.umask would, process-wide, for an instant)
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: int | None = None, binary: bool = True,
                 output: bool = True) -> Iterator[Any]:
    """Open a temporary file beside ``path`` and move it into place only if the block succeeds.

    Args:
        path: final destination.
        mode: permission bits (e.g. ``0o600`` for key files), set before the file is visible; by default
            those of a file the process would create with ``open`` (0666 less the umask: 0644 under umask 022),
            not the 0600 of the temporary file.
        binary: open in binary mode (default) or text mode.
        output: the file is an output of the running stage, removed again if the stage fails
            (:func:`all_or_nothing`); ``False`` for caches and resumable state.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    try:
        os.fchmod(fd, default_file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    written = _written.get()
    if output and written is not None:
        written.append(path)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporaries of earlier writes of ``path`` that a killed process (SIGKILL, power loss) left behind.

    Every output has one writer at a time (a Snakemake job owns its outputs, a training its state folder), so any
    ``.<name>.*.tmp`` beside ``path`` is a leftover of a write that never finished.
    """
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()


def json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object given on a command line; a ``ValueError`` says what is wrong.

    >>> json_object('{"depth": 12}')
    {'depth': 12}
    >>> json_object('[1, 2]')
    Traceback (most recent call last):
    ...
    ValueError: expected a JSON object, got list
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, binary=False) as fh:
        json.dump(obj, fh, indent=2, sort_keys=False, default=_json_default)
        fh.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def save_npz(path: str | os.PathLike, mode: int | None = None, **arrays: np.ndarray) -> None:
    """Save arrays to an uncompressed ``.npz`` atomically (no pickled objects)."""
    with atomic_write(path, mode=mode) as fh:
        np.savez(fh, **arrays)


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` into memory; pickled objects are refused.

    Raises:
        EtcbenchError: one line naming the file: missing, a folder, unreadable, truncated or not an ``.npz``.
    """
    path = Path(path)
    if not path.exists():
        raise EtcbenchError(f"{path} does not exist")
    if path.is_dir():
        raise EtcbenchError(f"{path} is a folder, not an .npz file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0] or type(exc).__name__
        raise EtcbenchError(f"{path} is not a readable .npz file (truncated or corrupt? {reason})") from None


def require_images(x: np.ndarray, where: str, channels: tuple[int, ...] = (3,)) -> np.ndarray:
    """Refuse an image set that is not ``(N, H, W, C)`` uint8 with ``C`` in ``channels`` (one line naming it).

    Every stage exchanges uint8 images, so a float array (values in [0, 1] or in [0, 255] alike) is a dtype error
    here rather than a silent rescaling.
    """
    shape = tuple(np.shape(x))
    if np.asarray(x).dtype != np.uint8:
        raise EtcbenchError(f"{where}: images must be uint8 (0-255), got {np.asarray(x).dtype} {shape}")
    if len(shape) != 4 or shape[-1] not in channels or 0 in shape:
        want = " or ".join(str(c) for c in channels)
        raise EtcbenchError(f"{where}: images must be (N, H, W, {want}), got shape {shape}")
    return x


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_arrays(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtype, shape and bytes of each array, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
