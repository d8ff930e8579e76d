"""ITN-Attack: learns the identity on natural-image crops, runs end to end against real ciphers, is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from attack_helpers import HELD_OUT, crops

from etcbench import attacks, ciphers
from etcbench.attacks.networks import code_width_for, discriminator, inverse_network
from etcbench.metrics import ssim_per_image


def split(natural_images: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    train = np.setdiff1d(np.arange(len(natural_images)), HELD_OUT)
    return crops(natural_images[train], size), crops(natural_images[HELD_OUT], size)


def encrypt_with_keys(scheme, x: np.ndarray, seeds: list[int]) -> np.ndarray:
    """The attacker's pairs: images spread over several keys of their own."""
    parts = np.array_split(np.arange(len(x)), len(seeds))
    keys = [scheme.generate_key(seed=s, image_size=x.shape[1:3]) for s in seeds]
    return np.concatenate([scheme.encrypt(x[p], k) for p, k in zip(parts, keys)])


def test_networks_shapes_and_the_lab_layers():
    net = inverse_network(3, 4, "block")
    convs = [m for m in net if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 48, (4, 4), (4, 4)), (48, 48, (1, 1), (1, 1)), (48, 512, (1, 1), (1, 1)), (32, 3, (1, 1), (1, 1))]
    for channels, m, arch, hw in ((3, 16, "block", (64, 32)), (1, 8, "block", (96, 64)), (3, 4, "pixel", (12, 20))):
        y = inverse_network(channels, m, arch)(torch.rand(2, channels, *hw) * 2 - 1)
        assert y.shape == (2, channels, *hw) and y.abs().max() <= 1
    d = discriminator(1)
    assert d(torch.zeros(3, 1, 96, 64)).shape == (3,)
    assert any("parametrizations" in name for name, _ in d.named_parameters())  # spectral norm
    with pytest.raises(ValueError, match="multiples of 8"):
        d(torch.zeros(1, 1, 12, 16))
    with pytest.raises(ValueError, match="arch"):
        inverse_network(3, 4, "unet")


