"""``etcbench cost``: what a configuration's run will cost, before it is submitted.

``etcbench cost --configfile config/paper.yaml`` resolves the configuration exactly as the workflow does
(:func:`etcbench.config.resolve` over ``config/config.yaml``), lists every job of its DAG with the grid functions
the rules use (:func:`dag_jobs`: the jobs, files, threads and benchmark files of ``snakemake -n``), predicts each
job's seconds (:func:`estimate_jobs`), replays Snakemake's local scheduler over the DAG on ``--cores`` cores
(:func:`simulate`) and writes ``cost.json`` and ``cost.md``: per rule and in total, the predicted wall time, job
time, CPU-hours, device-hours and disk.

Every figure says where it comes from:

``measured``
    timed here at full size (a key derivation, the start-up of a stage);
``extrapolated``
    scaled from a short calibration on this device by the factor given: a model's forward/backward passes and
    optimiser step (built as the stage builds it, random inputs of the scheme's shape) at the recipe's micro-batch,
    or at the largest batch a 2-second pass allows, fitted as ``a + b * images``; the data path of the scheme;
    an attack run for real on a few images (learned attacks: one epoch on a few of the attacker's images); the
    encryption and JPEG stage functions on a few natural images at two sizes, fitted as ``a + b * images``;
``recorded``
    an earlier run's Snakemake benchmark file (``--benchmarks``; rules without a ``benchmark:`` have none).

Each calibration runs once per distinct setting (a model once per options, input shape, optimiser and batch,
whatever schemes and seeds train it; :func:`calibration_requests` collects what the estimates read, so nothing
else is timed). Pretrained weights are never loaded (random initialisation costs the same); keys are drawn
afresh in a temporary folder that is removed, and no key material, nor a fingerprint, is written. Not predicted:
downloads (CIFAR-10, pretrained weights), Snakemake's own start-up, and the resumable training state
(``results/state``, removed when a training ends). The calibrations time this machine as it is: other processes
sharing its cores make every figure pessimistic (``cost.md`` warns when the load average exceeded the cores).
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import config as cfg
from .errors import EtcbenchError
from .grid import (
    attack_classifier,
    attack_runs,
    check_grid,
    evaluated_cells,
    jpeg_model_label,
    jpeg_subsamplings,
    jpeg_trained_cells,
    jpeg_variants,
    key_records,
    position_leak_runs,
    seed_key_tag,
    setting_id,
    train_cells,
    transform_arms,
)
from .recipes import recipe_for

__all__ = ["Cost", "Job", "Run", "calibrate", "calibration_requests", "dag_jobs", "dependencies", "estimate_jobs",
           "markdown", "read_benchmarks", "run_cost", "simulate", "summarise"]

log = logging.getLogger(__name__)

# the rules' ``threads:`` (workflow/rules/*.smk; every other rule has 1) and the rules that use the device
RULE_THREADS = {"train_model": 8, "train_model_jpeg": 8, "evaluate_scheme": 8, "attack_scheme": 8, "compress_jpeg": 2,
                "compress_seed_jpeg": 2, "make_report": 2}
DEVICE_RULES = ("train_model", "train_model_jpeg", "evaluate_scheme", "attack_scheme")
# the rules' ``priority:`` (every other rule has 0): Snakemake starts the ready jobs of higher priority first
RULE_PRIORITY = {"train_model": 2, "train_model_jpeg": 2, "evaluate_scheme": 1}
NATIVE = 32  # CIFAR-10's side: the stored splits, before any resize
EVAL_BATCH = 256  # the evaluation stage's batch (etcbench evaluate --batch-size, which the rule leaves at its default)
PASS_BUDGET = 2.0  # seconds a calibration pass of a model may take: larger batches are extrapolated to
CLASSES = 10
# what each stage imports after the first read that bench's start-up probe stops at: timm where a model is built or
# loaded (its first build imports it), torch's inductor (training calls torch.use_deterministic_algorithms, which
# imports it), torch where an encryption stage resizes, scikit-learn for the report's confusion matrices, the
# attacks' libraries. Position leakage (no probe of its own) counts as an evaluation.
LATE_IMPORTS = {
    "encrypt": ["etcbench.data.transforms"],
    "train": ["timm", "timm.optim", "timm.scheduler", "torch._inductor.config"],  # the last: use_deterministic_...
    "evaluate": ["timm"],
    "report": ["sklearn.metrics"],
    "attack": ["etcbench.data.transforms", "etcbench.metrics", "etcbench.evaluate", "timm", "etcbench.attacks.networks",
               "scipy.optimize", "scipy.sparse.csgraph"],
}
# each rule's stage, for its start-up (prepare has no probe of its own: keygen's, without torch, stands in)
RULE_STAGE = {"prepare_data": "keygen", "master_secret": "keygen", "make_key": "keygen", "plain_test": "encrypt",
              "encrypt_examples": "encrypt",
              "compress_jpeg": "compress", "train_model": "train", "train_model_jpeg": "train",
              "evaluate_scheme": "evaluate",
              "attack_scheme": "attack", "position_leak": "evaluate", "make_report": "report"}
CIFAR_ARCHIVE_BYTES = 170_498_071  # the official cifar-10-python.tar.gz


# ---------------------------------------------------------------------------------------------------------------
# the DAG
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Job:
    """One job of the DAG: its rule, wildcards, files (paths as the rules name them) and benchmark file."""

    rule: str
    wildcards: dict[str, Any]
    inputs: list[str]
    outputs: list[str]
    benchmark: str | None = None  # under results/benchmarks/

    @property
    def name(self) -> str:
        return f"{self.rule}[{','.join(f'{k}={v}' for k, v in self.wildcards.items())}]" if self.wildcards \
            else self.rule


def _key_job(record: str, master_in: list[str]) -> tuple[Job, dict[str, Any]]:
    """The key job of one key record (``results/keys/<setting>/<scheme>[.seed<n>][.other].json``)."""
    _, _, sid, name = record.split("/")
    scheme, *tags = name[: -len(".json")].split(".")
    seed = next((t[len("seed"):] for t in tags if t.startswith("seed")), None)
    other = "other" in tags
    rule = "make_" + ("seed_" if seed is not None else "") + ("other_" if other else "") + "key"
    wildcards = {"setting": sid, "scheme": scheme, **({"seed": int(seed)} if seed is not None else {})}
    stem = record[: -len(".json")]
    return Job(rule, wildcards, list(master_in), [f"{stem}.key.npz", record]), {"seed": seed, "other": other}


def dag_jobs(config: Mapping[str, Any], master_exists: bool | None = None) -> list[Job]:
    """Every job ``snakemake`` runs for ``config`` (a resolved configuration) from an empty ``results/``, in an order
    where each job comes after the jobs it needs; the local rule ``all`` is left out.

    The rules' expansions are the grid's (:mod:`etcbench.grid`), as ``workflow/rules/common.smk`` calls them. The
    master-secret job is counted when ``key_master_file`` is set and does not exist (``master_exists``; default:
    looked up from the current folder).
    """
    settings = check_grid(config)
    name = config["dataset"]["name"]
    data = f"results/data/{name}.npz"
    master = config.get("key_master_file")
    master_in = [master] if master else []
    jobs: list[Job] = []
    if master and not (Path(master).exists() if master_exists is None else master_exists):
        jobs.append(Job("master_secret", {}, [], [master]))
    jobs.append(Job("prepare_data", {}, [], [data, f"results/data/{name}.json"], "prepare_data.tsv"))
    main = next(iter(settings))
    for record in key_records(config):
        key_job, tag = _key_job(record, master_in)
        jobs.append(key_job)
        sid, scheme = key_job.wildcards["setting"], key_job.wildcards["scheme"]
        if tag["other"] or tag["seed"] is not None:  # no test set is stored for a key: the stages encrypt the plain
            continue                                  # one with it themselves
        folder = f"results/encrypted/{sid}/{scheme}"
        if scheme == "plain":  # the one stored test set of the setting, and its examples
            jobs.append(Job("plain_test", {"setting": sid}, [data, key_job.outputs[0]],
                            [f"{folder}/test.npz", f"{folder}/examples.npz"], f"plain_test/{sid}.tsv"))
        elif sid == main and scheme in settings[main]["schemes"]:  # the report's examples of the main setting
            jobs.append(Job("encrypt_examples", dict(key_job.wildcards), [data, key_job.outputs[0]],
                            [f"{folder}/examples.npz"], f"encrypt_examples/{sid}-{scheme}.tsv"))
    qualities = config["jpeg"]["qualities"]
    evaluated = set(evaluated_cells(config))
    for entry in config["grid"]:
        sid = setting_id(entry)
        for scheme in entry["schemes"]:
            seeds: list[Any] = [None]
            if scheme != "plain" and (sid, scheme) in evaluated:  # key_per_seed: a seed's own JPEG sets
                seeds += [s for s in config["seeds"] if seed_key_tag(config, scheme, s)]
            for seed in seeds:
                tag = seed_key_tag(config, scheme, seed) if seed is not None else ""
                sub_folder = f"{scheme}/seed{seed}" if tag else scheme
                for sub in jpeg_subsamplings(config, scheme):
                    outs = [f"results/jpeg/{sid}/{sub_folder}/q{q}-{sub}.{ext}" for ext in ("npz", "json")
                            for q in qualities]
                    inputs = [f"results/encrypted/{sid}/plain/test.npz", f"results/keys/{sid}/{scheme}{tag}.key.npz"]
                    wildcards = {"setting": sid, "scheme": scheme, **({"seed": seed} if tag else {}),
                                 "subsampling": sub}
                    bench = f"compress_jpeg/{sid}-{scheme}{f'-seed{seed}' if tag else ''}-{sub}.tsv"
                    jobs.append(Job("compress_seed_jpeg" if tag else "compress_jpeg", wildcards, inputs, outs, bench))
    metrics, accuracy = [], []
    models_of: dict[tuple[str, str], list[str]] = {}
    for sid, scheme, model in train_cells(config):
        models_of.setdefault((sid, scheme), []).append(model)
        for seed in config["seeds"]:
            tag = seed_key_tag(config, scheme, seed)
            cell = f"{sid}/{scheme}/{model}/seed{seed}"
            wildcards = {"setting": sid, "scheme": scheme, "model": model, "seed": seed}
            plain = f"results/encrypted/{sid}/plain/test.npz"
            outs = [f"results/models/{cell}/model.pt", f"results/models/{cell}/metrics.json"]
            jobs.append(Job("train_model", wildcards, [data, f"results/keys/{sid}/{scheme}{tag}.key.npz", plain],
                            outs, f"train_model/{sid}-{scheme}-{model}-seed{seed}.tsv"))
            metrics.append(outs[1])
    for sid, scheme, model in jpeg_trained_cells(config):  # the JPEG-trained arms, labelled model@q<q>-<sub>
        label = jpeg_model_label(config, scheme, model)
        models_of.setdefault((sid, scheme), []).append(label)
        quality, subsampling = label.rsplit("@q", 1)[1].split("-")
        for seed in config["seeds"]:
            tag = seed_key_tag(config, scheme, seed)
            cell = f"{sid}/{scheme}/{label}/seed{seed}"
            wildcards = {"setting": sid, "scheme": scheme, "model": model, "quality": quality,
                         "subsampling": subsampling, "seed": seed}
            outs = [f"results/models/{cell}/model.pt", f"results/models/{cell}/metrics.json"]
            jobs.append(Job("train_model_jpeg", wildcards, [data, f"results/keys/{sid}/{scheme}{tag}.key.npz",
                                                            f"results/encrypted/{sid}/plain/test.npz"],
                            outs, f"train_model_jpeg/{sid}-{scheme}-{label}-seed{seed}.tsv"))
            metrics.append(outs[1])
    transformed: dict[tuple[str, str], list[str]] = {}
    for sid, scheme, model in transform_arms(config):
        transformed.setdefault((sid, scheme), []).append(model)
    for sid, scheme in evaluated_cells(config):  # one evaluation per scheme and seed, for all its models
        models = models_of.get((sid, scheme), [])
        for seed in config["seeds"]:
            tag = seed_key_tag(config, scheme, seed)
            folder = f"{scheme}/seed{seed}" if tag else scheme
            jpeg = [f"results/jpeg/{sid}/{folder}/{v}.npz" for v in jpeg_variants(config, scheme)]
            other = [] if scheme == "plain" else [f"results/keys/{sid}/{scheme}{tag}.other.key.npz"]
            evaluation = f"results/eval/{sid}/{scheme}/seed{seed}.json"
            model_files = [f"results/models/{sid}/{scheme}/{m}/seed{seed}/model.pt" for m in models]
            model_files += [f"results/models/{sid}/plain/{m}/seed{seed}/model.pt"
                            for m in transformed.get((sid, scheme), [])]
            jobs.append(Job("evaluate_scheme", {"setting": sid, "scheme": scheme, "seed": seed},
                            [*model_files, f"results/keys/{sid}/{scheme}{tag}.key.npz",
                             f"results/encrypted/{sid}/plain/test.npz", *jpeg, *other],
                            [evaluation], f"evaluate_scheme/{sid}-{scheme}-seed{seed}.tsv"))
            accuracy.append(evaluation)
    attacks = []
    for sid, scheme, names in attack_runs(config):
        classifier = attack_classifier(config, sid)
        outs = [f"results/attacks/{sid}/{scheme}.json", f"results/attacks/{sid}/{scheme}.examples.npz"]
        jobs.append(Job("attack_scheme", {"setting": sid, "scheme": scheme, "attacks": " ".join(names)},
                        [*master_in, data, f"results/keys/{sid}/{scheme}.key.npz",
                         f"results/encrypted/{sid}/plain/test.npz",
                         *([classifier] if classifier else [])], outs, f"attack_scheme/{sid}-{scheme}.tsv"))
        attacks += outs
    for sid, scheme, model, seed in position_leak_runs(config):
        tag = seed_key_tag(config, scheme, seed)
        out = f"results/attacks/{sid}/{scheme}.position-{model}-seed{seed}.json"
        jobs.append(Job("position_leak", {"setting": sid, "scheme": scheme, "model": model, "seed": seed},
                        [f"results/models/{sid}/{scheme}/{model}/seed{seed}/model.pt",
                         f"results/models/{sid}/plain/{model}/seed{seed}/model.pt",
                         f"results/keys/{sid}/{scheme}{tag}.key.npz"], [out]))
        attacks.append(out)
    examples = [f"results/encrypted/{main}/{scheme}/examples.npz" for scheme in settings[main]["schemes"]]
    compression = [o for job in jobs if job.rule == "compress_jpeg" for o in job.outputs if o.endswith(".json")]
    jobs.append(Job("make_report", {}, [*accuracy, *compression, *examples, *attacks, *metrics, *key_records(config)],
                    ["results/report/config.yaml"]))
    return jobs


def dependencies(jobs: Sequence[Job]) -> list[list[int]]:
    """For each job, the indices of the jobs that write one of its inputs (inputs nobody writes are given)."""
    producer = {out: i for i, job in enumerate(jobs) for out in job.outputs}
    return [sorted({producer[p] for p in job.inputs if p in producer}) for job in jobs]


# ---------------------------------------------------------------------------------------------------------------
# the scheduler
# ---------------------------------------------------------------------------------------------------------------
def simulate(seconds: Sequence[float], threads: Sequence[int], deps: Sequence[Iterable[int]],
             cores: int, priorities: Sequence[int] | None = None) -> tuple[list[float], list[float], float]:
    """Snakemake's local scheduler on ``cores`` cores: ``(start, end, makespan)`` of every job.

    A job is ready once every job in its ``deps`` has ended; whenever cores are free, the ready jobs are started in
    order of priority (higher first; ``priorities``, default all 0), then index, each that fits the free cores (a
    job takes ``min(threads, cores)`` of them: Snakemake scales a rule's threads down to the cores). Nothing else
    limits it (no memory, no other resources).

    >>> simulate([3.0, 5.0], [1, 1], [[], []], cores=2)[2]
    5.0
    """
    n = len(seconds)
    need = [max(1, min(int(t), cores)) for t in threads]
    waiting = [len(set(d)) for d in deps]
    children: list[list[int]] = [[] for _ in range(n)]
    for i, d in enumerate(deps):
        for j in set(d):
            children[j].append(i)
    rank = [-(priorities[i] if priorities is not None else 0) for i in range(n)]
    ready = [(rank[i], i) for i in range(n) if waiting[i] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    start, end = [math.nan] * n, [math.nan] * n
    now, free, done = 0.0, cores, 0
    while done < n:
        skipped = []
        while ready:
            _, i = heapq.heappop(ready)
            if need[i] <= free:
                free -= need[i]
                start[i], end[i] = now, now + max(0.0, float(seconds[i]))
                heapq.heappush(running, (end[i], i))
            else:
                skipped.append(i)
        for i in skipped:
            heapq.heappush(ready, (rank[i], i))
        if not running:
            raise EtcbenchError("the DAG has a cycle or a job that needs its own output")
        now, i = heapq.heappop(running)
        finished = [i]
        while running and running[0][0] <= now:
            finished.append(heapq.heappop(running)[1])
        for i in finished:
            free += need[i]
            done += 1
            for c in children[i]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    heapq.heappush(ready, (rank[c], c))
    return start, end, max(end, default=0.0)


# ---------------------------------------------------------------------------------------------------------------
# per-job figures, from a calibration table
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """What a prediction is for: the resolved config, the cores of ``snakemake --cores``, the device the GPU rules
    use (``cpu`` or ``cuda``) and per-rule threads set by a profile (``set-threads``)."""

    config: dict[str, Any]
    cores: int = 2
    device: str = "cpu"
    set_threads: dict[str, int] = field(default_factory=dict)

    def threads(self, rule: str) -> int:
        return max(1, min(int(self.set_threads.get(rule, RULE_THREADS.get(rule, 1))), self.cores))


@dataclass
class Cost:
    """One job's prediction: seconds (with their parts), where they come from, and the bytes it writes."""

    seconds: float
    source: str  # measured | extrapolated | recorded
    factor: float  # the largest scale applied to a calibration (1: measured at full size)
    parts: dict[str, float]
    bytes: int
    bytes_source: str


Lookup = Callable[..., Mapping[str, float]]  # cal(kind, **spec) -> the calibration's figures


def cal_key(kind: str, spec: Mapping[str, Any]) -> str:
    """The calibration table's key of one calibration: its kind and settings."""
    return f"{kind} {json.dumps(spec, sort_keys=True, separators=(',', ':'))}"


def _shape(scheme: str, size: int, block: int) -> list[int]:
    """``[C, H, W]`` of a scheme's encrypted images (the model's input)."""
    from .ciphers.registry import SCHEMES

    cls = SCHEMES.get(scheme)
    return list(cls(block_size=block).encrypted_shape(size, size)) if cls.plane_subsampling else [3, size, size]


def _npz_bytes(n: int, shape: Sequence[int], fixed: float = 1024.0) -> int:
    """Bytes of an uncompressed ``.npz`` (:func:`etcbench.io.save_npz`) of ``n`` uint8 images and int64 labels."""
    return int(fixed + n * (math.prod(shape) + 8))


def _infer(m: Mapping[str, float], images: int, batch: int) -> float:
    """Seconds of inference over ``images`` in batches of ``batch``."""
    return images / m["infer_samples_per_s"] + math.ceil(images / batch) * m["infer_batch_s"]


class _Estimator:
    """The figures of every job of a run from one calibration lookup; pure apart from the lookup."""

    def __init__(self, run: Run, cal: Lookup) -> None:
        self.run, self.cal, self.c = run, cal, run.config
        self.settings = check_grid(self.c)
        ds = self.c["dataset"]
        self.n_train, self.n_val, self.n_test = ds["train_size"], ds["val_size"], ds["test_size"]
        self.interp = ds["interpolation"]

    # shared lookups ------------------------------------------------------------------------------------------
    def setting(self, job: Job) -> tuple[int, int]:
        entry = self.settings[job.wildcards["setting"]]
        return entry["image_size"], entry["block_size"]

    def scheme_options(self, scheme: str) -> dict[str, Any]:
        return dict(self.c["scheme_options"].get(scheme, {}))

    def startup(self, stage: str) -> float:
        """Seconds of the stage's process apart from its work: the interpreter's start, its imports (those before
        its first read and those after) and its exit."""
        return self.cal("startup", stage=stage)["seconds"]

    def io(self) -> Mapping[str, float]:
        return self.cal("io")

    def model_spec(self, model: str, scheme: str, size: int, block: int) -> dict[str, Any]:
        return {"model": model, "options": cfg.model_entry(self.c, model), "shape": _shape(scheme, size, block),
                "block": block}

    def params(self, model: str, scheme: str, size: int, block: int) -> Mapping[str, float]:
        return self.cal("params", **self.model_spec(model, scheme, size, block))

    def timing(self, model: str, scheme: str, size: int, block: int, rule: str) -> Mapping[str, float]:
        """The model's training and inference seconds, calibrated at the recipe's micro-batch and the evaluation
        stage's batch where a pass at that size is affordable (per-sample costs on a CPU change with the batch)."""
        recipe = recipe_for(self.c["train"], model, scheme)
        return self.cal("model", **self.model_spec(model, scheme, size, block), optimizer=recipe.optimizer,
                        batch=recipe.micro_batch, eval_batch=EVAL_BATCH, device=self.run.device,
                        threads=self.run.threads(rule))

    # seconds --------------------------------------------------------------------------------------------------
    def seconds(self, job: Job) -> tuple[dict[str, float], float]:
        """``(parts, factor)``: the job's seconds by part and the largest scale applied to a calibration."""
        rule = job.rule
        if rule.startswith("make_") and rule.endswith("key") or rule == "master_secret":
            return self.keygen(job)
        if rule in ("plain_test", "encrypt_examples"):
            return self.encrypt(job)
        if rule.startswith("compress_"):
            return self.compress(job)
        return getattr(self, rule)(job)

    def prepare_data(self, job: Job) -> tuple[dict[str, float], float]:
        p, io = self.cal("prepare"), self.io()
        written = _npz_bytes(self.n_train + self.n_val + self.n_test, [NATIVE, NATIVE, 3])
        return ({"start-up": self.startup("keygen"), "archive": p["seconds"], "files": written / io["write_bps"]},
                p["factor"])

    def keygen(self, job: Job) -> tuple[dict[str, float], float]:
        if job.rule == "master_secret":
            return {"start-up": self.startup("keygen")}, 1.0
        size, block = self.setting(job)
        k = self.cal("keygen", scheme=job.wildcards["scheme"], options=self.scheme_options(job.wildcards["scheme"]),
                     size=size, block=block)
        return {"start-up": self.startup("keygen"), "key": k["seconds"]}, 1.0

    def encrypt_cal(self, job: Job) -> Mapping[str, float]:
        """The encryption stage's calibration (``a + b * images`` seconds; bytes) for the job's setting and scheme
        (the plain one for ``plain_test``)."""
        size, block = self.setting(job)
        scheme = job.wildcards.get("scheme", "plain")
        return self.cal("encrypt", scheme=scheme, options=self.scheme_options(scheme), size=size, block=block,
                        interpolation=self.interp)

    def encrypt(self, job: Job) -> tuple[dict[str, float], float]:
        """``plain_test``: the test split resized and written (with examples); ``encrypt_examples``: the first
        images only, resized, encrypted and written with their decryption."""
        size, _ = self.setting(job)
        e = self.encrypt_cal(job)
        images = self.n_test if job.rule == "plain_test" else min(self.c["report"]["num_examples"], self.n_test)
        start = self.cal("startup", stage="encrypt")
        if size == NATIVE:  # no resize, no torch: to the first read, and a light process's start and exit
            light = self.cal("startup", stage="keygen")
            startup = start["to_first_read"] + light["seconds"] - light["to_first_read"]
        else:
            startup = start["seconds"]
        parts = {"start-up": startup,
                 "encryption": e["a"] + e["b"] * images}
        return parts, images / e["n"]

    def jpeg_cal(self, job: Job, subsampling: str | None = None) -> Mapping[str, float]:
        """The JPEG stage's calibration for the job's setting and scheme at ``subsampling`` (default: the job's),
        with the JPEG rule's workers."""
        size, block = self.setting(job)
        scheme = job.wildcards["scheme"]
        return self.cal("jpeg", scheme=scheme, options=self.scheme_options(scheme), size=size, block=block,
                        subsampling=subsampling or job.wildcards["subsampling"],
                        qualities=list(self.c["jpeg"]["qualities"]),
                        workers=self.run.threads(job.rule if job.rule.startswith("compress_") else "compress_jpeg"),
                        interpolation=self.interp)

    def pipeline_cal(self, job: Job, recipe: Any) -> Mapping[str, float]:
        """The training data path's calibration (augmented, and without augmentation: ``eval_s_per_image``) for the
        job's setting and scheme under ``recipe``, with the training rule's threads."""
        size, block = self.setting(job)
        scheme = job.wildcards["scheme"]
        return self.cal("pipeline", scheme=scheme, options=self.scheme_options(scheme), size=size, block=block,
                        augment=recipe.augment, padding=recipe.crop_padding, scale=list(recipe.crop_scale),
                        interpolation=self.interp, device=self.run.device, threads=self.run.threads("train_model"))

    def compress(self, job: Job) -> tuple[dict[str, float], float]:
        j = self.jpeg_cal(job)
        return {"start-up": self.startup("compress"), "JPEG": j["a"] + j["b"] * self.n_test}, self.n_test / j["n"]

    def train_model(self, job: Job) -> tuple[dict[str, float], float]:
        w = job.wildcards
        size, block = self.setting(job)
        recipe = recipe_for(self.c["train"], w["model"], w["scheme"])
        m = self.timing(w["model"], w["scheme"], size, block, job.rule)
        build = self.params(w["model"], w["scheme"], size, block)
        pipe = self.pipeline_cal(job, recipe)
        io = self.io()
        steps, epochs = recipe.total_steps(self.n_train), recipe.epochs_run(self.n_train)
        images = steps * recipe.batch_size
        plain_bytes = _npz_bytes(self.n_test, [size, size, 3])
        state = build["state_bytes"]
        parts = {
            "start-up": self.startup("train"),
            "build model": build["build_seconds"],
            # pretrained weights from a local file or the hub's cache (their download is not predicted)
            "pretrained": state / io["read_bps"] if self.c["pretrained"].get(w["model"], False) else 0.0,
            "forward/backward": steps * recipe.accumulation * m["train_batch_s"] + images / m["train_samples_per_s"],
            "optimiser steps": steps * m["optimizer_step_s"],
            "augment+encrypt": images * pipe["train_s_per_image"],
            "validation": epochs * (_infer(m, self.n_val, recipe.eval_batch_size)
                                    + self.n_val * pipe["eval_s_per_image"]),
            # the plain test set encrypted with the key in the job (not stored): priced as the other-key set of the
            # evaluation, the data path without augmentation
            "test encryption": self.n_test * pipe["eval_s_per_image"],
            "test": _infer(m, self.n_test, recipe.eval_batch_size),
            # the data and plain test set in; the model out, and the resumable state (model and optimiser) every epoch
            "files": (_npz_bytes(self.n_train + self.n_val + self.n_test, [NATIVE, NATIVE, 3]) + plain_bytes)
            / io["read_bps"] + state * (1 + 3 * epochs) / io["write_bps"],
        }
        return parts, images / m["train_batch"]

    def train_model_jpeg(self, job: Job) -> tuple[dict[str, float], float]:
        """A JPEG-trained arm: the training of :meth:`train_model` on stored arrays (no per-step encryption), after
        the training, validation and test images are encrypted once and JPEG-coded and decoded in the job."""
        parts, factor = self.train_model(job)
        recipe = recipe_for(self.c["train"], job.wildcards["model"], job.wildcards["scheme"])
        pipe = self.pipeline_cal(job, recipe)
        j = self.jpeg_cal(job, job.wildcards["subsampling"])
        images = self.n_train + self.n_val + self.n_test
        parts["augment+encrypt"] = 0.0
        # the JPEG stage's calibration codes and decodes every configured quality: one of them here
        parts["upload (encrypt, JPEG)"] = (self.n_train + self.n_val) * pipe["eval_s_per_image"] + \
            images * j["b"] / len(self.c["jpeg"]["qualities"])
        return parts, factor

    def evaluated_models(self, setting: str, scheme: str) -> list[str]:
        """The models (by their config name) one evaluation job runs: trained, JPEG-trained and transformed."""
        entry = self.settings[setting]
        return [*entry["schemes"][scheme], *entry.get("jpeg_trained", {}).get(scheme, []),
                *[m for sid, sch, m in transform_arms(self.c) if (sid, sch) == (setting, scheme)]]

    def evaluate_scheme(self, job: Job) -> tuple[dict[str, float], float]:
        """Every model of the scheme on the own-key set (the plain set encrypted in the job), each JPEG set (decoded
        once for all the models), the plain set encrypted with the other key (in the job) and the key-free layout."""
        w = job.wildcards
        size, block = self.setting(job)
        scheme = w["scheme"]
        models = self.evaluated_models(w["setting"], scheme)
        io = self.io()
        variants = jpeg_variants(self.c, scheme)
        sets = 1 + len(variants) + (scheme != "plain") + 1  # own, JPEG, other, none
        plain_bytes = _npz_bytes(self.n_test, [size, size, 3])
        parts: dict[str, float] = {"start-up": self.startup("evaluate")}
        factor = 1.0
        for model in models:
            m = self.timing(model, scheme, size, block, job.rule)
            state = self.params(model, scheme, size, block)["state_bytes"]
            parts[f"inference {model}"] = parts.get(f"inference {model}", 0.0) + sets * _infer(m, self.n_test,
                                                                                                  EVAL_BATCH)
            parts["files"] = parts.get("files", 0.0) + state / io["read_bps"]
            factor = max(factor, sets * self.n_test / m["infer_batch"])
        decode = sum(len(self.c["jpeg"]["qualities"]) * self.n_test * self.jpeg_cal(job, sub)["decode_s_per_image"]
                     for sub in jpeg_subsamplings(self.c, scheme))  # the calibrations of the JPEG jobs
        parts["JPEG decoding"] = decode
        # the own key's set and the other key's, encrypted here from the plain set: the training data path without
        # augmentation
        per_image = self.pipeline_cal(job, recipe_for(self.c["train"], models[0], scheme))["eval_s_per_image"]
        parts["own-key encryption"] = self.n_test * per_image
        if scheme != "plain":
            parts["other-key encryption"] = self.n_test * per_image
        parts["files"] = parts.get("files", 0.0) + plain_bytes / io["read_bps"]  # the plain set, read once
        return parts, factor

    def attack_options(self, name: str, scheme: str, block: int) -> dict[str, Any]:
        """An attack's options as the stage builds it: the config's, the lab's network choice, the algorithm's."""
        from .attacks.base import default_options
        from .attacks.protocol import _known_algorithm
        from .ciphers.registry import SCHEMES

        known = SimpleNamespace(scheme=scheme, options=SCHEMES.create(scheme, block_size=block,
                                                                      **self.scheme_options(scheme)).options)
        return _known_algorithm(name, known, default_options(name, scheme, self.c["attack"]["options"].get(name, {})))

    def attack_scheme(self, job: Job) -> tuple[dict[str, float], float]:
        from .attacks.base import ATTACKS

        sid, scheme = job.wildcards["setting"], job.wildcards["scheme"]
        size, block = self.setting(job)
        a = self.c["attack"]
        names = ["none", *[n for n in job.wildcards["attacks"].split() if n != "none"]]
        learned = [n for n in names if ATTACKS.get(n).needs_training]
        shape = _shape(scheme, size, block)
        parts: dict[str, float] = {"start-up": self.startup("attack")}
        factors = [1.0]
        if learned or "kpa" in names:
            d = self.cal("attack_data", scheme=scheme, options=self.scheme_options(scheme), size=size, block=block,
                         interpolation=self.interp, attacker_keys=a["attacker_keys"],
                         paired=any(ATTACKS.get(n).paired for n in learned),
                         unpaired=any(not ATTACKS.get(n).paired for n in learned))
            parts["attacker's data"] = a["train_images"] * d["s_per_image"]
            factors.append(a["train_images"] / d["n"])
        records = 0
        for name in names:
            options = self.attack_options(name, scheme, block)
            attack = ATTACKS.create(name, block_size=block, **options)
            common = {"name": name, "options": options, "shape": shape, "size": size, "block": block,
                      "device": self.run.device, "threads": self.run.threads(job.rule)}
            if attack.needs_training:  # scheme-free: the network's cost depends on the layout only
                t = self.cal("attack", **common, scheme=None if attack.paired else "unpaired",
                             interpolation=self.interp)
                fit_images = a["train_images"] // 2 if not attack.paired else a["train_images"]
                parts[name] = (fit_images * attack.epochs * t["fit_s_per_image_epoch"]
                               + a["num_images"] * t["s_per_target"])
                factors += [fit_images * attack.epochs / t["n_fit"], a["num_images"] / t["n_target"]]
            else:
                t = self.cal("attack", **common, scheme=scheme, scheme_options=self.scheme_options(scheme),
                             interpolation=self.interp)
                parts[name] = t["a"] + a["num_images"] * t["s_per_target"]
                factors.append(a["num_images"] / t["n_target"])
            records += len(getattr(attack, "pairs", [0]))
        classifier = attack_classifier(self.c, sid)
        if classifier:  # semantic leakage: the plain classifier on every reconstruction, and on the plain images
            model = classifier.split("/")[4]
            m = self.timing(model, "plain", size, block, job.rule)
            state = self.params(model, "plain", size, block)["state_bytes"]
            parts["semantic leakage"] = ((records + 1) * _infer(m, a["num_images"], EVAL_BATCH)
                                         + state / self.io()["read_bps"])
        # the targets: the first images of the plain set encrypted in the job (the encryption stage's seconds per
        # image: no training recipe prices an attack's data path)
        parts["target encryption"] = a["num_images"] * self.encrypt_cal(job)["b"]
        io = self.io()
        parts["files"] = (_npz_bytes(self.n_train + self.n_val + self.n_test, [NATIVE, NATIVE, 3])
                          + _npz_bytes(self.n_test, [size, size, 3])) / io["read_bps"]
        return parts, max(factors)

    def position_leak(self, job: Job) -> tuple[dict[str, float], float]:
        w = job.wildcards
        size, block = self.setting(job)
        p = self.params(w["model"], w["scheme"], size, block)
        shape = _shape(w["scheme"], size, block)
        leak = self.cal("leak", tokens=(shape[1] // block) * (shape[2] // block))
        return ({"start-up": self.startup("evaluate"), "load models": 2 * p["state_bytes"] / self.io()["read_bps"],
                 "rebuild start": p["build_seconds"], "matching": leak["seconds"]}, 1.0)

    def make_report(self, job: Job) -> tuple[dict[str, float], float]:
        figures = report_figures(self.c)
        r = self.cal("report")
        workers = min(self.run.threads(job.rule), figures)  # drawn side by side
        return {"start-up": self.startup("report"), "figures": math.ceil(figures / workers) * r["figure_seconds"],
                "tables": len(job.inputs) * r["record_seconds"]}, float(figures)

    # bytes ----------------------------------------------------------------------------------------------------
    def bytes(self, job: Job) -> tuple[int, str]:
        """Bytes of the job's outputs and where the figure comes from."""
        rule, w = job.rule, job.wildcards
        if rule == "master_secret":
            return 32, "measured"
        if rule == "prepare_data":
            archive = self.c["dataset"].get("archive") or os.environ.get("ETCBENCH_CIFAR10_ARCHIVE")
            download = 0 if archive else CIFAR_ARCHIVE_BYTES  # results/data/download/ keeps the archive
            return _npz_bytes(self.n_train + self.n_val + self.n_test, [NATIVE, NATIVE, 3]) + 1024 + download, \
                "extrapolated"
        size, block = self.setting(job) if "setting" in w else (0, 0)
        if rule.endswith("key"):
            k = self.cal("keygen", scheme=w["scheme"], options=self.scheme_options(w["scheme"]), size=size,
                         block=block)
            return int(k["bytes"]), "measured"
        if rule in ("plain_test", "encrypt_examples"):  # the examples (calibrated with 6); the one stored test set
            e = self.encrypt_cal(job)
            examples = e["examples_bytes"] * self.c["report"]["num_examples"] / 6
            stored = e["bytes_a"] + e["bytes_b"] * self.n_test if rule == "plain_test" else 0.0
            return int(stored + examples), "extrapolated"
        if rule.startswith("compress_"):
            j = self.jpeg_cal(job)
            return int(j["bytes_a"] + j["bytes_b"] * self.n_test), "extrapolated"
        if rule in ("train_model", "train_model_jpeg"):
            p = self.params(w["model"], w["scheme"], size, block)
            recipe = recipe_for(self.c["train"], w["model"], w["scheme"])
            # model.pt: the tensors and the spec; metrics.json: the record, card and one history row per epoch
            return int(p["state_bytes"] + 20_000 + 400 * recipe.epochs_run(self.n_train)), "extrapolated"
        if rule == "evaluate_scheme":  # the records, and each model's predictions (about 3 bytes an image)
            models = len(self.evaluated_models(w["setting"], w["scheme"]))
            return models * (2_000 + 600 * (3 + len(jpeg_variants(self.c, w["scheme"]))) + 3 * self.n_test), \
                "extrapolated"
        if rule == "attack_scheme":
            from .attacks.base import ATTACKS

            a = self.c["attack"]
            records = sum(len(getattr(ATTACKS.create(n, block_size=block, **self.attack_options(n, w["scheme"], block)),
                                      "pairs", [0])) for n in ["none", *w["attacks"].split()])
            shown = min(a["num_examples"], a["num_images"])
            return int(3_000 * records + _npz_bytes(shown * (records + 1), [size, size, 3])), "extrapolated"
        if rule == "position_leak":
            return 2_000, "extrapolated"
        if rule == "make_report":
            return int(report_figures(self.c) * 150_000 + 40 * 20_000), "extrapolated"
        raise EtcbenchError(f"no estimate for rule {rule}")


def report_figures(config: Mapping[str, Any]) -> int:
    """The report's figures (PNG and PDF each), as ``workflow/rules/common.smk`` lists them."""
    attacked = bool(attack_runs(config))
    semantic = any(attack_classifier(config, sid) for sid, _, _ in attack_runs(config))
    return 6 + 2 * attacked + semantic


def estimate_jobs(jobs: Sequence[Job], run: Run, cal: Lookup,
                  recorded: Mapping[int, float] | None = None) -> list[Cost]:
    """Each job's :class:`Cost` from the calibration lookup ``cal`` (``cal(kind, **spec)``; see
    :func:`calibration_requests`); a job in ``recorded`` (index -> seconds) takes its recorded seconds."""
    est = _Estimator(run, cal)
    recorded = recorded or {}
    out = []
    for i, job in enumerate(jobs):
        nbytes, bytes_source = est.bytes(job)
        if i in recorded:
            out.append(Cost(float(recorded[i]), "recorded", 1.0, {"recorded": float(recorded[i])}, nbytes,
                            bytes_source))
            continue
        parts, factor = est.seconds(job)
        out.append(Cost(sum(parts.values()), "measured" if factor <= 1.0 else "extrapolated", max(1.0, factor),
                        parts, nbytes, bytes_source))
    return out


class _Placeholder(dict):
    """What a calibration request returns before anything is calibrated: 1.0 for every figure."""

    def __missing__(self, key: str) -> float:
        return 1.0


def calibration_requests(jobs: Sequence[Job], run: Run,
                         recorded: Mapping[int, float] | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every calibration the estimates of ``jobs`` read (key -> ``(kind, spec)``): the estimates are run once with
    placeholders, recording what they look up, so that nothing is calibrated that no figure uses."""
    wanted: dict[str, tuple[str, dict[str, Any]]] = {}

    def note(kind: str, **spec: Any) -> Mapping[str, float]:
        wanted.setdefault(cal_key(kind, spec), (kind, spec))
        return _Placeholder()

    estimate_jobs(jobs, run, note, recorded)
    return wanted


def table_lookup(table: Mapping[str, Mapping[str, float]]) -> Lookup:
    """The lookup of a calibration table (key -> figures)."""
    def lookup(kind: str, **spec: Any) -> Mapping[str, float]:
        return table[cal_key(kind, spec)]
    return lookup


# ---------------------------------------------------------------------------------------------------------------
# calibration (impure: times things on this machine)
# ---------------------------------------------------------------------------------------------------------------
def _median_time(fn: Callable[[], Any], min_total: float = 0.3, max_reps: int = 5) -> float:
    """Median seconds of ``fn`` over repeats (at least one; more while they total under ``min_total``)."""
    times: list[float] = []
    while not times or (sum(times) < min_total and len(times) < max_reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fit(t1: float, n1: int, t2: float, n2: int) -> tuple[float, float]:
    """``(a, b)`` of ``seconds = a + b * n`` through two timings; a noisy pair falls back to ``b = t2 / n2``."""
    if n2 > n1:
        b = (t2 - t1) / (n2 - n1)
        a = t2 - b * n2
        if b > 0 and a >= 0:
            return a, b
    return 0.0, t2 / n2


def _images(n: int, size: int) -> Any:
    """``n`` natural RGB uint8 images at ``size`` px (photograph tiles, as bench uses: JPEG and the jigsaw solver
    depend on content, so no noise)."""
    from .bench import bench_images

    return bench_images(n, size)


def _per_size(size: int, small: int, cap: int) -> int:
    """A calibration's image count for ``size``-px images: ``cap`` at 64 px and below, fewer for larger images."""
    return max(small, min(cap, int(cap * 64 * 64 / (size * size))))


class _Calibrator:
    def __init__(self, run: Run, work: Path) -> None:
        self.run, self.work = run, work
        self.models: dict[str, Any] = {}  # built models, by their params key
        self.files: dict[tuple[Any, ...], Path] = {}  # stand-in data sets, made once
        self.warmed: set[tuple[Any, ...]] = set()  # attacks already run once in this process
        self.counter = 0

    def path(self, suffix: str) -> Path:
        self.counter += 1
        return self.work / f"c{self.counter}{suffix}"

    def threads(self, n: int) -> None:
        import torch

        torch.set_num_threads(max(1, n))

    def sync(self) -> None:
        import torch

        if self.run.device == "cuda":
            torch.cuda.synchronize()

    # kinds ----------------------------------------------------------------------------------------------------
    def startup(self, spec: dict[str, Any]) -> dict[str, float]:
        """bench's start-up probe of the stage (``python -m etcbench <stage>`` on a missing input, which stops at
        its first read), then the stage's later imports (:data:`LATE_IMPORTS`), in one process: its wall time from
        start to exit, the seconds to the first read, and the later imports' seconds."""
        from .bench import _PROBE, STAGE_ARGS

        stage = spec["stage"]
        missing = str(self.work / "missing")
        args = [a.format(missing=missing, tmp=self.work) for a in STAGE_ARGS[stage]]
        code = (_PROBE + "t1 = time.perf_counter()\n" + "".join(f"import {m}\n" for m in LATE_IMPORTS.get(stage, []))
                + "print('LATE', time.perf_counter() - t1)\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cfg.ROOT), os.environ.get("PYTHONPATH", "")])}
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code, stage, *args], capture_output=True, text=True, timeout=300,
                             env=env)  # this etcbench, wherever the command runs from
        wall = time.perf_counter() - t0  # the interpreter's start and exit too (exit takes seconds once torch is in)
        lines = {ln.split()[0]: ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith(("PROBE", "LATE"))}
        if "LATE" not in lines or lines["PROBE"][2] != "1" or missing not in res.stderr:
            raise EtcbenchError(f"cost: the start-up probe of 'etcbench {stage}' did not stop at its missing input: "
                                f"{res.stderr.strip()[-300:]}")
        return {"seconds": wall, "to_first_read": float(lines["PROBE"][0]), "late_seconds": float(lines["LATE"][0])}

    def io(self, spec: dict[str, Any]) -> dict[str, float]:
        import numpy as np

        from .io import load_npz, save_npz

        x = np.random.default_rng(0).integers(0, 256, 32 << 20, dtype=np.uint8)
        path = self.path(".npz")
        t0 = time.perf_counter()
        save_npz(path, x=x)
        write = time.perf_counter() - t0
        read = _median_time(lambda: load_npz(path), 0.1, 3)
        path.unlink()
        return {"write_bps": x.nbytes / write, "read_bps": x.nbytes / read, "bytes": x.nbytes}

    def prepare(self, spec: dict[str, Any]) -> dict[str, float]:
        """Reading CIFAR-10 as the prepare stage does (two md5 passes over the archive; the tar.gz streamed, each
        batch unpickled, checked and turned to NHWC; the content digest), on a one-batch archive of natural images
        in CIFAR-10's format, scaled to its 60,000 images."""
        import hashlib
        import io
        import pickle
        import tarfile

        import numpy as np

        from .data import cifar
        from .io import sha256_arrays

        n = 2000
        x = _images(n, NATIVE).transpose(0, 3, 1, 2).reshape(n, -1)
        batch = pickle.dumps({b"data": x, b"labels": [i % CLASSES for i in range(n)]}, protocol=4)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            info.size = len(batch)
            tf.addfile(info, io.BytesIO(batch))
        archive = buf.getvalue()

        def read() -> None:
            for _ in range(2):
                hashlib.md5(archive, usedforsecurity=False).hexdigest()
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r|gz") as tf:
                for member in tf:
                    data, labels = cifar._decode_batch(cifar._unpickle(tf.extractfile(member)), "calibration")
                    sha256_arrays(cifar._to_nhwc([data]), np.asarray(labels))

        read()
        factor = 60_000 / n
        return {"seconds": _median_time(read, 0.2, 3) * factor, "factor": factor}

    def keygen(self, spec: dict[str, Any]) -> dict[str, float]:
        from .encryption import make_key

        key, info = self.path(".key.npz"), self.path(".json")
        t0 = time.perf_counter()
        make_key(spec["scheme"], spec["block"], spec["size"], 20220413, spec["options"], key, info)
        seconds = time.perf_counter() - t0
        nbytes = key.stat().st_size + info.stat().st_size
        key.unlink()
        info.unlink()
        return {"seconds": seconds, "bytes": nbytes}

    def _data(self, n: int) -> Path:
        """A stand-in for the prepared data: ``n`` natural 32-px images in every split (made once per ``n``)."""
        import numpy as np

        from .io import save_npz

        if ("data", n) not in self.files:
            path = self.files["data", n] = self.path(".npz")
            x, y = _images(n, NATIVE), np.arange(n, dtype=np.int64) % CLASSES
            save_npz(path, train_x=x, train_y=y, val_x=x, val_y=y, test_x=x, test_y=y)
        return self.files["data", n]

    def _plain(self, n: int, size: int, interpolation: str) -> Path:
        """The stand-in data's test split resized (the plain scheme's test set; made once per setting)."""
        from .encryption import encrypt_split

        if ("plain", n, size, interpolation) not in self.files:
            path = self.files["plain", n, size, interpolation] = self.path(".npz")
            key = self._key({"scheme": "plain", "options": {}, "block": 1, "size": size})
            encrypt_split(self._data(n), key, path, "test", interpolation)
        return self.files["plain", n, size, interpolation]

    def _key(self, spec: Mapping[str, Any], seed: int = 1) -> Path:
        from .encryption import make_key

        key = self.path(".key.npz")
        make_key(spec["scheme"], spec["block"], spec["size"], seed, spec["options"], key, self.path(".json"))
        return key

    def encrypt(self, spec: dict[str, Any]) -> dict[str, float]:
        """The encryption stage on a few natural images, at two sizes: ``seconds = a + b * images``."""
        from .encryption import encrypt_split

        self.threads(self.run.threads("plain_test"))
        key = self._key(spec)
        small = _per_size(spec["size"], 4, 16)
        runs = {}
        for n in (small, 4 * small):
            data, out, shown = self._data(n), self.path(".npz"), self.path(".npz")
            runs[n] = (_median_time(lambda d=data, o=out: encrypt_split(d, key, o, "test", spec["interpolation"]),
                                    0.1, 3), out.stat().st_size)
        encrypt_split(data, key, out, "test", spec["interpolation"], shown, 6)
        a, b = _fit(runs[small][0], small, runs[4 * small][0], 4 * small)
        per = (runs[4 * small][1] - runs[small][1]) / (3 * small)
        return {"a": a, "b": b, "n": 4 * small, "bytes_a": runs[small][1] - per * small, "bytes_b": per,
                "examples_bytes": shown.stat().st_size}

    def jpeg(self, spec: dict[str, Any]) -> dict[str, float]:
        """The compression stage (every quality of a job) on a few natural images: the plain set encrypted with the
        scheme's key in the stage, then JPEG-coded."""
        from .compression import compress_set
        from .io import load_npz
        from .jpeg import images_of

        key = self._key(spec)
        small = _per_size(spec["size"], 4, 16)
        runs = {}
        for n in (small, 4 * small):
            out = self.path("")
            plain = self._plain(n, spec["size"], spec["interpolation"])
            seconds = _median_time(lambda p=plain, o=out: compress_set(
                p, key, spec["qualities"], spec["subsampling"], o, spec["workers"]), 0.1, 3)
            runs[n] = (seconds, sum(p.stat().st_size for p in out.iterdir()))
        a, b = _fit(runs[small][0], small, runs[4 * small][0], 4 * small)
        per = (runs[4 * small][1] - runs[small][1]) / (3 * small)
        stored = [load_npz(f) for f in sorted(out.glob("*.npz"))]  # the evaluation decodes each set once
        decode = _median_time(lambda: [images_of(d) for d in stored], 0.1, 3)
        return {"a": a, "b": b, "n": 4 * small, "bytes_a": runs[small][1] - per * small, "bytes_b": per,
                "decode_s_per_image": decode / (len(stored) * 4 * small)}

    def _build(self, spec: Mapping[str, Any]) -> Any:
        from .models import build_model

        c, h, w = spec["shape"]
        size = h if h == w else [h, w]
        return build_model(spec["model"], CLASSES, size, spec["block"], dict(spec["options"]), c)

    def params(self, spec: dict[str, Any]) -> dict[str, float]:
        """Parameters and tensor bytes of the model as the stage builds it (random initialisation, timed)."""
        import timm  # noqa: F401  (imports are the start-up's: LATE_IMPORTS; only the build is timed here)

        from .models import build_model  # noqa: F401

        self.threads(self.run.threads("train_model"))
        t0 = time.perf_counter()
        model = self._build(spec)
        seconds = time.perf_counter() - t0
        self.models[cal_key("params", spec)] = model
        state = model.state_dict()
        return {"parameters": sum(p.numel() for p in model.parameters()), "build_seconds": seconds,
                "state_bytes": sum(t.numel() * t.element_size() for t in state.values())}

    def model(self, spec: dict[str, Any]) -> dict[str, float]:
        """Training and inference seconds of the model: forward/backward passes (cross-entropy; the adaptation
        networks' regularisation) at two batch sizes, the recipe's optimiser step, inference at two batch sizes;
        random inputs of the scheme's shape, bf16 autocast on CUDA as in training, after a warm-up step."""
        import torch
        import torch.nn.functional as F

        from .recipes import Recipe
        from .train import build_optimizer

        base = {k: spec[k] for k in ("model", "options", "shape", "block")}
        model = self.models.pop(cal_key("params", base), None) or self._build(base)
        self.threads(spec["threads"])
        dev = torch.device(spec["device"])
        model = model.to(dev).train()
        optimizer = build_optimizer(model, Recipe(optimizer=spec["optimizer"]))
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
        c, h, w = spec["shape"]

        def batch(n: int) -> tuple[Any, Any]:
            return torch.randn(n, c, h, w, device=dev), torch.randint(0, CLASSES, (n,), device=dev)

        def forward_backward(n: int) -> None:
            x, y = batch(n)
            with autocast:
                loss = F.cross_entropy(model(x).float(), y)
                if hasattr(model, "regularization_loss"):
                    loss = loss + model.regularization_loss().float()
            loss.backward()
            loss.item()
            self.sync()

        def step() -> None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            self.sync()

        def infer(n: int) -> None:
            x, _ = batch(n)
            with torch.no_grad(), autocast:
                model(x).float().argmax(1).cpu()
            self.sync()

        def timed(fn: Callable[[], Any]) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        def passes(n: int) -> float:
            return _median_time(lambda: (forward_backward(n), optimizer.zero_grad(set_to_none=True)), 0.3, 3)

        def sizes(small_seconds: float, small: int, target: int) -> int:
            """The batch of the second timing: the target, or as many images as fit the budget."""
            return max(small, min(target, int(PASS_BUDGET * small / max(small_seconds, 1e-6))))

        def rounds(n: int) -> tuple[float, float]:
            """Median seconds of a forward/backward pass of ``n`` images and of the optimiser step after it
            (gradient clipping included), over rounds that together take at least 0.3 s (at most 3)."""
            times: list[tuple[float, float]] = []
            while not times or (sum(a + b for a, b in times) < 0.3 and len(times) < 3):
                times.append((timed(lambda: forward_backward(n)), timed(step)))
            return statistics.median(a for a, _ in times), statistics.median(b for _, b in times)

        try:  # warm-up (the optimiser's state too); one image per timed pass where a pass is dear
            n1 = 2 if timed(lambda: forward_backward(1)) < 0.25 else 1
        except ValueError:  # batch norm on one value per channel needs two images
            optimizer.zero_grad(set_to_none=True)
            n1 = 2
            forward_backward(2)
        step()
        t1, opt = rounds(n1)
        n2 = sizes(t1, n1, spec["batch"])
        if n2 > n1:
            forward_backward(n2)  # a new batch size: its own warm-up
            optimizer.zero_grad(set_to_none=True)
        t2 = passes(n2) if n2 > n1 else t1
        a, b = _fit(t1, n1, t2, n2) if n2 >= 4 * n1 else (0.0, t2 / n2)
        model.eval()
        infer(n1)
        i1 = _median_time(lambda: infer(n1), 0.2, 3)
        m2 = sizes(i1, n1, spec["eval_batch"])
        if m2 > n1:
            infer(m2)
        i2 = _median_time(lambda: infer(m2), 0.2, 3) if m2 > n1 else i1
        ia, ib = _fit(i1, n1, i2, m2) if m2 >= 4 * n1 else (0.0, i2 / m2)
        return {"train_samples_per_s": 1.0 / b, "train_batch_s": a, "train_batch": n2, "optimizer_step_s": opt,
                "infer_samples_per_s": 1.0 / ib, "infer_batch_s": ia, "infer_batch": m2}

    def pipeline(self, spec: dict[str, Any]) -> dict[str, float]:
        """Seconds per image of the training data path: augment the plain image, resize, encrypt on the device
        (fresh keys per image for per-image-key schemes), normalise; and the same without augmentation
        (validation)."""
        import torch

        from . import ciphers
        from .data.transforms import augment_batch, normalize, resize, to_nchw

        self.threads(spec["threads"])
        dev = torch.device(spec["device"])
        scheme = ciphers.create(spec["scheme"], block_size=spec["block"], **spec["options"])
        key = scheme.generate_key(seed=1, image_size=(spec["size"], spec["size"]))
        n = _per_size(spec["size"], 8, 64)
        x = _images(n, NATIVE)
        gen, key_rng = torch.Generator().manual_seed(0), torch.Generator(device=dev).manual_seed(1)

        def run(augment: str) -> None:
            t = to_nchw(x).to(dev)
            t = augment_batch(t, augment, spec["size"], padding=spec["padding"], scale=tuple(spec["scale"]),
                              interpolation=spec["interpolation"], generator=gen)
            t = resize(t, spec["size"], spec["interpolation"])
            t = scheme.encrypt_fresh(t, key_rng) if scheme.per_image_keys else scheme.encrypt(t, key)
            normalize(t)
            self.sync()

        run(spec["augment"])
        return {"train_s_per_image": _median_time(lambda: run(spec["augment"]), 0.2, 3) / n,
                "eval_s_per_image": _median_time(lambda: run("none"), 0.2, 3) / n, "n": n}

    def attack_data(self, spec: dict[str, Any]) -> dict[str, float]:
        """Seconds per image of the attacker's own images: resized, encrypted with their keys (pairs) and split
        plain / target key (the unpaired GAN)."""
        from . import ciphers
        from .attacks.protocol import attacker_data, unpaired_data
        from .data.transforms import resize_numpy

        scheme = ciphers.create(spec["scheme"], block_size=spec["block"], **spec["options"])
        target = scheme.generate_key(seed=1, image_size=(spec["size"], spec["size"]))
        n = _per_size(spec["size"], 8, 64)
        x = _images(n, NATIVE)
        seeds = list(range(100, 100 + min(spec["attacker_keys"], n)))

        def run() -> None:
            own = resize_numpy(x, spec["size"], spec["interpolation"]) if spec["size"] != NATIVE else x
            if spec["paired"]:
                attacker_data(scheme, own, seeds, target)
            if spec["unpaired"]:
                unpaired_data(scheme, own, target)

        run()
        return {"s_per_image": _median_time(run, 0.2, 3) / n, "n": n}

    def attack(self, spec: dict[str, Any]) -> dict[str, float]:
        """The real attack on a reduced problem: a learned attack fitted for one epoch on a few of the attacker's
        images (after a warm-up fit), every attack reconstructing and scoring a few target images."""
        from . import ciphers
        from .attacks.base import ATTACKS
        from .attacks.protocol import (
            KnownPlaintextAttack,
            Scoring,
            attacker_data,
            run_attack,
            run_known_plaintext,
            unpaired_data,
        )
        from .data.transforms import resize_numpy
        from .seeding import seed_everything

        self.threads(spec["threads"])
        size, block = spec["size"], spec["block"]
        learned = spec["scheme"] in (None, "unpaired")
        scheme_name = spec.get("scheme") if not learned else ("pe" if spec["options"].get("arch") == "pixel" else
                                                              _layout_scheme(spec["shape"], size))
        scheme = ciphers.create(scheme_name, block_size=block, **spec.get("scheme_options", {}))
        cls = ATTACKS.get(spec["name"])

        def once(n_fit: int, n_target: int, side: int = size) -> tuple[float, float]:
            """``(fit seconds, reconstruction and scoring seconds)`` of one run on ``side``-px images."""
            key = scheme.generate_key(seed=1, image_size=(side, side))

            def images(n: int) -> tuple[Any, Any]:
                native = _images(n, NATIVE)
                return native, resize_numpy(native, side, spec["interpolation"]) if side != NATIVE else native

            attack = cls(block_size=block, **{**spec["options"], **({"epochs": 1} if learned else {})})
            native, plain = images(n_target)
            target = scheme.encrypt(plain, key)
            scoring = Scoring(plain=plain, native=native, interpolation=spec["interpolation"])
            seed_everything(0)
            if isinstance(attack, KnownPlaintextAttack):
                own = images(max(attack.pairs))[1]
                t0 = time.perf_counter()
                run_known_plaintext(attack, scheme, key, target, scoring, own)
                return 0.0, time.perf_counter() - t0
            data = None
            if learned:
                own = images(n_fit)[1]
                data = (attacker_data(scheme, own, [101, 102], key) if cls.paired else unpaired_data(scheme, own, key))
            t0 = time.perf_counter()  # the record's seconds leave out the jigsaw's layout scores: the call's own
            record, _ = run_attack(attack, scheme, key, target, scoring, data, device=spec["device"])
            return record["fit_seconds"], time.perf_counter() - t0 - record["fit_seconds"]

        n_target = _per_size(size, 1, 8 if learned else 4)
        # warm-ups on small images (imports, lazy initialisation), once per attack and layout in this process
        small = min(size, max(2 * int(math.lcm(block, 8)), int(spec["options"].get("train_crop") or 0)))
        warm = (spec["name"], spec["options"].get("arch"), tuple(spec["shape"][:1]))
        if learned:  # per image and epoch of the fit; per target image of the reconstruction and its scores
            if warm not in self.warmed:
                once(4, 1, small)
                self.warmed.add(warm)
            n_fit = _per_size(size, 4, 32)
            fit, rest = once(n_fit, n_target)
            fitted = n_fit // 2 if spec["scheme"] == "unpaired" else n_fit
            return {"fit_s_per_image_epoch": fit / fitted, "a": 0.0, "s_per_target": rest / n_target,
                    "n_fit": fitted, "n_target": n_target}
        if warm not in self.warmed:
            once(0, 1, min(size, 2 * block))
            self.warmed.add(warm)
        # a + b * targets through one and n_target images (kpa's a: the key recovery); where a second run is too
        # dear (large images), proportional to the targets, but for kpa, whose cost is its key recoveries: its b is
        # then the decryption and scores of a target, once per number of known pairs
        one = once(0, 1)[1]
        if n_target >= 4:
            a, b = _fit(one, 1, once(0, n_target)[1], n_target)
        elif cls is KnownPlaintextAttack:
            native = _images(1, NATIVE)
            plain = resize_numpy(native, size, spec["interpolation"]) if size != NATIVE else native
            key = scheme.generate_key(seed=1, image_size=(size, size))
            scoring = Scoring(plain=plain, native=native, interpolation=spec["interpolation"])
            target = scheme.encrypt(plain, key)
            t0 = time.perf_counter()
            scoring.scores(scheme.decrypt(target, key))
            b = (time.perf_counter() - t0) * len(cls(block_size=block, **spec["options"]).pairs)
            a = max(0.0, one - b)
        else:
            a, b = 0.0, one
        return {"fit_s_per_image_epoch": 0.0, "a": a, "s_per_target": b, "n_fit": 1, "n_target": n_target}

    def leak(self, spec: dict[str, Any]) -> dict[str, float]:
        import numpy as np

        from .attacks.position_leak import recover_permutation

        tokens = spec["tokens"]
        side = int(round(math.sqrt(tokens)))
        grid = (side, tokens // side) if side * (tokens // side) == tokens else None
        rng = np.random.default_rng(0)
        a, b, c = (rng.standard_normal((tokens, 192)) for _ in range(3))
        t0 = time.perf_counter()
        recover_permutation(a, b, grid=grid, init_embed=c)
        return {"seconds": time.perf_counter() - t0}

    def report(self, spec: dict[str, Any]) -> dict[str, float]:
        """One figure of the report's kind (a grid of panels with lines and bars), saved as PNG and PDF; and
        reading one JSON record."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        from .io import read_json, write_json

        def figure() -> None:
            fig, axes = plt.subplots(2, 3, figsize=(10, 6))
            for i, ax in enumerate(axes.flat):
                ax.plot(np.arange(20), np.random.default_rng(i).random(20), marker="o")
                ax.bar(np.arange(5), np.arange(5))
                ax.set_title(f"panel {i}")
            fig.tight_layout()
            fig.savefig(self.path(".png"), dpi=150)
            fig.savefig(self.path(".pdf"))
            plt.close(fig)

        figure()
        record = self.path(".json")
        write_json(record, {"records": [{"top1": 0.5, "n": i} for i in range(200)]})
        return {"figure_seconds": _median_time(figure, 0.5, 3),
                "record_seconds": _median_time(lambda: read_json(record), 0.01, 5)}


def _layout_scheme(shape: Sequence[int], size: int) -> str:
    """A block scheme whose encrypted images have ``shape`` (what a scheme-free learned attack calibrates on)."""
    if shape[0] == 3:
        return "etc"
    return "etc-gray" if shape[1] * shape[2] == size * size * 3 // 2 else "etc-gray-444"


# the order calibrations run in: the cheap ones first; a model's parameters before its timing (it reuses the build)
KINDS = ("io", "prepare", "startup", "keygen", "encrypt", "jpeg", "params", "model", "pipeline",
         "attack_data", "attack", "leak", "report")


def calibrate(requests: Mapping[str, tuple[str, dict[str, Any]]], run: Run,
              progress: Callable[[str], None] | None = None) -> dict[str, dict[str, float]]:
    """Run every requested calibration once (:func:`calibration_requests`) in a temporary folder; the table
    key -> figures, each figure also with the seconds the calibration took (``calibration_seconds``)."""
    import torch

    threads = torch.get_num_threads()
    quiet = logging.getLogger("etcbench")  # the stage functions' own logs, for every calibration: warnings only
    level, own_level = quiet.level, log.level
    table: dict[str, dict[str, float]] = {}
    by_kind: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for key, (kind, spec) in requests.items():
        by_kind[kind].append((key, spec))
    try:
        log.setLevel(logging.getLogger().getEffectiveLevel())
        quiet.setLevel(logging.WARNING)
        with tempfile.TemporaryDirectory(prefix="etcbench-cost-") as tmp:
            c = _Calibrator(run, Path(tmp))
            for kind in KINDS:
                items = by_kind.pop(kind, [])
                if not items:
                    continue
                def one(item: tuple[str, dict[str, Any]], kind: str = kind) -> tuple[str, dict[str, float]]:
                    if progress:
                        progress(item[0])
                    t0 = time.perf_counter()
                    figures = getattr(c, kind)(item[1])
                    return item[0], {**figures, "calibration_seconds": time.perf_counter() - t0}

                # the start-up probes are processes of their own, each importing on one core: two at a time
                workers = min(2, len(os.sched_getaffinity(0))) if kind == "startup" else 1
                with ThreadPoolExecutor(workers) as pool:
                    table.update(pool.map(one, items))
    finally:
        torch.set_num_threads(threads)
        quiet.setLevel(level)
        log.setLevel(own_level)
    if by_kind:
        raise EtcbenchError(f"cost: no calibration for {sorted(by_kind)}")
    return table


# ---------------------------------------------------------------------------------------------------------------
# recorded seconds, summary, output
# ---------------------------------------------------------------------------------------------------------------
def read_benchmarks(jobs: Sequence[Job], folder: Path) -> dict[int, float]:
    """Index -> recorded seconds of every job whose Snakemake benchmark file (mean of its ``s`` column) is in
    ``folder`` (an earlier run's ``results/benchmarks``)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EtcbenchError(f"--benchmarks {folder} is not a folder")
    out = {}
    for i, job in enumerate(jobs):
        if job.benchmark is None or not (folder / job.benchmark).is_file():
            continue
        path = folder / job.benchmark
        lines = [ln.split("\t") for ln in path.read_text().splitlines() if ln.strip()]
        try:
            column = lines[0].index("s")
            out[i] = statistics.mean(float(row[column]) for row in lines[1:])
        except (ValueError, IndexError, statistics.StatisticsError):
            raise EtcbenchError(f"{path} is not a Snakemake benchmark file (a header with an 's' column, then "
                                f"rows)") from None
    return out


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return ""


def _busy(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of intervals."""
    total, last = 0.0, -math.inf
    for s, e in sorted(intervals):
        if e > last:
            total += e - max(s, last)
            last = e
    return total


def summarise(jobs: Sequence[Job], costs: Sequence[Cost], run: Run) -> dict[str, Any]:
    """Per rule and in total: jobs, job seconds, the wall time during which the rule runs, CPU-hours,
    device-hours, bytes and sources; with the simulated schedule."""
    deps = dependencies(jobs)
    threads = [run.threads(j.rule) for j in jobs]
    start, end, wall = simulate([c.seconds for c in costs], threads, deps, run.cores,
                                [RULE_PRIORITY.get(j.rule, 0) for j in jobs])
    gpu = run.device == "cuda"
    rules: dict[str, dict[str, Any]] = {}
    for i, (job, cost) in enumerate(zip(jobs, costs)):
        r = rules.setdefault(job.rule, {"rule": job.rule, "jobs": 0, "threads": threads[i], "job_seconds": 0.0,
                                        "cpu_hours": 0.0, "device_hours": 0.0, "bytes": 0, "sources": set(),
                                        "bytes_sources": set(), "factor": 1.0, "intervals": []})
        r["jobs"] += 1
        r["job_seconds"] += cost.seconds
        r["cpu_hours"] += cost.seconds * threads[i] / 3600
        r["device_hours"] += cost.seconds / 3600 if gpu and job.rule in DEVICE_RULES else 0.0
        r["bytes"] += cost.bytes
        r["sources"].add(cost.source)
        r["bytes_sources"].add(cost.bytes_source)
        r["factor"] = max(r["factor"], cost.factor if cost.source == "extrapolated" else 1.0)
        r["intervals"].append((start[i], end[i]))
    rows = []
    for r in rules.values():
        r["wall_seconds"] = _busy(r.pop("intervals"))
        sources, bytes_sources = r.pop("sources"), r.pop("bytes_sources")
        r["source"] = "+".join(s for s in ("recorded", "measured", "extrapolated") if s in sources)
        r["bytes_source"] = "+".join(s for s in ("measured", "extrapolated") if s in bytes_sources)
        rows.append(r)
    totals = {"jobs": len(jobs), "job_seconds": sum(c.seconds for c in costs),
              "cpu_hours": sum(r["cpu_hours"] for r in rows), "device_hours": sum(r["device_hours"] for r in rows),
              "bytes": sum(c.bytes for c in costs), "wall_seconds": wall}
    per_job = [{"job": job.name, "rule": job.rule, "threads": threads[i], "seconds": cost.seconds,
                "source": cost.source, "factor": cost.factor, "parts": cost.parts, "bytes": cost.bytes,
                "start": start[i], "end": end[i]} for i, (job, cost) in enumerate(zip(jobs, costs))]
    return {"rules": rows, "totals": totals, "jobs": per_job}


def markdown(result: Mapping[str, Any]) -> str:
    """The table ``etcbench cost`` prints and writes to ``cost.md``."""
    run, totals = result["run"], result["totals"]
    gpu = run["device"] == "cuda"
    lines = [f"# etcbench cost: {' + '.join(run['configfiles']) or 'config/config.yaml'}", "",
             f"Predicted on {run['device_name']}, `snakemake --cores {run['cores']}`"
             + (f", threads set by {run['profile']}" if run.get("profile") else "")
             + f"; computed in {result['elapsed_seconds']:.0f} s.", ""]
    if run.get("calibrations_run") and max(run.get("load_average", [0])) > run.get("cpus", math.inf) + 1:
        lines += [f"**Warning**: the load average was {max(run['load_average']):.1f} on {run['cpus']} cores while "
                  "calibrating: other processes shared the cores, so the calibrated figures are pessimistic; rerun "
                  "on an idle machine.", ""]
    lines += [
             "| rule | jobs | threads | job time | running (wall) | CPU-hours | device-hours | disk | source |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rules"]:
        source = r["source"] + (f" (x{r['factor']:.3g})" if "extrapolated" in r["source"] else "")
        device = f"{r['device_hours']:.3f}" if gpu and r["rule"] in DEVICE_RULES else ("no GPU" if r["rule"] in
                                                                                        DEVICE_RULES else "-")
        lines.append(f"| {r['rule']} | {r['jobs']} | {r['threads']} | {_hms(r['job_seconds'])} | "
                     f"{_hms(r['wall_seconds'])} | {r['cpu_hours']:.3f} | {device} | {_size(r['bytes'])} | "
                     f"{source}; disk {r['bytes_source']} |")
    lines.append(f"| **total** | {totals['jobs']} | | {_hms(totals['job_seconds'])} | "
                 f"**{_hms(totals['wall_seconds'])}** | {totals['cpu_hours']:.2f} | "
                 f"{totals['device_hours']:.2f}{'' if gpu else ' (no GPU)'} | {_size(totals['bytes'])} | |")
    lines += ["", f"**Predicted wall time: {_hms(totals['wall_seconds'])}** with {run['cores']} cores on "
              f"{run['device_name']} (Snakemake's local scheduler replayed over the {totals['jobs']} jobs; Snakemake's "
              f"own start-up not included). Job time: the jobs' seconds summed; running: the wall time during which "
              "a job of the rule runs. Sources: *measured* here at full size, *extrapolated* from a short "
              "calibration here (the largest scale applied, x), *recorded* in an earlier run's benchmark files.", ""]
    models = [(k, v) for k, v in result["calibrations"].items() if k.startswith("model ")]
    if models:
        lines += ["Models, calibrated here (random inputs of the scheme's shape; extrapolated linearly to the "
                  "recipes' batches):", "", "| model | input | train samples/s (batch) | optimiser step s | "
                  "inference samples/s (batch) |", "|---|---|---:|---:|---:|"]
        for key, v in models:
            spec = json.loads(key.split(" ", 1)[1])
            lines.append(f"| {spec['model']} {json.dumps(spec['options'], sort_keys=True)} | "
                         f"{'x'.join(map(str, spec['shape']))} | {v['train_samples_per_s']:.1f} "
                         f"({v['train_batch']:.0f}) | {v['optimizer_step_s']:.3f} | "
                         f"{v['infer_samples_per_s']:.1f} ({v['infer_batch']:.0f}) |")
        lines.append("")
    lines.append("Not included: downloads (CIFAR-10, pretrained weights) and the transient training state.")
    return "\n".join(lines) + "\n"


def _profile_threads(profile: Path) -> dict[str, int]:
    """``set-threads`` of a Snakemake profile folder (its ``config.yaml``)."""
    import yaml

    path = Path(profile) / "config.yaml" if Path(profile).is_dir() else Path(profile)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise EtcbenchError(f"profile {profile}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    threads = data.get("set-threads", {}) if isinstance(data, dict) else {}
    if not isinstance(threads, dict) or not all(isinstance(v, int) and v > 0 for v in threads.values()):
        raise EtcbenchError(f"profile {path}: set-threads must map rules to positive numbers")
    return {str(k): int(v) for k, v in threads.items()}


def _device(name: str) -> tuple[str, str]:
    """``(cpu|cuda, description)`` of ``--device``."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise EtcbenchError("--device cuda, but torch sees no CUDA device")
        return "cuda", torch.cuda.get_device_name(0)
    return "cpu", f"the CPU ({os.cpu_count()} cores here)"


def run_cost(configfiles: Sequence[str | Path] = (), *, cores: int = 2, device: str = "auto",
             benchmarks: Path | None = None, out_dir: Path = Path("results/cost"), profile: Path | None = None,
             overrides: Mapping[str, Any] | None = None,
             table: Mapping[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Predict the cost of the run of ``configfiles`` (layered over ``config/config.yaml`` as the workflow does);
    write ``cost.json`` and ``cost.md`` to ``out_dir``. ``table`` (key -> figures) replaces calibrations it holds."""
    from .io import atomic_write, write_json

    started = time.perf_counter()
    if cores < 1:
        raise EtcbenchError(f"--cores must be at least 1, got {cores}")
    config = cfg.resolve(configfiles, overrides, defaults=cfg.DEFAULTS, schema=cfg.SCHEMA)
    set_threads = _profile_threads(profile) if profile else {}
    jobs = dag_jobs(config)
    recorded = read_benchmarks(jobs, benchmarks) if benchmarks else {}
    dev, device_name = _device(device)
    run = Run(config, cores, dev, set_threads)
    requests = calibration_requests(jobs, run, recorded)
    known = dict(table or {})
    todo = {k: v for k, v in requests.items() if k not in known}
    log.info("%d jobs (%d recorded); %d calibrations on %s", len(jobs), len(recorded), len(todo), device_name)
    load = [os.getloadavg()[0]]
    known.update(calibrate(todo, run, progress=lambda key: log.info("calibrating %s", key[:160])))
    load.append(os.getloadavg()[0])
    costs = estimate_jobs(jobs, run, table_lookup(known), recorded)
    result: dict[str, Any] = {
        "run": {"configfiles": [str(p) for p in configfiles], "cores": cores, "device": dev,
                "device_name": device_name, "profile": str(profile) if profile else None,
                "benchmarks": str(benchmarks) if benchmarks else None, "calibrations_run": len(todo),
                "load_average": load, "cpus": len(os.sched_getaffinity(0))},
        **summarise(jobs, costs, run),
        "calibrations": {k: known[k] for k in requests},
    }
    result["elapsed_seconds"] = time.perf_counter() - started
    out_dir = Path(out_dir)
    write_json(out_dir / "cost.json", result)
    with atomic_write(out_dir / "cost.md", binary=False) as fh:
        fh.write(markdown(result))
    return result
