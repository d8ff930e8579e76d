"""The evaluation stage: a stored model on its test set, its JPEG versions and under key mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from etcbench import ciphers
from etcbench.errors import EtcbenchError
from etcbench.evaluate import evaluate_arrays, evaluate_model_file, load_trained_model, save_trained_model
from etcbench.io import read_json, save_npz
from etcbench.models import build_model

SIZE, BLOCK = 16, 8


@pytest.fixture
def stored(tmp_path):
    """A tiny ConvMixer saved as the train stage saves it, and test sets under its key, another key and none."""
    torch.manual_seed(0)
    scheme = ciphers.create("etc", block_size=BLOCK)
    own, other = (scheme.generate_key(seed=s, image_size=(SIZE, SIZE)) for s in (1, 2))
    options = {"arch": "convmixer", "dim": 8, "depth": 1, "kernel_size": 3}
    model = build_model("convmixer", 4, SIZE, BLOCK, options)
    spec = {"model": "convmixer", "options": options, "num_classes": 4, "image_size": SIZE, "patch_size": BLOCK,
            "in_chans": 3}
    record = {"dataset": "cifar10", "image_size": SIZE, "block_size": BLOCK, "model": "convmixer", "scheme": "etc",
              "jpeg_quality": None, "subsampling": "none", "seed": 0}
    save_trained_model(tmp_path / "model.pt", model, spec, {"key_fingerprint": own.fingerprint, "record": record})
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (12, SIZE, SIZE, 3), dtype=np.uint8), np.arange(12) % 4
    save_npz(tmp_path / "test.npz", x=scheme.encrypt(x, own), y=y, key_fingerprint=np.array(own.fingerprint))
    save_npz(tmp_path / "q50.npz", x=scheme.encrypt(x, own), y=y, key_fingerprint=np.array(own.fingerprint),
             jpeg_quality=np.array(50), subsampling=np.array("420"))
    save_npz(tmp_path / "other.npz", x=scheme.encrypt(x, other), y=y, key_fingerprint=np.array(other.fingerprint))
    save_npz(tmp_path / "plain.npz", x=x, y=y, key_fingerprint=np.array("plain"))
    return tmp_path, model, scheme, own, other, x, y


def test_records_every_test_set_and_the_key_mismatch(stored):
    tmp_path, model, scheme, own, other, x, y = stored
    result = evaluate_model_file(tmp_path / "model.pt", tmp_path / "test.npz", tmp_path / "eval.json",
                                 [tmp_path / "q50.npz"], tmp_path / "other.npz", tmp_path / "plain.npz", 5, "cpu")
    assert read_json(tmp_path / "eval.json")["records"] == result["records"]
    own_rec, jpeg_rec = result["records"]
    assert (own_rec["jpeg_quality"], own_rec["subsampling"]) == (None, "none")
    assert (jpeg_rec["jpeg_quality"], jpeg_rec["subsampling"]) == (50, "420")
    cpu = torch.device("cpu")
    reloaded, _ = load_trained_model(tmp_path / "model.pt", cpu)
    expected = {"own": evaluate_arrays(reloaded, scheme.encrypt(x, own), y, cpu)[0],
                "other": evaluate_arrays(reloaded, scheme.encrypt(x, other), y, cpu)[0],
                "none": evaluate_arrays(reloaded, scheme.public_layout(x), y, cpu)[0]}
    assert {r["test_key"]: r["top1"] for r in result["key_mismatch"]} == pytest.approx(expected)
    assert own_rec["top1"] == pytest.approx(expected["own"]) == jpeg_rec["top1"]


def test_refuses_sets_of_another_key_and_an_other_key_that_is_the_own(stored):
    tmp_path = stored[0]
    with pytest.raises(EtcbenchError, match="other.npz was not encrypted with the key model"):
        evaluate_model_file(tmp_path / "model.pt", tmp_path / "other.npz", tmp_path / "a.json", device="cpu")
    with pytest.raises(EtcbenchError, match="a key mismatch needs another"):
        evaluate_model_file(tmp_path / "model.pt", tmp_path / "test.npz", tmp_path / "b.json",
                            other_test=tmp_path / "test.npz", device="cpu")


def test_records_the_confusion_matrix_of_the_own_key_test_set(stored):
    from sklearn.metrics import confusion_matrix

    from etcbench.data.transforms import normalize, to_nchw
    from etcbench.evaluate import confusion_record

    tmp_path, model, scheme, own, other, x, y = stored
    result = evaluate_model_file(tmp_path / "model.pt", tmp_path / "test.npz", tmp_path / "eval.json",
                                 [tmp_path / "q50.npz"], tmp_path / "other.npz", tmp_path / "plain.npz", 5, "cpu")
    confusion = read_json(tmp_path / "eval.json")["confusion"]
    assert confusion == result["confusion"]
    assert {k: confusion[k] for k in ("model", "scheme", "seed", "test_key", "jpeg_quality", "subsampling")} == {
        "model": "convmixer", "scheme": "etc", "seed": 0, "test_key": "own", "jpeg_quality": None,
        "subsampling": "none"}
    # the model's own predictions on the own-key test set, computed here without etcbench.evaluate
    reloaded, _ = load_trained_model(tmp_path / "model.pt", torch.device("cpu"))
    with torch.no_grad():
        predicted = reloaded(normalize(to_nchw(scheme.encrypt(x, own)))).argmax(1).numpy()
    expected = confusion_matrix(y, predicted, labels=[0, 1, 2, 3])
    assert confusion["labels"] == [0, 1, 2, 3] and confusion["class_names"] is None  # 4 classes: not CIFAR-10's
    np.testing.assert_array_equal(np.array(confusion["matrix"]), expected)
    assert np.trace(expected) / len(y) == pytest.approx(result["records"][0]["top1"])
    # every class has its row and column, also one that never occurs; CIFAR-10's names where it has 10 classes
    record = confusion_record(np.array([0, 0, 1]), np.array([0, 1, 1]), 4)
    assert record["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    named = confusion_record(np.arange(10), np.arange(10), 10, "cifar10")
    assert named["class_names"][:3] == ["airplane", "automobile", "bird"] and len(named["class_names"]) == 10
    rng = np.random.default_rng(0)
    truth, guess = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    np.testing.assert_array_equal(confusion_record(truth, guess, 9)["matrix"],
                                  confusion_matrix(truth, guess, labels=list(range(9))))
    with pytest.raises(EtcbenchError, match="outside the 4 classes"):
        confusion_record(np.array([0, 4]), np.array([0, 1]), 4)
    with pytest.raises(EtcbenchError, match="3 labels but 2 predictions"):
        confusion_record(np.array([0, 1, 2]), np.array([0, 1]), 4)
