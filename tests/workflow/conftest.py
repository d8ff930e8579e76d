"""The smoke run of the whole DAG, done once per test session and shared by the tests that read its results
(the report checks, and the SLURM test that compares its own run with it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_workflow import REPO, snakemake


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, cifar_archive) -> Path:
    """Working directory of a local smoke run with the README's smoke command (failing the test if it fails)."""
    workdir = tmp_path_factory.mktemp("smoke")
    old = os.umask(0o022)  # a shared cluster's usual umask, inherited by Snakemake and its jobs
    try:
        res = snakemake("--cores", "2", "--profile", str(REPO / "workflow/profiles/smoke"), "--configfile",
                        str(REPO / "config/smoke.yaml"), "--directory", str(workdir), timeout=600,
                        env={"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)})
    finally:
        os.umask(old)
    assert res.returncode == 0, res.stderr[-4000:]
    return workdir
