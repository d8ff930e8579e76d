"""``etcbench bench``: every hot stage timed against its physical reference and a straightforward implementation.

The machines this runs on are shared and their speed drifts, so no figure here is an absolute time alone: each item
is timed in rounds interleaved with its reference (one call of each per round, in the same process), and the
figure reported is the median over rounds of the per-round ratio, with its range. Sections:

``ciphers``
    encrypt and decrypt of every scheme on one uint8 batch, against a numpy copy of the same array; the torch path
    against a torch clone (CPU, and CUDA where present); and against :func:`loop_reference`, a per-image, per-block
    Python loop over the same key, checked to give identical output before it is timed.
``jpeg``
    the JPEG round trip of the compress stage (:func:`etcbench.jpeg.roundtrip_files`) with 2 workers against 1 (its
    parallel speed-up), and with 1 worker against bare, serial Pillow encoder and decoder calls on the same images.
    Timed before the ciphers: the workers are forked processes, and forking copies the page tables of the whole
    process (about 35 ms for this process's 600 MB with torch loaded on a 2-core VM), so it is timed at the size of a
    compress job, not after the cipher section has grown the process by gigabytes.
``startup``
    seconds from starting ``python -m etcbench <stage>`` to its first work (the stage is given a missing input and
    stops at its first read), and whether it imported torch.
``training``
    samples/s of each model on each scheme's on-the-fly encrypted batches against the same model, batch and steps on
    plain images (:func:`etcbench.gpu_check.train_rows`); round ``r`` trains the schemes in the order rotated by
    ``r``, so that with as many rounds as schemes (the default) each takes every position once.

Results go to ``<out-dir>/bench.json`` (the rows and the machine) and ``bench.md`` (a table per section).
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import ciphers
from .errors import EtcbenchError
from .io import atomic_write, write_json

__all__ = ["SECTIONS", "bench_images", "cipher_rows", "interleaved", "jpeg_rows", "loop_reference", "markdown",
           "run_bench", "startup_rows", "training_rows"]

log = logging.getLogger(__name__)

SECTIONS = ("ciphers", "jpeg", "startup", "training")
# what each kind of ratio should reach (issue targets; a ratio is item time / reference time unless "speed-up")
TARGETS = {"copy": ("<=", 2.0), "clone": ("<=", 2.0), "loop": (">=", 20.0), "workers": (">=", 1.7),
           "bare": ("<=", 1.3), "plain": (">=", 0.97)}


# timing -----------------------------------------------------------------------------------------------------------
def interleaved(timers: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds of one call of each timer, per round; the timers take turns within every round."""
    times: dict[str, list[float]] = {name: [] for name in timers}
    for _ in range(rounds):
        for name, fn in timers.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def _row(section: str, item: str, times: list[float], ref_name: str, ref: list[float], kind: str | None,
         speedup: bool = False, **facts: Any) -> dict[str, Any]:
    """One result: the item's median seconds and the median (min, max) of its per-round ratio to the reference
    (reference / item when ``speedup``, so that higher is faster), judged against ``TARGETS[kind]`` (no target when
    ``kind`` is None)."""
    ratios = [(r / t if speedup else t / r) for t, r in zip(times, ref)]
    ratio = statistics.median(ratios)
    target, meets = "", None
    if kind is not None:
        op, bound = TARGETS[kind]
        target, meets = f"{op} {bound:g}", bool(ratio <= bound if op == "<=" else ratio >= bound)
    return {"section": section, "item": item, "reference": ref_name, "seconds": statistics.median(times),
            "reference_seconds": statistics.median(ref), "ratio": ratio, "ratio_min": min(ratios),
            "ratio_max": max(ratios), "ratio_is": "speed-up" if speedup else "time ratio", "target": target,
            "meets_target": meets, "rounds": len(times), **facts}


# images -----------------------------------------------------------------------------------------------------------
def bench_images(n: int, size: int) -> np.ndarray:
    """``n`` natural ``size x size`` RGB uint8 images: tiles of scikit-image's photographs (JPEG times depend on
    content, so no noise), repeated as needed."""
    from skimage import data
    from skimage.transform import resize

    tiles = []
    for img in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket()):
        side = min(img.shape[:2])
        tiles.append(img[:side, :side])
    tiles = [(resize(t, (size, size), anti_aliasing=True, preserve_range=True) + 0.5).astype(np.uint8) for t in tiles]
    tiles += [np.ascontiguousarray(t[::-1]) for t in tiles] + [np.ascontiguousarray(t[:, ::-1]) for t in tiles]
    return np.ascontiguousarray(np.stack([tiles[i % len(tiles)] for i in range(n)]))


