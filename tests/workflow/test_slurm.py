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
same numbers). Snakemake runs under ``timeout -k``; the daemons are stopped by their PIDs when the test ends,
whether it passes or fails.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_local import LocalSlurm, unavailable_reason
from test_workflow import REPO, job_counts, snakemake

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


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), cpus=SLOTS)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


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


def test_no_daemon_is_left_running_after_teardown(tmp_path):
    """Start and stop a cluster: its slurmctld and slurmd are gone, and Debian's config path is restored."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    from slurm_local import DEFAULT_CONF, _pid

    before = DEFAULT_CONF.resolve() if DEFAULT_CONF.exists() else None
    cluster = LocalSlurm(tmp_path / "cluster")
    try:
        cluster.start()
        assert _pid(cluster.root / "slurmctld.pid") and _pid(cluster.root / "slurmd.pid")
        job = subprocess.run(["sbatch", "--parsable", "-p", "debug", "--wrap", "sleep 60"], capture_output=True,
                             text=True, timeout=30)
        assert job.returncode == 0, job.stderr
    finally:
        cluster.stop()
    assert _pid(cluster.root / "slurmctld.pid") is None and _pid(cluster.root / "slurmd.pid") is None
    assert (DEFAULT_CONF.resolve() if DEFAULT_CONF.exists() else None) == before


@pytest.mark.workflow
def test_smoke_config_through_the_slurm_profile(slurm_cluster, smoke_run, cifar_archive, tmp_path):
    profile = profile_for_this_cluster(tmp_path)
    run_dir = tmp_path / "run"
    (tmp_path / "slice.yaml").write_text(yaml.safe_dump(SLICE, sort_keys=False))
    common = ["--profile", str(profile), "--configfile", str(REPO / "config/smoke.yaml"), str(tmp_path / "slice.yaml"),
              "--directory", str(run_dir)]
    env = {"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)}
    dry = snakemake("-n", *common, env=env)
    assert dry.returncode == 0, dry.stderr[-3000:]
    expected = job_counts(dry.stdout)

    res = snakemake(*common, timeout=600, env=env)
    log = res.stdout + res.stderr
    assert res.returncode == 0, log[-5000:]

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
