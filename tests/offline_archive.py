"""Where the tests find the offline CIFAR-10 archive, and what they say when there is none."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
