"""The slurm profile on a real SLURM: a one-node cluster on localhost runs a slice of the smoke config through
``workflow/profiles/slurm``; every job must go through sbatch and the report's rows must equal the local smoke
run's rows for the same cells.

The slice (:data:`SLICE`, a config layer over ``config/smoke.yaml``) keeps every rule of the DAG (data, both keys,
both encryptions, JPEG, training, evaluation, an attack, the report) but few jobs of each: each SLURM job runs its
own Snakemake, which parses the workflow, and the plugin polls SLURM at growing intervals (1 s, then 10 s more each
time nothing finished), so every wave of jobs costs half a minute or more on a 2-core machine whatever it computes.

Test-only overrides, applied to a copy of the real profile: the cluster's partition, ``squeue`` as the status
command (there is no accounting database for ``sacct``), no GPU (the node has none), small requests on a node
oversubscribed to ``SLOTS`` job slots, and the smoke profile's one thread per job (so that both runs compute the
same numbers). Snakemake runs under ``timeout -k``; the daemons are stopped by their PIDs when the module's tests
end, whether they pass or fail, and again when the session ends.

The cluster and the SLURM run start as soon as collection has selected the test, and run beside the other tests
(``tests/background_runs.py``): most of the run's time is the executor's polling, not computing.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from background_runs import Run, on_session_end, register, same_process
from background_runs import run as background_run
from offline_archive import shared_archive
from slurm_local import DEFAULT_CONF, LocalSlurm, _pid, unavailable_reason
from test_workflow import REPO, job_counts, snakemake, snakemake_command

# columns that measure time, not results
TIMING = {"seconds"}
TABLES = ["accuracy", "summary", "compression", "bd_rate", "key_mismatch", "attacks"]
# every rule once or twice: plain with the ViT (the PSNR reference, and the classifier that scores the attacks'
# semantic leakage), EtC with a model (so the other key and its test set exist), the training-free FR attack on both
SLICE = {"grid": [{"image_size": 32, "block_size": 8, "attacks": ["fr"],
                   "schemes": {"plain": ["vit"], "etc": ["convmixer"]}}]}
# the columns that name a table row's cell
CELL = ["dataset", "image_size", "block_size", "model", "scheme", "jpeg_quality", "subsampling", "seed", "test_key",
        "attack", "known_pairs"]
# job slots of the test cluster: the widest wave of the slice
SLOTS = 8


# seconds for the SLURM run of the slice: about 6 minutes alone on 2 cores, longer beside the other tests
RUN_TIMEOUT = 1200
# the session's cluster: ("ok", LocalSlurm), ("skip", why) or ("fail", why)
_CLUSTER: dict[str, tuple[str, LocalSlurm | str]] = {}


def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, LocalSlurm | str]:
    """The session's one-node cluster, started on first use and stopped when the session ends at the latest."""
    if "cluster" not in _CLUSTER:
        reason = unavailable_reason()
        if reason:
            _CLUSTER["cluster"] = ("skip", reason)
        else:
            cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), cpus=SLOTS)
            on_session_end(cluster.stop)
            try:
                cluster.start()
                _CLUSTER["cluster"] = ("ok", cluster)
            except Exception as exc:  # reported by the tests that need the cluster, not by the collection
                cluster.stop()
                _CLUSTER["cluster"] = ("fail", f"the local SLURM cluster did not start: {exc}")
    return _CLUSTER["cluster"]