# ciphers ----------------------------------------------------------------------------------------------------------
def _block_slices(rows: int, cols: int, m: int) -> list[tuple[slice, slice]]:
    return [(slice(r, r + m), slice(c, c + m)) for r in range(0, rows, m) for c in range(0, cols, m)]


def loop_reference(scheme: ciphers.Scheme, key: ciphers.Key, x: np.ndarray, inverse: bool = False) -> np.ndarray:
    """The straightforward implementation: for each image, for each ``M x M`` block of the output, fetch its values
    from the block's sources with the key's per-block map, one image and one block at a time.

    The per-block maps are the key's compiled plan (:mod:`etcbench.ciphers.plan`: for every output value, its source
    value and whether it is inverted; for LE/ELE the two source nibbles of each output byte), so the loop computes
    exactly what the scheme computes; per-image-key PE draws each image's key and applies it image by image.
    Grayscale-based EtC converts each image to its plane first (decryption: converts each plane back last).
    """
    from .ciphers.nibbles import NibblePairPlan, NibbleScheme
    from .ciphers.pe import PE, apply_pixel_keys
    from .ciphers.ycbcr import from_plane, to_plane

    if isinstance(scheme, PE):
        out = np.empty_like(x)
        for i in range(len(x)):
            negpos, codes = scheme.image_keys(key, i, 1)
            out[i] = apply_pixel_keys(x[i:i + 1], negpos, codes, inverse)[0]
        return out
    plan = scheme.pair_plan(key) if isinstance(scheme, NibbleScheme) else scheme.plan(key)
    plan = plan.inverse() if inverse else plan
    gray = scheme.plane_subsampling is not None
    rows, cols, chans = plan.shape
    m = scheme.block_size
    src = x
    if gray and not inverse:
        src = np.stack([to_plane(img[None], scheme.plane_subsampling)[0] for img in x])
    out = np.empty((len(x), rows, cols, chans), dtype=np.uint8)
    if isinstance(plan, NibblePairPlan):
        fields = [f.reshape(rows, cols, chans) for f in (plan.a, plan.b, plan.sa, plan.sb, plan.m)]
    else:
        fields = [plan.perm.reshape(rows, cols, chans),
                  (plan.mask.astype(np.uint8) * np.uint8(plan.mask_value)).reshape(rows, cols, chans)]
    for i in range(len(x)):
        flat = src[i].reshape(-1)
        for r, c in _block_slices(rows, cols, m):
            if isinstance(plan, NibblePairPlan):
                a, b, sa, sb, mask = (f[r, c] for f in fields)
                out[i, r, c] = (((flat[a] >> sa) & 15) | ((flat[b] << sb) & 0xF0)) ^ mask
            else:
                perm, mask = (f[r, c] for f in fields)
                out[i, r, c] = flat[perm] ^ mask
    if gray and inverse:
        out = np.stack([from_plane(p[None], scheme.plane_subsampling)[0] for p in out])
    return out


def cipher_rows(schemes: Sequence[str], x: np.ndarray, block_size: int, rounds: int, key_seed: int = 1,
                torch_devices: Sequence[str] = ("cpu",)) -> list[dict[str, Any]]:
    """Encrypt and decrypt of each scheme on ``x`` against a copy, a torch clone and the loop reference."""
    rows = []
    for name in schemes:
        scheme = ciphers.create(name, block_size=block_size)
        key = scheme.generate_key(seed=key_seed, image_size=x.shape[1:3])
        y = scheme.encrypt(x, key)  # warm-up: builds and caches the plan
        rows += _numpy_cipher_rows(scheme, key, x, y, rounds)
        for device in torch_devices:
            rows += _torch_cipher_rows(scheme, key, x, y, rounds, device)
        log.info("bench ciphers: %s done", name)
    return rows


