"""Shared fixtures: natural test images and the offline CIFAR-10 archive."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# One thread per process, for this one and every process the tests start (set before anything imports torch), while
# the slow runs of tests/background_runs.py share the cores with the other tests: OpenMP threads waiting for a
# descheduled sibling spin, which made a session with two threads per process slower than a serial one. Once those
# runs have ended, the next test starts with the usual threads again (pytest_runtest_setup), unless the user set
# OMP_NUM_THREADS.
_ONE_THREAD_WHILE_RUNS = "OMP_NUM_THREADS" not in os.environ
if _ONE_THREAD_WHILE_RUNS:
    os.environ["OMP_NUM_THREADS"] = "1"

import background_runs  # noqa: E402 (after OMP_NUM_THREADS is set)
import numpy as np  # noqa: E402 (after OMP_NUM_THREADS is set)
import pytest  # noqa: E402 (after OMP_NUM_THREADS is set)
from offline_archive import MISSING_ARCHIVE, missing_archive_reason, shared_archive  # noqa: E402 (after OMP_NUM_THREADS is set)

_SESSION_START = time.monotonic()
_ALL_THREADS_AT: float | None = None  # when the tests got all threads back


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Keep ``--doctest-modules`` (pyproject's addopts) to the package: the files under tests/ hold no doctests,
    and importing them once more as doctest modules would clash on basenames their folders share (``conftest``)."""
    from _pytest.doctest import DoctestModule

    collected = yield
    return [c for c in collected if not isinstance(c, DoctestModule)]


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
    # when the background runs started and ended, and when the tests got all threads back (for tuning the time)
    lines = background_runs.timeline(_SESSION_START)
    if lines and _ALL_THREADS_AT is not None:
        lines.append(f"all threads back from {_ALL_THREADS_AT - _SESSION_START:.0f} s")
    if lines:
        terminalreporter.write_sep("-", "background runs (seconds from the session's start)")
        for line in lines:
            terminalreporter.write_line(line)


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that read a background run go last (``tests/background_runs.py``)."""
    background_runs.readers_last(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the slow runs the selected tests read (the smoke run, the SLURM run, the rehearsal) before the first test,
    so that they run beside the others (``tests/background_runs.py``)."""
    background_runs.start_needed(session)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Between tests (never within one, so the runs a test compares share their threads): all threads back once the
    background runs have ended."""
    global _ONE_THREAD_WHILE_RUNS, _ALL_THREADS_AT
    if _ONE_THREAD_WHILE_RUNS and background_runs.all_finished():
        _ONE_THREAD_WHILE_RUNS = False
        _ALL_THREADS_AT = time.monotonic()
        del os.environ["OMP_NUM_THREADS"]
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(len(os.sched_getaffinity(0)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    background_runs.stop_all()

