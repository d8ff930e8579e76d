"""Top-1 and loss of a trained model on stored (encrypted, possibly JPEG-decoded) test sets."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.transforms import normalize, to_nchw
from .errors import EtcbenchError
from .io import atomic_write
from .models import build_model

__all__ = ["evaluate_arrays", "save_trained_model", "load_trained_model"]


@torch.no_grad()
def evaluate_arrays(
        model: nn.Module,
        images: np.ndarray,
        labels: np.ndarray,
        device: torch.device,
        batch_size: int = 256,
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """Mean top-1 and cross-entropy over ``(N, H, W, C)`` uint8 images, batch by batch on ``device``.

    ``prepare`` maps each uint8 ``(B, C, H, W)`` batch on the device before normalisation (e.g. resize and
    encrypt a plain validation set); stored test sets are already encrypted and need none.
    """
    if len(images) == 0:
        raise EtcbenchError("cannot evaluate on an empty image set")
    model.eval()
    correct, loss_sum = 0, 0.0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for i in range(0, len(images), batch_size):
        x = to_nchw(images[i:i + batch_size]).to(device, non_blocking=True)
        y = torch.from_numpy(np.asarray(labels[i:i + batch_size], dtype=np.int64)).to(device)
        if prepare is not None:
            x = prepare(x)
        with autocast:
            logits = model(normalize(x)).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
    return correct / len(images), loss_sum / len(images)


def save_trained_model(path: Path, model: nn.Module, spec: dict[str, Any], extra: dict[str, Any]) -> None:
    """Write the final weights with the spec needed to rebuild the model (atomically)."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"spec": spec, "state_dict": state, **extra}, buf)
    with atomic_write(path) as fh:
        fh.write(buf.getvalue())


def load_trained_model(path: Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model written by :func:`save_trained_model`; returns ``(model, checkpoint without weights)``."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        spec = ckpt["spec"]
    except Exception as exc:  # noqa: BLE001
        raise EtcbenchError(f"{path} is not an etcbench model file ({type(exc).__name__}: {exc})") from exc
    state = ckpt.pop("state_dict")
    # built without initialising its weights (on the meta device: initialising ViT-B/16 takes seconds on a CPU),
    # then every parameter and buffer is taken from the file; a model with buffers the file does not hold is
    # built normally
    with torch.device("meta"):
        model = build_model(spec["model"], spec["num_classes"], spec["image_size"], spec["patch_size"],
                            spec.get("options"), in_chans=spec.get("in_chans", 3))
    if {name for name, _ in model.named_buffers()} <= set(state):
        model.load_state_dict(state, assign=True)
    else:
        model = build_model(spec["model"], spec["num_classes"], spec["image_size"], spec["patch_size"],
                            spec.get("options"), in_chans=spec.get("in_chans", 3))
        model.load_state_dict(state)
    return model.to(device).eval(), ckpt