def _facts(scheme: ciphers.Scheme, x: np.ndarray) -> dict[str, Any]:
    return {"scheme": scheme.name, "batch": x.shape[0], "image_size": x.shape[1], "block_size": scheme.block_size}


def _numpy_cipher_rows(scheme: ciphers.Scheme, key: ciphers.Key, x: np.ndarray, y: np.ndarray,
                       rounds: int) -> list[dict[str, Any]]:
    back = scheme.decrypt(y, key)
    if not (np.array_equal(loop_reference(scheme, key, x), y)
            and np.array_equal(loop_reference(scheme, key, y, inverse=True), back)):
        raise EtcbenchError(f"the loop reference of {scheme.name} does not give the scheme's output")
    times = interleaved({"copy": lambda: x.copy(), "encrypt": lambda: scheme.encrypt(x, key),
                         "decrypt": lambda: scheme.decrypt(y, key),
                         "loop encrypt": lambda: loop_reference(scheme, key, x),
                         "loop decrypt": lambda: loop_reference(scheme, key, y, inverse=True)}, rounds)
    rows = []
    for op in ("encrypt", "decrypt"):
        rows.append(_row("ciphers", f"{scheme.name} {op} (numpy)", times[op], "numpy copy", times["copy"], "copy",
                         **_facts(scheme, x)))
        rows.append(_row("ciphers", f"{scheme.name} {op} (numpy) vs loop", times[op], "per-image, per-block loop",
                         times[f"loop {op}"], "loop", speedup=True, **_facts(scheme, x)))
    return rows


def _torch_cipher_rows(scheme: ciphers.Scheme, key: ciphers.Key, x: np.ndarray, y: np.ndarray, rounds: int,
                       device: str) -> list[dict[str, Any]]:
    import torch

    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(device)
    yt = torch.from_numpy(y).permute(0, 3, 1, 2).contiguous().to(device)
    if not torch.equal(scheme.encrypt(xt, key).cpu(), yt.cpu()):
        raise EtcbenchError(f"{scheme.name}: torch ({device}) and numpy encryption differ")
    sync = torch.cuda.synchronize if xt.is_cuda else (lambda: None)
    times = interleaved({"clone": lambda: (xt.clone(), sync()),
                         "encrypt": lambda: (scheme.encrypt(xt, key), sync()),
                         "decrypt": lambda: (scheme.decrypt(yt, key), sync())}, rounds)
    return [_row("ciphers", f"{scheme.name} {op} (torch {device})", times[op], f"torch clone ({device})",
                 times["clone"], "clone", device=device, **_facts(scheme, x)) for op in ("encrypt", "decrypt")]


# JPEG -------------------------------------------------------------------------------------------------------------
def _bare_roundtrip(x: np.ndarray, quality: int, subsampling: str) -> None:
    """One encoder and one decoder call per image, serially: what the stage parallelises and post-processes."""
    from .jpeg import decode_one, encode_one

    for img in x:
        decode_one(encode_one(img, quality, subsampling))


def jpeg_rows(x: np.ndarray, quality: int, subsampling: str, rounds: int) -> list[dict[str, Any]]:
    """The compress stage's JPEG round trip with 2 workers vs 1, and with 1 worker vs bare serial Pillow calls."""
    from .jpeg import roundtrip_files  # what the compress stage calls

    facts = {"batch": len(x), "image_size": x.shape[1], "quality": quality, "subsampling": subsampling}
    times = interleaved({"bare": lambda: _bare_roundtrip(x, quality, subsampling),
                         "1 worker": lambda: roundtrip_files(x, quality, subsampling, workers=1),
                         "2 workers": lambda: roundtrip_files(x, quality, subsampling, workers=2)}, rounds)
    return [_row("jpeg", "JPEG round trip, 2 workers", times["2 workers"], "1 worker", times["1 worker"], "workers",
                 speedup=True, cores=len(os.sched_getaffinity(0)), **facts),
            _row("jpeg", "JPEG round trip, 1 worker", times["1 worker"], "bare Pillow encode + decode calls",
                 times["bare"], "bare", **facts)]