# its tests run where the cluster was started: in the process that starts the background runs
same_process("slurm_cluster")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    status, cluster = shared_cluster(tmp_path_factory)
    if status == "skip":
        pytest.skip(cluster)
    if status == "fail":
        pytest.fail(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


def slurm_command(tmp_path: Path) -> list[str]:
    """Snakemake's arguments for the slice through the test copy of the slurm profile; writes that profile and the
    slice's config layer to ``tmp_path`` (once) and runs in ``tmp_path / "run"``."""
    profile = tmp_path / "slurm-test-profile"
    if not profile.exists():
        profile_for_this_cluster(tmp_path)
        (tmp_path / "slice.yaml").write_text(yaml.safe_dump(SLICE, sort_keys=False))
    return ["--profile", str(profile), "--configfile", str(REPO / "config/smoke.yaml"), str(tmp_path / "slice.yaml"),
            "--directory", str(tmp_path / "run")]


def _slurm_smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Run | None:
    archive = shared_archive()
    if archive is None or shared_cluster(tmp_path_factory)[0] != "ok":
        return None
    tmp = tmp_path_factory.mktemp("slurm-run")
    cmd = snakemake_command(*slurm_command(tmp), timeout=RUN_TIMEOUT)
    return Run(cmd, REPO, tmp / "snakemake.log", tmp, {"ETCBENCH_CIFAR10_ARCHIVE": str(archive)}, RUN_TIMEOUT + 30)


register("slurm_smoke_run", _slurm_smoke_run)


@pytest.fixture(scope="module")
def slurm_smoke_run(tmp_path_factory, slurm_cluster, cifar_archive) -> tuple[Path, subprocess.CompletedProcess]:
    """The slice's folder (its run in ``run/``) and the finished Snakemake process (output in ``stdout``)."""
    run = background_run("slurm_smoke_run", tmp_path_factory)
    return run.workdir, run.wait()


def profile_for_this_cluster(tmp_path: Path, partition: str = "debug") -> Path:
    """The real slurm profile with the test-only overrides (module docstring), written to ``tmp_path``."""
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    smoke = yaml.safe_load((REPO / "workflow/profiles/smoke/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    profile["jobs"] = SLOTS
    profile["default-resources"].update(slurm_partition=partition, runtime=10, mem_mb=500)
    for resources in profile["set-resources"].values():
        resources.update(gpu=0, cpus_per_task=1, mem_mb=500, runtime=10)
    profile["set-threads"] = smoke["set-threads"]
    profile.update({"slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 1,
                    "slurm-keep-successful-logs": True})
    out = tmp_path / "slurm-test-profile"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return out


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    # under_trained is True/False/empty; a column that is empty in one run reads back as float without a dtype
    df = pd.read_csv(run_dir / "results/report" / f"{name}.csv", dtype={"subsampling": str, "under_trained": "boolean"})
    return df.drop(columns=[c for c in df.columns if c in TIMING])


@pytest.mark.workflow
def test_smoke_config_through_the_slurm_profile(slurm_cluster, slurm_smoke_run, smoke_run, cifar_archive, tmp_path):
    tmp, res = slurm_smoke_run
    run_dir = tmp / "run"
    log = res.stdout
    assert res.returncode == 0, log[-5000:]
    # the jobs the slice has, from a dry run of the same command in a fresh folder
    dry = snakemake("-n", *slurm_command(tmp_path), env={"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)})
    assert dry.returncode == 0, dry.stderr[-3000:]
    expected = job_counts(dry.stdout)

    # every job but the local target rule went through sbatch, and SLURM ran each to completion
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == sum(expected.values()) - expected["all"], (len(submitted), expected)
    assert set(re.findall(r"^localrule (\w+):", log, re.M)) == {"all"}
    states = {job: slurm_cluster.job_state(job) for job in submitted}
    assert set(states.values()) == {"COMPLETED"}, states
    # the plugin's per-job logs: slurm_logs/rule_<rule>[/<wildcards>]/<SLURM jobid>.log
    logs = list((run_dir / ".snakemake/slurm_logs").rglob("*.log"))
    assert sorted(p.stem for p in logs) == sorted(submitted)
    rules = {next(part for part in p.relative_to(run_dir).parts if part.startswith("rule_")) for p in logs}
    assert rules == {f"rule_{rule}" for rule in expected if rule != "all"}

    # each row of the report is the local run's row of the same cell, with the same numbers (timing columns aside)
    for name in TABLES:
        cluster, local = _table(run_dir, name), _table(smoke_run, name)
        cells = [c for c in CELL if c in cluster.columns]
        expected = cluster[cells].merge(local, on=cells, how="left", validate="one_to_one")[list(cluster.columns)]
        assert len(cluster) > 0 and not expected.drop(columns=cells).isna().all(axis=1).any(), name
        pd.testing.assert_frame_equal(cluster, expected, check_exact=False, rtol=1e-9, atol=1e-12, obj=name)
    figures = sorted(p.name for p in (run_dir / "results/report/figures").iterdir())
    assert figures == sorted(p.name for p in (smoke_run / "results/report/figures").iterdir())
    # the wide tables (a column per scheme or per model, the best attack of those run) depend on the grid, so the
    # slice's rows are not the smoke run's: present, not compared
    for name in ("comparison", "schemes"):
        assert all((run_dir / "results/report" / f"{name}.{ext}").stat().st_size > 0 for ext in ("csv", "md", "tex"))


def test_the_cluster_stops_and_leaves_no_daemon_running(slurm_cluster):
    """Stopping the cluster (after the SLURM run, with a job still running) cancels the job, ends its slurmctld and
    slurmd, and restores Debian's config path."""
    assert _pid(slurm_cluster.root / "slurmctld.pid") and _pid(slurm_cluster.root / "slurmd.pid")
    job = subprocess.run(["sbatch", "--parsable", "-p", slurm_cluster.partition, "--wrap", "sleep 60"],
                         capture_output=True, text=True, timeout=30)
    assert job.returncode == 0, job.stderr
    slurm_cluster.stop()
    assert _pid(slurm_cluster.root / "slurmctld.pid") is None and _pid(slurm_cluster.root / "slurmd.pid") is None
    assert (DEFAULT_CONF.resolve() if DEFAULT_CONF.exists() else None) == slurm_cluster.conf_before
