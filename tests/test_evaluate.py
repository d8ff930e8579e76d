"""The evaluation stage: the stored models of one scheme on their test set, its JPEG versions and under key
mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from etcbench import ciphers, jpeg
from etcbench.errors import EtcbenchError
from etcbench.evaluate import evaluate_arrays, evaluate_models, load_trained_model, save_trained_model
from etcbench.io import load_npz, read_json, save_npz
from etcbench.models import build_model

SIZE, BLOCK = 16, 8


def _save_convmixer(path, name, dim, key, seed=0, scheme="etc"):
    options = {"arch": "convmixer", "dim": dim, "depth": 1, "kernel_size": 3}
    model = build_model("convmixer", 4, SIZE, BLOCK, options)
    spec = {"model": "convmixer", "options": options, "num_classes": 4, "image_size": SIZE, "patch_size": BLOCK,
            "in_chans": 3}
    record = {"dataset": "cifar10", "image_size": SIZE, "block_size": BLOCK, "model": name, "scheme": scheme,
              "jpeg_quality": None, "subsampling": "none", "seed": seed}
    save_trained_model(path, model, spec, {"key_fingerprint": key.fingerprint, "record": record})


@pytest.fixture
def stored(tmp_path):
    """Two tiny ConvMixers of one scheme and key saved as the train stage saves them, the test set under that key
    (uncompressed and as a stand-in JPEG set), the other key and the plain test set."""
    torch.manual_seed(0)
    scheme = ciphers.create("etc", block_size=BLOCK)
    own, other = (scheme.generate_key(seed=s, image_size=(SIZE, SIZE)) for s in (1, 2))
    ciphers.save_key(other, tmp_path / "other.key.npz")
    ciphers.save_key(own, tmp_path / "own.key.npz")
    _save_convmixer(tmp_path / "a.pt", "convmixer", 8, own)
    _save_convmixer(tmp_path / "b.pt", "convmixer_wide", 12, own)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (12, SIZE, SIZE, 3), dtype=np.uint8), np.arange(12) % 4
    files, offsets = jpeg.pack(jpeg.encode(scheme.encrypt(x, own), 50, "420"))  # as the compression stage stores
    save_npz(tmp_path / "q50.npz", jpeg=files, offsets=offsets, y=y, key_fingerprint=np.array(own.fingerprint),
             jpeg_quality=np.array(50), subsampling=np.array("420"))
    save_npz(tmp_path / "other.npz", x=scheme.encrypt(x, other), y=y, key_fingerprint=np.array(other.fingerprint))
    save_npz(tmp_path / "plain.npz", x=x, y=y, key_fingerprint=np.array("plain"), scheme=np.array("plain"))
    return tmp_path, scheme, own, other, x, y


def _evaluate(tmp_path, models=("a.pt", "b.pt"), **kwargs):
    args = {"key_path": tmp_path / "own.key.npz", "plain_test": tmp_path / "plain.npz", "out": tmp_path / "eval.json",
            "jpeg": [tmp_path / "q50.npz"], "other_key": tmp_path / "other.key.npz", "batch_size": 5, "device": "cpu",
            **kwargs}
    return evaluate_models([tmp_path / m for m in models], **args)


def test_records_every_model_on_every_test_set_and_under_key_mismatch(stored):
    tmp_path, scheme, own, other, x, y = stored
    result = _evaluate(tmp_path)
    assert read_json(tmp_path / "eval.json")["records"] == result["records"]
    cpu = torch.device("cpu")
    for file, name in (("a.pt", "convmixer"), ("b.pt", "convmixer_wide")):
        own_rec, jpeg_rec = [r for r in result["records"] if r["model"] == name]
        assert (own_rec["jpeg_quality"], own_rec["subsampling"]) == (None, "none")
        assert (jpeg_rec["jpeg_quality"], jpeg_rec["subsampling"]) == (50, "420")
        reloaded, _ = load_trained_model(tmp_path / file, cpu)
        decoded = jpeg.roundtrip(scheme.encrypt(x, own), 50, "420")[0]
        assert jpeg_rec["top1"] == pytest.approx(evaluate_arrays(reloaded, decoded, y, cpu)[0])
        expected = {"own": evaluate_arrays(reloaded, scheme.encrypt(x, own), y, cpu)[0],
                    "other": evaluate_arrays(reloaded, scheme.encrypt(x, other), y, cpu)[0],
                    "none": evaluate_arrays(reloaded, scheme.public_layout(x), y, cpu)[0]}
        got = {r["test_key"]: r["top1"] for r in result["key_mismatch"] if r["model"] == name}
        assert got == pytest.approx(expected)
        assert own_rec["top1"] == pytest.approx(expected["own"])
    # the other-key set made on the fly is the one the encryption stage would store: same top-1 as on that file
    reloaded, _ = load_trained_model(tmp_path / "a.pt", cpu)
    stored_other = load_npz(tmp_path / "other.npz")
    assert evaluate_arrays(reloaded, stored_other["x"], stored_other["y"], cpu)[0] == pytest.approx(
        next(r["top1"] for r in result["key_mismatch"] if r["model"] == "convmixer" and r["test_key"] == "other"))


def test_refuses_sets_of_another_key_mixed_models_and_an_other_key_that_is_the_own(stored, monkeypatch):
    tmp_path, scheme, own, other, x, y = stored
    # the own key, the plain test set and the key-mismatch inputs are checked before any model sees an image
    import etcbench.evaluate as evaluate_module

    inferences = []
    real_predict = evaluate_module.predict_arrays
    monkeypatch.setattr(evaluate_module, "predict_arrays",
                        lambda *a, **k: inferences.append(1) or real_predict(*a, **k))
    with pytest.raises(EtcbenchError, match="a key mismatch needs another"):
        _evaluate(tmp_path, other_key=tmp_path / "own.key.npz")
    with pytest.raises(EtcbenchError, match="other.key.npz is not the key the models .* were trained on"):
        _evaluate(tmp_path, key_path=tmp_path / "other.key.npz", out=tmp_path / "a.json")
    with pytest.raises(EtcbenchError, match="missing.npz does not exist"):
        _evaluate(tmp_path, plain_test=tmp_path / "missing.npz")
    save_npz(tmp_path / "other.npz", **{**load_npz(tmp_path / "other.npz"), "scheme": np.array("etc")})
    with pytest.raises(EtcbenchError, match="other.npz holds images encrypted with a 'etc' key"):
        _evaluate(tmp_path, plain_test=tmp_path / "other.npz")
    gray = ciphers.create("etc-gray", block_size=BLOCK).generate_key(seed=5, image_size=(SIZE, SIZE))
    ciphers.save_key(gray, tmp_path / "gray.key.npz")
    with pytest.raises(EtcbenchError, match="is a 'etc-gray' key; the models were trained on 'etc'"):
        _evaluate(tmp_path, other_key=tmp_path / "gray.key.npz")
    small = scheme.generate_key(seed=6, image_size=(2 * SIZE, 2 * SIZE))
    ciphers.save_key(small, tmp_path / "big.key.npz")
    with pytest.raises(EtcbenchError, match=r"is for \(32, 32\) images; .*plain.npz holds \(16, 16\)"):
        _evaluate(tmp_path, other_key=tmp_path / "big.key.npz")
    assert inferences == []
    monkeypatch.setattr(evaluate_module, "predict_arrays", real_predict)
    _save_convmixer(tmp_path / "c.pt", "vit", 8, other)
    with pytest.raises(EtcbenchError, match="c.pt .* was not trained on the scheme, setting, seed and key"):
        _evaluate(tmp_path, models=("a.pt", "c.pt"))
    _save_convmixer(tmp_path / "d.pt", "vit", 8, own, seed=1)
    with pytest.raises(EtcbenchError, match="d.pt .* was not trained on"):
        _evaluate(tmp_path, models=("a.pt", "d.pt"))
    with pytest.raises(EtcbenchError, match="'convmixer' is given twice"):
        _evaluate(tmp_path, models=("a.pt", "a.pt"))
    assert not (tmp_path / "eval.json").exists() and not (tmp_path / "a.json").exists()


def test_records_the_predictions_the_report_makes_confusion_matrices_of(stored):
    from sklearn.metrics import confusion_matrix

    from etcbench.data.transforms import normalize, to_nchw
    from etcbench.report.confusion import confusion_from_predictions, confusion_record

    tmp_path, scheme, own, other, x, y = stored
    result = _evaluate(tmp_path)
    assert read_json(tmp_path / "eval.json")["predictions"] == result["predictions"]
    assert [p["model"] for p in result["predictions"]] == ["convmixer", "convmixer_wide"]
    confusion = confusion_from_predictions(result["predictions"][0])
    assert {k: confusion[k] for k in ("model", "scheme", "seed", "test_key", "jpeg_quality", "subsampling")} == {
        "model": "convmixer", "scheme": "etc", "seed": 0, "test_key": "own", "jpeg_quality": None,
        "subsampling": "none"}
    # the model's own predictions on the own-key test set, computed here without etcbench.evaluate
    reloaded, _ = load_trained_model(tmp_path / "a.pt", torch.device("cpu"))
    with torch.no_grad():
        predicted = reloaded(normalize(to_nchw(scheme.encrypt(x, own)))).argmax(1).numpy()
    expected = confusion_matrix(y, predicted, labels=[0, 1, 2, 3])
    assert confusion["labels"] == [0, 1, 2, 3] and confusion["class_names"] is None  # 4 classes: not CIFAR-10's
    np.testing.assert_array_equal(np.array(confusion["matrix"]), expected)
    assert np.trace(expected) / len(y) == pytest.approx(result["records"][0]["top1"])
    # every class has its row and column, also one that never occurs; CIFAR-10's names where it has 10 classes
    record = confusion_record(np.array([0, 0, 1]), np.array([0, 1, 1]), 4)
    assert record["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    named = confusion_record(np.arange(3), np.arange(3), 3, ["cat", "dog", "ship"])
    assert named["class_names"] == ["cat", "dog", "ship"]
    with pytest.raises(EtcbenchError, match="2 class names for 3 classes"):
        confusion_record(np.arange(3), np.arange(3), 3, ["cat", "dog"])
    # CIFAR-10's names are recorded with the predictions of a 10-class CIFAR-10 model
    from etcbench.evaluate import _class_names

    assert _class_names("cifar10", 10)[:3] == ["airplane", "automobile", "bird"] and _class_names("cifar10", 4) is None
    rng = np.random.default_rng(0)
    truth, guess = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    np.testing.assert_array_equal(confusion_record(truth, guess, 9)["matrix"],
                                  confusion_matrix(truth, guess, labels=list(range(9))))
    with pytest.raises(EtcbenchError, match="outside the 4 classes"):
        confusion_record(np.array([0, 4]), np.array([0, 1]), 4)
    with pytest.raises(EtcbenchError, match="3 labels but 2 predictions"):
        confusion_record(np.array([0, 1, 2]), np.array([0, 1]), 4)
    with pytest.raises(EtcbenchError, match="lacks key.*predicted"):
        confusion_from_predictions({k: v for k, v in result["predictions"][0].items() if k != "predicted"})
