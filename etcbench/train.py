"""Training on images encrypted batch by batch with a fixed key, with resumable state.

Pipeline per micro-batch (as the paper's official code): plain uint8 images -> the recipe's augmentation ->
resize to the model input -> encrypt on the training device (with the fixed key; with a fresh key per image for
per-image-key schemes such as PE) -> normalise -> model. So no encrypted training set is stored. Validation uses
the plain validation split resized and encrypted the same way (no augmentation); the final test encrypts the stored
plain test set (the setting's size) with the key, in-process: no encrypted test set is stored either.

The recipe (:class:`etcbench.recipes.Recipe`) sets the optimiser (timm's ``create_optimizer_v2``: no weight decay
on biases, norms, position embeddings and class tokens), the schedule, the duration in epochs or steps, and
gradient accumulation. Pretrained weights load strictly (:mod:`etcbench.models.pretrained`), and ``metrics.json``
records the model card of what was trained (:mod:`etcbench.models.card`).

Resumable state (model, optimiser, scheduler, data-order and augmentation RNGs, history) is written atomically to
``state_dir`` after every epoch; a restarted run with the same settings continues from the last finished epoch.
A finished training removes its state (``last.pt`` and the per-epoch ``summary.csv``) once model and metrics are
written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import ciphers
from . import jpeg as jpeg_files
from .data import ciphertext_augment
from .data.transforms import augment_batch, normalize, resize, to_nchw
from .encryption import encrypted_test_set
from .errors import EtcbenchError
from .evaluate import evaluate_arrays, save_trained_model
from .io import atomic_write, load_npz, require_images, write_json
from .labels import jpeg_label
from .manifest import manifest
from .models import build_model, load_pretrained, model_card
from .models.factory import DEFAULT_ARCH
from .recipes import JpegArm, Recipe
from .seeding import seed_everything, select_device, set_deterministic
from .upload import client_upload

__all__ = ["Recipe", "build_optimizer", "LrSchedule", "train_model", "use_channels_last"]

log = logging.getLogger(__name__)


def build_optimizer(model: torch.nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimiser; weight decay skips biases, norms and ``model.no_weight_decay()`` (timm)."""
    from timm.optim import create_optimizer_v2

    if recipe.optimizer == "adamw":
        return create_optimizer_v2(model, "adamw", lr=recipe.lr, weight_decay=recipe.weight_decay)
    # timm's "sgd" is SGD with Nesterov momentum, "momentum" the plain heavy-ball form
    return create_optimizer_v2(model, "sgd" if recipe.nesterov else "momentum", lr=recipe.lr,
                               weight_decay=recipe.weight_decay, momentum=recipe.momentum)


class LrSchedule:
    """The recipe's learning-rate schedule; :meth:`before_step` sets the rate of optimiser step ``s`` (0-based)."""

    def __init__(self, optimizer: torch.optim.Optimizer, recipe: Recipe, total: int, warmup: int,
                 milestones: list[int]) -> None:
        from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler

        self.kind = recipe.schedule
        self.done = 0  # steps the torch scheduler has taken (one-cycle only)
        if self.kind == "cosine":
            self.sched: Any = CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=recipe.min_lr,
                                                warmup_t=warmup, warmup_lr_init=0.0, warmup_prefix=True,
                                                t_in_epochs=False)
        elif self.kind == "multistep":
            # timm decays at update t once t + 1 reaches a decay_t: shifted by one, step s has the rate lr_decay to
            # the number of milestones <= s, as torch's MultiStepLR stepped after every epoch
            self.sched = MultiStepLRScheduler(optimizer, decay_t=[m + 1 for m in milestones],
                                              decay_rate=recipe.lr_decay, warmup_t=warmup, warmup_lr_init=0.0,
                                              warmup_prefix=False, t_in_epochs=False)
        else:
            self.sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr, total_steps=max(2, total),
                                                             pct_start=recipe.onecycle_pct)

    def before_step(self, step: int) -> None:
        if self.kind == "cosine":  # the rate of step + 1, as the ViT code base's LambdaLR (no step at rate 0)
            self.sched.step_update(num_updates=step + 1)
        elif self.kind == "multistep":
            self.sched.step_update(num_updates=step)
        else:
            while self.done < step:
                self.sched.step()
                self.done += 1

    def state_dict(self) -> dict[str, Any]:
        return {"sched": self.sched.state_dict(), "done": self.done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sched.load_state_dict(state["sched"])
        self.done = state["done"]


def use_channels_last(setting: str, model: torch.nn.Module, device: torch.device) -> bool:
    """Whether to train ``model`` in the channels-last memory format: ``on``, ``off``, or ``auto``: on CUDA, for a
    model with more than one 2-D convolution (a ViT's only one is its patch embedding), whatever its name.

    >>> from torch import nn
    >>> cnn, vit_like = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3)), nn.Sequential(nn.Conv2d(3, 4, 4))
    >>> cuda, cpu = torch.device("cuda"), torch.device("cpu")
    >>> use_channels_last("auto", cnn, cuda), use_channels_last("auto", vit_like, cuda)
    (True, False)
    >>> use_channels_last("auto", cnn, cpu), use_channels_last("on", vit_like, cpu)
    (False, True)
    """
    if setting not in ("auto", "on", "off"):
        raise EtcbenchError(f"channels_last must be auto, on or off, got {setting!r}")
    if setting == "auto":
        return device.type == "cuda" and sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) > 1
    return setting == "on"


