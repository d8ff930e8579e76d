"""The workflow killed mid-run (SIGKILL to Snakemake and every job it started) and started again with the same
command completes with the outputs of an uninterrupted run (which runs beside it, one core each)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_workflow import REPO, SNAKEMAKE

# a small grid that still has every kind of job: data, keys, other keys, encryption, JPEG, training, evaluation,
# attacks and the report
GRID = {
    "dataset": {"train_size": 100, "val_size": 20, "test_size": 20},
    "grid": [{"image_size": 32, "block_size": 8, "attacks": ["fr", "jigsaw"],
              "schemes": {"plain": [], "etc": ["convmixer"]}}],
    "model_options": {"convmixer": {"arch": "convmixer", "dim": 32, "depth": 1, "kernel_size": 3}},
    "train": {"default": {"epochs": 2, "batch_size": 25}},
    "attack": {"num_images": 8, "train_images": 20, "attacker_keys": 2, "num_examples": 2},
    "jpeg": {"qualities": [50], "subsampling": ["444"]},
    "report": {"num_examples": 2},
}
# what differs between two runs by design: timings, timestamps, host facts (compared without them)
VOLATILE = ("second", "per_s", "started", "ended", "wall", "host", "time", "peak_rss")


def _run(workdir: Path, layer: Path, env: dict, *extra: str) -> subprocess.Popen:
    """Snakemake on one core (the uninterrupted run and the killed one run side by side), its log in
    ``workdir.log``."""
    cmd = [*SNAKEMAKE, "--cores", "1", "--configfile", str(REPO / "config/smoke.yaml"), str(layer), "--directory",
           str(workdir), *extra]
    with open(workdir.with_suffix(".log"), "a") as log:  # the child writes to its own copy of the descriptor
        # a session of its own, so that one killpg reaches Snakemake and every job it started
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, text=True,
                                env={**os.environ, **env}, start_new_session=True)


def _tail(workdir: Path) -> str:
    return workdir.with_suffix(".log").read_text(errors="replace")[-3000:]


def _share_done(workdir: Path) -> float:
    """The share of its jobs a run has finished, from Snakemake's "i of n steps" lines."""
    steps = re.findall(r"(\d+) of (\d+) steps", workdir.with_suffix(".log").read_text(errors="replace"))
    return int(steps[-1][0]) / int(steps[-1][1]) if steps else 0.0


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not any(word in k for word in VOLATILE)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _same(a: Path, b: Path) -> bool:
    if a.suffix == ".json":
        return json.dumps(_stable(json.loads(a.read_text())), sort_keys=True) == json.dumps(
            _stable(json.loads(b.read_text())), sort_keys=True)
    if a.suffix == ".npz":
        with np.load(a) as x, np.load(b) as y:
            return x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)
    if a.suffix == ".pt":
        import torch

        x, y = (torch.load(p, map_location="cpu", weights_only=False)["state_dict"] for p in (a, b))
        return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    if a.suffix == ".csv":
        x, y = (pd.read_csv(p) for p in (a, b))
        keep = [c for c in x.columns if not any(word in c for word in VOLATILE)]
        return list(x.columns) == list(y.columns) and x[keep].equals(y[keep])
    if a.suffix in (".md", ".tex") and _volatile_table(a.with_suffix(".csv")):
        return True  # the same table as its CSV, which is compared without its timing column
    return a.read_bytes() == b.read_bytes()


def _volatile_table(csv: Path) -> bool:
    return csv.exists() and any(word in c for c in pd.read_csv(csv, nrows=0).columns for word in VOLATILE)


@pytest.mark.workflow
def test_a_workflow_killed_mid_run_and_restarted_ends_with_the_uninterrupted_outputs(tmp_path, cifar_archive):
    layer = tmp_path / "grid.yaml"
    layer.write_text(yaml.safe_dump(GRID, sort_keys=False))
    env = {"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)}
    whole = _run(tmp_path / "whole", layer, env)
    killed = _run(tmp_path / "killed", layer, env)
    # SIGKILL once a random share (30-70 %) of the jobs has finished, and a random 0-2 s later, inside the jobs
    # started next
    rng = random.Random(9)
    share, extra = rng.uniform(0.3, 0.7), rng.uniform(0, 2)
    started = time.monotonic()
    while _share_done(tmp_path / "killed") < share:
        assert killed.poll() is None, f"the run ended before {share:.0%} of its jobs: {_tail(tmp_path / 'killed')}"
        assert time.monotonic() - started < 600, _tail(tmp_path / "killed")
        time.sleep(0.2)
    time.sleep(extra)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    print(f"\nSIGKILL to Snakemake and its jobs at {_share_done(tmp_path / 'killed'):.0%} of the jobs, "
          f"{time.monotonic() - started:.0f} s in")
    assert killed.returncode == -signal.SIGKILL
    done_before = sorted(p.relative_to(tmp_path / "killed") for p in (tmp_path / "killed/results").rglob("*")
                         if p.is_file())
    assert done_before and not (tmp_path / "killed/results/report/accuracy.csv").exists()  # it stopped mid-run

    # a killed Snakemake leaves its lock on the folder: release it, then the same command (the profile reruns the
    # jobs that were running)
    unlock = _run(tmp_path / "killed", layer, env, "--unlock")
    assert unlock.wait(timeout=120) == 0, _tail(tmp_path / "killed")
    again = _run(tmp_path / "killed", layer, env)
    assert again.wait(timeout=600) == 0, _tail(tmp_path / "killed")
    assert whole.wait(timeout=600) == 0, _tail(tmp_path / "whole")

    results = {p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole/results").rglob("*") if p.is_file()}
    restarted = {p.relative_to(tmp_path / "killed") for p in (tmp_path / "killed/results").rglob("*")
                 if p.is_file()}
    assert restarted == results  # nothing missing, nothing left over (no temporaries, no half-written files)
    skip = ("results/logs", "results/benchmarks", "results/report/figures")  # timings; rendered figures
    compared = [p for p in sorted(results) if not str(p).startswith(skip)]
    assert len(compared) > 40
    different = [str(p) for p in compared if not _same(tmp_path / "whole" / p, tmp_path / "killed" / p)]
    assert not different, different
    figures = sorted(p.name for p in (tmp_path / "killed/results/report/figures").iterdir())
    assert figures == sorted(p.name for p in (tmp_path / "whole/results/report/figures").iterdir())
