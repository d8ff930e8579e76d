"""Transforms, models, training with resume, and evaluation on tiny synthetic data (CPU, seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from etcbench import ciphers
from etcbench.data.transforms import normalize, random_crop_flip, resize, resize_numpy, to_nchw
from etcbench.errors import EtcbenchError
from etcbench.evaluate import evaluate_arrays, load_trained_model
from etcbench.io import save_npz
from etcbench.models import build_model
from etcbench.train import Recipe, train_model

SIZE, BLOCK = 32, 8


def test_resize_numpy_and_torch_agree():
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    a = resize_numpy(x, 32, "bicubic")
    b = resize(to_nchw(x), 32, "bicubic").permute(0, 2, 3, 1).numpy()
    assert a.dtype == np.uint8 and a.shape == (3, 32, 32, 3) and np.array_equal(a, b)
    # nearest 2x upsampling repeats every pixel
    assert np.array_equal(resize_numpy(x, 32, "nearest")[:, ::2, ::2], x)


def test_random_crop_flip_moves_whole_images_and_is_seeded():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = random_crop_flip(x, 2, torch.Generator().manual_seed(1))
    b = random_crop_flip(x, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(random_crop_flip(x, 2, torch.Generator().manual_seed(2)), a)
    # without padding only flips happen: each image is itself or its mirror
    c = random_crop_flip(x, 0, torch.Generator().manual_seed(3))
    for i in range(2):
        assert torch.equal(c[i], x[i]) or torch.equal(c[i], x[i].flip(-1))
    # with padding, every output value is either padding (0) or a value of the same image and channel
    for i in range(2):
        for ch in range(3):
            values = set(a[i, ch].flatten().tolist()) - {0.0}
            assert values <= set(x[i, ch].flatten().tolist())


def test_normalize_maps_negative_positive_to_negation():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(normalize(255 - x), -normalize(x))


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


def test_local_checkpoint_is_loaded_and_missing_one_is_a_clear_error(tmp_path):
    src = build_model("vit", 10, SIZE, BLOCK, {"depth": 1})
    path = tmp_path / "w.pth"
    torch.save(src.state_dict(), path)
    dst = build_model("vit", 5, SIZE, BLOCK, {"depth": 1}, pretrained=str(path))
    assert torch.equal(dst.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight)
    assert dst.head.weight.shape[0] == 5  # mismatching head left at init
    with pytest.raises(EtcbenchError, match="does not exist"):
        build_model("vit", 10, SIZE, BLOCK, {"depth": 1}, pretrained=str(tmp_path / "missing.pth"))


def test_hub_weights_without_network_are_a_clear_error():
    # the paper config's ViT-B/16 ImageNet-21k weights, on a machine where the hub cannot be reached
    code = ("from etcbench.models import build_model\n"
            "build_model('vit', 10, 224, 16, {'arch': 'vit_base_patch16_224.augreg_in21k'}, pretrained=True)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode != 0
    assert "EtcbenchError: could not load timm's pretrained weights for vit_base_patch16_224.augreg_in21k" in res.stderr
    assert "set 'pretrained' to a local checkpoint path" in res.stderr


@pytest.fixture
def tiny_run(tmp_path):
    rng = np.random.default_rng(0)
    # a learnable task: the class is the mean brightness band of the image
    def make(n):
        y = np.arange(n) % 4
        x = (y[:, None, None, None] * 60 + rng.integers(0, 20, (n, 16, 16, 3))).astype(np.uint8)
        return x, y.astype(np.int64)
    (tx, ty), (vx, vy), (sx, sy) = make(64), make(16), make(32)
    save_npz(tmp_path / "data.npz", train_x=tx, train_y=ty, val_x=vx, val_y=vy, test_x=sx, test_y=sy)
    scheme = ciphers.create("etc", block_size=BLOCK)
    key = scheme.generate_key(seed=3, image_size=(SIZE, SIZE))
    ciphers.save_key(key, tmp_path / "key.npz")
    enc = scheme.encrypt(resize_numpy(sx, SIZE), key)
    save_npz(tmp_path / "test.npz", x=enc, y=sy, key_fingerprint=np.array(key.fingerprint))

    def run(out: str, state: str, recipe: Recipe, model: str = "convmixer", options: dict | None = None):
        options = {"dim": 16, "depth": 1, "kernel_size": 3} if options is None else options
        return train_model(data_path=tmp_path / "data.npz", key_path=tmp_path / "key.npz",
                           test_path=tmp_path / "test.npz", model_name=model,
                           model_options=options, recipe=recipe, seed=0,
                           image_size=SIZE, interpolation="bicubic", out_model=tmp_path / out / "model.pt",
                           out_metrics=tmp_path / out / "metrics.json", state_dir=tmp_path / state,
                           device="cpu", progress=False)
    return tmp_path, key, run


def test_training_writes_model_metrics_and_resumes_after_a_kill(tiny_run, monkeypatch):
    tmp_path, key, run = tiny_run
    recipe = Recipe(epochs=3, batch_size=16, lr=0.01, warmup_epochs=0.5)
    full = run("a", "state_a", recipe)
    record = full["record"]
    assert record["scheme"] == "etc" and record["model"] == "convmixer" and record["subsampling"] == "none"
    assert record["key_fingerprint"] == key.fingerprint and 0 <= record["top1"] <= 1
    assert [h["epoch"] for h in full["history"]] == [1, 2, 3]
    assert full["train"]["samples_per_s"] > 0 and full["manifest"]["versions"]["timm"] == "1.0.31"
    text = (tmp_path / "a" / "metrics.json").read_text()
    assert key.fingerprint in text and "block_perm" not in text
    assert json.loads(text)["record"] == record

    # a run killed after its first epoch, then restarted, ends with the same weights as an uninterrupted run
    import etcbench.train as train_mod

    real = train_mod._write_summary
    def die_after_first_epoch(path, history):
        real(path, history)
        raise KeyboardInterrupt
    monkeypatch.setattr(train_mod, "_write_summary", die_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run("b", "state_b", recipe)
    assert not (tmp_path / "b" / "model.pt").exists() and (tmp_path / "state_b" / "last.pt").exists()
    monkeypatch.setattr(train_mod, "_write_summary", real)
    resumed = run("b", "state_b", recipe)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    a, _ = load_trained_model(tmp_path / "a" / "model.pt", torch.device("cpu"))
    b, _ = load_trained_model(tmp_path / "b" / "model.pt", torch.device("cpu"))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa.float(), pb.float(), atol=1e-6), name
    assert resumed["record"]["top1"] == pytest.approx(record["top1"])


def test_training_learns_an_encrypted_task(tiny_run):
    tmp_path, key, run = tiny_run
    result = run("c", "state_c", Recipe(epochs=6, batch_size=16, lr=0.01, warmup_epochs=0.5, augment=False))
    assert result["record"]["top1"] >= 0.75  # 4 classes: chance is 0.25
    model, _ = load_trained_model(tmp_path / "c" / "model.pt", torch.device("cpu"))
    from etcbench.io import load_npz

    data = load_npz(tmp_path / "data.npz")
    scheme = ciphers.create("etc", block_size=BLOCK)
    # encrypting the plain test split again on the fly gives the stored test set's accuracy
    right_top1, _ = evaluate_arrays(model, scheme.encrypt(resize_numpy(data["test_x"], SIZE), key), data["test_y"],
                                    torch.device("cpu"))
    assert right_top1 == pytest.approx(result["record"]["top1"])


def test_training_on_grayscale_planes_of_etc_gray(tiny_run):
    tmp_path, _, run = tiny_run
    from etcbench.io import load_npz

    scheme = ciphers.create("etc-gray", block_size=BLOCK)
    key = scheme.generate_key(seed=5, image_size=(SIZE, SIZE))
    ciphers.save_key(key, tmp_path / "key.npz")
    data = load_npz(tmp_path / "data.npz")
    planes = scheme.encrypt(resize_numpy(data["test_x"], SIZE), key)
    assert planes.shape == (32, SIZE * 3 // 2, SIZE, 1)
    save_npz(tmp_path / "test.npz", x=planes, y=data["test_y"], key_fingerprint=np.array(key.fingerprint))
    result = run("g", "state_g", Recipe(epochs=4, batch_size=16, lr=0.01, augment=False), model="vit",
                 options={"depth": 1, "embed_dim": 32, "num_heads": 2})
    assert result["record"]["scheme"] == "etc-gray" and result["record"]["top1"] >= 0.5  # chance 0.25
    model, ckpt = load_trained_model(tmp_path / "g" / "model.pt", torch.device("cpu"))
    assert ckpt["spec"]["in_chans"] == 1 and ckpt["spec"]["image_size"] == [48, 32]
    assert model.patch_embed.grid_size == (6, 4)
    top1, _ = evaluate_arrays(model, planes, data["test_y"], torch.device("cpu"))
    assert top1 == pytest.approx(result["record"]["top1"])


def test_mismatched_test_set_is_refused(tiny_run):
    tmp_path, key, run = tiny_run
    other = ciphers.create("etc", block_size=BLOCK).generate_key(seed=4, image_size=(SIZE, SIZE))
    ciphers.save_key(other, tmp_path / "key.npz")
    with pytest.raises(EtcbenchError, match="not encrypted with key"):
        run("d", "state_d", Recipe(epochs=1, batch_size=16))
    assert not (tmp_path / "d").exists()


def test_adaptation_network_trains_with_its_regularisation(tiny_run, monkeypatch):
    tmp_path, key, run = tiny_run
    from etcbench.models import adaptation

    calls = []
    real = adaptation.AdaptedClassifier.regularization_loss
    monkeypatch.setattr(adaptation.AdaptedClassifier, "regularization_loss",
                        lambda self: calls.append(1) or real(self))
    result = run("m", "state_m", Recipe(epochs=1, batch_size=16), model="resnet18_madono", options={})
    assert len(calls) == 4  # once per training step (64 images / 16)
    assert result["record"]["model"] == "resnet18_madono" and np.isfinite(result["history"][0]["train_loss"])
    model, _ = load_trained_model(tmp_path / "m" / "model.pt", torch.device("cpu"))
    assert model.adaptation.u.shape == (16, 16)
