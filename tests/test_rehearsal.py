"""The CPU rehearsal of config/paper.yaml: every model at the paper's size on every scheme it is paired with runs two
training steps of its real recipe, is evaluated, and the report renders (about 5 minutes on 2 cores)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from background_runs import Run, register
from background_runs import run as background_run
from offline_archive import shared_archive

from etcbench.config import resolve
from etcbench.grid import train_cells
from etcbench.recipes import recipe_for

REPO = Path(__file__).resolve().parents[1]


def _rehearsal(tmp_path_factory: pytest.TempPathFactory) -> Run | None:
    """The README's rehearsal command (started early, beside the other tests: ``tests/background_runs.py``)."""
    archive = shared_archive()
    if archive is None:
        return None
    workdir = tmp_path_factory.mktemp("rehearsal")
    return Run([sys.executable, "-m", "etcbench", "rehearse", "--configfile", "config/paper.yaml", "--workdir",
                str(workdir)], REPO, tmp_path_factory.mktemp("rehearsal-log") / "rehearse.log", workdir,
               {"ETCBENCH_CIFAR10_ARCHIVE": str(archive), "HF_HUB_OFFLINE": "1"}, timeout=1500)


register("paper_rehearsal", _rehearsal)


@pytest.fixture(scope="module")
def paper_rehearsal(tmp_path_factory, cifar_archive):
    """The rehearsal's folder, its ``rehearsal.json`` and its output (the module's tests read its files)."""
    run = background_run("paper_rehearsal", tmp_path_factory)
    res = run.wait()
    assert res.returncode == 0, res.stdout[-3000:]
    return run.workdir, json.loads((run.workdir / "rehearsal.json").read_text()), res.stdout


def test_every_cell_of_the_paper_grid_is_rehearsed_once(paper_rehearsal):
    workdir, result, stdout = paper_rehearsal
    config = resolve([REPO / "config/paper.yaml"])
    cells = [(c["setting"], c["scheme"], c["model"]) for c in result["cells"]]
    assert sorted(cells) == sorted(train_cells(config)) and len(cells) == len(set(cells)) == 30
    assert f"rehearsed {len(cells)} trained cells" in stdout
    for c in result["cells"]:  # the resolved recipe of every cell, untouched (the rehearsal only caps its length)
        assert c["recipe"] == recipe_for(config["train"], c["model"], c["scheme"]).to_dict()
        assert c["recipe_name"] == {"vit": "vit", "convmixer": "convmixer"}.get(c["model"], "default")


def test_model_cards_are_the_papers_models(paper_rehearsal):
    _, result, _ = paper_rehearsal
    for c in result["cells"]:
        card, where = c["model_card"], (c["setting"], c["scheme"], c["model"])
        loaded = card["pretrained"]
        if c["model"] == "vit":  # ViT-B/16 from the original ImageNet-21k weights' layout (a stand-in offline)
            assert card["arch"] == "vit_base_patch16_224.orig_in21k" and card["depth"] == 12, where
            assert (card["width"], card["heads"], card["mlp_width"], card["patch"]) == (768, 12, 3072, [16, 16])
            assert card["parameters"] == pytest.approx(85.8e6, rel=0.005), where
            assert loaded["source"].endswith("standins/vit_base_patch16_224.orig_in21k.safetensors")
            assert loaded["left_at_init"] == ["head.bias", "head.weight"], where
            plane = {"etc-gray": [21, 14], "etc-gray-444": [14, 42]}
            assert card["token_grid"] == plane.get(c["scheme"], [14, 14]), where
        elif c["model"] == "convmixer":  # ConvMixer-1024/20, kernel 9, timm's ImageNet weights, a fresh 16-px stem
            assert (card["arch"], card["width"], card["depth"], card["kernel_size"], card["patch"]) == (
                "convmixer_1024_20_ks9_p14.in1k", 1024, 20, 9, [16, 16]), where
            assert loaded["left_at_init"] == ["head.bias", "head.weight", "stem.0.bias", "stem.0.weight"], where
        else:  # ResNet-18: ImageNet stem at 224 px, CIFAR stem (full resolution) at 32 px
            assert card["depth"] == 18 and card["width"] == 512 and loaded == {"source": "none"}, where
            if c["model"] == "resnet18":  # full width (config.yaml's CPU-sized half width does not leak in)
                assert card["parameters"] == pytest.approx(11.18e6, rel=0.001), where
            size = int(c["setting"][1:].split("-")[0])
            assert card["stem"] == ("imagenet" if size > 64 else "cifar"), where
            assert card["token_grid"] == ([7, 7] if size == 224 else [4, 4]), where
            if c["model"] != "resnet18":
                assert size == 32 and card["classifier_input"] == [16, 32, 32], where


def test_training_ran_the_recipe_capped_to_two_steps(paper_rehearsal):
    workdir, _, _ = paper_rehearsal
    vit = json.loads((workdir / "s224-m16/etc/vit/metrics.json").read_text())["train"]
    assert (vit["steps"], vit["accumulation"], vit["micro_batch"], vit["warmup_steps"]) == (2, 2, 1, 1)
    assert vit["recipe"]["augment"] == "random_resized_crop" and vit["recipe"]["optimizer"] == "sgd"
    cnn = json.loads((workdir / "s32-m4/ele/resnet18_madono/metrics.json").read_text())["train"]
    assert cnn["recipe"]["schedule"] == "multistep" and cnn["recipe"]["milestones"] == [1]
    assert cnn["steps"] == 2 and cnn["micro_batch"] == 2


def test_weights_are_measured_then_dropped(paper_rehearsal):
    """Each cell's weights are deleted after evaluation (their size recorded) and training removed its resumable
    state, so the rehearsal of 30 cells at the paper's size fits in a few hundred MB of scratch disk."""
    workdir, result, _ = paper_rehearsal
    for c in result["cells"]:
        out = workdir / c["setting"] / c["scheme"] / c["model"]
        assert (out / "eval.json").is_file() and not (out / "model.pt").exists(), out
        assert (out / "metrics.json").is_file() and not (out / "state").exists(), out
        assert c["weight_bytes"] >= 4 * c["model_card"]["parameters"], out  # fp32: 4 bytes a parameter
    used = sum(f.stat().st_size for f in workdir.rglob("*") if f.is_file())
    assert used < 1.5e9, used


def test_the_report_renders(paper_rehearsal):
    workdir, result, _ = paper_rehearsal
    report = workdir / "report"
    acc = pd.read_csv(report / "accuracy.csv", dtype={"subsampling": str})
    assert len(acc[acc.subsampling == "none"]) == len(result["cells"]) and acc.top1.between(0, 1).all()
    for name in ("top1_by_model_scheme", "top1_vs_jpeg_quality", "jpeg_bpp_psnr", "examples"):
        assert (report / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    assert "vit_base_patch16_224.orig_in21k" in (report / "config.yaml").read_text()
