"""Build the classifiers, with patch size equal to the cipher's block size.

Every model is named by its config entry's ``arch`` (``model_options.<model>.arch``):

* ``vit``: any timm Vision Transformer, ``arch`` with an optional weight tag (``vit_base_patch16_224.orig_in21k`` is
  ViT-B/16 with Google's original ImageNet-21k weights), with ``img_size`` and ``patch_size`` overridden and timm
  keyword overrides (``depth``, ``embed_dim``, ...) from the other options.
* ``convmixer``: :class:`timm.models.convmixer.ConvMixer` built directly, because timm's registered ConvMixer
  constructors fix ``patch_size`` (Trockman & Kolter, "Patches Are All You Need?", arXiv:2201.09792). ``arch:
  convmixer`` takes ``dim``, ``depth``, ``kernel_size`` and ``activation``; a timm name (:data:`TIMM_CONVMIXERS`)
  takes timm's, with the stem's patch set to the block size.
* ``resnet18``: timm's ResNet-18 with the stem for its input size (:mod:`.cnn`).
* ``resnet18_tanaka`` / ``resnet18_madono``: ResNet-18 behind Tanaka's (shared) or Madono's (per-block, with a
  learnable block-mixing matrix) adaptation network, see :mod:`.adaptation`; their regularisation terms are added
  to the training loss through ``model.regularization_loss()``.

Input: ``in_chans`` channels of ``image_size`` pixels, a side or ``(rows, cols)``: 3 x H x W for most schemes, one
grayscale plane for grayscale-based EtC (``Scheme.encrypted_shape``). The adaptation networks take RGB only.
Pretrained weights are loaded separately and strictly (:mod:`.pretrained`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import EtcbenchError
from .cnn import build_resnet18

__all__ = ["DEFAULT_ARCH", "MODELS", "TIMM_CONVMIXERS", "build_model", "convmixer_arch"]

MODELS = ("vit", "convmixer", "resnet18", "resnet18_tanaka", "resnet18_madono")
DEFAULT_ARCH = {"vit": "vit_tiny_patch16_224", "convmixer": "convmixer", "resnet18": "resnet18",
                "resnet18_tanaka": "resnet18", "resnet18_madono": "resnet18"}
# timm's registered ConvMixers (timm/models/convmixer.py); their own patch sizes (7, 14) are replaced by the block
TIMM_CONVMIXERS = {
    "convmixer_1536_20": {"dim": 1536, "depth": 20, "kernel_size": 9, "activation": "gelu"},
    "convmixer_768_32": {"dim": 768, "depth": 32, "kernel_size": 7, "activation": "relu"},
    "convmixer_1024_20_ks9_p14": {"dim": 1024, "depth": 20, "kernel_size": 9, "activation": "gelu"},
}
_CONVMIXER_SHAPE = ("dim", "depth", "kernel_size", "activation")
_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


def convmixer_arch(options: dict[str, Any]) -> dict[str, Any]:
    """``dim``, ``depth``, ``kernel_size``, ``activation`` of a ConvMixer entry (its arch's, or its own)."""
    arch = options.get("arch", "convmixer")
    base = arch.split(".")[0]
    if base == "convmixer":
        shape = {"dim": 256, "depth": 8, "kernel_size": 5, "activation": "gelu"}
        shape.update({k: options[k] for k in _CONVMIXER_SHAPE if k in options})
        return shape
    if base not in TIMM_CONVMIXERS:
        raise EtcbenchError(f"unknown ConvMixer arch {arch!r}; use convmixer or one of {', '.join(TIMM_CONVMIXERS)}")
    clash = [k for k in _CONVMIXER_SHAPE if k in options]
    if clash:
        raise EtcbenchError(f"ConvMixer arch {arch} fixes {', '.join(clash)}; use arch convmixer to set them")
    return dict(TIMM_CONVMIXERS[base])


def build_model(
        name: str,
        num_classes: int,
        image_size: int | tuple[int, int],
        patch_size: int,
        options: dict[str, Any] | None = None,
        in_chans: int = 3,
) -> nn.Module:
    """Build a randomly initialised classifier for ``image_size`` inputs whose patch size equals ``patch_size``.

    Args:
        name: one of :data:`MODELS`.
        num_classes: classifier outputs.
        image_size: input size in pixels, a side (square) or ``(rows, cols)``.
        patch_size: patch size; must equal the cipher's block size for isotropic networks.
        options: the model's config entry: ``arch`` (default :data:`DEFAULT_ARCH`) and model-specific settings.
        in_chans: input channels (3, or 1 for a grayscale plane).
    """
    if name not in MODELS:
        raise EtcbenchError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    options = dict(options or {})
    arch = options.pop("arch", DEFAULT_ARCH[name])
    if isinstance(image_size, (list, tuple)):
        image_size = (int(image_size[0]), int(image_size[1]))
    if name == "vit":
        import timm

        if not arch.startswith("vit_"):
            raise EtcbenchError(f"model vit needs a timm ViT arch (vit_...), got {arch!r}")
        try:
            return timm.create_model(arch, pretrained=False, img_size=image_size, patch_size=patch_size,
                                     num_classes=num_classes, in_chans=in_chans, **options)
        except (RuntimeError, TypeError) as exc:
            raise EtcbenchError(f"timm cannot build {arch} with {options}: {exc}") from exc
    if name == "convmixer":
        from timm.models.convmixer import ConvMixer

        shape = convmixer_arch({"arch": arch, **options})
        rest = {k: v for k, v in options.items() if k not in _CONVMIXER_SHAPE}
        return ConvMixer(dim=shape["dim"], depth=shape["depth"], kernel_size=shape["kernel_size"],
                         patch_size=patch_size, num_classes=num_classes, in_chans=in_chans,
                         act_layer=_ACTIVATIONS[shape["activation"]], **rest)
    if name == "resnet18":
        return build_resnet18(num_classes, in_chans, image_size, arch=arch, **options)
    if in_chans != 3 or not isinstance(image_size, int):
        raise EtcbenchError(f"{name} adapts square RGB images block by block; it cannot take {in_chans}-channel "
                            f"{image_size} inputs (grayscale-based EtC): pair it with an RGB scheme")
    from .adaptation import build_adapted

    return build_adapted(name.split("_")[1], num_classes, image_size, patch_size, arch=arch, **options)

