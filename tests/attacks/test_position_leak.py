"""Position-embedding leakage: recovering block scrambling from a ViT's learned position embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch

from etcbench import ciphers
from etcbench.attacks.layout import grid_symmetry_map
from etcbench.attacks.position_leak import (
    identity_share,
    position_embeddings,
    position_leak,
    recover_permutation,
    recovery_share,
    start_embeddings,
)
from etcbench.ciphers.pixel_shuffle import transform_position_embedding
from etcbench.errors import EtcbenchError
from etcbench.evaluate import load_trained_model, save_trained_model
from etcbench.io import save_npz
from etcbench.models import build_model
from etcbench.train import Recipe, train_model

SIZE, BLOCK, SEED = 64, 16, 0
VIT = {"arch": "vit_tiny_patch16_224", "depth": 1}


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The FAQ restarts are many small matrix products: one BLAS thread is faster on shared cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        yield
        return
    with threadpool_limits(limits=1):
        yield


def sincos(rows: int, cols: int, dim: int = 192) -> np.ndarray:
    """A smooth 2-D sine-cosine position embedding (half the width for the row, half for the column)."""
    k = dim // 4
    omega = 1.0 / 10000.0 ** (np.arange(k) / k)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.concatenate([f(np.outer(v.ravel(), omega)) for v in (r, c) for f in (np.sin, np.cos)], axis=1)


def smooth_field(rows: int, cols: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth but anisotropic embedding: white noise on the grid, blurred over neighbouring positions."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.normal(size=(rows, cols, dim)), sigma=(2.0, 2.0, 0.0), mode="nearest")
    return field.reshape(rows * cols, dim)


def noisy(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    return x + level * np.sqrt((x ** 2).mean()) * rng.normal(size=x.shape)


# ------------------------------------------------------------------------------------------------ synthetic

@pytest.mark.parametrize("side", [4, 14])
def test_default_recovers_a_permuted_grid_embedding_exactly(side):
    rng = np.random.default_rng(side)
    reference = sincos(side, side)
    block_perm = rng.permutation(side * side)
    scheme = noisy(reference[block_perm], 0.1, rng)  # token j learned the position of plain block block_perm[j]
    estimate = recover_permutation(scheme, noisy(reference, 0.1, rng), grid=(side, side))
    assert sorted(estimate) == list(range(side * side))
    assert recovery_share(estimate, block_perm, (side, side)) == 1.0
    assert identity_share(block_perm) < 0.2  # what "no scrambling" would have scored


def test_structure_matching_survives_another_basis_where_rows_cannot_be_compared():
    """Models from unrelated starts: the same geometry in other coordinates (a random rotation of the rows)."""
    rng = np.random.default_rng(0)  # ungated rows weighed as much as the structure (1.0) pick a mirror here
    reference = smooth_field(14, 14, 192, rng)
    block_perm = rng.permutation(196)
    rotation, _ = np.linalg.qr(rng.normal(size=(192, 192)))
    scheme = noisy(reference[block_perm], 0.1, rng) @ rotation
    reference = noisy(reference, 0.1, rng)
    linear = recover_permutation(scheme, reference, grid=(14, 14), method="linear")
    assert recovery_share(linear, block_perm, (14, 14)) < 0.05  # row by row: chance
    for method in ("structure", "combined"):
        estimate = recover_permutation(scheme, reference, grid=(14, 14), method=method)
        assert recovery_share(estimate, block_perm, (14, 14), up_to_symmetry=True) == 1.0, method
    # the blurred noise is not symmetric, so its structure also tells the true orientation
    assert recovery_share(estimate, block_perm, (14, 14)) == 1.0


def test_an_isotropic_embedding_in_another_basis_is_recovered_up_to_the_grid_symmetry():
    rng = np.random.default_rng(0)
    reference = sincos(4, 4)
    block_perm = rng.permutation(16)
    rotation, _ = np.linalg.qr(rng.normal(size=(192, 192)))
    estimate = recover_permutation(noisy(reference[block_perm], 0.05, rng) @ rotation, reference, grid=(4, 4),
                                   method="structure")
    assert recovery_share(estimate, block_perm, (4, 4), up_to_symmetry=True) == 1.0


@pytest.mark.parametrize(("grid", "code"), [((4, 4), 1), ((4, 4), 6), ((3, 5), 2), ((3, 5), 4)])
def test_up_to_symmetry_forgives_a_globally_rotated_or_flipped_estimate(grid, code):
    rng = np.random.default_rng(1)
    block_perm = rng.permutation(grid[0] * grid[1])
    turned, shape = grid_symmetry_map(*grid, code)
    assert shape == grid
    estimate = turned[block_perm]  # every plain block placed where the turned grid puts it
    assert recovery_share(estimate, block_perm, grid) < 0.5
    assert recovery_share(estimate, block_perm, grid, up_to_symmetry=True) == 1.0


def test_unrelated_embeddings_score_near_chance():
    rng = np.random.default_rng(2)
    block_perm = rng.permutation(196)
    for method in ("linear", "combined"):
        estimate = recover_permutation(rng.normal(size=(196, 64)), rng.normal(size=(196, 64)), grid=(14, 14),
                                       method=method)
        assert recovery_share(estimate, block_perm, (14, 14)) <= 4 / 196, method  # chance: 1 / 196 expected


def test_subtracting_the_shared_start_matches_the_learned_updates():
    """Two models fine-tuned from one start keep that start, unpermuted, in their rows: raw rows match the
    identity; the updates (rows minus start) carry the permutation."""
    rng = np.random.default_rng(4)
    start = rng.normal(size=(196, 192))
    update = sincos(14, 14)
    update *= 0.3 * np.sqrt((start ** 2).mean() / (update ** 2).mean())  # updates smaller than the start
    block_perm = rng.permutation(196)
    reference, scheme = start + update, start + update[block_perm]
    raw = recover_permutation(scheme, reference, grid=(14, 14))
    assert (raw == np.arange(196)).mean() > 0.9
    assert recovery_share(raw, block_perm, (14, 14)) <= identity_share(block_perm) + 0.02
    updates = recover_permutation(scheme, reference, grid=(14, 14), init_embed=start)
    assert recovery_share(updates, block_perm, (14, 14)) == 1.0


def test_matching_checks_its_inputs():
    rows = np.zeros((16, 8))
    with pytest.raises(ValueError, match="method must be one of"):
        recover_permutation(rows, rows, grid=(4, 4), method="hungarian")
    with pytest.raises(ValueError, match="same T"):
        recover_permutation(rows, rows[:9], grid=(4, 4))
    with pytest.raises(ValueError, match="method='structure'"):
        recover_permutation(rows, np.zeros((16, 4)), grid=(4, 4))
    with pytest.raises(ValueError, match="does not hold 16 tokens"):
        recover_permutation(rows, rows, grid=(3, 5))
    assert recover_permutation(np.ones((1, 3)), np.ones((1, 3)), grid=(1, 1)).tolist() == [0]


# ------------------------------------------------------------------------------------------------ real models

def tiny_vit(**kwargs) -> torch.nn.Module:
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, patch_size=BLOCK, depth=1,
                             num_classes=10, **kwargs)


def test_position_embeddings_of_a_tiny_vit_and_of_a_convmixer():
    model = tiny_vit()
    rows = position_embeddings(model)
    assert rows.shape == (16, 192)
    np.testing.assert_array_equal(rows, model.pos_embed[0, 1:].detach().double().numpy())
    assert position_embeddings(tiny_vit(no_embed_class=True)).shape == (16, 192)  # no class-token row to drop
    convmixer = build_model("convmixer", 10, SIZE, BLOCK, {"arch": "convmixer", "dim": 8, "depth": 1,
                                                           "kernel_size": 3})
    with pytest.raises(EtcbenchError, match="position-embedding leakage needs a ViT, got ConvMixer"):
        position_embeddings(convmixer)


def save(path, model: torch.nn.Module, key: ciphers.Key, seed: int = SEED, options: dict | None = None) -> None:
    """Save a model as the train stage does (spec, record, key fingerprint)."""
    spec = {"model": "vit", "options": dict(VIT if options is None else options), "num_classes": 10,
            "image_size": SIZE, "patch_size": BLOCK, "in_chans": 3}
    record = {"dataset": "cifar10", "image_size": SIZE, "block_size": BLOCK, "model": "vit", "scheme": key.scheme,
              "jpeg_quality": None, "subsampling": "none", "seed": seed}
    save_trained_model(path, model, spec, {"key_fingerprint": key.fingerprint, "record": record})


def permuted_copy(model: torch.nn.Module, block_perm: np.ndarray) -> torch.nn.Module:
    """The model with its patch position rows reordered as a scheme model would need: pos'[1 + j] = pos[1 + perm[j]]."""
    copy = build_model("vit", 10, SIZE, BLOCK, VIT)
    copy.load_state_dict(model.state_dict())
    order = torch.as_tensor(np.concatenate([[0], 1 + block_perm]))
    with torch.no_grad():
        copy.pos_embed.copy_(model.pos_embed[:, order])
    return copy


