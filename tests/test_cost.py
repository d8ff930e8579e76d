"""``etcbench cost``: the DAG it prices is Snakemake's, the scheduler replays Snakemake's local one, the arithmetic
scales with the calibrations, recorded seconds win, and the command prices the smoke config and refuses bad input."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import config as cfg
from etcbench.cost import (
    RULE_PRIORITY,
    Run,
    calibration_requests,
    dag_jobs,
    dependencies,
    estimate_jobs,
    read_benchmarks,
    run_cost,
    simulate,
    table_lookup,
)
from etcbench.recipes import recipe_for

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"default": [], "smoke": ["config/smoke.yaml"], "paper": ["config/paper.yaml"]}
CORES = 64  # a dry run on more cores than any rule asks for shows each rule's own threads


def resolved(name: str) -> dict:
    return cfg.resolve([REPO / f for f in CONFIGS[name]])


# the DAG -----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[str, str]:
    """``snakemake -n`` of every config, run side by side in empty folders (no results/ is touched)."""
    procs = {}
    for name, files in CONFIGS.items():
        work = tmp_path_factory.mktemp(f"dry-{name}")
        cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", str(CORES), "--snakefile", str(REPO / "Snakefile"),
               "--directory", str(work), *(["--configfile", *[str(REPO / f) for f in files]] if files else [])]
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {}
    for name, proc in procs.items():
        stdout, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, stdout[-2000:]
        out[name] = stdout
    return out


def snakemake_jobs(stdout: str) -> list[dict]:
    """Every job block of a dry run: rule, inputs, outputs, threads, benchmark."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", stdout):
        head = re.match(r"(?:local)?rule (\w+):\n", block)
        if not head:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        jobs.append({"rule": head[1], "inputs": set(fields.get("input", "").split(", ")) - {""},
                     "outputs": set(fields["output"].split(", ")) if "output" in fields else set(),
                     "threads": int(fields.get("threads", 1)), "benchmark": fields.get("benchmark"),
                     "priority": int(fields.get("priority", 0))})
    return jobs


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_jobs_are_snakemakes(name, dry_runs):
    theirs = [j for j in snakemake_jobs(dry_runs[name]) if j["rule"] != "all"]
    config = resolved(name)
    ours = dag_jobs(config)
    counts = dict(Counter(j.rule for j in ours))
    stats = dry_runs[name].split("Job stats:")[1]
    table = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M) if m[1] not in ("total", "all")}
    assert counts == table == dict(Counter(j["rule"] for j in theirs))
    # job by job: the same files in and out, benchmark file and threads
    run = Run(config, cores=CORES)
    by_output = {o: j for j in theirs for o in j["outputs"]}
    for job in ours:
        match = by_output.get(job.outputs[0])
        assert match is not None and match["rule"] == job.rule, job.name
        assert set(job.outputs) <= match["outputs"] and set(job.inputs) == match["inputs"], job.name
        assert run.threads(job.rule) == match["threads"], job.name
        assert RULE_PRIORITY.get(job.rule, 0) == match["priority"], job.name  # the scheduler's replay uses them
        bench = f"results/benchmarks/{job.benchmark}" if job.benchmark else None
        assert bench == match["benchmark"], job.name


def test_every_job_comes_after_what_it_needs():
    jobs = dag_jobs(resolved("default"))
    deps = dependencies(jobs)
    assert all(d < i for i, ds in enumerate(deps) for d in ds)
    report = next(i for i, j in enumerate(jobs) if j.rule == "make_report")
    assert {jobs[d].rule for d in deps[report]} >= {"evaluate_scheme", "attack_scheme", "compress_jpeg", "make_key",
                                                    "train_model", "plain_test", "encrypt_examples", "position_leak"}


# the scheduler ----------------------------------------------------------------------------------------------------
def test_independent_one_thread_jobs_share_two_cores():
    start, end, wall = simulate([3.0, 5.0], [1, 1], [[], []], cores=2)
    assert wall == 5.0 and start == [0.0, 0.0]


def test_a_dependent_job_waits():
    start, _, wall = simulate([3.0, 5.0, 1.0], [1, 1, 1], [[], [], [0]], cores=4)
    assert start[2] == 3.0 and wall == 5.0
    assert simulate([3.0, 1.0], [1, 1], [[], [0]], cores=2)[2] == 4.0


def test_a_job_on_every_core_runs_alone():
    start, end, wall = simulate([4.0, 2.0, 2.0], [2, 1, 1], [[], [], []], cores=2)
    assert wall == 6.0
    assert start[0] >= end[1] or end[0] <= start[1]  # never beside a one-thread job
    # a rule asking for more threads than there are cores gets all of them (Snakemake scales it down)
    assert simulate([4.0, 2.0], [8, 8], [[], []], cores=2)[2] == 6.0


