"""Shared fixtures: natural test images and the offline CIFAR-10 archive."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Keep ``--doctest-modules`` (pyproject's addopts) to the package: the files under tests/ hold no doctests,
    and importing them once more as doctest modules would clash on basenames their folders share (``conftest``)."""
    from _pytest.doctest import DoctestModule

    collected = yield
    return [c for c in collected if not isinstance(c, DoctestModule)]


SHARED_ARCHIVE = REPO.parent / "shared/datasets/cifar-10-python.tar.gz"
# starts the skip reason of every test that needed the archive and found none (the summary line counts them)
MISSING_ARCHIVE = "no CIFAR-10 archive (cifar-10-python.tar.gz)"


def shared_archive() -> Path | None:
    """$ETCBENCH_CIFAR10_ARCHIVE, else the offline CIFAR-10 copy beside the checkout."""
    for candidate in (os.environ.get("ETCBENCH_CIFAR10_ARCHIVE"), SHARED_ARCHIVE):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def missing_archive_reason() -> str:
    """Where the archive was looked for, and how to point the tests at one."""
    env = os.environ.get("ETCBENCH_CIFAR10_ARCHIVE")
    looked = f"$ETCBENCH_CIFAR10_ARCHIVE={env} is no file" if env else "$ETCBENCH_CIFAR10_ARCHIVE is not set"
    return (f"{MISSING_ARCHIVE}: {looked} and {SHARED_ARCHIVE} does not exist; point the tests at one with "
            "ETCBENCH_CIFAR10_ARCHIVE=/path/to/cifar-10-python.tar.gz, or put it at "
            "../shared/datasets/cifar-10-python.tar.gz beside the checkout")


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    """Path of the offline CIFAR-10 archive; the test is skipped, with a reason that says how to provide one, when
    there is none."""
    archive = shared_archive()
    if archive is None:
        pytest.skip(missing_archive_reason())
    return archive


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line in the summary when tests were skipped for want of the archive (read from the skip reports, so it
    also works where other processes ran the tests)."""
    reasons = [str(r.longrepr[2] if isinstance(r.longrepr, tuple) else r.longrepr)
               for r in terminalreporter.stats.get("skipped", [])]
    missing = [r for r in reasons if MISSING_ARCHIVE in r]
    if missing:
        reason = missing[0][missing[0].index(MISSING_ARCHIVE):]
        terminalreporter.write_line(f"{len(missing)} test(s) skipped, {reason}", yellow=True, bold=True)


@pytest.fixture(scope="session")
def natural_images() -> np.ndarray:
    """Sixteen 64x64 natural-image tiles (scikit-image's astronaut and coffee photos, shipped in the wheel)."""
    from skimage import data

    tiles = []
    for img in (data.astronaut(), data.coffee()):
        img = img[: img.shape[0] // 64 * 64, : img.shape[1] // 64 * 64]
        grid = img.reshape(img.shape[0] // 64, 64, img.shape[1] // 64, 64, 3).transpose(0, 2, 1, 3, 4)
        tiles.append(grid.reshape(-1, 64, 64, 3)[::5][:8])
    return np.ascontiguousarray(np.concatenate(tiles))