@pytest.fixture
def keys(tmp_path):
    """The plain key of the reference model and the etc key of the scheme model, saved as the workflow saves them."""
    plain = ciphers.create("plain", block_size=BLOCK).generate_key(seed=1, image_size=(SIZE, SIZE))
    etc = ciphers.create("etc", block_size=BLOCK).generate_key(seed=1, image_size=(SIZE, SIZE))
    ciphers.save_key(plain, tmp_path / "plain.key.npz")
    ciphers.save_key(etc, tmp_path / "etc.key.npz")
    return plain, etc


def test_position_leak_recovers_the_key_of_a_model_that_absorbed_the_scrambling(tmp_path, keys):
    plain, etc = keys
    torch.manual_seed(0)
    reference = build_model("vit", 10, SIZE, BLOCK, VIT)
    save(tmp_path / "plain.pt", reference, plain)
    save(tmp_path / "etc.pt", permuted_copy(reference, etc.arrays["block_perm"]), etc)
    record = position_leak(tmp_path / "etc.pt", tmp_path / "plain.pt", tmp_path / "etc.key.npz")
    assert record["applicable"] and record["reason"] is None
    assert (record["share"], record["share_up_to_symmetry"]) == (1.0, 1.0)
    assert record["identity_share"] == identity_share(etc.arrays["block_perm"]) and record["chance"] == 1 / 16
    assert (record["tokens"], record["grid"], record["method"]) == (16, [4, 4], "combined")
    assert (record["scheme"], record["model"], record["arch"], record["seed"]) == ("etc", "vit", VIT["arch"], SEED)
    assert record["reference"] == {"model": "vit", "arch": VIT["arch"], "scheme": "plain", "seed": SEED}
    assert record["key_fingerprint"] == etc.fingerprint and record["init"] == "none"
    text = json.dumps(record)  # JSON-serialisable, and no key array in it
    assert "block_perm" not in text and str(etc.arrays["block_perm"].tolist()) not in text


