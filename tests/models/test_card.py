"""Model cards are read off the built module: they change when the model does."""

from __future__ import annotations

import pytest

from etcbench.models import build_model, model_card


def test_vit_card_reports_what_was_built():
    model = build_model("vit", 10, 64, 16, {"arch": "vit_tiny_patch16_224", "depth": 6})
    card = model_card(model, "vit", "vit_tiny_patch16_224", (3, 64, 64))
    assert card["depth"] == 6 and card["width"] == 192 and card["heads"] == 3 and card["mlp_width"] == 768
    assert card["patch"] == [16, 16] and card["token_grid"] == [4, 4] and card["tokens"] == 17
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["pretrained"] == {"source": "none"}
    deeper = model_card(build_model("vit", 10, 64, 16, {"depth": 7}), "vit", "vit_tiny_patch16_224", (3, 64, 64))
    assert deeper["depth"] == 7 and deeper["parameters"] > card["parameters"]


def test_convmixer_resnet_and_adapted_cards():
    cm = model_card(build_model("convmixer", 10, (48, 32), 8, {"dim": 32, "depth": 3, "kernel_size": 5},
                                in_chans=1), "convmixer", "convmixer", (1, 48, 32))
    assert (cm["width"], cm["depth"], cm["kernel_size"], cm["patch"], cm["token_grid"]) == (32, 3, 5, [8, 8], [6, 4])
    assert cm["input"] == [1, 48, 32] and cm["activation"] == "GELU"
    rn = model_card(build_model("resnet18", 10, 224, 16, {}), "resnet18", "resnet18", (3, 224, 224))
    assert rn["stem"] == "imagenet" and rn["stem_conv"] == {"kernel": 7, "stride": 2, "max_pool": True}
    assert rn["token_grid"] == [7, 7] and rn["parameters"] == pytest.approx(11.18e6, rel=0.01)
    ad = model_card(build_model("resnet18_madono", 10, 32, 4, {}), "resnet18_madono", "resnet18", (3, 32, 32))
    assert ad["adaptation"] == "MadonoAdaptation" and ad["adaptation_block"] == 4 and ad["stem"] == "cifar"
    assert ad["classifier_input"] == [16, 32, 32] and ad["token_grid"] == [4, 4]
