"""A CPU rehearsal of a config's grid: every model it trains, built at its real size, through the real stages.

Before a GPU-day is spent on ``config/paper.yaml``, ``etcbench rehearse --configfile config/paper.yaml`` resolves the
config exactly as the workflow does (:mod:`etcbench.config`) and, on a few CIFAR-10 images, runs the stage functions
the workflow's commands call, in one process:

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
Each cell's weights (340 MB for ViT-B/16) are deleted once it is evaluated, unless ``keep_weights``; their size is
recorded. Training removes its resumable state when it finishes, so a rehearsal of the paper's grid needs a few
hundred MB of disk.

Returns (and writes to ``<workdir>/rehearsal.json``) every trained cell's model card, resolved recipe and time.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from . import config as cfg
from .errors import EtcbenchError
from .grid import check_grid, jpeg_subsamplings
from .io import write_json
from .recipes import Recipe, recipe_for, recipe_name_for

__all__ = ["card_table", "rehearsal_recipe", "rehearse", "stand_in_checkpoint"]

log = logging.getLogger(__name__)


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


def _drop_weights(cell_dir: Path, keep: bool) -> int:
    """Bytes of the cell's model file, deleted unless ``keep`` (training already removed its resumable state)."""
    model = cell_dir / "model.pt"
    size = model.stat().st_size
    if not keep:
        model.unlink()
    return size


def rehearse(configfiles: list[str], workdir: Path, *, archive: str | None = None,
             overrides: dict[str, Any] | None = None, images: int = 8, steps: int = 2,
             device: str = "cpu", keep_weights: bool = False) -> dict[str, Any]:
    """Rehearse the grid of ``config/config.yaml`` + ``configfiles`` + ``overrides`` in ``workdir``."""
    from .compression import compress_set
    from .data import cifar
    from .encryption import encrypt_split, make_key
    from .evaluate import evaluate_models
    from .report.build import build_report
    from .train import train_model

    started = time.perf_counter()
    config = cfg.resolve(configfiles, overrides)
    workdir = Path(workdir)
    data, info = workdir / "data.npz", workdir / "data.json"
    interp = config["dataset"]["interpolation"]
    small = max(2, images // 4)
    cifar.prepare(cifar.resolve_archive(archive, workdir / "download"), data, info, images, small, small, 0)
    quality = config["jpeg"]["qualities"][0]
    settings = check_grid(config)
    main = next(iter(settings))
    accuracy, compression, examples, cells, metrics = [], [], [], [], []
    standins: dict[str, Path] = {}
    for sid, entry in settings.items():
        size, block = entry["image_size"], entry["block_size"]
        plain_test = workdir / sid / "plain" / "test.npz"  # the one stored test set of the setting
        for scheme in ["plain", *[s for s in entry["schemes"] if s != "plain"]]:
            options = config["scheme_options"].get(scheme, {})
            base = workdir / sid / scheme
            # throwaway keys from key_seed, whatever master the config names (a rehearsal makes no master file)
            for role, key_role in (("own", "defender"), ("other", "other")):
                if role == "other" and (scheme == "plain" or not entry["schemes"].get(scheme)):
                    continue
                make_key(scheme, block, size, config["key_seed"], options, base / f"{role}.key.npz",
                         base / f"{role}.key.json", key_role)
                if role == "own":  # only the plain test set is stored; the stages encrypt it with their key
                    encrypt_split(data, base / "own.key.npz", plain_test if scheme == "plain" else None, "test",
                                  interp, base / "examples.npz", 2)
            if sid == main and scheme in entry["schemes"]:
                examples.append(base / "examples.npz")
            jpeg = []
            for sub in jpeg_subsamplings(config, scheme):
                compress_set(plain_test, base / "own.key.npz", [quality], sub, base / "jpeg")
                jpeg.append(base / "jpeg" / f"q{quality}-{sub}.npz")
                compression.append(base / "jpeg" / f"q{quality}-{sub}.json")
            for model in entry["schemes"].get(scheme, []):
                t0 = time.perf_counter()
                recipe = recipe_for(config["train"], model, scheme)
                model_options = cfg.model_entry(config, model)
                pretrained = config["pretrained"].get(model, False)
                if pretrained is True:  # offline: timm's tensor names and shapes for the tag, random values
                    arch = model_options["arch"]
                    if arch not in standins:
                        standins[arch] = stand_in_checkpoint(arch, workdir / "standins" / f"{arch}.safetensors")
                    pretrained = str(standins[arch])
                out = base / model
                result = train_model(
                    data_path=data, key_path=base / "own.key.npz", plain_test=plain_test, model_name=model,
                    model_options=model_options, recipe=rehearsal_recipe(recipe, steps, 1 if model == "vit" else 2),
                    seed=config["seeds"][0], interpolation=interp, out_model=out / "model.pt",
                    out_metrics=out / "metrics.json", state_dir=out / "state", pretrained=pretrained, device=device,
                    progress=False)
                evaluate_models([out / "model.pt"], base / "own.key.npz", plain_test, out / "eval.json", jpeg,
                                base / "other.key.npz" if scheme != "plain" else None, 8, device)
                accuracy.append(out / "eval.json")
                metrics.append(out / "metrics.json")
                weight_bytes = _drop_weights(out, keep_weights)
                cells.append({"setting": sid, "scheme": scheme, "model": model, "seconds": time.perf_counter() - t0,
                              "model_card": result["train"]["model_card"], "recipe": recipe.to_dict(),
                              "recipe_name": recipe_name_for(config["train"], model, scheme),
                              "weight_bytes": weight_bytes})
                log.info("rehearsed %s %s %s in %.1f s", sid, scheme, model, cells[-1]["seconds"])
    build_report(accuracy=accuracy, compression=compression, examples=examples, num_examples=2,
                 out_dir=workdir / "report", config={k: v for k, v in config.items() if k != "key_seed"},
                 metrics=metrics)
    result = {"configfiles": [str(p) for p in configfiles], "cells": cells, "steps": steps, "images": images,
              "stand_ins": sorted(standins), "seconds": time.perf_counter() - started}
    write_json(workdir / "rehearsal.json", result)
    return result


def card_table(result: dict[str, Any]) -> str:
    """The rehearsed cells as a text table: setting, scheme, model, its card, recipe and seconds."""
    lines = [f"{'setting':<9} {'scheme':<13} {'model':<16} {'arch':<34} {'depth':>5} {'width':>5} {'patch':>5} "
             f"{'grid':>7} {'params':>8}  {'pretrained':<11} {'recipe':<12} {'s':>5}"]
    for c in result["cells"]:
        card = c["model_card"]
        patch = card["patch"][0] if card.get("patch") else "-"
        grid = "x".join(map(str, card["token_grid"]))
        source = card["pretrained"]["source"].split(":")[0]
        lines.append(f"{c['setting']:<9} {c['scheme']:<13} {c['model']:<16} {card['arch']:<34} {card['depth']:>5} "
                     f"{card['width']:>5} {patch:>5} {grid:>7} {card['parameters'] / 1e6:>7.2f}M  {source:<11} "
                     f"{c['recipe_name']:<12} {c['seconds']:>5.1f}")
    return "\n".join(lines)
