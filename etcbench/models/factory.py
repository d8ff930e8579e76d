"""Build the classifiers from timm, with patch size equal to the cipher's block size.

* ``vit``: any timm Vision Transformer (``arch``, default ``vit_tiny_patch16_224``) with ``img_size`` and
  ``patch_size`` overridden; ViT-B/16 is ``arch: vit_base_patch16_224``.
* ``convmixer``: :class:`timm.models.convmixer.ConvMixer` built directly, because timm's registered ConvMixer
  constructors fix ``patch_size`` (Trockman & Kolter, "Patches Are All You Need?", arXiv:2201.09792).
* ``resnet18``: timm's ResNet-18, the conventional CNN baseline (its stem does not depend on the block size).
* ``resnet18_tanaka`` / ``resnet18_madono``: ResNet-18 behind Tanaka's (shared) or Madono's (per-block, with a
  learnable block-mixing matrix) adaptation network, see :mod:`.adaptation`; their regularisation terms are added
  to the training loss through ``model.regularization_loss()``.

Input: ``in_chans`` channels of ``image_size`` pixels, a side or ``(rows, cols)``: 3 x H x W for most schemes, one
grayscale plane for grayscale-based EtC (``Scheme.encrypted_shape``). The adaptation networks take RGB only.

``pretrained``: ``False`` (default), ``True`` (timm's hub weights; needs network access), or the path of a local
checkpoint (``.pth``/``.safetensors``); tensors whose shapes do not fit (the classifier head, a different patch
size) are resampled where timm can (ViT position and patch embeddings) and otherwise left at initialisation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import EtcbenchError

__all__ = ["MODELS", "build_model"]

log = logging.getLogger(__name__)
MODELS = ("vit", "convmixer", "resnet18", "resnet18_tanaka", "resnet18_madono")


def _create_timm(arch: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    import timm

    try:
        return timm.create_model(arch, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        if pretrained:
            raise EtcbenchError(
                f"could not load timm's pretrained weights for {arch} ({type(exc).__name__}); without network access "
                f"set 'pretrained' to a local checkpoint path"
            ) from exc
        raise


def build_model(
        name: str,
        num_classes: int,
        image_size: int | tuple[int, int],
        patch_size: int,
        options: dict[str, Any] | None = None,
        pretrained: bool | str = False,
        in_chans: int = 3,
) -> nn.Module:
    """Build a classifier for ``image_size`` inputs whose patch (token) size equals ``patch_size``.

    Args:
        name: one of :data:`MODELS`.
        num_classes: classifier outputs.
        image_size: input size in pixels, a side (square) or ``(rows, cols)``.
        patch_size: patch size; must equal the cipher's block size for isotropic networks.
        options: model-specific settings (``arch`` and timm keyword arguments for ``vit``; ``dim``, ``depth``,
            ``kernel_size`` for ``convmixer``).
        pretrained: see the module docstring.
        in_chans: input channels (3, or 1 for a grayscale plane).
    """
    options = dict(options or {})
    hub = pretrained is True
    if isinstance(image_size, (list, tuple)):
        image_size = (int(image_size[0]), int(image_size[1]))
    if name == "vit":
        arch = options.pop("arch", "vit_tiny_patch16_224")
        model = _create_timm(arch, hub, img_size=image_size, patch_size=patch_size, num_classes=num_classes,
                             in_chans=in_chans, **options)
    elif name == "convmixer":
        if hub:
            raise EtcbenchError("timm has no ConvMixer weights with a free patch size: give a local checkpoint path")
        from timm.models.convmixer import ConvMixer

        act = {"gelu": nn.GELU, "relu": nn.ReLU}[options.pop("activation", "gelu")]
        model = ConvMixer(dim=options.pop("dim", 256), depth=options.pop("depth", 8),
                          kernel_size=options.pop("kernel_size", 5), patch_size=patch_size, num_classes=num_classes,
                          act_layer=act, in_chans=in_chans, **options)
    elif name == "resnet18":
        model = _create_timm(options.pop("arch", "resnet18"), hub, num_classes=num_classes, in_chans=in_chans,
                             **options)
    elif name in ("resnet18_tanaka", "resnet18_madono"):
        if in_chans != 3 or not isinstance(image_size, int):
            raise EtcbenchError(f"{name} adapts square RGB images block by block; it cannot take {in_chans}-channel "
                                f"{image_size} inputs (grayscale-based EtC): pair it with an RGB scheme")
        if hub:
            raise EtcbenchError(f"{name} has no hub weights (its stem takes 16 adapted channels): give a local path")
        from .adaptation import build_adapted

        model = build_adapted(name.split("_")[1], num_classes, image_size, patch_size, **options)
    else:
        raise EtcbenchError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    if isinstance(pretrained, (str, Path)) and pretrained not in ("", "false"):
        load_checkpoint(model, Path(pretrained))
    return model


def load_checkpoint(model: nn.Module, path: Path) -> None:
    """Load a local checkpoint non-strictly, resampling ViT embeddings and skipping shape mismatches."""
    from timm.models import load_state_dict

    if not path.is_file():
        raise EtcbenchError(f"pretrained checkpoint {path} does not exist")
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise EtcbenchError(f"could not read checkpoint {path} ({type(exc).__name__}: {exc})") from exc
    if hasattr(model, "pos_embed"):
        from timm.models.vision_transformer import checkpoint_filter_fn

        state = checkpoint_filter_fn(state, model)
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(fitting))
    missing = sorted(set(own) - set(fitting))
    model.load_state_dict(fitting, strict=False)
    log.info("loaded %d tensors from %s; %d skipped (shape/name), %d left at init (e.g. %s)",
             len(fitting), path, len(skipped), len(missing), missing[:3])
    if not fitting:
        raise EtcbenchError(f"checkpoint {path} has no tensor that fits this model")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