def test_a_job_of_higher_priority_starts_first():
    # one core, two ready jobs: the later one in index order has the higher priority (as train_model has)
    start, _, wall = simulate([3.0, 5.0], [1, 1], [[], []], cores=1, priorities=[0, 2])
    assert start == [5.0, 0.0] and wall == 8.0
    assert simulate([3.0, 5.0], [1, 1], [[], []], cores=1)[0] == [0.0, 3.0]  # no priorities: index order


@st.composite
def dags(draw):
    n = draw(st.integers(1, 12))
    seconds = draw(st.lists(st.floats(0.0, 100.0), min_size=n, max_size=n))
    threads = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    deps = [draw(st.lists(st.integers(0, i - 1), max_size=3)) if i else [] for i in range(n)]
    return seconds, threads, deps, draw(st.integers(1, 4))


@settings(max_examples=200, deadline=None)
@given(dags())
def test_a_schedule_respects_cores_and_order(dag):
    seconds, threads, deps, cores = dag
    start, end, wall = simulate(seconds, threads, deps, cores)
    used = [min(t, cores) for t in threads]
    for i, ds in enumerate(deps):
        assert all(start[i] >= end[d] for d in ds)
        assert end[i] == pytest.approx(start[i] + seconds[i])
    for t in set(start):  # cores in use just after every start
        assert sum(u for s, e, u in zip(start, end, used) if s <= t < e) <= cores
    longest: list[float] = []
    for i, ds in enumerate(deps):
        longest.append(seconds[i] + max((longest[d] for d in ds), default=0.0))
    work = sum(s * u for s, u in zip(seconds, used)) / cores
    assert max(longest) - 1e-9 <= wall <= sum(seconds) + 1e-9 and wall >= work - 1e-9


# the arithmetic ---------------------------------------------------------------------------------------------------
def table_for(jobs, run, **figures) -> dict:
    """A calibration table for every request: every figure 0 (nothing costs anything), rates and batch sizes as
    given, or 1e18 (free) for the rates not given, 1 for the calibration sizes."""
    rates = ("train_samples_per_s", "infer_samples_per_s", "read_bps", "write_bps")
    sizes = ("n", "n_fit", "n_target", "train_batch", "infer_batch", "factor")
    table = {}
    for key in calibration_requests(jobs, run):
        entry = defaultdict(float, dict.fromkeys(rates, 1e+18))
        entry.update(dict.fromkeys(sizes, 1.0))
        entry.update(figures)
        table[key] = entry
    return table


@pytest.fixture(scope="module")
def smoke():
    config = resolved("smoke")
    return config, dag_jobs(config), Run(config, cores=2)


@given(rate=st.floats(1.0, 1e4))
@settings(max_examples=20, deadline=None)
def test_training_seconds_are_images_over_samples_per_s(smoke, rate):
    config, jobs, run = smoke
    one = estimate_jobs(jobs, run, table_lookup(table_for(jobs, run, train_samples_per_s=rate)))
    two = estimate_jobs(jobs, run, table_lookup(table_for(jobs, run, train_samples_per_s=2 * rate)))
    trains = [i for i, j in enumerate(jobs) if j.rule in ("train_model", "train_model_jpeg")]
    assert {jobs[i].rule for i in trains} == {"train_model", "train_model_jpeg"}
    for i in trains:
        w = jobs[i].wildcards
        recipe = recipe_for(config["train"], w["model"], w["scheme"])
        images = recipe.total_steps(config["dataset"]["train_size"]) * recipe.batch_size
        assert one[i].seconds == pytest.approx(images / rate, rel=1e-6)
        assert two[i].seconds == pytest.approx(one[i].seconds / 2, rel=1e-6)
        assert one[i].source == "extrapolated" and one[i].factor == images  # calibrated at a batch of 1
    others = [i for i in range(len(jobs)) if i not in trains]
    assert all(one[i].seconds == two[i].seconds for i in others)


def test_steps_and_per_batch_costs_add_up(smoke):
    config, jobs, run = smoke
    table = table_for(jobs, run, train_batch_s=0.5, optimizer_step_s=0.25, infer_batch_s=2.0)
    costs = estimate_jobs(jobs, run, table_lookup(table))
    i = next(i for i, j in enumerate(jobs) if j.rule == "train_model")
    recipe = recipe_for(config["train"], jobs[i].wildcards["model"], jobs[i].wildcards["scheme"])
    ds = config["dataset"]
    steps, epochs = recipe.total_steps(ds["train_size"]), recipe.epochs_run(ds["train_size"])
    batches = epochs * math.ceil(ds["val_size"] / recipe.eval_batch_size) + math.ceil(ds["test_size"] /
                                                                                      recipe.eval_batch_size)
    assert costs[i].seconds == pytest.approx(steps * recipe.accumulation * 0.5 + steps * 0.25 + batches * 2.0)
    # the evaluation of EtC's two models (ConvMixer, uncompressed- and JPEG-trained): each on its own test set, 2
    # qualities x 2 subsamplings of JPEG, the other key's set and plain images, each in one batch (50 images)
    e = next(i for i, j in enumerate(jobs) if j.rule == "evaluate_scheme" and j.wildcards["scheme"] == "etc")
    assert costs[e].seconds == pytest.approx(2 * 7 * 2.0)


