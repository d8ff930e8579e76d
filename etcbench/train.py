"""Training on images encrypted batch by batch with a fixed key, with resumable state.

Pipeline per batch (as the paper's official code): plain uint8 images -> random crop and flip -> resize to the
model input -> encrypt with the fixed key on the training device -> normalise -> model. So no encrypted training
set is stored. Validation uses the plain validation split resized and encrypted the same way (no
augmentation); the final test uses the stored encrypted test set.

Resumable state (model, optimiser, scheduler, data-order RNG, history) is written atomically to ``state_dir``
after every epoch; a restarted run with the same settings continues from the last finished epoch.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from timm.scheduler import CosineLRScheduler
from tqdm import tqdm

from . import ciphers
from .data.transforms import normalize, random_crop_flip, resize, to_nchw
from .errors import EtcbenchError
from .evaluate import evaluate_arrays, save_trained_model
from .io import atomic_write, load_npz, write_json
from .manifest import manifest
from .models import build_model
from .seeding import seed_everything, select_device, set_deterministic

__all__ = ["Recipe", "train_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters (config ``train:``)."""

    epochs: int = 4
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 0.5
    min_lr: float = 1e-5
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    augment: bool = True
    crop_padding: int = 4
    eval_batch_size: int = 256
    deterministic: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise EtcbenchError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def _optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)
    raise EtcbenchError(f"unknown optimizer {recipe.optimizer!r}; use adamw or sgd")


