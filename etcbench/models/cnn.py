"""ResNet-18, the conventional CNN baseline, with the stem that suits its input size.

timm's ResNet-18 is the ImageNet network: a 7x7 stride-2 convolution and a stride-2 max-pool shrink the input
4x before the first residual stage, so a 32-px CIFAR image ends as a 1x1 feature map. For small inputs the
standard CIFAR ResNet-18 (He et al.; the stem of the CIFAR code the baselines build on) replaces that stem with
one 3x3 stride-1 convolution and no max-pool. ``stem="auto"`` takes the CIFAR stem for inputs of
:data:`CIFAR_STEM_MAX` px or less and the ImageNet stem above.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from ..errors import EtcbenchError

__all__ = ["CIFAR_STEM_MAX", "STEMS", "build_resnet18", "resnet_stem"]

CIFAR_STEM_MAX = 64
STEMS = ("auto", "cifar", "imagenet")


def resnet_stem(stem: str, image_size: int | tuple[int, int]) -> Literal["cifar", "imagenet"]:
    """The stem ``stem`` resolves to for ``image_size`` inputs (a side or ``(rows, cols)``)."""
    if stem not in STEMS:
        raise EtcbenchError(f"unknown ResNet stem {stem!r}; use one of {', '.join(STEMS)}")
    if stem != "auto":
        return stem  # type: ignore[return-value]
    side = max(image_size) if isinstance(image_size, (tuple, list)) else image_size
    return "cifar" if side <= CIFAR_STEM_MAX else "imagenet"


def build_resnet18(num_classes: int, in_chans: int, image_size: int | tuple[int, int], stem: str = "auto",
                   arch: str = "resnet18", **timm_kwargs: Any) -> nn.Module:
    """timm's ResNet-18 with the stem :func:`resnet_stem` picks (``model.stem_type`` records it)."""
    import timm

    if arch.split(".")[0] != "resnet18":
        raise EtcbenchError(f"the ResNet baseline is resnet18, not {arch!r}")
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **timm_kwargs)
    kind = resnet_stem(stem, image_size)
    if kind == "cifar":
        model.conv1 = nn.Conv2d(in_chans, model.conv1.out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as timm inits its convs
        model.maxpool = nn.Identity()
    model.stem_type = kind
    return model