# start-up ---------------------------------------------------------------------------------------------------------
# each stage with a missing input: it imports what it needs, then stops at its first read
STAGE_ARGS = {
    "keygen": ["--scheme", "etc", "--block-size", "16", "--image-size", "32", "--master-file", "{missing}",
               "--out", "{tmp}/k.npz", "--info", "{tmp}/k.json"],
    "encrypt": ["--data", "{missing}", "--key", "{missing}", "--out", "{tmp}/e.npz"],
    "compress": ["--plain-test", "{missing}", "--key", "{missing}", "--quality", "50",
                 "--subsampling", "444", "--out-dir", "{tmp}/jpeg"],
    "train": ["--data", "{missing}", "--key", "{missing}", "--plain-test", "{missing}", "--model", "vit", "--state-dir",
              "{tmp}/state", "--out-model", "{tmp}/m.pt", "--out-metrics", "{tmp}/m.json"],
    "evaluate": ["--model-file", "{missing}", "--key", "{missing}", "--plain-test", "{missing}", "--out",
                 "{tmp}/e.json"],
    "attack": ["--attacks", "fr", "--data", "{missing}", "--key", "{missing}", "--plain-test",
               "{missing}", "--key-seed", "1", "--out", "{tmp}/a.json", "--out-examples", "{tmp}/a.npz"],
    "report": ["--accuracy", "{missing}", "--out-dir", "{tmp}/report"],
}
_PROBE = ("import sys, time, runpy\n"
          "t0 = time.perf_counter()\n"
          "sys.argv = ['etcbench'] + sys.argv[1:]\n"
          "code = 0\n"
          "try:\n    runpy.run_module('etcbench', run_name='__main__')\n"
          "except SystemExit as exc:\n    code = exc.code\n"
          "print('PROBE', time.perf_counter() - t0, 'torch' in sys.modules, code)\n")
# stages that need no torch must not import it (issue 15)
TORCH_FREE = ("keygen", "compress", "report")


def startup_rows(stages: Sequence[str], rounds: int) -> list[dict[str, Any]]:
    """Seconds from starting the interpreter to each stage's first read (median over interleaved rounds) against
    ``python -c pass`` (the interpreter alone), and whether the stage imported torch."""
    rows = []
    imports_torch: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="etcbench-bench-") as tmp:
        missing = str(Path(tmp) / "missing")

        def probe(stage: str) -> Callable[[], None]:
            args = [a.format(missing=missing, tmp=tmp) for a in STAGE_ARGS[stage]]

            def run() -> None:
                res = subprocess.run([sys.executable, "-c", _PROBE, stage, *args], capture_output=True, text=True,
                                     timeout=300)
                fields = next((ln.split() for ln in res.stdout.splitlines() if ln.startswith("PROBE")), None)
                if fields is None or fields[3] != "1" or missing not in res.stderr:
                    raise EtcbenchError(f"bench startup: 'etcbench {stage}' did not stop at its missing input: "
                                        f"{res.stderr.strip()[-300:]}")
                imports_torch[stage] = fields[2] == "True"
            return run

        timers: dict[str, Callable[[], Any]] = {
            "python": lambda: subprocess.run([sys.executable, "-c", "pass"], check=True)}
        timers.update({stage: probe(stage) for stage in stages})
        times = interleaved(timers, rounds)
    for stage in stages:
        row = _row("startup", f"etcbench {stage}", times[stage], "python -c pass", times["python"], None,
                   imports_torch=imports_torch[stage])
        if stage in TORCH_FREE:
            row.update(target="no torch", meets_target=not imports_torch[stage])
        rows.append(row)
    return rows


# training ---------------------------------------------------------------------------------------------------------
def training_rows(models: Sequence[str], schemes: Sequence[str], model_options: dict[str, dict[str, Any]],
                  image_size: int, block_size: int, archive: str | None, train_size: int, batch_size: int,
                  rounds: int, device: str) -> list[dict[str, Any]]:
    """Samples/s of every model on every scheme against plain, same model, batch and steps, in interleaved rounds
    (each round trains every cell once: one epoch of ``train_size`` images)."""
    from .gpu_check import train_rows

    cells = ["plain", *[s for s in schemes if s != "plain"]]
    trained = train_rows(models, cells, model_options, image_size, block_size, archive, train_size, batch_size,
                         device, rounds=rounds)
    rows = []
    for model in models:
        speed = {s: [r["samples_per_s"] for r in trained if r["model"] == model and r["scheme"] == s] for s in cells}
        for scheme in cells[1:]:
            # seconds per sample (1 / samples/s) as the times, so the speed-up is scheme samples/s over plain's
            row = _row("training", f"{model} on {scheme}", [1 / v for v in speed[scheme]], f"{model} on plain",
                       [1 / v for v in speed["plain"]], "plain", speedup=True, model=model, scheme=scheme,
                       image_size=image_size, block_size=block_size, batch=batch_size, device=device)
            row.update(samples_per_s=statistics.median(speed[scheme]),
                       plain_samples_per_s=statistics.median(speed["plain"]))
            rows.append(row)
    return rows