@pytest.mark.parametrize("m", [4, 8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_the_code_is_full_rank_at_every_block_size(m, channels):
    """The code has one channel per value of a block (C*M*M), so the stem can be injective on a block; the lab's 48
    channels are that at M = 4, and ``code_width`` sets another width (recorded by the attacks)."""
    net = inverse_network(channels, m, "block")
    stem = net[0].weight.detach()
    assert stem.shape == (channels * m * m, channels, m, m)
    assert torch.linalg.matrix_rank(stem.reshape(len(stem), -1).double()) == channels * m * m
    narrow = inverse_network(channels, m, "block", code_width=48)
    assert narrow[0].out_channels == 48 and narrow[3].in_channels == 48
    y = net(torch.rand(2, channels, 2 * m, m) * 2 - 1)
    assert y.shape == (2, channels, 2 * m, m)
    assert code_width_for(channels, m) == channels * m * m
    with pytest.raises(ValueError, match="code_width"):
        code_width_for(channels, m, 0)


def test_learns_the_identity_on_held_out_crops(natural_images):
    train, test = split(natural_images, 16)  # 192 training crops, 64 held-out crops
    attack = attacks.create("itn", block_size=4, arch="pixel", epochs=10, batch_size=16, lr=0.05)
    stats = attack.fit(train, train, seed=0)
    ssim = ssim_per_image(test, attack.reconstruct(test).images).mean()
    assert ssim >= 0.9, ssim
    history = stats["history"]
    assert len(history) == 10 and stats["n_val"] == 19 and stats["n_train"] == 173
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert stats["best_val_loss"] == min(h["val_loss"] for h in history)
    assert stats["images_per_s"] > 0 and {"seconds", "images_per_s"} <= set(history[0])


def test_block_network_learns(natural_images):
    train, test = split(natural_images, 16)
    attack = attacks.create("itn", block_size=4, epochs=20, batch_size=32, lr=0.05)
    stats = attack.fit(train, train, seed=0)
    assert stats["history"][-1]["train_loss"] < 0.5 * stats["history"][0]["train_loss"]
    assert ssim_per_image(test, attack.reconstruct(test).images).mean() >= 0.5


@pytest.mark.parametrize("scheme_name, options, arch, size, block", [
    ("pe", {}, "pixel", 32, 4),
    ("etc", {}, "block", 32, 8),
])
def test_end_to_end_against_a_cipher(natural_images, scheme_name, options, arch, size, block):
    scheme = ciphers.create(scheme_name, block_size=block, **options)
    train, test = split(natural_images, size)
    attack = attacks.create("itn", block_size=block, arch=arch, epochs=2, batch_size=16)
    stats = attack.fit(train, encrypt_with_keys(scheme, train, [11, 12, 13, 14]), seed=0)
    assert len(stats["history"]) == 2
    target = scheme.generate_key(seed=99, image_size=(size, size))
    result = attack.reconstruct(scheme.encrypt(test, target))
    assert result.images.shape == test.shape and result.images.dtype == np.uint8


def test_one_channel_planes():
    x = np.random.default_rng(0).integers(0, 256, (12, 48, 32, 1), dtype=np.uint8)
    attack = attacks.create("itn", block_size=8, epochs=1, batch_size=4)
    attack.fit(x, 255 - x, seed=0)
    out = attack.reconstruct(255 - x[:3]).images
    assert out.shape == (3, 48, 32, 1) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="1-channel"):
        attack.reconstruct(np.zeros((1, 48, 32, 3), np.uint8))


def test_same_seed_same_reconstruction(natural_images):
    train, test = split(natural_images, 16)
    enc = 255 - train

    def run(seed: int) -> np.ndarray:
        attack = attacks.create("itn", block_size=4, epochs=2, batch_size=32)
        attack.fit(train, enc, seed=seed)
        return attack.reconstruct(255 - test).images

    first = run(0)
    np.testing.assert_array_equal(first, run(0))
    assert not np.array_equal(first, run(1))


def test_options_and_bad_input():
    attack = attacks.create("itn", block_size=4)
    assert attack.needs_training
    assert attack.options == {"arch": "block", "epochs": 5, "batch_size": 128, "val_fraction": 0.1,
                              "eval_batch_size": 256, "train_crop": None, "lr": 0.01, "momentum": 0.9,
                              "weight_decay": 5e-4, "code_width": None, "optimizer": "sgd", "schedule": "multistep"}
    with pytest.raises(ValueError, match="optimizer must be one of sgd, adam"):
        attacks.create("itn", block_size=4, optimizer="lbfgs")
    with pytest.raises(ValueError, match="schedule must be one of multistep, cosine"):
        attacks.create("itn", block_size=4, schedule="step")
    x = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(RuntimeError, match="fit"):
        attack.reconstruct(x)
    with pytest.raises(ValueError, match="same shape"):
        attack.fit(x, x[:3])
    with pytest.raises(ValueError, match="uint8"):
        attack.fit(x.astype(np.float32), x)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        attack.fit(np.zeros((4, 8, 8, 2), np.uint8), np.zeros((4, 8, 8, 2), np.uint8))
    with pytest.raises(ValueError, match="multiples of 4"):
        attack.fit(np.zeros((4, 6, 8, 3), np.uint8), np.zeros((4, 6, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 2"):
        attack.fit(x[:1], x[:1])
    with pytest.raises(ValueError, match="arch"):
        attacks.create("itn", block_size=4, arch="unet")
    with pytest.raises(ValueError, match="epochs"):
        attacks.create("itn", block_size=4, epochs=0)
    with pytest.raises(ValueError, match="val_fraction"):
        attacks.create("itn", block_size=4, val_fraction=1.0)
    with pytest.raises(ValueError, match="no option"):
        attacks.create("itn", block_size=4, learning_rate=0.1)


def test_train_crop_learns_from_windows_on_the_grid(natural_images):
    train, test = split(natural_images, 16)
    attack = attacks.create("itn", block_size=4, arch="pixel", epochs=10, batch_size=16, lr=0.05, train_crop=8)
    seen = []
    step = attack._step
    attack._step = lambda e, p: (seen.append((e.shape, p.shape)), step(e, p))[1]
    attack.fit(train, train, seed=0)
    assert seen and all(e == p and e[-2:] == (8, 8) for e, p in seen)  # batches are 8 x 8 windows
    assert ssim_per_image(test, attack.reconstruct(test).images).mean() >= 0.9  # whole images at test time
    generator = torch.Generator().manual_seed(0)
    blocky = attacks.create("itn", block_size=4, train_crop=8)
    windows = [blocky._window((16, 24), generator) for _ in range(200)]
    tops = {rows.start for rows, _ in windows}
    lefts = {cols.start for _, cols in windows}
    assert tops == {0, 4, 8} and lefts == {0, 4, 8, 12, 16}  # every offset on the block grid, none off it
    assert all(rows.stop - rows.start == 8 and cols.stop - cols.start == 8 for rows, cols in windows)


def test_train_crop_bad_values():
    with pytest.raises(ValueError, match="multiple of 4"):
        attacks.create("itn", block_size=4, train_crop=6)
    with pytest.raises(ValueError, match="multiple of 8"):
        attacks.create("gan", block_size=4, train_crop=12)  # the discriminator needs multiples of 8
    with pytest.raises(ValueError, match="positive"):
        attacks.create("itn", block_size=4, arch="pixel", train_crop=0)
    x = np.zeros((4, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="exceeds"):
        attacks.create("itn", block_size=4, train_crop=12).fit(x, x)


@pytest.mark.parametrize(("options", "width"), [({}, 3 * 4 * 4), ({"code_width": 16}, 16)])
def test_the_code_width_used_is_recorded(options, width):
    x = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    attack = attacks.create("itn", block_size=4, epochs=1, batch_size=8, **options)
    stats = attack.fit(x, 255 - x, seed=0)
    assert stats["code_width"] == width and attack.options["code_width"] == options.get("code_width")


def test_the_lab_optimiser_by_default_adam_and_cosine_as_options():
    x = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    lab = attacks.create("itn", block_size=4, epochs=1, batch_size=4)
    lab.fit(x, x, seed=0)
    assert isinstance(lab._optimizer, torch.optim.SGD) and lab.scheduler.milestones == {60: 1, 120: 1, 160: 1}
    short = attacks.create("itn", block_size=4, epochs=3, batch_size=4, optimizer="adam", schedule="cosine", lr=0.01)
    short.fit(x, x, seed=0)
    assert isinstance(short._optimizer, torch.optim.Adam)
    assert short._optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # cosine: down to 0 after the last epoch


@pytest.mark.parametrize("name, epochs", [("itn", 10), ("gan-paired", 10)])
def test_the_configured_recipe_inverts_plain_images(cifar_archive, name, epochs):
    """The control: with the default config's optimiser settings, a short training on 400 real CIFAR-10 images
    learns the identity well enough to pass the report's control (SSIM 0.8 on held-out test images)."""
    from pathlib import Path

    import yaml

    from etcbench.data.cifar import read_archive
    from etcbench.report.tables import CONTROL_SSIM

    config = yaml.safe_load((Path(__file__).parents[2] / "config/config.yaml").read_text())["attack"]["options"][name]
    data = read_archive(cifar_archive)
    train, test = data["train_x"][:400], data["test_x"][:100]
    options = {k: v for k, v in config.items() if k not in ("epochs", "train_crop")}
    attack = attacks.create(name, block_size=8, epochs=epochs, **options)
    attack.fit(train, train, seed=0)
    assert ssim_per_image(test, attack.reconstruct(test).images).mean() >= CONTROL_SSIM
