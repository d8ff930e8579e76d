"""Top-1 and loss of a trained model on (encrypted, possibly JPEG-decoded) test sets, and the evaluation stage:
every model trained on one scheme, setting and seed on its test set (the stored plain test set encrypted here with
the models' key), every JPEG version of it (each set loaded once and shared by the models), and under key mismatch
(the plain test set encrypted on the fly with another key of the scheme, and not encrypted), with each model's
predictions on its own-key, uncompressed test set (the report turns them into confusion matrices)."""

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
from . import jpeg as jpeg_files
from .data.cifar import CLASSES as CIFAR10_CLASSES
from .data.transforms import MEAN, STD, normalize, to_nchw
from .encryption import encrypted_test_set
from .errors import EtcbenchError
from .io import atomic_write, load_npz, require_images, write_json
from .labels import base_model, transformed_label
from .manifest import manifest
from .models import build_model
from .seeding import select_device

__all__ = ["evaluate_arrays", "evaluate_models", "load_trained_model", "predict_arrays", "save_trained_model"]

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


def _class_names(dataset: str, num_classes: int) -> list[str] | None:
    """The dataset's class names (CIFAR-10's), for the report's confusion matrices; ``None`` otherwise."""
    if dataset == "cifar10" and num_classes == len(CIFAR10_CLASSES):
        return list(CIFAR10_CLASSES)
    return None


def _load_models(model_files: list[Path], dev: torch.device) -> list[tuple[Path, nn.Module, dict[str, Any]]]:
    """The models of one evaluation job: one scheme, setting, seed and key, each model once."""
    loaded = [(Path(p), *load_trained_model(Path(p), dev)) for p in model_files]
    if not loaded:
        return loaded
    first_path, _, first = loaded[0]
    cell = {k: first["record"][k] for k in ("dataset", "image_size", "block_size", "scheme", "seed")}
    seen = set()
    for path, _, ckpt in loaded:
        record = ckpt["record"]
        other = {k: record[k] for k in cell}
        if other != cell or ckpt["key_fingerprint"] != first["key_fingerprint"]:
            raise EtcbenchError(f"{path} ({other}) was not trained on the scheme, setting, seed and key of "
                                f"{first_path} ({cell}); one evaluation job takes the models of one of those")
        if record["model"] in seen:
            raise EtcbenchError(f"{path}: model {record['model']!r} is given twice")
        seen.add(record["model"])
    return loaded


def _transformed_models(files: list[Path], key_path: Path, dev: torch.device,
                        trained: list[tuple[Path, nn.Module, dict[str, Any]]]
                        ) -> list[tuple[Path, nn.Module, nn.Module, dict[str, Any]]]:
    """``(path, plain model, transformed model, checkpoint as the records see it)`` of every plain-trained model in
    ``files``, transformed with the key at ``key_path`` (its scheme's :meth:`~etcbench.ciphers.Scheme.transform_model`);
    each must be a plain model of the key's setting (and of the trained models' dataset and seed)."""
    key, scheme = ciphers.load_scheme(Path(key_path))
    if files and not scheme.transforms_models:
        raise EtcbenchError(f"scheme {key.scheme!r} has no model transformation; {files[0]} cannot be transformed")
    out, seen = [], set()
    for path in map(Path, files):
        model, ckpt = load_trained_model(path, dev)
        record = ckpt["record"]
        size = (record["image_size"], record["image_size"])
        if record["scheme"] != "plain" or size != tuple(key.image_size) or record["block_size"] != key.block_size:
            raise EtcbenchError(f"{path} is a {record['scheme']!r} model at {record['image_size']} px, block "
                                f"{record['block_size']}; the transformation takes a plain model of the key's "
                                f"{key.image_size[0]} px, block {key.block_size}")
        if trained and any(trained[0][2]["record"][k] != record[k] for k in ("dataset", "seed")):
            raise EtcbenchError(f"{path} is not of the dataset and seed of the trained models it is evaluated with")
        if record["model"] in seen:
            raise EtcbenchError(f"{path}: plain model {record['model']!r} is given twice")
        seen.add(record["model"])
        try:
            transformed = scheme.transform_model(model, key, MEAN, STD).eval()
        except ValueError as exc:
            raise EtcbenchError(f"{path}: {exc}") from None
        as_seen = {**ckpt, "key_fingerprint": key.fingerprint,
                   "record": {**record, "model": transformed_label(record["model"]), "scheme": key.scheme,
                              "key_fingerprint": key.fingerprint}}
        out.append((path, model, transformed, as_seen))
    return out


