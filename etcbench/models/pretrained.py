"""Pretrained weights, loaded strictly: every tensor of the checkpoint and of the model is accounted for.

``pretrained`` (config ``pretrained.<model>``) is ``False``, ``True`` (the timm hub weights of the model's ``arch``
tag, e.g. ``timm/vit_base_patch16_224.orig_in21k``; fetched by ``huggingface_hub``, so a file already in its cache
works offline) or the path of a local ``.pth``/``.safetensors`` file with timm's tensor names.

What may differ between checkpoint and model, on purpose, and nothing else:

* the classifier head (``head`` of ViT and ConvMixer, ``fc`` of ResNet): loaded when its shape fits, otherwise left
  at initialisation (another number of classes, or none in the checkpoint);
* ViT position and patch embeddings of another token grid or patch size: resampled by timm's
  ``checkpoint_filter_fn`` (recorded as resampled);
* the first convolution of an RGB checkpoint in a one-channel model (grayscale-based EtC planes): its colour
  weights are summed, as timm's ``adapt_input_conv`` does when it loads weights for ``in_chans=1`` (recorded);
* a stem rebuilt for the block size or input size: a ConvMixer stem of another patch size (the Kiya lab's later
  code replaces timm's 14-px stem by a freshly initialised 16-px one) and ResNet's 7x7 ImageNet stem when the
  model has the CIFAR stem: left at initialisation.

Any other missing or unexpected tensor, or tensor of another shape, stops the job with one line naming them
(a 6-block ViT given ViT-B/16's 12 blocks, a ResNet checkpoint given to a ViT). An unreadable or truncated file
says so, and a failed download says which file to place where: a shape problem never reads as a network one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import EtcbenchError

__all__ = ["describe_source", "load_pretrained", "read_checkpoint"]

log = logging.getLogger(__name__)

_HEADS = {"vit": "head", "convmixer": "head", "resnet18": "fc", "resnet18_tanaka": "classifier.fc",
          "resnet18_madono": "classifier.fc"}
_RESAMPLED = ("pos_embed", "patch_embed.proj.weight")
_FIRST_CONV = {"vit": "patch_embed.proj.weight", "convmixer": "stem.0.weight", "resnet18": "conv1.weight"}


def describe_source(pretrained: bool | str, arch: str) -> str:
    """A short, secret-free description of where the weights come from."""
    if pretrained is False or pretrained in ("", "false", None):
        return "none"
    if pretrained is True:
        return f"hub:{_hub_id(arch)}"
    return f"file:{pretrained}"


def _hub_id(arch: str) -> str:
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(arch)
    except RuntimeError:  # a tag timm does not know
        cfg = None
    if cfg is None or not cfg.hf_hub_id:
        raise EtcbenchError(f"timm has no hub weights for {arch!r}: name a weight tag (e.g. {arch.split('.')[0]}."
                            f"orig_in21k) or give a local checkpoint path")
    return cfg.hf_hub_id


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a local ``.pth``/``.safetensors`` checkpoint (tensors only), or one clear error."""
    from timm.models import load_state_dict

    if not path.is_file():
        raise EtcbenchError(f"pretrained checkpoint {path} does not exist")
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise EtcbenchError(f"could not read checkpoint {path}: truncated or not a checkpoint "
                            f"({type(exc).__name__}: {first})") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EtcbenchError(f"checkpoint {path} is not a state dict of tensors")
    return state


def _hub_state(arch: str, model_name: str) -> tuple[dict[str, torch.Tensor], str]:
    from timm.models import load_state_dict_from_hf

    hub_id = _hub_id(arch)
    errors = []
    for filename in ("model.safetensors", "pytorch_model.bin"):
        try:
            return load_state_dict_from_hf(hub_id, filename=filename), f"hub:{hub_id}/{filename}"
        except Exception as exc:
            errors.append(f"{filename}: {type(exc).__name__}")
    raise EtcbenchError(
        f"could not fetch the pretrained weights of {arch} from the Hugging Face hub ({'; '.join(errors)}; no network "
        f"access?): download model.safetensors from https://huggingface.co/{hub_id} and set pretrained.{model_name} "
        f"to its path, or place it in the Hugging Face cache ($HF_HOME)")


