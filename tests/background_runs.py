"""Slow runs that tests read, started as soon as collection knows they are needed, and run beside the other tests.

The smoke run of the workflow, its run through SLURM and the CPU rehearsal of ``config/paper.yaml`` are subprocesses
of minutes each, and a test session spends much of their time waiting on them: on Snakemake's job launches, on the
SLURM executor's status polls, while the unit tests use one core at a time. A test module registers such a run under
the name of the fixture that hands it out (:func:`register`); once collection has finished, every registered run that
a selected test needs, directly or through other fixtures, is started in a process group of its own
(:func:`start_needed`, called from ``tests/conftest.py``), and the fixture waits for it (:meth:`Run.wait`). A session
that selects none of those tests starts none of them; a fixture asked for a run that was not started early starts it
then. The modules that read such a run go last (:func:`readers_last`), so that the other tests run while it works.
Whatever still runs when the session ends is killed (:func:`stop_all`).

Under pytest-xdist (``tests/conftest.py`` runs the session in one worker per core), the runs start in one worker
only, :data:`STARTER`, and every test that reads a run, or uses a fixture that must live in the process that started
them (:func:`same_process`: the SLURM cluster), carries the ``xdist_group`` :data:`GROUP` (:func:`pin`), which the
session's scheduler hands to that worker once its runs have ended (:func:`finished_flag`), or when nothing else is
left; until then that worker runs other tests, as the single process of a session without xdist does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Run:
    """One subprocess: ``cmd`` in ``cwd`` with ``env`` added to the environment, its output in ``log``; ``workdir``
    is where it writes what the tests read."""

    cmd: list[str]
    cwd: Path
    log: Path
    workdir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 1200
    umask: int | None = None
    proc: subprocess.Popen | None = None
    started: float = 0.0
    ended: float | None = None  # when the run was first seen finished (checked between tests and by wait)

    def start(self) -> Run:
        old = os.umask(self.umask) if self.umask is not None else None  # inherited by the run and its children
        try:
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                             env={**os.environ, **self.env}, start_new_session=True)
        finally:
            if old is not None:
                os.umask(old)
        self.started = time.monotonic()
        return self

    def wait(self) -> subprocess.CompletedProcess:
        """The finished run (its output in ``stdout``); killed with its process group past ``timeout`` seconds from
        its start, which then fails the test that waited."""
        assert self.proc is not None, "the run was never started"
        try:
            self.proc.wait(timeout=max(1.0, self.timeout - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"{' '.join(map(str, self.cmd[:6]))} ... ran past {self.timeout:.0f} s; output in {self.log}")
        self.finished()
        return subprocess.CompletedProcess(self.cmd, self.proc.returncode, self.log.read_text(errors="replace"), "")

    def finished(self) -> bool:
        """Whether the process has ended (its end time is recorded the first time it is seen so)."""
        if self.proc is None or self.proc.poll() is None:
            return False
        if self.ended is None:
            self.ended = time.monotonic()
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# fixture name -> builder of its run: (session's tmp_path_factory) -> a Run not yet started, or None to run nothing
Builder = Callable[[pytest.TempPathFactory], "Run | None"]
_BUILDERS: dict[str, Builder] = {}
_RUNS: dict[str, Run | None] = {}
_CLEANUPS: list[Callable[[], None]] = []
# fixtures whose tests must run in the process that started the runs (they share its state, not only its files)
_SAME_PROCESS: set[str] = set()

# the xdist_group of the tests that read a run, and the worker that starts the runs and runs that group
GROUP = "background-runs"
STARTER = "gw0"
_FLAG = "background-runs-finished"


def register(fixture: str, builder: Builder) -> None:
    """Start ``builder``'s run early in every session that selects a test using the fixture named ``fixture``."""
    _BUILDERS[fixture] = builder


def on_session_end(cleanup: Callable[[], None]) -> None:
    """Call ``cleanup`` when the session ends (after the runs are stopped), whatever happened."""
    _CLEANUPS.append(cleanup)