# the command ------------------------------------------------------------------------------------------------------
def markdown(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """A table per section: item, reference, median seconds of both, the ratio (median, range) and the target."""
    out = [f"# etcbench bench\n\n{machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}"
           f"{', ' + machine['cuda'] if machine.get('cuda') else ''}; ratios are medians over interleaved rounds "
           "of the per-round ratio (range in brackets).\n"]
    for section in SECTIONS:
        part = [r for r in rows if r["section"] == section]
        if not part:
            continue
        out.append(f"\n## {section}\n\n| item | reference | s | reference s | ratio | target |\n"
                   "|---|---|---|---|---|---|")
        for r in part:
            kind = "x faster" if r["ratio_is"] == "speed-up" else "x the time"
            extra = " (imports torch)" if r.get("imports_torch") else ""
            mark = {True: " ✓", False: " ✗", None: ""}[r["meets_target"]]
            out.append(f"| {r['item']}{extra} | {r['reference']} | {r['seconds']:.4g} | {r['reference_seconds']:.4g} "
                       f"| {r['ratio']:.2f} {kind} [{r['ratio_min']:.2f}, "
                       f"{r['ratio_max']:.2f}] | {r['target']}{mark} |")
    return "\n".join(out) + "\n"


def machine_facts() -> dict[str, Any]:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else \
        platform.processor()
    facts = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
             "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    if torch.cuda.is_available():
        facts["cuda"] = torch.cuda.get_device_name(0)
    return facts


def run_bench(out_dir: Path, sections: Sequence[str] = SECTIONS, *, schemes: Sequence[str] | None = None,
              batch: int = 256, image_size: int = 224, block_size: int = 16, rounds: int = 7,
              jpeg_batch: int = 256, quality: int = 75, subsampling: str = "444", stages: Sequence[str] | None = None,
              models: Sequence[str] = (), train_schemes: Sequence[str] = (), model_options: dict | None = None,
              train_image_size: int = 32, train_block_size: int = 8, train_size: int = 512, train_batch: int = 64,
              train_rounds: int | None = None, archive: str | None = None, device: str = "cpu") -> list[dict[str, Any]]:
    """Run the chosen sections and write ``bench.json`` and ``bench.md`` to ``out_dir``; returns the rows."""
    import torch

    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise EtcbenchError(f"unknown bench section(s) {unknown}; choose from {list(SECTIONS)}")
    if "training" in sections and not models:
        raise EtcbenchError("the training section needs --models")
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    rows: list[dict[str, Any]] = []
    if "jpeg" in sections:  # first: its workers are forked, and a fork costs with the size of this process
        rows += jpeg_rows(bench_images(jpeg_batch, image_size), quality, subsampling, rounds)
    if "ciphers" in sections:
        names = list(schemes) if schemes else [s for s in ciphers.available() if s != "plain"]
        rows += cipher_rows(names, bench_images(batch, image_size), block_size, rounds, torch_devices=devices)
    if "startup" in sections:
        rows += startup_rows(list(stages) if stages else list(STAGE_ARGS), rounds)
    if "training" in sections:
        train_schemes = list(train_schemes or ["etc"])
        rounds_ = train_rounds or len({"plain", *train_schemes})  # every scheme in every position once
        rows += training_rows(models, train_schemes, model_options or {}, train_image_size, train_block_size, archive,
                              train_size, train_batch, rounds_, device)
    machine = machine_facts()
    out_dir = Path(out_dir)
    write_json(out_dir / "bench.json", {"machine": machine, "rows": rows})
    with atomic_write(out_dir / "bench.md", binary=False) as fh:
        fh.write(markdown(rows, machine))
    return rows