def _filter(model_name: str, model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, Any], list[str]]:
    """Checkpoint adapted to the model where timm does it on purpose; returns (state, adapted tensor names)."""
    from timm.models import adapt_input_conv

    adapted = []
    first = _FIRST_CONV.get(model_name)
    own = model.state_dict()
    if first in state and first in own and state[first].ndim == 4 and state[first].shape[1] != own[first].shape[1]:
        state[first] = adapt_input_conv(own[first].shape[1], state[first])  # e.g. RGB weights for one channel
        adapted.append(first)
    if model_name != "vit":
        return state, adapted
    from timm.models.vision_transformer import checkpoint_filter_fn

    before = {k: tuple(state[k].shape) for k in _RESAMPLED if k in state}
    state = checkpoint_filter_fn(state, model)
    return state, sorted(set(adapted) | {k for k, shape in before.items()
                                         if k in state and tuple(state[k].shape) != shape})


def _rebuilt_stem(model_name: str, model: nn.Module) -> tuple[str, ...]:
    """Prefixes of a stem built anew for the block or input size (a checkpoint's stem may not fit it)."""
    if model_name == "convmixer":
        return ("stem.0.",)
    prefix = "classifier." if model_name in ("resnet18_tanaka", "resnet18_madono") else ""
    resnet = model.classifier if prefix else model
    return (prefix + "conv1.",) if getattr(resnet, "stem_type", None) == "cifar" else ()


def _natural(name: str) -> list[Any]:
    """Sort key reading digit runs as numbers (blocks.6 before blocks.10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _listing(names: list[str], limit: int = 4) -> str:
    names = sorted(names, key=_natural)
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_pretrained(model: nn.Module, model_name: str, arch: str, pretrained: bool | str) -> dict[str, Any]:
    """Load ``pretrained`` into ``model`` strictly (see the module docstring); returns what was done.

    Returns:
        ``{"source", "sha256" (local files), "loaded", "resampled", "left_at_init"}``; ``{"source": "none"}``
        when ``pretrained`` is false.
    """
    if pretrained is False or pretrained in ("", "false", None):
        return {"source": "none"}
    digest = None
    if pretrained is True:
        state, source = _hub_state(arch, model_name)
    else:
        path = Path(pretrained)
        state, source, digest = read_checkpoint(path), f"file:{path}", _sha256(path)
    state, resampled = _filter(model_name, model, dict(state))
    own = model.state_dict()
    head = _HEADS.get(model_name, "head") + "."
    rebuilt = _rebuilt_stem(model_name, model)

    def spared(name: str) -> bool:  # allowed to stay at initialisation
        return name.startswith((head, *rebuilt))  # rebuilt: a tuple of prefixes

    mismatched = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    # a rebuilt stem whose weights do not fit is rebuilt whole: its bias stays at initialisation too
    misfit = tuple(p for p in rebuilt if any(k.startswith(p) for k in mismatched))
    mismatched += [k for k in state if k in own and k.startswith(misfit) and k not in mismatched]
    unexpected = [k for k in state if k not in own and not spared(k)]
    missing = [k for k in own if k not in state and not spared(k)]
    wrong_shape = [k for k in mismatched if not spared(k)]
    if unexpected or missing or wrong_shape:
        problems = []
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
        if missing:
            problems.append(f"{len(missing)} missing ({_listing(missing)})")
        if wrong_shape:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong_shape]
            problems.append(f"{len(wrong_shape)} of another shape ({_listing(shapes, 2)})")
        raise EtcbenchError(f"pretrained checkpoint {source} does not fit {model_name} {arch}: " + "; ".join(problems))
    fitting = {k: v for k, v in state.items() if k in own and k not in mismatched}
    model.load_state_dict(fitting, strict=False)
    left = sorted(k for k in own if k not in fitting)
    log.info("loaded %d tensors from %s (resampled: %s; left at initialisation: %s)", len(fitting), source,
             resampled or "none", left or "none")
    return {"source": source, "sha256": digest, "loaded": len(fitting), "resampled": resampled,
            "left_at_init": left}
