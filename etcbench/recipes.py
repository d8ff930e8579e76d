"""Training recipes: one frozen record of every training hyper-parameter, and which recipe a model gets.

A config's ``train:`` section maps recipe names to recipes::

    train:
      default: {...}        # every model without a recipe of its own
      vit: {...}            # ViT, on every scheme
      resnet18/pe: {...}    # ResNet-18 on PE only (a baseline that needs its own)

:func:`recipe_for` looks a (model, scheme) pair up in that order: ``model/scheme``, ``model``, ``default``. Each
entry is a whole recipe: keys it leaves out take the defaults of :class:`Recipe`, never another entry's values
(nor an earlier config layer's, see :mod:`etcbench.config`).

This module imports no torch, so the workflow can resolve recipes when it builds the DAG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .data import block_safety
from .errors import EtcbenchError

__all__ = ["AUGMENTS", "JPEG_ARM", "JpegArm", "OPTIMIZERS", "Recipe", "SCHEDULES",
           "recipe_for", "recipe_name_for"]

JPEG_ARM = "jpeg"  # the train: entry of the JPEG-trained arms (not a recipe)
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "multistep", "onecycle")
AUGMENTS = ("none", "flip", "crop_flip", "random_resized_crop")


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters (one entry of the config's ``train:``).

    Duration: ``steps`` optimiser steps when set, else ``epochs`` passes over the training subset (4 when neither
    is set). Each step sees ``batch_size`` images, in ``accumulation`` micro-batches of
    ``batch_size / accumulation`` images whose gradients are summed (for memory; the result is one step).

    Schedules (learning rate of optimiser step ``s``):
        * ``cosine``: linear warm-up from 0 over the warm-up steps, then a half cosine from ``lr`` to ``min_lr``
          at the last step (timm's ``CosineLRScheduler``; step ``s`` takes the rate of ``s + 1`` as the ViT code
          base's ``LambdaLR`` does, so the first step is not wasted at rate 0);
        * ``multistep``: ``lr``, multiplied by ``lr_decay`` at each of ``milestones`` (epochs, or steps for a
          step-counted recipe), as ``torch.optim.lr_scheduler.MultiStepLR`` stepped after every epoch (timm's
          ``MultiStepLRScheduler``), after the warm-up if any;
        * ``onecycle``: ``torch.optim.lr_scheduler.OneCycleLR`` with peak ``lr``, ``onecycle_pct`` of the steps
          rising from ``lr / 25``, cosine annealing, momentum (SGD) or beta1 (AdamW) cycled between 0.85 and 0.95.

    Weight decay skips biases, normalisation weights, position embeddings and class tokens (timm's
    ``create_optimizer_v2`` with ``filter_bias_and_bn``).

    Augmentation of the *plain* 32-px image, before resizing and encryption (``augment``):
        * ``none``;
        * ``flip``: random horizontal flip;
        * ``crop_flip``: random crop with ``crop_padding`` zero padding, then flip (the CIFAR standard of the
          baselines' code);
        * ``random_resized_crop``: torchvision's ``RandomResizedCrop`` (area ``crop_scale``, aspect 3/4..4/3) to the
          model's input size, no flip (the ViT code base).
    """

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 64
    accumulation: int = 1
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    warmup_steps: int | None = None
    min_lr: float = 1e-5
    milestones: tuple[int, ...] = ()
    lr_decay: float = 0.1
    onecycle_pct: float = 0.3
    grad_clip: float = 1.0
    label_smoothing: float = 0.0
    augment: str = "crop_flip"
    crop_padding: int = 4
    crop_scale: tuple[float, float] = (0.08, 1.0)
    eval_batch_size: int = 256
    deterministic: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        if self.epochs is not None and self.steps is not None:
            raise EtcbenchError(f"a recipe counts epochs or steps, not both (epochs={self.epochs}, steps={self.steps})")
        for name in ("epochs", "steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise EtcbenchError(f"recipe {name} must be at least 1, got {value}")
        if self.batch_size < 1 or self.accumulation < 1 or self.batch_size % self.accumulation:
            raise EtcbenchError(f"recipe batch_size {self.batch_size} must be a positive multiple of accumulation "
                                f"{self.accumulation} (each step is accumulation micro-batches of equal size)")
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("augment", AUGMENTS)):
            if getattr(self, name) not in allowed:
                raise EtcbenchError(f"unknown recipe {name} {getattr(self, name)!r}; use one of {', '.join(allowed)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.min_lr < 0 or self.grad_clip < 0:
            raise EtcbenchError("recipe lr must be positive, and weight_decay, min_lr and grad_clip non-negative")
        if list(self.milestones) != sorted(set(self.milestones)) or any(m < 1 for m in self.milestones):
            raise EtcbenchError(f"recipe milestones must be increasing positive numbers, got {list(self.milestones)}")
        if self.milestones and self.schedule != "multistep":
            raise EtcbenchError(f"recipe milestones are used by the multistep schedule only, not by {self.schedule!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise EtcbenchError(f"recipe crop_scale must satisfy 0 < low <= high <= 1, got {list(self.crop_scale)}")
        if not 0 < self.onecycle_pct < 1:
            raise EtcbenchError(f"recipe onecycle_pct must lie strictly between 0 and 1, got {self.onecycle_pct}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Recipe:
        """Build a recipe from a config entry; unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise EtcbenchError(f"unknown training setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        values = dict(values)
        for name in ("milestones", "crop_scale"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Every setting (JSON-ready: tuples as lists); :meth:`from_dict` of it gives this recipe back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def micro_batch(self) -> int:
        """Images per forward/backward pass."""
        return self.batch_size // self.accumulation

    def steps_per_epoch(self, train_images: int) -> int:
        """Full steps in one pass over ``train_images`` images (the last incomplete batch is dropped)."""
        if train_images < self.batch_size:
            raise EtcbenchError(f"recipe batch_size {self.batch_size} exceeds the {train_images} training images")
        return train_images // self.batch_size

    def total_steps(self, train_images: int) -> int:
        """Optimiser steps of the whole run."""
        if self.steps is not None:
            return self.steps
        return (self.epochs if self.epochs is not None else 4) * self.steps_per_epoch(train_images)

    def epochs_run(self, train_images: int) -> int:
        """Passes over the data the run starts (the last one partial when ``steps`` is not a multiple of an epoch)."""
        return math.ceil(self.total_steps(train_images) / self.steps_per_epoch(train_images))

    def warmup(self, train_images: int) -> int:
        """Warm-up steps."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return int(self.warmup_epochs * self.steps_per_epoch(train_images))

    def milestone_steps(self, train_images: int) -> list[int]:
        """The multistep milestones as optimiser steps."""
        unit = 1 if self.steps is not None else self.steps_per_epoch(train_images)
        return [m * unit for m in self.milestones]


@dataclass(frozen=True)
class JpegArm:
    """How a JPEG-trained arm's images reach the cloud (``train.jpeg``): every image encrypted once with the key,
    JPEG-coded at ``quality`` and ``subsampling`` (a grayscale-plane scheme at its plane's own, see
    :meth:`variant`) and decoded; ``augment`` (of :data:`etcbench.data.block_safety.AUGMENTS`, with
    Beta(``alpha``, ``alpha``) mixing weights) is done on the decoded ciphertexts, in place of the recipe's
    plain-image augmentation.

    >>> JpegArm(quality=50).variant(None), JpegArm(quality=50, subsampling="444").variant("420")
    ('q50-420', 'q50-420')
    """

    quality: int
    subsampling: str = "420"
    augment: str = "none"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100 or self.subsampling not in ("444", "420"):
            raise EtcbenchError(f"train.jpeg: quality must be 1..100 and subsampling 444 or 420, got {self.quality} "
                                f"and {self.subsampling!r}")
        if self.augment not in block_safety.AUGMENTS or not self.alpha > 0:
            raise EtcbenchError(f"train.jpeg: augment must be one of {', '.join(block_safety.AUGMENTS)} and alpha "
                                f"positive, got {self.augment!r} and {self.alpha}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> JpegArm:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise EtcbenchError(f"unknown train.jpeg setting(s) {', '.join(unknown)}; valid: "
                                f"{', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def subsampling_for(self, plane_subsampling: str | None) -> str:
        """The chroma subsampling the arm codes a scheme's images at: a grayscale plane's own, else the arm's."""
        return plane_subsampling or self.subsampling

    def variant(self, plane_subsampling: str | None) -> str:
        """``q<quality>-<subsampling>``: the JPEG test set the arm is tested on, and its models' label suffix."""
        return f"q{self.quality}-{self.subsampling_for(plane_subsampling)}"


def recipe_name_for(train: Mapping[str, Any], model: str, scheme: str) -> str:
    """The ``train:`` entry a model trained on a scheme uses: ``model/scheme``, else ``model``, else ``default``."""
    for name in (f"{model}/{scheme}", model, "default"):
        if name in train:
            return name
    return "default"


def recipe_for(train: Mapping[str, Any], model: str, scheme: str) -> Recipe:
    """The whole recipe a model trained on a scheme uses (see :func:`recipe_name_for`)."""
    name = recipe_name_for(train, model, scheme)
    try:
        return Recipe.from_dict(train.get(name, {}))
    except EtcbenchError as exc:
        raise EtcbenchError(f"train.{name}: {exc}") from exc
