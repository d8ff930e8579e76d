"""Model cards: what a built model *is*, read off the module itself, not off the config that asked for it.

Every training job records its card in ``metrics.json`` (``train.model_card``), so a run shows the architecture,
depth, width, patch, token grid, parameter count and pretrained source it really trained.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["model_card"]


def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def _vit(model: nn.Module) -> dict[str, Any]:
    grid = _pair(model.patch_embed.grid_size)
    return {"family": "vit", "depth": len(model.blocks), "width": int(model.embed_dim),
            "heads": int(model.blocks[0].attn.num_heads), "mlp_width": int(model.blocks[0].mlp.fc1.out_features),
            "patch": _pair(model.patch_embed.patch_size), "token_grid": grid,
            "tokens": grid[0] * grid[1] + int(model.num_prefix_tokens)}


def _convmixer(model: nn.Module, image: list[int]) -> dict[str, Any]:
    patch = _pair(model.stem[0].kernel_size)
    depthwise = model.blocks[0][0].fn[0]
    return {"family": "convmixer", "depth": len(model.blocks), "width": int(model.num_features),
            "kernel_size": _pair(depthwise.kernel_size)[0], "activation": type(model.stem[1]).__name__,
            "patch": patch, "token_grid": [image[0] // patch[0], image[1] // patch[1]]}


def _resnet(model: nn.Module, image: list[int]) -> dict[str, Any]:
    stem = getattr(model, "stem_type", "imagenet")
    reduction = 8 if stem == "cifar" else 32  # three stride-2 stages, plus the stem's 4x for ImageNet
    return {"family": "resnet", "depth": 18, "width": int(model.num_features), "stem": stem,
            "stem_conv": {"kernel": _pair(model.conv1.kernel_size)[0], "stride": _pair(model.conv1.stride)[0],
                          "max_pool": not isinstance(model.maxpool, nn.Identity)},
            "patch": None, "token_grid": [-(-image[0] // reduction), -(-image[1] // reduction)]}


def model_card(model: nn.Module, name: str, arch: str, input_shape: tuple[int, int, int],
               pretrained: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card of a built ``model`` (config name ``name``, ``arch``) for ``(C, H, W)`` inputs.

    ``token_grid`` is the grid of tokens (ViT, ConvMixer) or of the last feature map (ResNet); ``pretrained`` is
    the report of :func:`etcbench.models.pretrained.load_pretrained`.
    """
    image = [int(input_shape[1]), int(input_shape[2])]
    card: dict[str, Any] = {"model": name, "arch": arch, "input": [int(s) for s in input_shape]}
    if name == "vit":
        card.update(_vit(model))
    elif name == "convmixer":
        card.update(_convmixer(model, image))
    elif name == "resnet18":
        card.update(_resnet(model, image))
    else:  # adaptation network + ResNet-18
        adapt = model.adaptation
        card.update(_resnet(model.classifier, image))
        card.update({"family": "adapted-resnet", "adaptation": type(adapt).__name__,
                     "adaptation_block": int(adapt.block_size), "adapted_channels": int(adapt.channels),
                     "classifier_input": [int(adapt.channels), *image]})
    card["parameters"] = sum(p.numel() for p in model.parameters())
    card["pretrained"] = pretrained or {"source": "none"}
    return card