def _signature(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def train_model(
        *,
        data_path: Path,
        key_path: Path,
        test_path: Path,
        model_name: str,
        model_options: dict[str, Any],
        recipe: Recipe,
        seed: int,
        image_size: int,
        interpolation: str,
        out_model: Path,
        out_metrics: Path,
        state_dir: Path,
        pretrained: bool | str = False,
        device: str = "auto",
        progress: bool = True,
        dataset: str = "cifar10",
) -> dict[str, Any]:
    """Train one model on one scheme with one seed; write ``out_model`` and ``out_metrics``. Returns the record."""
    started = time.time()
    key = ciphers.load_key(key_path)
    scheme = ciphers.create(key.scheme, key.block_size, **key.options)
    if tuple(key.image_size) != (image_size, image_size):
        raise EtcbenchError(f"key {key_path} is for {key.image_size} images, but image_size is {image_size}")
    data = load_npz(data_path)
    test = load_npz(test_path)
    if str(test["key_fingerprint"]) != key.fingerprint:
        raise EtcbenchError(f"test set {test_path} was not encrypted with key {key_path}")
    num_classes = int(data["train_y"].max()) + 1
    dev = select_device(device)
    seed_everything(seed)
    set_deterministic(recipe.deterministic)

    in_chans, rows, cols = scheme.encrypted_shape(image_size, image_size)
    input_size = image_size if (rows, cols) == (image_size, image_size) else [rows, cols]
    spec = {"model": model_name, "options": model_options, "num_classes": num_classes, "image_size": input_size,
            "patch_size": key.block_size, "in_chans": in_chans}
    model = build_model(model_name, num_classes, input_size, key.block_size, model_options, pretrained,
                        in_chans).to(dev)
    optimizer = _optimizer(model, recipe)
    n_train = len(data["train_y"])
    steps_per_epoch = max(1, n_train // recipe.batch_size)
    total_steps = steps_per_epoch * recipe.epochs
    scheduler = CosineLRScheduler(optimizer, t_initial=total_steps, lr_min=recipe.min_lr,
                                  warmup_t=int(recipe.warmup_epochs * steps_per_epoch), warmup_lr_init=recipe.lr * 0.01,
                                  warmup_prefix=True, t_in_epochs=False)
    order = torch.Generator().manual_seed(seed)
    augment_rng = torch.Generator().manual_seed(seed + 1)

    signature = _signature({"spec": spec, "recipe": asdict(recipe), "seed": seed, "key": key.fingerprint,
                            "data": str(Path(data_path).resolve()), "interpolation": interpolation,
                            "pretrained": str(pretrained)})
    state_path = Path(state_dir) / "last.pt"
    history: list[dict[str, Any]] = []
    first_epoch, train_images, train_seconds = 0, 0, 0.0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("signature") == signature:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            order.set_state(state["order_rng"])
            augment_rng.set_state(state["augment_rng"])
            torch.set_rng_state(state["torch_rng"])
            history, first_epoch = state["history"], state["epoch"] + 1
            train_images, train_seconds = state["train_images"], state["train_seconds"]
            log.info("resuming from %s after epoch %d", state_path, state["epoch"] + 1)
        else:
            log.warning("ignoring %s: it belongs to a run with other settings", state_path)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return scheme.encrypt(resize(x, image_size, interpolation), key)

    train_x, train_y = data["train_x"], torch.from_numpy(data["train_y"].astype(np.int64))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    step = first_epoch * steps_per_epoch
    for epoch in range(first_epoch, recipe.epochs):
        model.train()
        perm = torch.randperm(n_train, generator=order)[: steps_per_epoch * recipe.batch_size]
        loss_sum, correct, seen, t0 = 0.0, 0, 0, time.perf_counter()
        bar = tqdm(perm.split(recipe.batch_size), desc=f"{model_name}/{key.scheme} epoch {epoch + 1}/{recipe.epochs}",
                   disable=not progress, mininterval=10, unit="batch")
        for idx in bar:
            x = to_nchw(train_x[idx.numpy()]).to(dev, non_blocking=True)
            y = train_y[idx].to(dev, non_blocking=True)
            if recipe.augment:
                x = random_crop_flip(x, recipe.crop_padding, augment_rng)
            x = normalize(prepare(x))
            with autocast:
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
                if hasattr(model, "regularization_loss"):  # adaptation networks: L_U and smoothness terms
                    loss = loss + model.regularization_loss().float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            step += 1
            scheduler.step_update(num_updates=step)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds = time.perf_counter() - t0
        train_images += seen
        train_seconds += epoch_seconds
        val_top1, val_loss = evaluate_arrays(model, data["val_x"], data["val_y"], dev, recipe.eval_batch_size, prepare)
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1),
                        "val_top1": val_top1, "val_loss": val_loss, "lr": optimizer.param_groups[0]["lr"],
                        "samples_per_s": seen / max(epoch_seconds, 1e-9)})
        log.info("epoch %d: %s", epoch + 1, json.dumps(history[-1]))
        _save_state(state_path, {"signature": signature, "epoch": epoch, "model": model.state_dict(),
                                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                 "order_rng": order.get_state(), "augment_rng": augment_rng.get_state(),
                                 "torch_rng": torch.get_rng_state(), "history": history,
                                 "train_images": train_images, "train_seconds": train_seconds})
        _write_summary(Path(state_dir) / "summary.csv", history)

    top1, loss = evaluate_arrays(model, test["x"], test["y"], dev, recipe.eval_batch_size)
    record = {
        "dataset": dataset, "image_size": image_size, "block_size": key.block_size, "model": model_name,
        "scheme": key.scheme, "jpeg_quality": None, "subsampling": "none", "seed": seed, "top1": top1, "loss": loss,
        "n_test": int(len(test["y"])), "key_fingerprint": key.fingerprint,
    }
    samples_per_s = train_images / max(train_seconds, 1e-9)
    save_trained_model(out_model, model, spec, {"key_fingerprint": key.fingerprint, "record": record})
    result = {
        "record": record,
        "history": history,
        "train": {"samples_per_s": samples_per_s, "train_seconds": train_seconds, "train_images": train_images,
                  "parameters": sum(p.numel() for p in model.parameters()), "recipe": asdict(recipe),
                  "model_options": model_options, "pretrained": str(pretrained), "interpolation": interpolation},
        "manifest": manifest("train", started, time.time(), dev, seed=seed, key_fingerprint=key.fingerprint,
                             deterministic=recipe.deterministic),
    }
    write_json(out_metrics, result)
    return result


def _write_summary(path: Path, history: list[dict[str, Any]]) -> None:
    cols = list(history[0])
    with atomic_write(path, binary=False) as fh:
        fh.write(",".join(cols) + "\n")
        for row in history:
            fh.write(",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in cols) + "\n")
