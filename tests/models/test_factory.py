"""The classifiers: patch = block, one-channel planes, timm ConvMixers with a block-sized stem, ResNet-18 stems."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from etcbench.errors import EtcbenchError
from etcbench.models import build_model
from etcbench.models.cnn import resnet_stem
from etcbench.models.factory import TIMM_CONVMIXERS, convmixer_arch

SIZE, BLOCK = 32, 8


@pytest.mark.parametrize("name", ["vit", "convmixer", "resnet18", "resnet18_tanaka", "resnet18_madono"])
def test_models_take_block_sized_patches(name):
    opts = {"vit": {"depth": 1}, "convmixer": {"dim": 16, "depth": 1}}.get(name, {})
    model = build_model(name, 10, SIZE, BLOCK, opts)
    out = model(torch.zeros(2, 3, SIZE, SIZE))
    assert out.shape == (2, 10)
    if name == "vit":
        assert model.patch_embed.patch_size == (BLOCK, BLOCK) and model.patch_embed.num_patches == 16
    if name == "convmixer":
        assert model.stem[0].kernel_size == (BLOCK, BLOCK) and model.stem[0].stride == (BLOCK, BLOCK)


@pytest.mark.parametrize("name", ["vit", "convmixer", "resnet18"])
def test_models_take_one_channel_rectangular_planes(name):
    opts = {"vit": {"depth": 1}, "convmixer": {"dim": 16, "depth": 1}}.get(name, {})
    model = build_model(name, 10, (48, 32), BLOCK, opts, in_chans=1)
    assert model(torch.zeros(2, 1, 48, 32)).shape == (2, 10)
    if name == "vit":
        assert model.patch_embed.grid_size == (6, 4) and model.patch_embed.proj.in_channels == 1
    with pytest.raises(RuntimeError):
        model(torch.zeros(2, 3, 48, 32))


def test_adaptation_networks_refuse_grayscale_planes():
    with pytest.raises(EtcbenchError, match="RGB"):
        build_model("resnet18_tanaka", 10, (48, 32), BLOCK, {}, in_chans=1)


@pytest.mark.parametrize("arch", sorted(TIMM_CONVMIXERS))
def test_timm_convmixer_archs_are_timms_networks_with_a_block_sized_stem(arch):
    ours = build_model("convmixer", 10, 64, 16, {"arch": f"{arch}.in1k"}).state_dict()
    theirs = timm.create_model(arch, pretrained=False, num_classes=10).state_dict()
    assert ours.keys() == theirs.keys()
    differ = sorted(k for k in ours if ours[k].shape != theirs[k].shape)
    assert differ == ["stem.0.weight"] and ours["stem.0.weight"].shape[-2:] == (16, 16)


def test_convmixer_arch_options():
    assert convmixer_arch({"arch": "convmixer", "dim": 32}) == {"dim": 32, "depth": 8, "kernel_size": 5,
                                                              "activation": "gelu"}
    with pytest.raises(EtcbenchError, match="fixes depth"):
        build_model("convmixer", 10, 32, 8, {"arch": "convmixer_768_32", "depth": 4})
    with pytest.raises(EtcbenchError, match="unknown ConvMixer arch"):
        build_model("convmixer", 10, 32, 8, {"arch": "convmixer_1_2"})
    with pytest.raises(EtcbenchError, match="timm ViT"):
        build_model("vit", 10, 32, 8, {"arch": "resnet18"})
    with pytest.raises(EtcbenchError, match="unknown model"):
        build_model("vgg", 10, 32, 8, {})


@pytest.mark.parametrize("size, stem, grid", [(32, "cifar", 4), (64, "cifar", 8), (96, "imagenet", 3),
                                              (224, "imagenet", 7)])
def test_resnet18_takes_the_cifar_stem_up_to_64_px(size, stem, grid):
    model = build_model("resnet18", 10, size, 16, {"arch": "resnet18"}).eval()
    assert model.stem_type == stem and resnet_stem("auto", size) == stem
    if stem == "cifar":
        assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
        assert isinstance(model.maxpool, nn.Identity)
    else:
        assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
        assert isinstance(model.maxpool, nn.MaxPool2d)
    features = model.forward_features(torch.zeros(1, 3, size, size))
    assert features.shape[-2:] == (grid, grid)
    forced = build_model("resnet18", 10, size, 16, {"arch": "resnet18", "stem": "imagenet"})
    assert forced.stem_type == "imagenet"
    with pytest.raises(EtcbenchError, match="unknown ResNet stem"):
        build_model("resnet18", 10, size, 16, {"stem": "deep"})