def test_recorded_seconds_win(smoke, tmp_path):
    config, jobs, run = smoke
    i = next(i for i, j in enumerate(jobs) if j.rule == "train_model")
    bench = tmp_path / "benchmarks" / jobs[i].benchmark
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\t100\n14.5\t0:00:14\t100\n")
    recorded = read_benchmarks(jobs, tmp_path / "benchmarks")
    assert recorded == {i: 13.5}
    assert not any(k.startswith("model ") for k in calibration_requests(jobs[i:i + 1], run, {0: 13.5}))
    costs = estimate_jobs(jobs, run, table_lookup(table_for(jobs, run, train_samples_per_s=1.0)), recorded)
    assert costs[i].seconds == 13.5 and costs[i].source == "recorded"
    # through the command: the recorded job, every other figure from an injected table (no calibration)
    result = run_cost([REPO / "config/smoke.yaml"], cores=2, device="cpu",
                      benchmarks=tmp_path / "benchmarks", out_dir=tmp_path / "out",
                      table=table_for(jobs, run, train_samples_per_s=1.0))
    row = next(r for r in result["rules"] if r["rule"] == "train_model")
    assert row["source"] == "recorded+extrapolated"
    assert result["jobs"][i]["seconds"] == 13.5


def test_the_known_plaintext_attack_is_priced_by_its_key_recoveries_on_large_images(tmp_path):
    """On images too large for a second calibration run (one target image), kpa's cost is its key recoveries plus,
    per target and number of known pairs, a decryption and its scores; on grayscale planes too."""
    from etcbench.cost import _Calibrator, cal_key

    config = resolved("default")
    run = Run(config, cores=2)
    spec = {"name": "kpa", "options": {"pairs": [1, 2]}, "shape": [1, 192, 128], "size": 128, "block": 16,
            "device": "cpu", "threads": 1, "scheme": "etc-gray", "scheme_options": config["scheme_options"]["etc-gray"],
            "interpolation": "bicubic"}
    figures = _Calibrator(run, tmp_path).attack(spec)
    assert figures["n_target"] == 1 and figures["a"] >= 0 and figures["s_per_target"] > 0
    assert cal_key("attack", spec).startswith("attack {")


# the command ------------------------------------------------------------------------------------------------------
def etcbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "etcbench", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_the_command_prices_the_smoke_config(tmp_path):
    out = tmp_path / "cost"
    res = etcbench("cost", "--configfile", str(REPO / "config/smoke.yaml"), "--cores", "2", "--device", "cpu",
                   "--out-dir", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads((out / "cost.json").read_text())
    rules = {r["rule"]: r for r in result["rules"]}
    assert set(rules) == {j.rule for j in dag_jobs(resolved("smoke"))}
    assert all(r["job_seconds"] > 0 and r["cpu_hours"] > 0 and r["bytes"] > 0 for r in rules.values())
    assert result["totals"]["wall_seconds"] > 0 and result["totals"]["device_hours"] == 0
    assert result["totals"]["wall_seconds"] <= result["totals"]["job_seconds"]
    assert {s for r in rules.values() for s in r["source"].split("+")} <= {"measured", "extrapolated"}
    md = (out / "cost.md").read_text()
    # 64 jobs: the 57 of the grid (no encrypted test set per key: 2 plain_test and 3 encrypt_examples jobs), and the
    # two arms: the JPEG-trained ConvMixer (1 training), pixel shuffling in s32-m8 for the transformed ViT (its key
    # and other key, 2 JPEG jobs, its examples, its evaluation)
    assert md == res.stdout and "| **total** | 64 |" in md and "no GPU" in md
    # never key material: the command's files hold no key arrays, and the calibration's keys are gone
    assert "block_perm" not in (out / "cost.json").read_text() and sorted(os.listdir(out)) == ["cost.json", "cost.md"]
    assert not list(tmp_path.glob("**/*.key.npz"))


@pytest.mark.parametrize("args, code, message", [
    (["--configfile", "missing.yaml"], 1, "etcbench cost: error: config file missing.yaml: FileNotFoundError"),
    (["--configfile", "bad.yaml"], 1, "etcbench cost: error: config grid.0.image_size"),
    (["--cores", "0"], 2, "argument --cores: must be at least 1, got 0"),
    (["--cores", "two"], 2, "argument --cores: expected a positive whole number"),
    (["--device", "tpu"], 2, "argument --device: invalid choice"),
])
def test_bad_input_is_one_line_and_no_files(tmp_path, args, code, message):
    (tmp_path / "bad.yaml").write_text("grid:\n  - {image_size: -1, block_size: 16, schemes: {etc: [vit]}}\n")
    res = etcbench("cost", *args, "--out-dir", "out", cwd=tmp_path)
    assert res.returncode == code and message in res.stderr, res.stderr
    if code == 1:
        assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
