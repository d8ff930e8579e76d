"""The smoke run of the whole DAG, done once per test session and shared by the tests that read its results
(the report checks, and the SLURM test that compares its own run with it). It starts as soon as collection has
selected one of them and runs beside the other tests (``tests/background_runs.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from background_runs import Run, register
from background_runs import run as background_run
from offline_archive import shared_archive
from test_workflow import REPO, snakemake_command

SMOKE_TIMEOUT = 1200  # seconds; about 3 minutes alone on 2 cores, longer beside the other tests


def _smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Run | None:
    """The README's smoke command in a fresh folder under umask 022 (a shared cluster's usual umask, inherited by
    Snakemake and its jobs)."""
    archive = shared_archive()
    if archive is None:
        return None
    workdir = tmp_path_factory.mktemp("smoke")
    cmd = snakemake_command("--cores", "2", "--profile", str(REPO / "workflow/profiles/smoke"), "--configfile",
                            str(REPO / "config/smoke.yaml"), "--directory", str(workdir), timeout=SMOKE_TIMEOUT)
    return Run(cmd, REPO, tmp_path_factory.mktemp("smoke-log") / "snakemake.log", workdir,
               {"ETCBENCH_CIFAR10_ARCHIVE": str(archive)}, SMOKE_TIMEOUT + 30, umask=0o022)


register("smoke_run", _smoke_run)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, cifar_archive) -> Path:
    """Working directory of the local smoke run (failing the test if the run failed)."""
    run = background_run("smoke_run", tmp_path_factory)
    res = run.wait()
    assert res.returncode == 0, res.stdout[-4000:]
    return run.workdir