def test_position_leak_on_pixel_shuffle_with_the_exact_model_transformation(tmp_path, keys):
    plain, _ = keys
    key = ciphers.create("pixel-shuffle", block_size=BLOCK).generate_key(seed=5, image_size=(SIZE, SIZE))
    ciphers.save_key(key, tmp_path / "ps.key.npz")
    torch.manual_seed(0)
    reference = build_model("vit", 10, SIZE, BLOCK, VIT)
    scheme = build_model("vit", 10, SIZE, BLOCK, VIT)
    scheme.load_state_dict(reference.state_dict())
    with torch.no_grad():
        scheme.pos_embed.copy_(transform_position_embedding(reference.pos_embed, key))
    save(tmp_path / "plain.pt", reference, plain)
    save(tmp_path / "ps.pt", scheme, key)
    for method in ("combined", "linear", "structure"):
        record = position_leak(tmp_path / "ps.pt", tmp_path / "plain.pt", tmp_path / "ps.key.npz", method=method)
        assert record["share"] == 1.0, method


def test_the_seeded_random_start_is_subtracted_when_both_models_started_there(tmp_path, keys):
    """From-scratch training (pretrained: false): both models start at the random init drawn from the seed."""
    plain, etc = keys
    block_perm = etc.arrays["block_perm"]
    rng = np.random.default_rng(0)
    torch.manual_seed(SEED)
    start = build_model("vit", 10, SIZE, BLOCK, VIT)  # what train_model builds right after seeding
    update = rng.normal(size=(16, 192)) * 0.3 * start.pos_embed.detach().std().item()  # smaller than the start

    def trained(rows: np.ndarray) -> torch.nn.Module:
        model = build_model("vit", 10, SIZE, BLOCK, VIT)
        model.load_state_dict(start.state_dict())
        with torch.no_grad():
            model.pos_embed[0, 1:] += torch.as_tensor(rows, dtype=model.pos_embed.dtype)
        return model

    save(tmp_path / "plain.pt", trained(update), plain)
    save(tmp_path / "etc.pt", trained(update[block_perm]), etc)
    args = (tmp_path / "etc.pt", tmp_path / "plain.pt", tmp_path / "etc.key.npz")
    state = torch.get_rng_state()
    with_start = position_leak(*args, init=False)
    assert torch.equal(torch.get_rng_state(), state)  # rebuilding the start leaves the caller's RNG alone
    assert with_start["share"] == 1.0 and with_start["init"] == "seeded random start (seed 0)"
    raw = position_leak(*args)  # the shared start dominates the rows: they match in place
    assert raw["share"] == raw["identity_share"]


