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

Each model is one builder registered by :func:`register_model` with its default ``arch``: the names
(:func:`available`, :data:`MODELS`) are written there and nowhere else. This module imports neither torch nor timm
until a builder runs, so the torch-free stages (``etcbench keygen``, ``prepare``) can list the names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import EtcbenchError
from ..registry import Registry

if TYPE_CHECKING:
    from torch import nn

__all__ = ["DEFAULT_ARCH", "MODELS", "TIMM_CONVMIXERS", "available", "build_model", "convmixer_arch", "get",
           "register_model"]

ImageSize = int | tuple[int, int]
# builder(num_classes, image_size, patch_size, in_chans, arch, options) -> nn.Module; ``default_arch`` attribute
Builder = Callable[[int, ImageSize, int, int, str, dict[str, Any]], "nn.Module"]

_MODELS: Registry[nn.Module] = Registry("model")
available = _MODELS.available
get = _MODELS.get

# timm's registered ConvMixers (timm/models/convmixer.py); their own patch sizes (7, 14) are replaced by the block
TIMM_CONVMIXERS = {
    "convmixer_1536_20": {"dim": 1536, "depth": 20, "kernel_size": 9, "activation": "gelu"},
    "convmixer_768_32": {"dim": 768, "depth": 32, "kernel_size": 7, "activation": "relu"},
    "convmixer_1024_20_ks9_p14": {"dim": 1024, "depth": 20, "kernel_size": 9, "activation": "gelu"},
}
_CONVMIXER_SHAPE = ("dim", "depth", "kernel_size", "activation")


def register_model(name: str, default_arch: str) -> Callable[[Builder], Builder]:
    """Decorator: register a builder as model ``name`` whose ``arch`` defaults to ``default_arch``."""

    def deco(builder: Builder) -> Builder:
        builder.default_arch = default_arch  # type: ignore[attr-defined]
        return _MODELS.register(name)(builder)

    return deco


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


@register_model("vit", default_arch="vit_tiny_patch16_224")
def vit(num_classes: int, image_size: ImageSize, patch_size: int, in_chans: int, arch: str,
        options: dict[str, Any]) -> nn.Module:
    """Any timm ViT, with ``img_size``/``patch_size`` overridden and the options as timm keyword overrides."""
    import timm

    if not arch.startswith("vit_"):
        raise EtcbenchError(f"model vit needs a timm ViT arch (vit_...), got {arch!r}")
    try:
        return timm.create_model(arch, pretrained=False, img_size=image_size, patch_size=patch_size,
                                 num_classes=num_classes, in_chans=in_chans, **options)
    except (RuntimeError, TypeError) as exc:
        raise EtcbenchError(f"timm cannot build {arch} with {options}: {exc}") from exc


@register_model("convmixer", default_arch="convmixer")
def convmixer(num_classes: int, image_size: ImageSize, patch_size: int, in_chans: int, arch: str,
              options: dict[str, Any]) -> nn.Module:
    """timm's ConvMixer class with a ``patch_size`` stem, shaped by :func:`convmixer_arch`."""
    from timm.models.convmixer import ConvMixer
    from torch import nn

    shape = convmixer_arch({"arch": arch, **options})
    rest = {k: v for k, v in options.items() if k not in _CONVMIXER_SHAPE}
    activation = {"gelu": nn.GELU, "relu": nn.ReLU}[shape["activation"]]
    return ConvMixer(dim=shape["dim"], depth=shape["depth"], kernel_size=shape["kernel_size"],
                     patch_size=patch_size, num_classes=num_classes, in_chans=in_chans, act_layer=activation, **rest)


@register_model("resnet18", default_arch="resnet18")
def resnet18(num_classes: int, image_size: ImageSize, patch_size: int, in_chans: int, arch: str,
             options: dict[str, Any]) -> nn.Module:
    """timm's ResNet-18 with the stem for its input size (:func:`.cnn.build_resnet18`)."""
    from .cnn import build_resnet18

    return build_resnet18(num_classes, in_chans, image_size, arch=arch, **options)


def _adapted(kind: str, name: str, num_classes: int, image_size: ImageSize, patch_size: int, in_chans: int,
             arch: str, options: dict[str, Any]) -> nn.Module:
    if in_chans != 3 or not isinstance(image_size, int):
        raise EtcbenchError(f"{name} adapts square RGB images block by block; it cannot take {in_chans}-channel "
                            f"{image_size} inputs (grayscale-based EtC): pair it with an RGB scheme")
    from .adaptation import build_adapted

    return build_adapted(kind, num_classes, image_size, patch_size, arch=arch, **options)  # type: ignore[arg-type]


@register_model("resnet18_tanaka", default_arch="resnet18")
def resnet18_tanaka(num_classes: int, image_size: ImageSize, patch_size: int, in_chans: int, arch: str,
                    options: dict[str, Any]) -> nn.Module:
    """Tanaka's shared block-wise adaptation network + ResNet-18 (:mod:`.adaptation`)."""
    return _adapted("tanaka", "resnet18_tanaka", num_classes, image_size, patch_size, in_chans, arch, options)


@register_model("resnet18_madono", default_arch="resnet18")
def resnet18_madono(num_classes: int, image_size: ImageSize, patch_size: int, in_chans: int, arch: str,
                    options: dict[str, Any]) -> nn.Module:
    """Madono's per-block adaptation network with a block-mixing matrix + ResNet-18 (:mod:`.adaptation`)."""
    return _adapted("madono", "resnet18_madono", num_classes, image_size, patch_size, in_chans, arch, options)


# derived from the registry, for the modules that read them
MODELS = tuple(available())
DEFAULT_ARCH = {name: get(name).default_arch for name in MODELS}  # type: ignore[attr-defined]


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
        name: one of :func:`available` (:data:`MODELS`).
        num_classes: classifier outputs.
        image_size: input size in pixels, a side (square) or ``(rows, cols)``.
        patch_size: patch size; must equal the cipher's block size for isotropic networks.
        options: the model's config entry: ``arch`` (default :data:`DEFAULT_ARCH`) and model-specific settings.
        in_chans: input channels (3, or 1 for a grayscale plane).

    Raises:
        EtcbenchError: unknown model (``unknown model 'x'; available: ...``), or an arch or input it cannot take.
    """
    try:
        builder = get(name)
    except ValueError as exc:
        raise EtcbenchError(str(exc)) from None
    options = dict(options or {})
    arch = options.pop("arch", builder.default_arch)  # type: ignore[attr-defined]
    if isinstance(image_size, (list, tuple)):
        image_size = (int(image_size[0]), int(image_size[1]))
    return builder(num_classes, image_size, patch_size, in_chans, arch, options)