@torch.no_grad()
def _logits(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int) -> torch.Tensor:
    """Float32 logits of ``model`` on uint8 ``(N, H, W, C)`` images, on the CPU (full precision: the comparison of
    a transformed model with its plain original needs no autocast)."""
    model.eval()
    out = [model(normalize(to_nchw(images[i:i + batch_size]).to(device))).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def _transformation_record(plain_model: nn.Module, transformed: nn.Module, ckpt: dict[str, Any], plain: np.ndarray,
                           encrypted: np.ndarray, labels: np.ndarray, device: torch.device,
                           batch_size: int) -> tuple[dict[str, Any], tuple[float, float, np.ndarray]]:
    """How exactly the transformed model on encrypted images reproduces its plain original on the plain images: both
    top-1s, the share of images with the same prediction and the largest logit difference; and the transformed
    model's ``(top1, loss, predictions)`` on the encrypted images (what :func:`predict_arrays` gives, from the same
    pass: the evaluation does not run it again)."""
    a = _logits(plain_model, plain, device, batch_size)
    b = _logits(transformed, encrypted, device, batch_size)
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    record = ckpt["record"]
    transformed_top1 = (b.argmax(1) == y).double().mean().item()
    summary = {**_mismatch_base(record), "plain_model": base_model(record["model"]),
               "plain_top1": (a.argmax(1) == y).double().mean().item(), "transformed_top1": transformed_top1,
               "prediction_agreement": (a.argmax(1) == b.argmax(1)).double().mean().item(),
               "max_abs_logit_diff": (a - b).abs().max().item(), "n_test": int(len(y)),
               "num_classes": int(ckpt["spec"]["num_classes"])}
    own = (transformed_top1, F.cross_entropy(b, y).item(), b.argmax(1).numpy().astype(np.int64))
    return summary, own


def _mismatch_inputs(other_key: Path | None, plain_test: Path, plain: np.ndarray, own: str,
                     scheme_name: str) -> tuple[ciphers.Key, Any] | None:
    """The other key (with its scheme) of the key-mismatch test, checked: another key of the models' scheme, for
    the plain set's image size."""
    if other_key is None:
        return None
    key, scheme = ciphers.load_scheme(Path(other_key))
    if key.fingerprint == own and scheme_name != "plain":
        raise EtcbenchError(f"{other_key} is the models' own key; a key mismatch needs another")
    if key.scheme != scheme_name:
        raise EtcbenchError(f"{other_key} is a {key.scheme!r} key; the models were trained on {scheme_name!r}")
    if tuple(key.image_size) != tuple(plain.shape[1:3]):
        raise EtcbenchError(f"{other_key} is for {tuple(key.image_size)} images; {plain_test} holds "
                            f"{tuple(plain.shape[1:3])}")
    return key, scheme


def evaluate_models(model_files: list[Path] | tuple[Path, ...], key_path: Path, plain_test: Path, out: Path,
                    jpeg: list[Path] | tuple[Path, ...] = (), other_key: Path | None = None, batch_size: int = 256,
                    device: str = "auto", transform_files: list[Path] | tuple[Path, ...] = ()) -> dict[str, Any]:
    """Top-1 of every model in ``model_files`` (one scheme, setting, seed and key) on their test set: ``plain_test``
    (the plain scheme's test set) encrypted with ``key_path`` (the models' key) here, the set is not stored; on each
    JPEG set; and under key mismatch: ``plain_test`` encrypted with ``other_key`` (another key of the scheme, on the
    fly as well) and unencrypted (the scheme's key-free layout).

    The key, the plain set and the other key are checked before any inference. Each set is made or loaded (and,
    for JPEG, decoded) once and shared by the models. Writes ``{"records", "key_mismatch", "predictions",
    "manifest"}`` to ``out`` and returns it; ``predictions`` holds each model's predicted class of every image of the
    own-key, uncompressed test set with the true ones, for the report's confusion matrices.

    ``transform_files``: models trained on plain images of the setting, each transformed with the key
    (:meth:`~etcbench.ciphers.Scheme.transform_model`, the model-transformation arm) and evaluated like the trained
    models under the name :func:`transformed_label` gives (so the other key tests the transformed model with a wrong
    key); ``transformation`` then also holds, per model, how exactly it reproduces the plain model on the plain
    images (:func:`_transformation_record`).
    """
    started = time.time()
    if not model_files and not transform_files:
        raise EtcbenchError("no model file to evaluate")
    dev = select_device(device)
    loaded = _load_models(list(model_files), dev)
    key, _ = ciphers.load_scheme(Path(key_path))
    if loaded:
        what = f"the key the models {', '.join(str(p) for p, _, _ in loaded)} were trained on"
        if key.fingerprint != loaded[0][2]["key_fingerprint"]:
            raise EtcbenchError(f"key {key_path} is not {what}")
    else:
        what = f"the key {key_path}"
    transformed = _transformed_models(list(transform_files), key_path, dev, loaded)
    loaded += [(path, model, ckpt) for path, _, model, ckpt in transformed]
    own, cell = key.fingerprint, loaded[0][2]["record"]
    test = encrypted_test_set(plain_test, key_path)  # checked (and encrypted) before any inference
    other = _mismatch_inputs(other_key, plain_test, test.plain, own, cell["scheme"])
    records, mismatch, predictions = [], [], []
    compared = {id(model): _transformation_record(plain_model, model, ckpt, test.plain, test.x, test.y, dev,
                                                  batch_size) for _, plain_model, model, ckpt in transformed}
    transformation = [summary for summary, _ in compared.values()]
    del transformed  # the plain originals are not needed after the comparison: free them before the JPEG sets
    for t in transformation:
        log.info("%s transformed with the %s key: top-1 %.4f on encrypted images, %.4f for the plain model on plain "
                 "images; predictions agree on %.4f, logits differ by at most %.3g", t["plain_model"], t["scheme"],
                 t["transformed_top1"], t["plain_top1"], t["prediction_agreement"], t["max_abs_logit_diff"])
    own_set = {"x": test.x, "y": test.y, "key_fingerprint": np.array(own)}
    for index, path in enumerate([None, *jpeg]):
        data = own_set if path is None else load_npz(path)
        name = f"{plain_test} encrypted with {key_path}" if path is None else path
        ciphers.require_encrypted_with(data, own, name, what)
        try:
            images = jpeg_files.images_of(data)  # a JPEG set's files decoded, once for all the models
        except ValueError as exc:
            raise EtcbenchError(f"{name}: {exc}") from None
        require_images(images, str(name), (1, 3))
        quality = int(data["jpeg_quality"]) if "jpeg_quality" in data else None
        subsampling = str(data["subsampling"]) if quality else "none"
        for _, model, ckpt in loaded:
            base = ckpt["record"]
            if index == 0 and id(model) in compared:  # the transformed model's own-key pass, already run
                top1, loss, predicted = compared[id(model)][1]
            else:
                top1, loss, predicted = predict_arrays(model, images, data["y"], dev, batch_size)
            records.append({**base, "jpeg_quality": quality, "subsampling": subsampling, "top1": top1, "loss": loss,
                            "n_test": int(len(data["y"]))})
            if index == 0:  # the own-key test set, uncompressed
                mismatch.append({**_mismatch_base(base), "test_key": "own", "top1": top1})
                num_classes = int(ckpt["spec"]["num_classes"])
                predictions.append({**_mismatch_base(base), "test_key": "own", "jpeg_quality": None,
                                    "subsampling": "none", "num_classes": num_classes,
                                    "class_names": _class_names(base["dataset"], num_classes),
                                    "truth": np.asarray(data["y"], dtype=np.int64).tolist(),
                                    "predicted": predicted.tolist()})
            log.info("%s/%s q=%s %s: top-1 %.4f", base["model"], base["scheme"], quality, subsampling, top1)
    del own_set
    variants = []
    if other is not None:
        other_key_, scheme = other
        variants.append(("other", scheme.encrypt(test.plain, other_key_)))
    layout = ciphers.create(cell["scheme"], cell["block_size"]).public_layout(test.plain)  # key-free part
    variants.append(("none", layout))
    for test_key, images in variants:
        for _, model, ckpt in loaded:
            base = ckpt["record"]
            top1, _ = evaluate_arrays(model, images, test.y, dev, batch_size)
            mismatch.append({**_mismatch_base(base), "test_key": test_key, "top1": top1})
            log.info("%s/%s test key %s: top-1 %.4f", base["model"], base["scheme"], test_key, top1)
    result = {"records": records, "key_mismatch": mismatch, "predictions": predictions,
              **({"transformation": transformation} if transformation else {}),
              "manifest": manifest("evaluate", started, time.time(), dev)}
    write_json(out, result)
    return result