def test_the_pretrained_start_can_be_the_reference(tmp_path, keys):
    """A scheme model that kept a checkpoint's geometry for its tokens, compared with the checkpoint itself."""
    _, etc = keys
    torch.manual_seed(1)
    pretrained = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, patch_size=BLOCK, depth=1,
                                   num_classes=0)
    torch.save(pretrained.state_dict(), tmp_path / "start.pth")
    model = build_model("vit", 10, SIZE, BLOCK, VIT)
    model.load_state_dict(pretrained.state_dict(), strict=False)
    save(tmp_path / "etc.pt", permuted_copy(model, etc.arrays["block_perm"]), etc)
    start = start_embeddings(load_trained_model(tmp_path / "etc.pt", torch.device("cpu"))[1], tmp_path / "start.pth")
    np.testing.assert_array_equal(start, pretrained.pos_embed[0, 1:].detach().double().numpy())
    record = position_leak(tmp_path / "etc.pt", None, tmp_path / "etc.key.npz", init=tmp_path / "start.pth")
    assert record["share"] == 1.0 and record["reference"] == {"start": f"file:{tmp_path / 'start.pth'}"}
    with pytest.raises(EtcbenchError, match="needs a reference"):
        position_leak(tmp_path / "etc.pt", None, tmp_path / "etc.key.npz")


