"""etcbench.grid: the grid's checks and expansion, called as the rules call them, and its import weight."""

from __future__ import annotations

import subprocess
import sys

import pytest

from etcbench import ciphers
from etcbench.config import resolve
from etcbench.errors import EtcbenchError
from etcbench.grid import (
    GridError,
    accuracy_records,
    attack_classifier,
    attack_runs,
    check_grid,
    compression_records,
    evaluated_cells,
    jpeg_model_label,
    jpeg_subsamplings,
    jpeg_trained_cells,
    jpeg_variants,
    key_records,
    plane_subsampling,
    position_leak_runs,
    train_cells,
    transform_arms,
)


def test_importing_the_grid_loads_neither_numpy_nor_torch():
    code = "import sys, etcbench.grid; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_plane_schemes_are_coded_at_their_own_subsampling_only():
    config = {"jpeg": {"qualities": [50, 90], "subsampling": ["444", "420"]}}
    for name in ciphers.available():
        planes = ciphers.create(name, block_size=8).plane_subsampling
        assert plane_subsampling(name) == planes
        expected = [f"q{q}-{s}" for q in (50, 90) for s in ([planes] if planes else ["444", "420"])]
        assert jpeg_variants(config, name) == expected
        assert jpeg_subsamplings(config, name) == ([planes] if planes else ["444", "420"])


def test_expansion_of_the_smoke_config():
    config = resolve(["config/smoke.yaml"])
    check_grid(config)
    cells = train_cells(config)
    # one record per (setting, scheme) and seed with a trained, JPEG-trained or transformed model, holding them all
    trained = list(dict.fromkeys((sid, scheme) for sid, scheme, _ in cells))
    assert trained == [(sid, s) for sid, s in evaluated_cells(config) if s != "pixel-shuffle"]
    assert transform_arms(config) == [("s32-m8", "pixel-shuffle", "vit")]
    assert jpeg_trained_cells(config) == [("s32-m8", "etc", "convmixer")]
    assert jpeg_model_label(config, "etc", "convmixer") == "convmixer@q50-420"
    assert evaluated_cells(config) == [("s32-m8", "plain"), ("s32-m8", "etc"), ("s32-m8", "etc-gray"),
                                       ("s32-m8", "pe"), ("s32-m8", "pixel-shuffle"), ("s32-m4", "le"),
                                       ("s32-m4", "ele")]
    assert accuracy_records(config) == [f"results/eval/{sid}/{scheme}/seed{seed}.json"
                                        for sid, scheme in evaluated_cells(config) for seed in config["seeds"]]
    # the wrong key of the transformed model: the other key of the scheme it is evaluated on
    assert "results/keys/s32-m8/pixel-shuffle.other.json" in key_records(config)
    assert "results/keys/s32-m4/pixel-shuffle.other.json" not in key_records(config)
    assert len(compression_records(config)) == sum(len(jpeg_variants(config, s)) for e in config["grid"]
                                                   for s in e["schemes"])
    runs = attack_runs(config)
    # a {name: [schemes]} entry runs against those schemes only (pixel-shuffle of s32-m8 is not attacked)
    assert [(sid, s) for sid, s, _ in runs if sid == "s32-m8"] == [("s32-m8", s) for s in
                                                                   ("plain", "etc", "etc-gray", "pe")]
    assert all(names == ["fr", "itn", "gan", "gan-paired", "jigsaw", "kpa"] for sid, _, names in runs
               if sid == "s32-m8")
    assert [(sid, s, names) for sid, s, names in runs if sid == "s32-m4"] == [
        ("s32-m4", "pixel-shuffle", ["shared-key"]), ("s32-m4", "le", ["shared-key"])]
    assert attack_classifier(config, "s32-m8") == "results/models/s32-m8/plain/vit/seed0/model.pt"
    assert attack_classifier(config, "s32-m4") is None
    assert position_leak_runs(config) == [("s32-m8", "etc-gray", "vit", 0)]