def _signature(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    with atomic_write(path, output=False) as fh:  # resumable state: kept when the job fails
        fh.write(buf.getvalue())


def train_model(
        *,
        data_path: Path,
        key_path: Path,
        plain_test: Path,
        model_name: str,
        model_options: dict[str, Any],
        recipe: Recipe,
        seed: int,
        interpolation: str,
        out_model: Path,
        out_metrics: Path,
        state_dir: Path,
        pretrained: bool | str = False,
        device: str = "auto",
        progress: bool = True,
        dataset: str = "cifar10",
        channels_last: str = "auto",
        compile_model: bool = False,
        jpeg_arm: JpegArm | None = None,
) -> dict[str, Any]:
    """Train one model on one scheme with one seed; write ``out_model`` and ``out_metrics``. Returns the result.

    The final test is on ``plain_test`` (the plain scheme's test set at the key's image size) encrypted with the key
    (:func:`etcbench.encryption.encrypted_test_set`), made and checked before the training starts.

    ``channels_last`` (``auto``, ``on``, ``off``): train in the channels-last memory format; ``auto`` uses it for
    the convolutional models on CUDA, where cuDNN's kernels for it are faster (:func:`use_channels_last`).
    ``compile_model``: the training forward and backward passes run through ``torch.compile`` (off by default:
    on a CPU, and for short runs, compiling costs more than it saves). Neither changes what is computed beyond
    float rounding; both are recorded in the metrics.

    ``jpeg_arm`` (the JPEG-trained arm, :class:`etcbench.recipes.JpegArm`): the training and validation images are
    what the client uploads (:func:`etcbench.upload.client_upload`: encrypted once, JPEG-coded, decoded), and the
    final test is on the test set JPEG-coded the same way; the recipe's plain-image augmentation gives way to the
    arm's ciphertext augmentation (:mod:`etcbench.data.ciphertext_augment`). The model goes by its label
    (``vit@q50-420``) in the records.
    """
    started = time.time()
    key, scheme = ciphers.load_scheme(key_path)
    image_size, width = key.image_size  # the setting's size travels with the key
    if image_size != width:
        raise EtcbenchError(f"key {key_path} is for {image_size}x{width} images; training takes square images")
    data = load_npz(data_path)
    for split in ("train", "val"):
        require_images(data[f"{split}_x"], f"{data_path} ({split}_x)")
    test = encrypted_test_set(plain_test, key_path)
    label = model_name if jpeg_arm is None else jpeg_label(model_name, jpeg_arm.variant(scheme.plane_subsampling))
    if jpeg_arm is not None and (reason := ciphertext_augment.block_safe_reason(jpeg_arm.augment, scheme,
                                                                                 key.block_size)):
        raise EtcbenchError(reason)
    num_classes = int(data["train_y"].max()) + 1
    n_train = len(data["train_y"])
    total_steps, steps_per_epoch = recipe.total_steps(n_train), recipe.steps_per_epoch(n_train)
    epochs, warmup = recipe.epochs_run(n_train), recipe.warmup(n_train)
    dev = select_device(device)
    seed_everything(seed)
    set_deterministic(recipe.deterministic)

    in_chans, rows, cols = scheme.encrypted_shape(image_size, image_size)
    input_size = image_size if (rows, cols) == (image_size, image_size) else [rows, cols]
    spec = {"model": model_name, "options": model_options, "num_classes": num_classes, "image_size": input_size,
            "patch_size": key.block_size, "in_chans": in_chans}
    model = build_model(model_name, num_classes, input_size, key.block_size, model_options, in_chans)
    arch = model_options.get("arch", DEFAULT_ARCH.get(model_name, model_name))
    loaded = load_pretrained(model, model_name, arch, pretrained)
    card = model_card(model, model_name, arch, (in_chans, rows, cols), loaded)
    log.info("model card: %s", json.dumps(card))
    memory_format = torch.channels_last if use_channels_last(channels_last, model, dev) else None
    model = model.to(dev) if memory_format is None else model.to(dev, memory_format=memory_format)
    forward = torch.compile(model) if compile_model else model  # the same parameters: state_dict of ``model``
    optimizer = build_optimizer(model, recipe)
    schedule = LrSchedule(optimizer, recipe, total_steps, warmup, recipe.milestone_steps(n_train))
    order = torch.Generator().manual_seed(seed)
    augment_rng = torch.Generator().manual_seed(seed + 1)
    key_rng = torch.Generator(device=dev).manual_seed(seed + 2)  # per-image-key schemes: throw-away training keys

    signature = _signature({"spec": spec, "recipe": recipe.to_dict(), "seed": seed, "key": key.fingerprint,
                            "data": str(Path(data_path).resolve()), "interpolation": interpolation,
                            "pretrained": str(pretrained),
                            **({"jpeg_arm": jpeg_arm.to_dict()} if jpeg_arm is not None else {})})
    state_path = Path(state_dir) / "last.pt"
    history: list[dict[str, Any]] = []
    first_epoch, train_images, train_seconds = 0, 0, 0.0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("signature") == signature:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["scheduler"])
            order.set_state(state["order_rng"])
            augment_rng.set_state(state["augment_rng"])
            key_rng.set_state(state["key_rng"])
            torch.set_rng_state(state["torch_rng"])
            history, first_epoch = state["history"], state["epoch"] + 1
            train_images, train_seconds = state["train_images"], state["train_seconds"]
            log.info("resuming from %s after epoch %d", state_path, state["epoch"] + 1)
        else:
            log.warning("ignoring %s: it belongs to a run with other settings", state_path)

    def encrypt(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        x = resize(x, image_size, interpolation)
        return scheme.encrypt_fresh(x, rng) if scheme.per_image_keys else scheme.encrypt(x, key)

    def validation_prepare() -> Any:  # the same fresh keys at every validation (per-image-key schemes)
        rng = torch.Generator(device=dev).manual_seed(seed + 3)
        return lambda x: encrypt(x, rng)

    train_x, train_y = data["train_x"], torch.from_numpy(data["train_y"].astype(np.int64))
    val_x, val_prepare = data["val_x"], validation_prepare
    if jpeg_arm is not None:  # what the cloud receives: encrypted once (a throw-away key per image where per-image)
        t0 = time.perf_counter()
        upload_rng = torch.Generator().manual_seed(seed + 2)
        train_x, val_x = (client_upload(x, scheme, key, jpeg_arm, image_size=image_size, interpolation=interpolation,
                                        generator=upload_rng) for x in (data["train_x"], data["val_x"]))
        test_x = jpeg_files.roundtrip(test.x, jpeg_arm.quality, jpeg_arm.subsampling_for(scheme.plane_subsampling))[0]
        val_prepare = None
        log.info("JPEG-trained arm %s: %d training, %d validation and %d test images encrypted, JPEG-coded and "
                 "decoded in %.1f s", label, len(train_x), len(val_x), len(test_x), time.perf_counter() - t0)
    else:
        test_x = test.x
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")
    step = first_epoch * steps_per_epoch
    for epoch in range(first_epoch, epochs):
        model.train()
        steps_now = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        perm = torch.randperm(n_train, generator=order)[: steps_now * recipe.batch_size]
        # summed on the device: reading them on the host every step would wait for each step to finish
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen, t0 = 0, time.perf_counter()
        bar = tqdm(perm.split(recipe.batch_size), desc=f"{model_name}/{key.scheme} epoch {epoch + 1}/{epochs}",
                   disable=not progress, mininterval=10, unit="step")
        for idx in bar:
            schedule.before_step(step)
            optimizer.zero_grad(set_to_none=True)
            for micro in idx.split(recipe.micro_batch):  # gradient accumulation: micro-batches of one step
                x = to_nchw(train_x[micro.numpy()]).to(dev, non_blocking=True)
                y = train_y[micro].to(dev, non_blocking=True)
                target: torch.Tensor = y
                if jpeg_arm is None:
                    x = augment_batch(x, recipe.augment, image_size, padding=recipe.crop_padding,
                                      scale=recipe.crop_scale, interpolation=interpolation, generator=augment_rng)
                    x = normalize(encrypt(x, key_rng))
                else:  # decoded ciphertexts: augmented only where the cipher commutes (soft targets when mixed)
                    x, target = ciphertext_augment.apply(jpeg_arm.augment, x, y, key.block_size, augment_rng,
                                                         alpha=jpeg_arm.alpha, num_classes=num_classes)
                    x = normalize(x)
                if memory_format is not None:
                    x = x.contiguous(memory_format=memory_format)
                with autocast:
                    logits = forward(x)
                    loss = F.cross_entropy(logits.float(), target, label_smoothing=recipe.label_smoothing)
                    if hasattr(model, "regularization_loss"):  # adaptation networks: L_U and smoothness terms
                        loss = loss + model.regularization_loss().float()
                (loss / recipe.accumulation).backward()
                loss_sum += loss.detach().double() * len(y)
                correct += (logits.detach().argmax(1) == y).sum()
                seen += len(y)
            if recipe.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            step += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
        epoch_seconds = time.perf_counter() - t0
        train_images += seen
        train_seconds += epoch_seconds
        val_top1, val_loss = evaluate_arrays(model, val_x, data["val_y"], dev, recipe.eval_batch_size,
                                             val_prepare() if val_prepare is not None else None)
        history.append({"epoch": epoch + 1, "steps": step, "train_loss": loss_sum.item() / max(seen, 1),
                        "train_top1": correct.item() / max(seen, 1), "val_top1": val_top1, "val_loss": val_loss,
                        "lr": optimizer.param_groups[0]["lr"], "samples_per_s": seen / max(epoch_seconds, 1e-9)})
        log.info("epoch %d: %s", epoch + 1, json.dumps(history[-1]))
        _save_state(state_path, {"signature": signature, "epoch": epoch, "model": model.state_dict(),
                                 "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                                 "order_rng": order.get_state(), "augment_rng": augment_rng.get_state(),
                                 "key_rng": key_rng.get_state(), "torch_rng": torch.get_rng_state(),
                                 "history": history, "train_images": train_images, "train_seconds": train_seconds})
        _write_summary(Path(state_dir) / "summary.csv", history)

    top1, loss = evaluate_arrays(model, test_x, test.y, dev, recipe.eval_batch_size)
    record = {
        "dataset": dataset, "image_size": image_size, "block_size": key.block_size, "model": label,
        "scheme": key.scheme, "jpeg_quality": None, "subsampling": "none", "seed": seed, "top1": top1, "loss": loss,
        "n_test": int(len(test.y)), "key_fingerprint": key.fingerprint,
    }
    if jpeg_arm is not None:
        record.update(jpeg_quality=jpeg_arm.quality, subsampling=jpeg_arm.subsampling_for(scheme.plane_subsampling))
    samples_per_s = train_images / max(train_seconds, 1e-9)
    save_trained_model(out_model, model, spec, {"key_fingerprint": key.fingerprint, "record": record})
    result = {
        "record": record,
        "history": history,
        "train": {"samples_per_s": samples_per_s, "train_seconds": train_seconds, "train_images": train_images,
                  "parameters": card["parameters"], "recipe": recipe.to_dict(), "steps": total_steps,
                  "steps_per_epoch": steps_per_epoch, "epochs": epochs, "warmup_steps": warmup,
                  "batch_size": recipe.batch_size, "accumulation": recipe.accumulation,
                  "micro_batch": recipe.micro_batch, "model_options": model_options, "pretrained": str(pretrained),
                  "interpolation": interpolation, "model_card": card,
                  "channels_last": memory_format is not None, "compiled": compile_model,
                  "jpeg_arm": jpeg_arm.to_dict() if jpeg_arm is not None else None},
        "manifest": manifest("train", started, time.time(), dev, seed=seed, key_fingerprint=key.fingerprint,
                             deterministic=recipe.deterministic),
    }
    write_json(out_metrics, result)
    _drop_state(Path(state_dir))
    return result


def _drop_state(state_dir: Path) -> None:
    """Remove the resumable state of a finished training (its history is in the metrics file); a failed run never
    gets here, so it keeps its state for the restart."""
    for name in ("last.pt", "summary.csv"):
        (state_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something else lives there, leave it
        state_dir.rmdir()


def _write_summary(path: Path, history: list[dict[str, Any]]) -> None:
    cols = list(history[0])
    with atomic_write(path, binary=False) as fh:
        fh.write(",".join(cols) + "\n")
        for row in history:
            fh.write(",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in cols) + "\n")