def test_train_model_starts_where_start_embeddings_says(tmp_path):
    """``init=False`` relies on train_model building the model right after seeding: checked on a real run."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), np.arange(32) % 4
    save_npz(tmp_path / "data.npz", train_x=x[:16], train_y=y[:16], val_x=x[16:24], val_y=y[16:24], test_x=x[24:],
             test_y=y[24:])
    scheme = ciphers.create("etc", block_size=BLOCK)
    key = scheme.generate_key(seed=3, image_size=(32, 32))
    ciphers.save_key(key, tmp_path / "key.npz")
    save_npz(tmp_path / "plain.npz", x=x[24:], y=y[24:], key_fingerprint=np.array("plain"))
    train_model(data_path=tmp_path / "data.npz", key_path=tmp_path / "key.npz", plain_test=tmp_path / "plain.npz",
                model_name="vit", model_options=VIT, recipe=Recipe(steps=1, batch_size=16, lr=1e-9, min_lr=0.0,
                                                                   augment="none"),
                seed=7, interpolation="bicubic", out_model=tmp_path / "m.pt", out_metrics=tmp_path / "m.json",
                state_dir=tmp_path / "state", device="cpu", progress=False)
    model, ckpt = load_trained_model(tmp_path / "m.pt", torch.device("cpu"))
    np.testing.assert_allclose(start_embeddings(ckpt, False), position_embeddings(model), atol=1e-6)


def test_schemes_without_block_scrambling_are_not_applicable(tmp_path, keys):
    plain, _ = keys
    torch.manual_seed(0)
    reference = build_model("vit", 10, SIZE, BLOCK, VIT)
    save(tmp_path / "plain.pt", reference, plain)
    record = position_leak(tmp_path / "plain.pt", tmp_path / "plain.pt", tmp_path / "plain.key.npz")
    assert not record["applicable"] and "does not scramble blocks" in record["reason"]
    assert record["share"] is None and record["share_up_to_symmetry"] is None and record["tokens"] == 16
    off = ciphers.create("etc", block_size=BLOCK, scramble=False).generate_key(seed=1, image_size=(SIZE, SIZE))
    ciphers.save_key(off, tmp_path / "off.key.npz")
    save(tmp_path / "off.pt", reference, off)
    record = position_leak(tmp_path / "off.pt", tmp_path / "plain.pt", tmp_path / "off.key.npz")
    assert not record["applicable"] and "identity" in record["reason"]


def test_grayscale_based_etc_is_not_applicable(tmp_path, keys):
    """etc-gray scrambles the blocks of a 96x64 YCbCr plane: 24 tokens with no plain-image counterpart."""
    plain, _ = keys
    key = ciphers.create("etc-gray", block_size=BLOCK).generate_key(seed=1, image_size=(SIZE, SIZE))
    ciphers.save_key(key, tmp_path / "gray.key.npz")
    torch.manual_seed(0)
    save(tmp_path / "plain.pt", build_model("vit", 10, SIZE, BLOCK, VIT), plain)
    gray = build_model("vit", 10, (96, 64), BLOCK, VIT, in_chans=1)
    spec = {"model": "vit", "options": VIT, "num_classes": 10, "image_size": [96, 64], "patch_size": BLOCK,
            "in_chans": 1}
    save_trained_model(tmp_path / "gray.pt", gray, spec, {"key_fingerprint": key.fingerprint,
                                                          "record": {"scheme": "etc-gray", "seed": 0}})
    record = position_leak(tmp_path / "gray.pt", tmp_path / "plain.pt", tmp_path / "gray.key.npz", init=False)
    assert not record["applicable"] and "96x64 1-channel plane" in record["reason"]
    assert (record["tokens"], record["grid"], record["share"]) == (24, [6, 4], None)


def test_inputs_that_cannot_be_compared_are_refused(tmp_path, keys):
    plain, etc = keys
    torch.manual_seed(0)
    vit = build_model("vit", 10, SIZE, BLOCK, VIT)
    save(tmp_path / "plain.pt", vit, plain)
    save(tmp_path / "etc.pt", vit, etc)
    with pytest.raises(EtcbenchError, match="was not trained with the key"):
        position_leak(tmp_path / "plain.pt", tmp_path / "plain.pt", tmp_path / "etc.key.npz")
    with pytest.raises(EtcbenchError, match="method must be one of combined, linear, structure"):
        position_leak(tmp_path / "etc.pt", tmp_path / "plain.pt", tmp_path / "etc.key.npz", method="hungarian")
    small = build_model("vit", 10, 32, BLOCK, VIT)
    spec = {"model": "vit", "options": VIT, "num_classes": 10, "image_size": 32, "patch_size": BLOCK, "in_chans": 3}
    save_trained_model(tmp_path / "small.pt", small, spec, {"key_fingerprint": plain.fingerprint,
                                                            "record": {"scheme": "plain", "seed": 0}})
    with pytest.raises(EtcbenchError, match="16 patch tokens and the reference 4"):
        position_leak(tmp_path / "etc.pt", tmp_path / "small.pt", tmp_path / "etc.key.npz")
    options = {"arch": "convmixer", "dim": 8, "depth": 1, "kernel_size": 3}
    convmixer = build_model("convmixer", 10, SIZE, BLOCK, options)
    spec = {"model": "convmixer", "options": options, "num_classes": 10, "image_size": SIZE, "patch_size": BLOCK,
            "in_chans": 3}
    save_trained_model(tmp_path / "cm.pt", convmixer, spec, {"key_fingerprint": etc.fingerprint,
                                                             "record": {"scheme": "etc", "seed": 0}})
    with pytest.raises(EtcbenchError, match="needs a ViT, got ConvMixer"):
        position_leak(tmp_path / "cm.pt", tmp_path / "plain.pt", tmp_path / "etc.key.npz")
