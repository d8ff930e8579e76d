"""Top-1 and loss of a trained model on stored (encrypted, possibly JPEG-decoded) test sets, and the evaluation
stage: a trained model on its test set, every JPEG version of it, and under key mismatch (another key of its
scheme, no encryption), with the confusion matrix of its own-key, uncompressed test set."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import ciphers
from .data.cifar import CLASSES as CIFAR10_CLASSES
from .data.transforms import normalize, to_nchw
from .errors import EtcbenchError
from .io import atomic_write, load_npz, require_images, write_json
from .manifest import manifest
from .models import build_model
from .seeding import select_device

__all__ = ["confusion_record", "evaluate_arrays", "evaluate_model_file", "load_trained_model", "predict_arrays",
           "save_trained_model"]

log = logging.getLogger(__name__)


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
    top1, loss, _ = predict_arrays(model, images, labels, device, batch_size, prepare)
    return top1, loss


@torch.no_grad()
def predict_arrays(
        model: nn.Module,
        images: np.ndarray,
        labels: np.ndarray,
        device: torch.device,
        batch_size: int = 256,
        prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float, np.ndarray]:
    """:func:`evaluate_arrays` with the predicted class of every image: ``(top1, loss, (N,) int64 predictions)``."""
    if len(images) == 0:
        raise EtcbenchError("cannot evaluate on an empty image set")
    model.eval()
    correct, loss_sum, predictions = 0, 0.0, []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    for i in range(0, len(images), batch_size):
        x = to_nchw(images[i:i + batch_size]).to(device, non_blocking=True)
        y = torch.from_numpy(np.asarray(labels[i:i + batch_size], dtype=np.int64)).to(device)
        if prepare is not None:
            x = prepare(x)
        with autocast:
            logits = model(normalize(x)).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        predicted = logits.argmax(1)
        correct += (predicted == y).sum().item()
        predictions.append(predicted.cpu().numpy().astype(np.int64))
    return correct / len(images), loss_sum / len(images), np.concatenate(predictions)


def confusion_record(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     dataset: str | None = None) -> dict[str, Any]:
    """The confusion matrix of ``predictions`` against ``labels`` (scikit-learn's, rows = true class, columns =
    predicted, classes ``0 .. num_classes - 1`` whether they occur or not) as a JSON-ready record, with the class
    names where the dataset is CIFAR-10. scikit-learn is imported here, not with the module: importing it (and
    scipy) takes seconds that every training job, which imports this module, would pay."""
    from sklearn.metrics import confusion_matrix

    truth, guess = np.asarray(labels, dtype=np.int64).ravel(), np.asarray(predictions, dtype=np.int64).ravel()
    if truth.shape != guess.shape:
        raise EtcbenchError(f"{truth.size} labels but {guess.size} predictions")
    if truth.size and (min(truth.min(), guess.min()) < 0 or max(truth.max(), guess.max()) >= num_classes):
        raise EtcbenchError(f"a label or prediction outside the {num_classes} classes 0..{num_classes - 1}")
    classes = list(range(num_classes))
    matrix = confusion_matrix(truth, guess, labels=classes)
    names = list(CIFAR10_CLASSES) if dataset == "cifar10" and num_classes == len(CIFAR10_CLASSES) else None
    return {"labels": classes, "class_names": names, "matrix": matrix.astype(int).tolist()}


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
    except Exception as exc:
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


def _mismatch_base(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "image_size", "block_size", "model", "scheme", "seed")
    return {k: record[k] for k in keys}


def evaluate_model_file(model_file: Path, test: Path, out: Path, jpeg: list[Path] | tuple[Path, ...] = (),
                        other_test: Path | None = None, plain_test: Path | None = None, batch_size: int = 256,
                        device: str = "auto") -> dict[str, Any]:
    """Top-1 of the model in ``model_file`` on ``test`` and each JPEG set; key mismatch on ``other_test`` (the same
    images under another key of the scheme) and ``plain_test`` (not encrypted: the scheme's key-free layout).

    Writes ``{"records", "key_mismatch", "confusion", "manifest"}`` to ``out`` and returns it; ``confusion`` is the
    confusion matrix on ``test`` (own key, uncompressed; :func:`confusion_record`) with the cell's keys.
    """
    started = time.time()
    dev = select_device(device)
    model, ckpt = load_trained_model(Path(model_file), dev)
    base, own = ckpt["record"], ckpt["key_fingerprint"]
    records, confusion = [], None
    for path in [test, *jpeg]:
        data = load_npz(path)
        ciphers.require_encrypted_with(data, own, path, f"the key model {model_file} was trained on")
        require_images(data["x"], str(path), (1, 3))
        top1, loss, predicted = predict_arrays(model, data["x"], data["y"], dev, batch_size)
        if confusion is None:  # the first set: the own-key test set, uncompressed
            confusion = {**_mismatch_base(base), "test_key": "own", "jpeg_quality": None, "subsampling": "none",
                         **confusion_record(data["y"], predicted, int(ckpt["spec"]["num_classes"]), base["dataset"])}
        quality = int(data["jpeg_quality"]) if "jpeg_quality" in data else None
        records.append({**base, "jpeg_quality": quality, "subsampling": str(data["subsampling"]) if quality else "none",
                        "top1": top1, "loss": loss, "n_test": int(len(data["y"]))})
        log.info("%s/%s q=%s %s: top-1 %.4f", base["model"], base["scheme"], quality, records[-1]["subsampling"], top1)
    mismatch = [{**_mismatch_base(base), "test_key": "own", "top1": records[0]["top1"]}]
    if other_test is not None:
        other = load_npz(other_test)
        if str(other["key_fingerprint"]) == own and base["scheme"] != "plain":
            raise EtcbenchError(f"{other_test} was encrypted with the model's own key; a key mismatch needs another")
        top1, _ = evaluate_arrays(model, other["x"], other["y"], dev, batch_size)
        mismatch.append({**_mismatch_base(base), "test_key": "other", "top1": top1})
    if plain_test is not None:
        plain = load_npz(plain_test)
        layout = ciphers.create(base["scheme"], base["block_size"]).public_layout(plain["x"])  # key-free part
        top1, _ = evaluate_arrays(model, layout, plain["y"], dev, batch_size)
        mismatch.append({**_mismatch_base(base), "test_key": "none", "top1": top1})
    for r in mismatch[1:]:
        log.info("%s/%s test key %s: top-1 %.4f", base["model"], base["scheme"], r["test_key"], r["top1"])
    result = {"records": records, "key_mismatch": mismatch, "confusion": confusion,
              "manifest": manifest("evaluate", started, time.time(), dev)}
    write_json(out, result)
    return result
