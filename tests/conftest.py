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


def shared_archive() -> Path | None:
    """The offline CIFAR-10 copy beside the checkout, or $ETCBENCH_CIFAR10_ARCHIVE."""
    for candidate in (os.environ.get("ETCBENCH_CIFAR10_ARCHIVE"), REPO.parent / "shared/datasets/cifar-10-python.tar.gz"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    """Path of the offline CIFAR-10 archive; the test is skipped when there is none."""
    archive = shared_archive()
    if archive is None:
        pytest.skip("no offline CIFAR-10 archive (../shared/datasets or $ETCBENCH_CIFAR10_ARCHIVE)")
    return archive


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