def _attack_config(attacks, options=None, train_images=10):
    config = resolve(["config/smoke.yaml"])
    config["grid"] = [{"image_size": 32, "block_size": 8, "schemes": {"plain": [], "etc": [], "pe": []},
                       "attacks": attacks}]
    config["attack"]["options"] = options or {}
    config["attack"]["train_images"] = train_images
    return config


def test_attacks_by_name_skip_schemes_they_cannot_apply_to():
    runs = attack_runs(_attack_config(["fr", "shared-key"]))
    assert [(s, names) for _, s, names in runs] == [("plain", ["fr"]), ("etc", ["fr"]), ("pe", ["fr"])]


@pytest.mark.parametrize(("attacks", "options", "message"), [
    ([{"shared-key": ["etc"]}], {}, "shared-key applies to pixel-shuffle and le"),
    ([{"fr": ["le"]}], {}, "names scheme le, which the setting does not have"),
    (["rot13"], {}, "unknown attack 'rot13'"),
    (["itn"], {"itn": {"depth": 3}}, "attack.options.itn: attack 'itn' has no option depth"),
    (["itn"], {"itn": {"optimizer": "lbfgs"}}, "optimizer must be one of sgd, adam"),
    (["kpa"], {"kpa": {"pairs": [1, 16]}}, "16 known pairs exceed the attacker's 10 images"),
])
def test_bad_attack_configs_stop_before_any_job(attacks, options, message):
    with pytest.raises(GridError, match=message):
        check_grid(_attack_config(attacks, options))


@pytest.mark.parametrize(("grid", "message"), [
    ([{"image_size": 40, "block_size": 16, "schemes": {"etc": []}}], "not a multiple of block_size 16"),
    ([{"image_size": 48, "block_size": 16, "schemes": {"etc-gray": []}}], "2 x 16 for etc-gray"),
    ([{"image_size": 32, "block_size": 8, "schemes": {}}, {"image_size": 32, "block_size": 8, "schemes": {}}],
     "settings 1 and 2 are both s32-m8"),
])
def test_bad_grids(grid, message):
    config = {"grid": grid, "attack": {"attacker_keys": 2}, "key_seed": 1}
    with pytest.raises(GridError, match=message):
        check_grid(config)


def test_pe_is_exempt_from_the_block_grid():
    config = {"grid": [{"image_size": 36, "block_size": 8, "schemes": {"pe": [], "pe-fixed": []}}], "key_seed": 1,
              "attack": {"attacker_keys": 2}}
    assert list(check_grid(config)) == ["s36-m8"]




def _arm_config(**setting):
    config = resolve(["config/smoke.yaml"])
    config["grid"] = [{"image_size": 32, "block_size": 8, "schemes": {"plain": ["vit"], "etc": ["vit"],
                                                                      "pixel-shuffle": []}, **setting}]
    return config


@pytest.mark.parametrize(("setting", "train_jpeg", "message"), [
    ({"transform": ["vit"], "schemes": {"plain": [], "pixel-shuffle": []}}, None,
     "transform names vit, which the setting does not train on plain images"),
    ({"transform": ["vit"], "schemes": {"plain": ["vit"], "etc": []}}, None,
     "transform needs a scheme with a model transformation"),
    ({"jpeg_trained": {"etc": ["vit"]}}, "unset", "jpeg_trained needs train.jpeg"),
    ({"jpeg_trained": {"le": ["vit"]}}, {"quality": 50}, "jpeg_trained names scheme le, which the setting does not"),
    ({"jpeg_trained": {"etc": ["vit"]}}, {"quality": 40}, "tested at q40-420, which is not among its JPEG test sets"),
    ({"jpeg_trained": {"etc": ["vit"]}}, {"quality": 50, "augment": "flip"}, "augment"),
])
def test_bad_arms_stop_before_any_job(setting, train_jpeg, message):
    config = _arm_config(**setting)
    if train_jpeg == "unset":
        config["train"].pop("jpeg", None)
    elif train_jpeg is not None:
        config["train"]["jpeg"] = train_jpeg
    with pytest.raises(EtcbenchError, match=message):
        check_grid(config)
