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
# OMP_NUM_THREADS. Under pytest-xdist, a worker inherits the controller's environment: the mark below tells it that the
# session, not the user, set OMP_NUM_THREADS; once the runs have ended it takes its share of the cores (usually one).
_SESSION_SET_THREADS = "ETCBENCH_TESTS_SET_OMP_NUM_THREADS"
_ONE_THREAD_WHILE_RUNS = "OMP_NUM_THREADS" not in os.environ or os.environ.get(_SESSION_SET_THREADS) == "1"
if _ONE_THREAD_WHILE_RUNS:
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ[_SESSION_SET_THREADS] = "1"

import background_runs  # noqa: E402 (after OMP_NUM_THREADS is set)
import numpy as np  # noqa: E402 (after OMP_NUM_THREADS is set)
import pytest  # noqa: E402 (after OMP_NUM_THREADS is set)
from offline_archive import MISSING_ARCHIVE, missing_archive_reason, shared_archive  # noqa: E402 (after OMP_NUM_THREADS is set)

_SESSION_START = time.monotonic()
_ALL_THREADS_AT: float | None = None  # when the tests got all threads back
# worker processes of a session that does not say how many (-n): one per core, at most this many
MAX_WORKERS = 4
_WORKER_RUNS: list[tuple[str, float, float | None]] = []  # under xdist, the controller's copy of the starter's runs


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """With pytest-xdist installed (the ``test`` extra), a session that does not say ``-n`` runs in one worker process
    per core (at most :data:`MAX_WORKERS`, none on one core), and any distributed session that does not say ``--dist``
    groups the readers of the background runs (``--dist loadgroup``: ``tests/background_runs.py``). ``-n 0`` or
    ``-p no:xdist`` runs the session in one process, ``--pdb`` and ``--collect-only`` too. Runs before xdist's own
    ``pytest_cmdline_main``, which turns ``-n`` into workers."""
    option = config.option
    if not config.pluginmanager.hasplugin("xdist") or background_runs.worker() is not None:
        return
    if option.numprocesses is None and not option.collectonly and not option.usepdb:
        cpus = len(os.sched_getaffinity(0))
        option.numprocesses = min(cpus, MAX_WORKERS) if cpus > 1 else None
    if option.numprocesses and option.dist == "no":
        option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist's workers parse the command line again, without the ``--dist`` chosen above: tell them."""
    node.workerinput["etcbench_dist"] = node.config.getvalue("dist")


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config, "workerinput", {}).get("etcbench_dist") == "loadgroup":
        config.option.loadgroup = True  # what xdist's worker sets from its own ``--dist`` (``xdist_group`` marks)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup`` that sends the readers of the background runs to the worker that started them
    (``tests/background_scheduling.py``)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from background_scheduling import BackgroundGroupScheduling

    return BackgroundGroupScheduling(config, log, background_runs.finished_flag(config))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """The controller keeps the background runs' start and end times that the worker which ran them sent back."""
    _WORKER_RUNS.extend(getattr(node, "workeroutput", {}).get("background_runs", []))


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
    lines = background_runs.timeline(_SESSION_START, _WORKER_RUNS or None)
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


@pytest.hookimpl(tryfirst=True)  # before xdist's, which names each test's group in its node id
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that read a background run go last, and in one xdist group (``tests/background_runs.py``)."""
    background_runs.readers_last(items)
    background_runs.pin(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the slow runs the selected tests read (the smoke run, the SLURM run, the rehearsal) before the first test,
    so that they run beside the others (``tests/background_runs.py``)."""
    background_runs.start_needed(session)


def _runs_finished(config: pytest.Config) -> bool:
    """Whether the background runs have ended: this process's own, and under xdist the starting worker's too."""
    if not background_runs.all_finished():
        return False
    if background_runs.starts_runs(config):
        if background_runs.worker() is not None:
            background_runs.finished_flag(config).touch()  # for the scheduler and the other workers
        return True
    return background_runs.worker() is None or background_runs.finished_flag(config).exists()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Between tests (never within one, so the runs a test compares share their threads): all threads back once the
    background runs have ended (under xdist, this worker's share of the cores)."""
    global _ONE_THREAD_WHILE_RUNS, _ALL_THREADS_AT
    if _ONE_THREAD_WHILE_RUNS and _runs_finished(item.config):
        _ONE_THREAD_WHILE_RUNS = False
        _ALL_THREADS_AT = time.monotonic()
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        threads = max(1, len(os.sched_getaffinity(0)) // workers)
        del os.environ[_SESSION_SET_THREADS]
        if workers == 1:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if background_runs.worker() is not None:  # sent to xdist's controller, which prints the timeline
        session.config.workeroutput["background_runs"] = background_runs.records()
    background_runs.stop_all()