def same_process(fixture: str) -> None:
    """Run every test using the fixture named ``fixture`` in the process that starts the runs (under xdist, the
    worker :data:`STARTER`): the fixture holds state of that process, such as the SLURM cluster the SLURM run uses."""
    _SAME_PROCESS.add(fixture)


def pinned(item: pytest.Item) -> bool:
    """Whether ``item`` reads a registered run or uses a :func:`same_process` fixture."""
    return bool(set(getattr(item, "fixturenames", ())) & (_BUILDERS.keys() | _SAME_PROCESS))


def pin(items: list[pytest.Item]) -> None:
    """Mark the :func:`pinned` items with ``xdist_group(GROUP)`` (read by ``--dist loadgroup``; no effect without
    xdist)."""
    for item in items:
        if pinned(item):
            item.add_marker(pytest.mark.xdist_group(GROUP))


def worker() -> str | None:
    """This process's xdist worker id, None in a session without xdist (or in xdist's controller)."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def starts_runs(config: pytest.Config) -> bool:
    """Whether this process starts the runs early: the only process of a session without xdist, or the worker
    :data:`STARTER` of one that groups the tests (``--dist loadgroup``, which ``tests/conftest.py`` selects). Any other
    process starts a run only if one of its tests asks for it (:func:`run`)."""
    name = worker()
    return name is None or (name == STARTER and bool(config.getvalue("loadgroup")))


def finished_flag(config: pytest.Config) -> Path:
    """The file :data:`STARTER` creates once its runs have ended, in the session's base temporary folder (the folder
    of the workers' own base folders), where xdist's controller and the other workers look for it."""
    if worker() is not None:
        return Path(config.option.basetemp).parent / _FLAG
    return config._tmp_path_factory.getbasetemp() / _FLAG


def readers_last(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: the modules with a test that reads a registered run go after all the others
    (each module whole, in its own order), so that the session runs the independent tests while those runs work
    instead of waiting on them."""
    reading = {item.module for item in items if set(getattr(item, "fixturenames", ())) & _BUILDERS.keys()
               if getattr(item, "module", None) is not None}
    items.sort(key=lambda item: getattr(item, "module", None) in reading)  # stable: the order within each part


def start_needed(session: pytest.Session) -> None:
    """Start the registered runs that the selected tests need (``item.fixturenames`` is the closure of fixtures)."""
    if session.config.option.collectonly or not starts_runs(session.config):
        return
    needed = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    for name in _BUILDERS:
        if name in needed:
            run(name, session.config._tmp_path_factory)  # the factory that tmp_path_factory hands to fixtures


def run(fixture: str, tmp_path_factory: pytest.TempPathFactory) -> Run | None:
    """The started run registered for ``fixture`` (started now if it was not started early)."""
    if fixture not in _RUNS:
        built = _BUILDERS[fixture](tmp_path_factory)
        _RUNS[fixture] = built.start() if built is not None else None
    return _RUNS[fixture]


def all_finished() -> bool:
    """Whether every run started so far has ended (True when none was started)."""
    finished = [r is None or r.proc is None or r.finished() for r in _RUNS.values()]  # each records its end
    return all(finished)


def records() -> list[tuple[str, float, float | None]]:
    """(fixture, start, end or None) of each run started, in ``time.monotonic()`` seconds (one clock for all the
    processes of the machine, so that xdist's controller can print another process's :func:`timeline`)."""
    return [(name, r.started, r.ended) for name, r in _RUNS.items() if r is not None and r.proc is not None]


def timeline(since: float, runs: list[tuple[str, float, float | None]] | None = None) -> list[str]:
    """One line per run started (``runs``: :func:`records` of this process by default): when it started and ended,
    in seconds from ``since`` (``time.monotonic()``)."""
    lines = []
    for name, started, ended in records() if runs is None else runs:
        end = f"{ended - since:.0f} s" if ended is not None else "still running"
        lines.append(f"{name}: started at {started - since:.0f} s, seen ended at {end}")
    return lines


def stop_all() -> None:
    try:
        for started in _RUNS.values():
            if started is not None:
                started.stop()
    finally:
        while _CLEANUPS:
            _CLEANUPS.pop()()
