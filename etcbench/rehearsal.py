"""A CPU rehearsal of a config's grid: every model it trains, built at its real size, through the real stages.

Before a GPU-day is spent on ``config/paper.yaml``, ``etcbench rehearse --configfile config/paper.yaml`` resolves the
config exactly as the workflow does (:mod:`etcbench.config`) and, on a few CIFAR-10 images, runs the workflow's
stages through the CLI in one process:

1. ``prepare`` (``images`` training images, a quarter as many validation and test images), then per setting and
   scheme ``keygen`` and ``encrypt`` (own and "other" key) and ``compress`` at the config's first JPEG quality;
2. per trained cell of the grid (first seed): ``train`` with the model's resolved options and whole recipe, capped
   at ``steps`` optimiser steps (:func:`rehearsal_recipe`: accumulation capped at 2, so the accumulation path runs,
   micro-batches of 2 images, 1 for ViT, which has no batch norm), then ``evaluate`` on the test set, its JPEG
   versions, the other key and plain images;
3. ``report``.

Models are built at the config's size (ViT-B/16 at 224 px is ViT-B/16 at 224 px). Where the config asks for hub
weights (``pretrained: true``), which an offline machine cannot fetch, the rehearsal writes a stand-in checkpoint
with timm's real tensor names and shapes for that tag and random values, so the strict loading of the real run is
exercised; a local checkpoint path in the config is used as it is. The attacks are not rehearsed.

Returns (and writes to ``<workdir>/rehearsal.json``) every trained cell's model card, resolved recipe and time.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from . import ciphers
from . import config as cfg
from .errors import EtcbenchError
from .io import read_json, write_json
from .recipes import Recipe, recipe_for, recipe_name_for

__all__ = ["rehearsal_recipe", "rehearse", "stand_in_checkpoint"]

log = logging.getLogger(__name__)


def _run(argv: list[str]) -> None:
    from .cli import main

    if main(argv) != 0:
        raise EtcbenchError(f"rehearsal stage failed: etcbench {' '.join(argv[:1])} (see the error line above)")


def rehearsal_recipe(recipe: Recipe, steps: int, micro_batch: int = 2) -> Recipe:
    """``recipe`` cut to ``steps`` optimiser steps of ``micro_batch * accumulation`` images, accumulation at most 2;
    a warm-up and multistep milestones shrink to step 1, so every phase of the schedule runs. Everything else
    (optimiser, rates, augmentation, clipping) is the recipe's."""
    accumulation = min(recipe.accumulation, 2)
    warms = bool(recipe.warmup_steps or recipe.warmup_epochs)
    return dataclasses.replace(recipe, epochs=None, steps=steps, batch_size=micro_batch * accumulation,
                               accumulation=accumulation, warmup_steps=1 if warms else None, warmup_epochs=0.0,
                               milestones=(1,) if recipe.milestones else (),
                               eval_batch_size=min(recipe.eval_batch_size, 8))


def stand_in_checkpoint(arch: str, out: Path) -> Path:
    """A checkpoint with the tensor names and shapes of timm's hub weights for ``arch`` (its tag), random values."""
    import timm
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg

    pcfg = get_pretrained_cfg(arch)
    if pcfg is None:
        raise EtcbenchError(f"timm has no pretrained config for {arch!r}")
    model = timm.create_model(arch.split(".")[0], pretrained=False, num_classes=pcfg.num_classes)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    return out


