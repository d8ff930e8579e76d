"""The model-transformation arm: a ViT trained on plain images, transformed with a pixel-shuffling key, gives on the
encrypted images what it gave on the plain ones, and is near chance with a wrong key; the evaluation stage runs it
beside the trained models and the report tabulates it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.data.transforms import normalize, to_nchw
from etcbench.errors import EtcbenchError
from etcbench.evaluate import evaluate_models, predict_arrays, save_trained_model
from etcbench.io import load_npz, save_npz
from etcbench.labels import transformed_label
from etcbench.models import build_model
from etcbench.report import arms, tables

SIZE, BLOCK, CLASSES = 32, 8, 10
VIT = {"arch": "vit_tiny_patch16_224", "depth": 2}


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_model("vit", CLASSES, SIZE, BLOCK, VIT).eval()


def _logits(model, images):
    with torch.no_grad():
        return model(normalize(to_nchw(images))).double()


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), negative_positive=st.booleans(), scramble=st.booleans())
def test_transformed_vit_on_encrypted_images_equals_the_plain_vit_on_plain_images(vit, seed, negative_positive,
                                                                                  scramble):
    scheme = ciphers.create("pixel-shuffle", block_size=BLOCK, negative_positive=negative_positive, scramble=scramble)
    key = scheme.generate_key(seed=seed, image_size=(SIZE, SIZE))
    x = np.random.default_rng(seed).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    transformed = scheme.transform_model(vit, key)
    plain = _logits(vit, x)
    assert torch.allclose(_logits(transformed, scheme.encrypt(x, key)), plain, atol=1e-4)
    # the model itself is untouched, and the untransformed model on encrypted images is another function
    assert torch.equal(_logits(vit, x), plain)
    assert (_logits(vit, scheme.encrypt(x, key)) - plain).abs().max() > 1e-2


def test_transformed_vit_with_a_wrong_key_is_another_function(vit):
    scheme = ciphers.create("pixel-shuffle", block_size=BLOCK)
    key, wrong = (scheme.generate_key(seed=s, image_size=(SIZE, SIZE)) for s in (1, 2))
    x = np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    transformed = scheme.transform_model(vit, key)
    assert (_logits(transformed, scheme.encrypt(x, wrong)) - _logits(vit, x)).abs().max() > 1e-2


def test_only_models_and_keys_that_fit_are_transformed(vit):
    scheme = ciphers.create("pixel-shuffle", block_size=BLOCK)
    key = scheme.generate_key(seed=1, image_size=(SIZE, SIZE))
    convmixer = build_model("convmixer", CLASSES, SIZE, BLOCK, {"arch": "convmixer", "dim": 8, "depth": 1,
                                                                "kernel_size": 3})
    with pytest.raises(ValueError, match="is not a ViT with a convolutional patch embedding"):
        scheme.transform_model(convmixer, key)
    other_patch = build_model("vit", CLASSES, SIZE, 4, VIT)
    with pytest.raises(ValueError, match="the patch size must equal the block size"):
        scheme.transform_model(other_patch, key)
    with pytest.raises(ValueError, match=r"reads a \(4, 4\) token grid; the key.s 16x16 images have a \(2, 2\) block"):
        scheme.transform_model(vit, scheme.generate_key(seed=1, image_size=(16, 16)))
    etc = ciphers.create("etc", block_size=BLOCK)
    assert not etc.transforms_models and scheme.transforms_models
    with pytest.raises(NotImplementedError, match="'etc' has no model transformation"):
        etc.transform_model(vit, etc.generate_key(seed=1, image_size=(SIZE, SIZE)))


def _save_plain_vit(path, vit, scheme="plain", size=SIZE):
    spec = {"model": "vit", "options": VIT, "num_classes": CLASSES, "image_size": size, "patch_size": BLOCK,
            "in_chans": 3}
    record = {"dataset": "cifar10", "image_size": size, "block_size": BLOCK, "model": "vit", "scheme": scheme,
              "jpeg_quality": None, "subsampling": "none", "seed": 0}
    save_trained_model(path, vit, spec, {"key_fingerprint": "plain", "record": record})


@pytest.fixture
def arm(tmp_path, vit):
    """A plain ViT saved as the train stage saves it, a pixel-shuffling key and another one, a plain test set."""
    scheme = ciphers.create("pixel-shuffle", block_size=BLOCK)
    for name, seed in (("own", 1), ("other", 2)):
        ciphers.save_key(scheme.generate_key(seed=seed, image_size=(SIZE, SIZE)), tmp_path / f"{name}.key.npz")
    _save_plain_vit(tmp_path / "plain-vit.pt", vit)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (40, SIZE, SIZE, 3), dtype=np.uint8), np.arange(40) % CLASSES
    save_npz(tmp_path / "plain.npz", x=x, y=y, key_fingerprint=np.array("plain"), scheme=np.array("plain"))
    return tmp_path


def test_the_evaluation_runs_the_transformed_model_and_records_how_exactly_it_matches(arm, vit):
    result = evaluate_models([], arm / "own.key.npz", arm / "plain.npz", arm / "eval.json",
                             other_key=arm / "other.key.npz", batch_size=16, device="cpu",
                             transform_files=[arm / "plain-vit.pt"])
    (t,) = result["transformation"]
    assert t["model"] == "vit@transformed" == transformed_label("vit") and t["scheme"] == "pixel-shuffle"
    assert t["transformed_top1"] == t["plain_top1"] and t["prediction_agreement"] == 1.0
    assert t["max_abs_logit_diff"] < 1e-4 and t["n_test"] == 40
    (own,) = result["records"]
    assert own["model"] == "vit@transformed" and own["top1"] == t["transformed_top1"]
    # its own-key record and predictions (taken from the comparison's pass) are the plain model's on plain images
    data = load_npz(arm / "plain.npz")
    top1, loss, predicted = predict_arrays(vit, data["x"], data["y"], torch.device("cpu"), 16)
    (pred,) = result["predictions"]
    assert pred["predicted"] == predicted.tolist() and own["top1"] == top1 and own["loss"] == pytest.approx(loss)
    assert {(r["test_key"], r["model"]) for r in result["key_mismatch"]} == {
        ("own", "vit@transformed"), ("other", "vit@transformed"), ("none", "vit@transformed")}
    # the report's table: the plain model's top-1 equals the transformed one's; the wrong key's row is read
    acc = tables.accuracy_table(result["records"])
    mismatch = tables.key_mismatch_table(result["key_mismatch"])
    table = arms.transformation_table(result["transformation"], acc, mismatch)
    (row,) = table.to_dict("records")
    assert row["equal_top1"] and row["model"] == "vit" and row["chance"] == pytest.approx(0.1)
    other = [r["top1"] for r in result["key_mismatch"] if r["test_key"] == "other"][0]
    assert row["wrong_key_top1"] == other and np.isnan(row["trained_top1"])
    assert "equal in every row" in arms.transformation_caption(table)


def test_the_evaluation_refuses_what_cannot_be_transformed(arm, vit):
    etc = ciphers.create("etc", block_size=BLOCK)
    ciphers.save_key(etc.generate_key(seed=1, image_size=(SIZE, SIZE)), arm / "etc.key.npz")
    run = {"plain_test": arm / "plain.npz", "out": arm / "eval.json", "device": "cpu"}
    with pytest.raises(EtcbenchError, match="scheme 'etc' has no model transformation"):
        evaluate_models([], arm / "etc.key.npz", transform_files=[arm / "plain-vit.pt"], **run)
    _save_plain_vit(arm / "etc-vit.pt", vit, scheme="etc")
    with pytest.raises(EtcbenchError, match="the transformation takes a plain model"):
        evaluate_models([], arm / "own.key.npz", transform_files=[arm / "etc-vit.pt"], **run)
    with pytest.raises(EtcbenchError, match="no model file to evaluate"):
        evaluate_models([], arm / "own.key.npz", **run)
    assert not (arm / "eval.json").exists()
