"""Strict pretrained loading: the paper's ViT-B/16 from a checkpoint with timm's tensor names, and every way a
checkpoint can fail to fit (another depth, another architecture, truncated, missing, unreachable hub)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from etcbench.errors import EtcbenchError
from etcbench.models import build_model, load_pretrained, model_card

PAPER_VIT = "vit_base_patch16_224.orig_in21k"


@pytest.fixture(scope="module")
def paper_vit_checkpoint(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A file laid out like timm's orig_in21k ViT-B/16 weights (no head, timm's names), with random values."""
    torch.manual_seed(0)
    state = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0).state_dict()
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path, state


def test_paper_vit_loads_strictly_with_only_the_head_left_at_init(paper_vit_checkpoint):
    path, state = paper_vit_checkpoint
    model = build_model("vit", 10, 224, 16, {"arch": PAPER_VIT})
    report = load_pretrained(model, "vit", PAPER_VIT, str(path))
    assert report["left_at_init"] == ["head.bias", "head.weight"] and report["resampled"] == []
    assert report["loaded"] == len(state) and report["source"] == f"file:{path}" and len(report["sha256"]) == 64
    own = model.state_dict()
    for name in ("blocks.11.mlp.fc2.weight", "pos_embed", "cls_token", "patch_embed.proj.weight", "norm.bias"):
        assert torch.equal(own[name], state[name]), name
    card = model_card(model, "vit", PAPER_VIT, (3, 224, 224), report)
    assert card["depth"] == 12 and card["width"] == 768 and card["token_grid"] == [14, 14]
    assert card["parameters"] == pytest.approx(85.8e6, rel=0.005)


def test_a_shallower_model_is_refused_by_name(paper_vit_checkpoint):
    path, _ = paper_vit_checkpoint
    model = build_model("vit", 10, 224, 16, {"arch": PAPER_VIT, "depth": 6})  # the bug of a merged config layer
    with pytest.raises(EtcbenchError, match=r"does not fit vit .*unexpected \(blocks\.6\.") as err:
        load_pretrained(model, "vit", PAPER_VIT, str(path))
    assert "\n" not in str(err.value) and "network" not in str(err.value)


def test_another_architecture_is_refused(paper_vit_checkpoint, tmp_path):
    path, _ = paper_vit_checkpoint
    model = build_model("resnet18", 10, 224, 16, {})
    with pytest.raises(EtcbenchError, match="does not fit resnet18 .*missing"):
        load_pretrained(model, "resnet18", "resnet18", str(path))
    small = tmp_path / "tiny.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict(), small)
    with pytest.raises(EtcbenchError, match="of another shape"):
        load_pretrained(build_model("vit", 10, 224, 16, {"arch": PAPER_VIT}), "vit", PAPER_VIT, str(small))


def test_truncated_and_missing_checkpoints_say_so(paper_vit_checkpoint, tmp_path):
    path, _ = paper_vit_checkpoint
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    model = build_model("vit", 10, 224, 16, {"arch": PAPER_VIT})
    with pytest.raises(EtcbenchError, match="could not read checkpoint .*truncated or not a checkpoint"):
        load_pretrained(model, "vit", PAPER_VIT, str(cut))
    cut_pth = tmp_path / "cut.pth"
    torch.save({"a": torch.zeros(1000)}, cut_pth)
    cut_pth.write_bytes(cut_pth.read_bytes()[:300])
    with pytest.raises(EtcbenchError, match="truncated or not a checkpoint"):
        load_pretrained(model, "vit", PAPER_VIT, str(cut_pth))
    with pytest.raises(EtcbenchError, match="does not exist"):
        load_pretrained(model, "vit", PAPER_VIT, str(tmp_path / "missing.pth"))
    assert load_pretrained(model, "vit", PAPER_VIT, False) == {"source": "none"}


def test_embeddings_resampled_on_purpose_and_rgb_weights_for_one_channel(tmp_path):
    src = timm.create_model("vit_tiny_patch16_224", num_classes=0).state_dict()
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in src.items()}, str(path))
    # 64 px with 8-px patches: an 8x8 token grid instead of 14x14, and 8-px instead of 16-px patch weights
    model = build_model("vit", 10, 64, 8, {"arch": "vit_tiny_patch16_224"})
    report = load_pretrained(model, "vit", "vit_tiny_patch16_224", str(path))
    assert report["resampled"] == ["patch_embed.proj.weight", "pos_embed"]
    assert model.pos_embed.shape == (1, 65, 192)
    plane = build_model("vit", 10, (96, 64), 16, {"arch": "vit_tiny_patch16_224"}, in_chans=1)
    report = load_pretrained(plane, "vit", "vit_tiny_patch16_224", str(path))
    assert "patch_embed.proj.weight" in report["resampled"]
    assert torch.allclose(plane.patch_embed.proj.weight, src["patch_embed.proj.weight"].sum(1, keepdim=True))


def test_convmixer_stem_and_cifar_resnet_stem_stay_at_init(tmp_path):
    src = timm.create_model("convmixer_768_32", num_classes=1000).state_dict()  # timm's 7-px stem, 1000 classes
    path = tmp_path / "cm.safetensors"
    save_file({k: v.contiguous() for k, v in src.items()}, str(path))
    model = build_model("convmixer", 10, 64, 16, {"arch": "convmixer_768_32"})
    report = load_pretrained(model, "convmixer", "convmixer_768_32", str(path))
    assert report["left_at_init"] == ["head.bias", "head.weight", "stem.0.bias", "stem.0.weight"]
    assert torch.equal(model.blocks[31][1].weight, src["blocks.31.1.weight"])
    rn = timm.create_model("resnet18", num_classes=1000).state_dict()
    path = tmp_path / "rn.pth"
    torch.save(rn, path)
    small = build_model("resnet18", 10, 32, 4, {})  # CIFAR stem: the 7x7 ImageNet conv does not fit
    assert load_pretrained(small, "resnet18", "resnet18", str(path))["left_at_init"] == [
        "conv1.weight", "fc.bias", "fc.weight"]
    large = build_model("resnet18", 10, 224, 16, {})  # ImageNet stem: only the head differs
    assert load_pretrained(large, "resnet18", "resnet18", str(path))["left_at_init"] == ["fc.bias", "fc.weight"]


def test_unreachable_hub_says_which_file_to_place_where():
    code = ("from etcbench.models import build_model, load_pretrained\n"
            f"m = build_model('vit', 10, 224, 16, {{'arch': '{PAPER_VIT}'}})\n"
            f"load_pretrained(m, 'vit', '{PAPER_VIT}', True)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode != 0
    line = res.stderr.strip().splitlines()[-1]
    assert "could not fetch the pretrained weights of vit_base_patch16_224.orig_in21k" in line
    assert "https://huggingface.co/timm/vit_base_patch16_224.orig_in21k" in line and "pretrained.vit" in line
    with pytest.raises(EtcbenchError, match="no hub weights"):
        load_pretrained(build_model("vit", 10, 32, 8, {"depth": 1}), "vit", "vit_tiny_patch16_224.nope", True)
