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


def register(fixture: str, builder: Builder) -> None:
    """Start ``builder``'s run early in every session that selects a test using the fixture named ``fixture``."""
    _BUILDERS[fixture] = builder


def on_session_end(cleanup: Callable[[], None]) -> None:
    """Call ``cleanup`` when the session ends (after the runs are stopped), whatever happened."""
    _CLEANUPS.append(cleanup)


def readers_last(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: the modules with a test that reads a registered run go after all the others
    (each module whole, in its own order), so that the session runs the independent tests while those runs work
    instead of waiting on them."""
    reading = {item.module for item in items if set(getattr(item, "fixturenames", ())) & _BUILDERS.keys()
               if getattr(item, "module", None) is not None}
    items.sort(key=lambda item: getattr(item, "module", None) in reading)  # stable: the order within each part


def start_needed(session: pytest.Session) -> None:
    """Start the registered runs that the selected tests need (``item.fixturenames`` is the closure of fixtures)."""
    if session.config.option.collectonly:
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


def timeline(since: float) -> list[str]:
    """One line per run started: when it started and ended, in seconds from ``since`` (``time.monotonic()``)."""
    lines = []
    for name, r in _RUNS.items():
        if r is not None and r.proc is not None:
            end = f"{r.ended - since:.0f} s" if r.ended is not None else "still running"
            lines.append(f"{name}: started at {r.started - since:.0f} s, seen ended at {end}")
    return lines


def stop_all() -> None:
    try:
        for started in _RUNS.values():
            if started is not None:
                started.stop()
    finally:
        while _CLEANUPS:
            _CLEANUPS.pop()()
