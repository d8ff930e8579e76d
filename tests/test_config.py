"""Config layers: model options and recipes replaced whole per entry; paper.yaml resolves to the paper's models."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from etcbench.config import ConfigError, merge_layers, model_entry, recipe_json, resolve
from etcbench.recipes import recipe_for

REPO = Path(__file__).resolve().parents[1]


def test_paper_config_resolves_to_the_papers_models_and_recipes():
    config = resolve([REPO / "config/paper.yaml"])
    # the default layer's tiny-ViT depth does not survive into ViT-B/16
    assert model_entry(config, "vit") == {"arch": "vit_base_patch16_224.orig_in21k"}
    assert model_entry(config, "convmixer") == {"arch": "convmixer_1024_20_ks9_p14.in1k"}
    assert config["pretrained"] == {"vit": True, "convmixer": True, "resnet18": False, "resnet18_tanaka": False,
                                    "resnet18_madono": False}
    vit = recipe_for(config["train"], "vit", "etc")
    assert (vit.optimizer, vit.lr, vit.momentum, vit.weight_decay, vit.batch_size, vit.steps, vit.warmup_steps,
            vit.schedule, vit.min_lr, vit.grad_clip, vit.augment, vit.crop_scale) == (
        "sgd", 0.03, 0.9, 0.0, 512, 10000, 500, "cosine", 0.0, 1.0, "random_resized_crop", (0.05, 1.0))
    cnn = recipe_for(config["train"], "resnet18_madono", "ele")
    assert (cnn.optimizer, cnn.nesterov, cnn.lr, cnn.weight_decay, cnn.batch_size, cnn.epochs, cnn.schedule,
            cnn.milestones) == ("sgd", True, 0.1, 5e-4, 512, 305, "multistep", (150, 225))
    assert recipe_for(config["train"], "convmixer", "pe").schedule == "onecycle"
    assert all(recipe_for(config["train"], m, "etc").source for m in ("vit", "convmixer", "resnet18"))
    # PE as published and with a fixed key, in the 32-px baseline setting
    baseline = next(e for e in config["grid"] if e["image_size"] == 32)
    assert baseline["schemes"]["pe"] == ["resnet18"] and baseline["schemes"]["pe-fixed"] == ["resnet18"]
    # the layer above the paper config keeps its own keys, merged key by key as before
    assert config["dataset"]["train_size"] == 45000 and config["scheme_options"]["etc"]["np_fraction"] == "random"


def test_entries_replace_whole_other_mappings_merge():
    merged = merge_layers([
        ("a", {"dataset": {"train_size": 5, "val_size": 7}, "model_options": {"vit": {"arch": "x", "depth": 6}},
               "train": {"default": {"epochs": 3, "lr": 0.1}}}),
        ("b", {"dataset": {"train_size": 9}, "model_options": {"vit": {"arch": "y"}},
               "train": {"default": {"epochs": 1}, "vit": {"steps": 2}}}),
    ])
    assert merged["dataset"] == {"train_size": 9, "val_size": 7}
    assert merged["model_options"] == {"vit": {"arch": "y"}}
    assert merged["train"] == {"default": {"epochs": 1}, "vit": {"steps": 2}}


def test_a_layer_that_changes_a_model_without_saying_so_is_refused():
    base = ("config/config.yaml", {"model_options": {"vit": {"arch": "vit_tiny_patch16_224", "depth": 6}}})
    with pytest.raises(ConfigError, match=r"^paper: model_options.vit names no architecture \(arch\)"):
        merge_layers([base, ("paper", {"model_options": {"vit": {"depth": 12}}})])
    with pytest.raises(ConfigError, match=r"keeps arch vit_tiny_patch16_224 but leaves out depth: 6 of "
                                          r"config/config.yaml"):
        merge_layers([base, ("mine", {"model_options": {"vit": {"arch": "vit_tiny_patch16_224"}}})])
    same = merge_layers([base, ("mine", {"model_options": {"vit": {"arch": "vit_tiny_patch16_224", "depth": 4}}})])
    assert same["model_options"]["vit"] == {"arch": "vit_tiny_patch16_224", "depth": 4}


@pytest.mark.parametrize("layer, message", [
    ({"train": {"default": {"epochz": 3}}}, r"config train.default: Additional properties .*epochz"),
    ({"train": {"vitt": {"epochs": 3}}}, r"config train: 'vitt' does not match"),
    ({"train": {"vit": {"epochs": 3, "steps": 4}}}, r"train.vit: a recipe counts epochs or steps"),
    ({"model_options": {"convmixer": {"arch": "convmixer_768_32", "dimm": 3}}}, r"model_options.convmixer.*dimm"),
    ({"dataset": {"train_sise": 10}}, r"config dataset: Additional properties .*train_sise"),
    ({"grid": [{"image_size": 30, "block_size": 4, "schemes": {"etc": []}}]}, r"not a multiple of block_size 4"),
    # a typo at every level of nesting stops the run before any job, naming where it is
    ({"key_sed": 3}, r"config \(top level\): Additional properties .*key_sed"),
    ({"grid": [{"image_size": 32, "block_sise": 4, "schemes": {"etc": []}}]}, r"config grid.0: .*block_sise"),
    ({"grid": [{"image_size": 32, "block_size": 4, "schemes": {"etcc": []}}]}, r"etcc"),
    ({"grid": [{"image_size": 32, "block_size": 4, "schemes": {"etc": ["vitt"]}}]}, r"vitt"),
    ({"grid": [{"image_size": 32, "block_size": 4, "schemes": {"etc": []}, "attacks": ["frr"]}]}, r"frr"),
    ({"attack": {"num_imagez": 3}}, r"config attack: Additional properties .*num_imagez"),
    ({"attack": {"options": {"itn": {"epochz": 3}}}}, r"epochz"),
    ({"jpeg": {"qualities": [50], "subsampling": ["411"]}}, r"411"),
    ({"jpeg": {"qualities": [101]}}, r"101"),
    ({"report": {"num_examplez": 3}}, r"config report: Additional properties .*num_examplez"),
    ({"scheme_options": {"etc": {"rotate": True}}}, r"rotate"),
    ({"key_per_seed": "yes"}, r"key_per_seed: 'yes' is not of type 'boolean'"),
])
def test_bad_layers_name_the_key(tmp_path, layer, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(layer))
    with pytest.raises(ConfigError, match=message):
        resolve([path])


def test_recipe_json_spells_out_every_setting():
    config = resolve([REPO / "config/smoke.yaml"])
    text = recipe_json(config, "vit", "etc")
    assert '"epochs":1' in text and '"lr":0.001' in text and '"accumulation":1' in text and '"nesterov":false' in text


def test_what_the_snakefile_parses_imports_neither_torch_nor_scipy():
    """Every ``snakemake`` call (a dry run, each cluster job) resolves the config and plans the grid's attacks:
    the attack registry must fill without torch, timm or scipy (they cost about 4 s per call)."""
    code = ("import sys\n"
            "from etcbench import config, grid\n"
            "for name in ('config', 'smoke', 'paper'):\n"
            "    cfg = config.resolve([f'config/{name}.yaml'], {}, defaults='config/config.yaml',\n"
            "                         schema='workflow/schemas/config.schema.yaml')\n"
            "    assert any(grid.attack_plan(entry) for entry in cfg['grid']), name\n"
            "print(sorted(m for m in ('torch', 'timm', 'scipy', 'sklearn') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                         cwd=REPO)
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "[]", res.stdout + res.stderr