def rehearse(configfiles: list[str], workdir: Path, *, archive: str | None = None,
             overrides: dict[str, Any] | None = None, images: int = 8, steps: int = 2,
             device: str = "cpu") -> dict[str, Any]:
    """Rehearse the grid of ``config/config.yaml`` + ``configfiles`` + ``overrides`` in ``workdir``."""
    started = time.perf_counter()
    config = cfg.resolve(configfiles, overrides)
    workdir = Path(workdir)
    data, info = workdir / "data.npz", workdir / "data.json"
    interp = config["dataset"]["interpolation"]
    _run(["prepare", *(["--archive", archive] if archive else []), "--cache-dir", str(workdir / "download"),
          "--train-size", str(images), "--val-size", str(max(2, images // 4)), "--test-size", str(max(2, images // 4)),
          "--out", str(data), "--info", str(info)])
    quality = str(config["jpeg"]["qualities"][0])
    settings = cfg.check_grid(config)
    accuracy, compression, cells = [], [], []
    standins: dict[str, Path] = {}
    for sid, entry in settings.items():
        size, block = str(entry["image_size"]), str(entry["block_size"])
        for scheme in ["plain", *[s for s in entry["schemes"] if s != "plain"]]:
            options = json.dumps(config["scheme_options"].get(scheme, {}))
            base = workdir / sid / scheme
            for role, seed in (("own", config["key_seed"]), ("other", config["key_seed"] + 1)):
                if role == "other" and (scheme == "plain" or not entry["schemes"].get(scheme)):
                    continue
                _run(["keygen", "--scheme", scheme, "--block-size", block, "--image-size", size, "--seed", str(seed),
                      "--options", options, "--out", str(base / f"{role}.key.npz"),
                      "--info", str(base / f"{role}.key.json")])
                _run(["encrypt", "--data", str(data), "--key", str(base / f"{role}.key.npz"), "--split", "test",
                      "--image-size", size, "--interpolation", interp, "--out", str(base / f"test-{role}.npz")])
            plane = ciphers.create(scheme, block_size=int(block), **config["scheme_options"].get(scheme, {}))
            jpeg = []
            for sub in [plane.plane_subsampling] if plane.plane_subsampling else config["jpeg"]["subsampling"]:
                _run(["compress", "--images", str(base / "test-own.npz"),
                      "--plain", str(workdir / sid / "plain" / "test-own.npz"), "--key", str(base / "own.key.npz"),
                      "--quality", quality, "--subsampling", sub, "--out-dir", str(base / "jpeg")])
                jpeg.append(base / "jpeg" / f"q{quality}-{sub}.npz")
                compression.append(base / "jpeg" / f"q{quality}-{sub}.json")
            for model in entry["schemes"].get(scheme, []):
                t0 = time.perf_counter()
                recipe = recipe_for(config["train"], model, scheme)
                options = cfg.model_entry(config, model)
                pretrained = config["pretrained"].get(model, False)
                if pretrained is True:  # offline: timm's tensor names and shapes for the tag, random values
                    arch = options["arch"]
                    if arch not in standins:
                        standins[arch] = stand_in_checkpoint(arch, workdir / "standins" / f"{arch}.safetensors")
                    pretrained = str(standins[arch])
                out = base / model
                _run(["train", "--data", str(data), "--key", str(base / "own.key.npz"),
                      "--test", str(base / "test-own.npz"), "--model", model, "--model-options", json.dumps(options),
                      "--recipe", json.dumps(rehearsal_recipe(recipe, steps, 1 if model == "vit" else 2).to_dict()),
                      "--pretrained", str(pretrained).lower() if isinstance(pretrained, bool) else pretrained,
                      "--seed", str(config["seeds"][0]), "--image-size", size, "--interpolation", interp,
                      "--device", device, "--no-progress", "--state-dir", str(out / "state"),
                      "--out-model", str(out / "model.pt"), "--out-metrics", str(out / "metrics.json")])
                other = ["--other-test", str(base / "test-other.npz")] if scheme != "plain" else []
                _run(["evaluate", "--model-file", str(out / "model.pt"), "--test", str(base / "test-own.npz"),
                      "--jpeg", *map(str, jpeg), *other, "--plain-test", str(workdir / sid / "plain" / "test-own.npz"),
                      "--batch-size", "8", "--device", device, "--out", str(out / "eval.json")])
                accuracy.append(out / "eval.json")
                metrics = read_json(out / "metrics.json")
                cells.append({"setting": sid, "scheme": scheme, "model": model, "seconds": time.perf_counter() - t0,
                              "model_card": metrics["train"]["model_card"], "recipe": recipe.to_dict(),
                              "recipe_name": recipe_name_for(config["train"], model, scheme)})
                log.info("rehearsed %s %s %s in %.1f s", sid, scheme, model, cells[-1]["seconds"])
    main = next(iter(settings))
    main_schemes = list(settings[main]["schemes"])
    _run(["report", "--accuracy", *map(str, accuracy), "--compression", *map(str, compression),
          "--plain", str(workdir / main / "plain" / "test-own.npz"),
          "--examples", *[f"{s}={workdir / main / s / 'test-own.npz'}={workdir / main / s / 'own.key.npz'}"
                          for s in main_schemes],
          "--num-examples", "2", "--config", json.dumps({k: v for k, v in config.items() if k != "key_seed"}),
          "--out-dir", str(workdir / "report")])
    result = {"configfiles": [str(p) for p in configfiles], "cells": cells, "steps": steps, "images": images,
              "stand_ins": sorted(standins), "seconds": time.perf_counter() - started}
    write_json(workdir / "rehearsal.json", result)
    return result
