"""Training with resume, recipes (optimiser groups, schedules, accumulation), per-image keys and evaluation on tiny
synthetic data (CPU, seconds)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from etcbench import ciphers
from etcbench.data.transforms import resize_numpy
from etcbench.errors import EtcbenchError
from etcbench.evaluate import evaluate_arrays, load_trained_model
from etcbench.io import load_npz, save_npz
from etcbench.models import build_model
from etcbench.train import LrSchedule, Recipe, build_optimizer, train_model

SIZE, BLOCK = 32, 8


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
    # the plain scheme's test set, as the workflow stores it; the training encrypts it with its key for the test
    save_npz(tmp_path / "plain.npz", x=resize_numpy(sx, SIZE), y=sy, key_fingerprint=np.array("plain"),
             scheme=np.array("plain"))

    def run(out: str, state: str, recipe: Recipe, model: str = "convmixer", options: dict | None = None,
            pretrained: bool | str = False, **runtime):
        options = {"dim": 16, "depth": 1, "kernel_size": 3} if options is None else options
        return train_model(data_path=tmp_path / "data.npz", key_path=tmp_path / "key.npz",
                           plain_test=tmp_path / "plain.npz", model_name=model,
                           model_options=options, recipe=recipe, seed=0,
                           interpolation="bicubic", out_model=tmp_path / out / "model.pt",
                           out_metrics=tmp_path / out / "metrics.json", state_dir=tmp_path / state,
                           device="cpu", progress=False, pretrained=pretrained, **runtime)
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
    assert not (tmp_path / "state_a").exists()  # a finished training removes its resumable state

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
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3] and not (tmp_path / "state_b").exists()
    a, _ = load_trained_model(tmp_path / "a" / "model.pt", torch.device("cpu"))
    b, _ = load_trained_model(tmp_path / "b" / "model.pt", torch.device("cpu"))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa.float(), pb.float(), atol=1e-6), name
    assert resumed["record"]["top1"] == pytest.approx(record["top1"])


def test_training_learns_an_encrypted_task(tiny_run):
    tmp_path, key, run = tiny_run
    result = run("c", "state_c", Recipe(epochs=6, batch_size=16, lr=0.01, warmup_epochs=0.5, augment="none"))
    assert result["record"]["top1"] >= 0.75  # 4 classes: chance is 0.25
    model, _ = load_trained_model(tmp_path / "c" / "model.pt", torch.device("cpu"))

    data = load_npz(tmp_path / "data.npz")
    scheme = ciphers.create("etc", block_size=BLOCK)
    # encrypting the plain test split again on the fly gives the stored test set's accuracy
    right_top1, _ = evaluate_arrays(model, scheme.encrypt(resize_numpy(data["test_x"], SIZE), key), data["test_y"],
                                    torch.device("cpu"))
    assert right_top1 == pytest.approx(result["record"]["top1"])


def test_training_on_grayscale_planes_of_etc_gray(tiny_run):
    tmp_path, _, run = tiny_run

    scheme = ciphers.create("etc-gray", block_size=BLOCK)
    key = scheme.generate_key(seed=5, image_size=(SIZE, SIZE))
    ciphers.save_key(key, tmp_path / "key.npz")
    data = load_npz(tmp_path / "data.npz")
    planes = scheme.encrypt(resize_numpy(data["test_x"], SIZE), key)
    assert planes.shape == (32, SIZE * 3 // 2, SIZE, 1)
    result = run("g", "state_g", Recipe(epochs=4, batch_size=16, lr=0.01, augment="none"), model="vit",
                 options={"depth": 1, "embed_dim": 32, "num_heads": 2})
    assert result["record"]["scheme"] == "etc-gray" and result["record"]["top1"] >= 0.5  # chance 0.25
    model, ckpt = load_trained_model(tmp_path / "g" / "model.pt", torch.device("cpu"))
    assert ckpt["spec"]["in_chans"] == 1 and ckpt["spec"]["image_size"] == [48, 32]
    assert model.patch_embed.grid_size == (6, 4)
    top1, _ = evaluate_arrays(model, planes, data["test_y"], torch.device("cpu"))
    assert top1 == pytest.approx(result["record"]["top1"])


def test_a_plain_test_set_the_key_does_not_fit_is_refused_before_training(tiny_run):
    tmp_path, key, run = tiny_run
    big = ciphers.create("etc", block_size=BLOCK).generate_key(seed=4, image_size=(2 * SIZE, 2 * SIZE))
    ciphers.save_key(big, tmp_path / "key.npz")
    with pytest.raises(EtcbenchError, match=rf"is for {2 * SIZE}x{2 * SIZE} images; .*plain.npz holds {SIZE}x{SIZE}"):
        run("d", "state_d", Recipe(epochs=1, batch_size=16))
    ciphers.save_key(key, tmp_path / "key.npz")
    data = load_npz(tmp_path / "plain.npz")
    save_npz(tmp_path / "plain.npz", **{**data, "scheme": np.array("etc")})  # an encrypted set is no plain one
    with pytest.raises(EtcbenchError, match="holds images encrypted with a 'etc' key"):
        run("d", "state_d", Recipe(epochs=1, batch_size=16))
    assert not (tmp_path / "d").exists() and not (tmp_path / "state_d").exists()


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


def test_steps_batch_accumulation_and_model_card_are_recorded(tiny_run):
    tmp_path, key, run = tiny_run
    recipe = Recipe(steps=5, batch_size=16, accumulation=2, warmup_steps=2, lr=0.01, augment="random_resized_crop")
    result = run("s", "state_s", recipe, model="vit", options={"arch": "vit_tiny_patch16_224", "depth": 1})
    train = result["train"]
    assert (train["steps"], train["steps_per_epoch"], train["epochs"], train["warmup_steps"]) == (5, 4, 2, 2)
    assert (train["batch_size"], train["accumulation"], train["micro_batch"]) == (16, 2, 8)
    assert [h["steps"] for h in result["history"]] == [4, 5] and train["train_images"] == 5 * 16
    assert train["recipe"] == recipe.to_dict()
    card = train["model_card"]
    assert card["arch"] == "vit_tiny_patch16_224" and card["depth"] == 1 and card["token_grid"] == [4, 4]
    assert card["parameters"] == train["parameters"] and card["pretrained"] == {"source": "none"}
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["train"]["model_card"] == card


def test_accumulated_micro_batches_make_the_step_of_the_whole_batch(tiny_run):
    tmp_path, _, run = tiny_run
    vit = {"arch": "vit_tiny_patch16_224", "depth": 1}  # layer norm only: micro-batches do not change the maths
    common = {"steps": 1, "batch_size": 16, "optimizer": "sgd", "lr": 0.1, "augment": "none", "grad_clip": 0.0}
    run("w", "state_w", Recipe(accumulation=1, **common), model="vit", options=vit)
    run("v", "state_v", Recipe(accumulation=4, **common), model="vit", options=vit)
    a, _ = load_trained_model(tmp_path / "w" / "model.pt", torch.device("cpu"))
    b, _ = load_trained_model(tmp_path / "v" / "model.pt", torch.device("cpu"))
    init = build_model("vit", 4, SIZE, BLOCK, vit)
    moved = False
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-5), name
        moved |= not torch.allclose(pa, init.state_dict()[name])
    assert moved


def test_weight_decay_skips_biases_norms_and_embeddings():
    model = build_model("vit", 10, SIZE, BLOCK, {"depth": 1})
    opt = build_optimizer(model, Recipe(optimizer="adamw", weight_decay=0.05))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    free = {names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert {"pos_embed", "cls_token", "norm.weight", "blocks.0.norm1.bias", "blocks.0.attn.qkv.bias"} <= free
    assert {"blocks.0.attn.qkv.weight", "blocks.0.mlp.fc1.weight", "patch_embed.proj.weight"} <= decayed
    sgd = build_optimizer(model, Recipe(optimizer="sgd", nesterov=True, momentum=0.8))
    assert all(g["nesterov"] and g["momentum"] == 0.8 for g in sgd.param_groups)
    assert not any(g["nesterov"] for g in build_optimizer(model, Recipe(optimizer="sgd")).param_groups)


def _rates(recipe: Recipe, total: int, warmup: int, milestones: list[int]) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=recipe.lr, momentum=0.9)
    schedule = LrSchedule(opt, recipe, total, warmup, milestones)
    rates = []
    for step in range(total):
        schedule.before_step(step)
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
    return rates


def test_cosine_is_the_vit_code_bases_warmup_cosine():
    total, warmup, lr = 50, 5, 0.03
    rates = _rates(Recipe(lr=lr, min_lr=0.0, schedule="cosine"), total, warmup, [])
    for s, rate in enumerate(rates):  # jeonsworld WarmupCosineSchedule at step s + 1 (its scheduler steps first)
        t = s + 1
        expected = t / warmup if t < warmup else 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))
        assert rate == pytest.approx(lr * expected, abs=1e-9), s


def test_multistep_and_onecycle_schedules():
    rates = _rates(Recipe(lr=0.1, schedule="multistep", milestones=(2, 4)), 12, 0, [4, 8])
    assert rates[:4] == [0.1] * 4 and rates[4:8] == [pytest.approx(0.01)] * 4 and rates[8] == pytest.approx(0.001)
    rates = _rates(Recipe(lr=0.01, schedule="onecycle", onecycle_pct=0.3), 100, 0, [])
    assert rates[0] == pytest.approx(0.01 / 25) and max(rates) == pytest.approx(0.01, rel=1e-3)
    assert int(np.argmax(rates)) in (29, 30) and rates[-1] < 1e-6


def test_per_image_key_pe_trains_with_fresh_keys(tiny_run, monkeypatch):
    tmp_path, _, run = tiny_run
    from etcbench.ciphers.pe import PE

    scheme = ciphers.create("pe", block_size=BLOCK)
    key = scheme.generate_key(seed=6, image_size=(SIZE, SIZE))
    ciphers.save_key(key, tmp_path / "key.npz")
    calls = []
    real = PE.encrypt_fresh
    monkeypatch.setattr(PE, "encrypt_fresh", lambda self, x, g: calls.append(len(x)) or real(self, x, g))
    result = run("p", "state_p", Recipe(epochs=2, batch_size=16, lr=0.01))
    # every training image (and each validation pass) is encrypted with keys drawn on the fly
    assert sum(calls) == 2 * 64 + 2 * 16 and result["record"]["scheme"] == "pe"


def test_pretrained_checkpoint_is_used_and_recorded(tiny_run):
    tmp_path, _, run = tiny_run
    vit = {"arch": "vit_tiny_patch16_224", "depth": 1}
    src = build_model("vit", 7, SIZE, BLOCK, vit)
    torch.save(src.state_dict(), tmp_path / "w.pth")
    result = run("q", "state_q", Recipe(steps=1, batch_size=16, lr=1e-9, min_lr=0.0, augment="none"), model="vit",
                 options=vit,
                 pretrained=str(tmp_path / "w.pth"))
    loaded = result["train"]["model_card"]["pretrained"]
    assert loaded["source"] == f"file:{tmp_path / 'w.pth'}" and loaded["left_at_init"] == ["head.bias", "head.weight"]
    model, _ = load_trained_model(tmp_path / "q" / "model.pt", torch.device("cpu"))
    assert torch.allclose(model.blocks[0].attn.qkv.weight, src.blocks[0].attn.qkv.weight, atol=1e-6)


def _weights(path):
    model, _ = load_trained_model(path, torch.device("cpu"))
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def test_channels_last_and_compile_change_nothing_but_rounding(tiny_run, monkeypatch):
    tmp_path, key, run = tiny_run
    recipe = Recipe(steps=3, batch_size=16, lr=0.01)
    plain = run("plain", "s0", recipe, channels_last="off")
    assert (plain["train"]["channels_last"], plain["train"]["compiled"]) == (False, False)
    last = run("last", "s1", recipe, channels_last="on")
    assert last["train"]["channels_last"] and not last["train"]["compiled"]
    # torch.compile as the switch calls it, with dynamo's eager backend: the graph capture is real, no C compiler
    compiled_calls = []
    real_compile = torch.compile

    def eager_compile(model, **kwargs):
        compiled_calls.append(model)
        return real_compile(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    compiled = run("compiled", "s2", recipe, channels_last="off", compile_model=True)
    assert len(compiled_calls) == 1 and compiled["train"]["compiled"]
    reference = _weights(tmp_path / "plain" / "model.pt")
    for name in ("last", "compiled"):
        other = _weights(tmp_path / name / "model.pt")
        assert other.keys() == reference.keys()  # no "_orig_mod." prefix from the compiled wrapper
        for k, v in reference.items():
            torch.testing.assert_close(other[k], v, rtol=1e-4, atol=1e-5, msg=f"{name}: {k}")
        result = last if name == "last" else compiled
        assert [h["train_loss"] for h in result["history"]] == pytest.approx(
            [h["train_loss"] for h in plain["history"]], rel=1e-5)
    with pytest.raises(EtcbenchError, match="channels_last must be auto, on or off"):
        run("bad", "s3", recipe, channels_last="yes")


def test_the_training_loop_reads_no_value_from_the_device_per_step(tiny_run, monkeypatch):
    """Loss and correct counts are summed on the device and read once an epoch: on CUDA a read every step would
    wait for that step. Counted here as etcbench's own calls of ``Tensor.item`` (torch's optimisers read their CPU
    step counters with it, which waits for nothing) in a run with 2 and one with 4 steps in its one epoch: the
    same number."""
    import sys

    import etcbench

    package = str(Path(etcbench.__file__).parent)
    tmp_path, key, run = tiny_run
    counts = {}
    real_item = torch.Tensor.item
    for steps in (2, 4):
        calls = []

        def counting_item(self, calls=calls):
            if sys._getframe(1).f_code.co_filename.startswith(package):
                calls.append(sys._getframe(1).f_code.co_name)
            return real_item(self)

        monkeypatch.setattr(torch.Tensor, "item", counting_item)
        result = run(f"sync{steps}", f"s{steps}", Recipe(steps=steps, batch_size=16, lr=0.01))
        monkeypatch.setattr(torch.Tensor, "item", real_item)
        counts[steps] = len(calls)
        assert result["history"][0]["steps"] == steps and 0 <= result["history"][0]["train_top1"] <= 1
        assert "train_model" in calls  # the epoch's sums are read: the counting sees etcbench's calls
    assert counts[2] == counts[4], counts


def test_auto_channels_last_picks_the_convolutional_models_by_their_layers():
    from etcbench.train import use_channels_last

    cuda = torch.device("cuda")  # only its type is read: no GPU needed
    built = {
        "vit": build_model("vit", 10, SIZE, BLOCK, {"arch": "vit_tiny_patch16_224", "depth": 1}),
        "convmixer": build_model("convmixer", 10, SIZE, BLOCK, {"dim": 16, "depth": 1, "kernel_size": 3}),
        "resnet18": build_model("resnet18", 10, SIZE, 4, {"channels": [8, 8, 8, 8], "stem_width": 8}),
        "resnet18_tanaka": build_model("resnet18_tanaka", 10, SIZE, 4,
                                       {"classifier_options": {"channels": [8, 8, 8, 8], "stem_width": 8}}),
    }
    assert {name: use_channels_last("auto", m, cuda) for name, m in built.items()} == {
        "vit": False, "convmixer": True, "resnet18": True, "resnet18_tanaka": True}
    assert not any(use_channels_last("auto", m, torch.device("cpu")) for m in built.values())


def test_the_jpeg_trained_arm_trains_and_tests_on_what_the_client_sends(tiny_run, monkeypatch):
    """train.jpeg: the images are encrypted once and JPEG-coded (what the cloud decodes is what the model sees, in
    training, validation and test), and augmented on the ciphertexts only."""
    from etcbench import jpeg as jpeg_files
    from etcbench import upload
    from etcbench.recipes import JpegArm

    tmp_path, key, run = tiny_run
    seen, uploads = [], []
    real_upload = upload.client_upload

    def spy_upload(images, *args, **kwargs):  # what the cloud receives: once per split, never a plain image again
        out = real_upload(images, *args, **kwargs)
        uploads.append((images.shape, out))
        return out

    real_apply = __import__("etcbench.data.ciphertext_augment", fromlist=["apply"]).apply

    def spy_apply(augment, x, *args, **kwargs):
        seen.append(x.clone())
        return real_apply(augment, x, *args, **kwargs)

    monkeypatch.setattr("etcbench.train.client_upload", spy_upload)
    monkeypatch.setattr("etcbench.train.ciphertext_augment.apply", spy_apply)
    arm = JpegArm(quality=50, subsampling="420", augment="block_cutmix")
    result = run("j", "state_j", Recipe(epochs=2, batch_size=16, lr=0.01), jpeg_arm=arm)
    record = result["record"]
    assert record["model"] == "convmixer@q50-420" and (record["jpeg_quality"], record["subsampling"]) == (50, "420")
    assert result["train"]["jpeg_arm"] == arm.to_dict() and result["train"]["train_images"] == 2 * 64
    # train (64 images) and validation (16) uploaded once each, at the key's size, as JPEG-decoded ciphertexts
    data = load_npz(tmp_path / "data.npz")
    scheme = ciphers.create("etc", block_size=BLOCK)
    assert [shape[0] for shape, _ in uploads] == [64, 16]
    expected = jpeg_files.roundtrip(scheme.encrypt(resize_numpy(data["train_x"], SIZE), key), 50, "420")[0]
    assert np.array_equal(uploads[0][1], expected)
    # every training batch the model saw came from the uploaded set (before the ciphertext augmentation)
    uploaded = {bytes(img) for img in torch.from_numpy(expected).permute(0, 3, 1, 2).contiguous().numpy()}
    assert len(seen) == 2 * 4 and all(bytes(img) in uploaded for batch in seen for img in batch.numpy())
    # the final test: the plain test set encrypted with the key and JPEG-coded the same way
    model, _ = load_trained_model(tmp_path / "j" / "model.pt", torch.device("cpu"))
    plain = load_npz(tmp_path / "plain.npz")
    test = jpeg_files.roundtrip(scheme.encrypt(plain["x"], key), 50, "420")[0]
    assert record["top1"] == evaluate_arrays(model, test, plain["y"], torch.device("cpu"))[0]


def test_the_jpeg_trained_arm_refuses_an_augmentation_the_cipher_does_not_commute_with(tiny_run):
    from etcbench.recipes import JpegArm

    tmp_path, _, run = tiny_run
    with pytest.raises(EtcbenchError, match="mixup is not block-safe for scheme 'etc-gray'"):
        gray = ciphers.create("etc-gray", block_size=BLOCK)
        ciphers.save_key(gray.generate_key(seed=3, image_size=(SIZE, SIZE)), tmp_path / "key.npz")
        run("g", "state_g", Recipe(epochs=1, batch_size=16), jpeg_arm=JpegArm(quality=50, augment="mixup"))
    assert not (tmp_path / "g").exists()
