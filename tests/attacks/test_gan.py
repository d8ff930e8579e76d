"""GAN-Attacks: the paired form learns the identity on natural-image crops; the lab's unpaired form never gets pairs;
both run end to end against real ciphers and are seeded."""

from __future__ import annotations

import numpy as np
import pytest
from attack_helpers import HELD_OUT, crops

from etcbench import attacks, ciphers
from etcbench.metrics import ssim_per_image


def test_learns_the_identity_on_held_out_crops(natural_images):
    train_tiles = np.setdiff1d(np.arange(len(natural_images)), HELD_OUT)[::2]
    train, test = crops(natural_images[train_tiles], 16), crops(natural_images[HELD_OUT], 16)  # 96 and 64 crops
    attack = attacks.create("gan-paired", block_size=4, arch="pixel", epochs=4, batch_size=8, lr=1e-3)
    stats = attack.fit(train, train, seed=0)
    ssim = ssim_per_image(test, attack.reconstruct(test).images).mean()
    assert ssim >= 0.9, ssim
    history = stats["history"]
    assert len(history) == 4 and {"train_loss", "train_adv_loss", "train_d_loss", "val_loss"} <= set(history[0])
    assert stats["best_val_loss"] == min(h["val_loss"] for h in history)


@pytest.mark.parametrize("scheme_name, arch, block", [("pe", "pixel", 4), ("etc", "block", 8)])
def test_end_to_end_against_a_cipher(natural_images, scheme_name, arch, block):
    scheme = ciphers.create(scheme_name, block_size=block)
    train, test = crops(natural_images[:12], 32), crops(natural_images[12:], 32)
    parts = np.array_split(np.arange(len(train)), 3)  # the attacker's images spread over three keys of their own
    keys = [scheme.generate_key(seed=s, image_size=(32, 32)) for s in (21, 22, 23)]
    encrypted = np.concatenate([scheme.encrypt(train[p], k) for p, k in zip(parts, keys)])
    attack = attacks.create("gan-paired", block_size=block, arch=arch, epochs=1, batch_size=16)
    stats = attack.fit(train, encrypted, seed=0)
    assert stats["n_train"] + stats["n_val"] == len(train)
    result = attack.reconstruct(scheme.encrypt(test, scheme.generate_key(seed=99, image_size=(32, 32))))
    assert result.images.shape == test.shape and result.images.dtype == np.uint8


def test_one_channel_planes():
    x = np.random.default_rng(0).integers(0, 256, (12, 48, 32, 1), dtype=np.uint8)
    attack = attacks.create("gan-paired", block_size=8, epochs=1, batch_size=4)
    attack.fit(x, 255 - x, seed=0)
    out = attack.reconstruct(255 - x[:3]).images
    assert out.shape == (3, 48, 32, 1) and out.dtype == np.uint8


def test_same_seed_same_reconstruction(natural_images):
    train = crops(natural_images[:8], 16)

    def run(seed: int) -> np.ndarray:
        attack = attacks.create("gan-paired", block_size=4, epochs=1, batch_size=32)
        attack.fit(train, 255 - train, seed=seed)
        return attack.reconstruct(255 - train[:16]).images

    first = run(0)
    np.testing.assert_array_equal(first, run(0))
    assert not np.array_equal(first, run(1))


def test_options_and_bad_input():
    attack = attacks.create("gan-paired", block_size=4)
    assert attack.needs_training
    assert attack.options == {"arch": "block", "epochs": 3, "batch_size": 64, "val_fraction": 0.1,
                              "eval_batch_size": 256, "train_crop": None, "lr": 2e-4, "beta1": 0.5,
                              "adv_weight": 0.01, "code_width": None}
    with pytest.raises(RuntimeError, match="fit"):
        attack.reconstruct(np.zeros((1, 8, 8, 3), np.uint8))
    x = np.zeros((4, 12, 12, 3), np.uint8)  # multiples of the block size, not of 8 (the discriminator's stride)
    with pytest.raises(ValueError, match="multiples of 8"):
        attack.fit(x, x)
    with pytest.raises(ValueError, match="same shape"):
        attack.fit(np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match="adv_weight"):
        attacks.create("gan-paired", block_size=4, adv_weight=-1.0)


def test_the_lab_gan_takes_unpaired_sets_and_no_validation():
    attack = attacks.create("gan", block_size=4)
    assert attack.needs_training and not attack.paired
    assert attack.options == {"arch": "block", "epochs": 3, "batch_size": 64, "eval_batch_size": 256,
                              "train_crop": None, "lr": 2e-4, "beta1": 0.5, "code_width": None}
    rng = np.random.default_rng(0)
    plain, other = rng.integers(0, 256, (10, 8, 8, 3), np.uint8), rng.integers(0, 256, (6, 8, 8, 3), np.uint8)
    stats = attacks.create("gan", block_size=4, epochs=2, batch_size=4).fit(plain, other, seed=0)
    # sets of different lengths are fine; an epoch pairs them up to the shorter one, and nothing is validated
    assert not stats["paired"] and stats["n_val"] == 0 and stats["best_val_loss"] is None
    assert stats["train_images"] == 2 * 6 and stats["n_encrypted"] == 6 and stats["best_epoch"] == 2
    assert {"train_loss", "train_d_loss"} <= set(stats["history"][0]) and "val_loss" not in stats["history"][0]
    with pytest.raises(ValueError, match="no option val_fraction"):  # nothing to validate on
        attacks.create("gan", block_size=4, val_fraction=0.1)


def test_the_lab_gan_draws_each_set_in_its_own_order(monkeypatch):
    """Batch by batch, the plain and the encrypted images come from independent orders (no fixed pairing)."""
    from etcbench.attacks.gan import GANAttack

    seen = []
    plain = np.arange(16, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    other = (100 + np.arange(16, dtype=np.uint8))[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)

    def spy(self, encrypted, plain_batch):
        to_index = lambda t: np.rint((t[:, 0, 0, 0].numpy() + 1) * 127.5).astype(int)  # noqa: E731
        seen.append((to_index(plain_batch), to_index(encrypted) - 100))
        return {"loss": 0.0}

    monkeypatch.setattr(GANAttack, "_step", spy)
    GANAttack(block_size=4, epochs=3, batch_size=4).fit(plain, other, seed=0)
    p = np.concatenate([a for a, _ in seen])
    e = np.concatenate([b for _, b in seen])
    assert sorted(p[:16]) == list(range(16)) and sorted(e[:16]) == list(range(16))  # each set once per epoch
    assert not np.array_equal(p, e)  # not the same order


def test_the_lab_gan_moves_towards_the_identity_on_plain_cifar(cifar_archive):
    """The lab's GAN has no pixel loss: only the block-local generator and the discriminator's view of whole
    windows tie its output to its input. On plain CIFAR-10 at the lab's scale (32 px, M = 4) a short unpaired
    training still moves it from noise to a near-identity map. It plateaus near 0.73 below the report's control
    of 0.8 (measured: 0.73 at 1,250 steps), which is why the default run flags it as under-trained. Measured here
    (seed 0, one thread): SSIM 0.39 after 8 epochs, 0.46 after 12, 0.55 after 16, 0.59 after 20 (260 steps), so 20
    epochs clear the 0.5 bar with room while an attack that does not learn stays below it."""
    from etcbench.data.cifar import read_archive

    data = read_archive(cifar_archive)
    train, test = data["train_x"][:400], data["test_x"][:100]
    options = {"batch_size": 16, "train_crop": 16, "lr": 5e-4}
    untrained = attacks.create("gan", block_size=4, epochs=1, **options)
    untrained.fit(train[:16], train[200:216], seed=0)  # one step: the generator is still close to its start
    before = ssim_per_image(test, untrained.reconstruct(test).images).mean()
    attack = attacks.create("gan", block_size=4, epochs=20, **options)
    attack.fit(train[:200], train[200:], seed=0)  # plain images and unrelated "ciphertexts" (the plain scheme)
    after = ssim_per_image(test, attack.reconstruct(test).images).mean()
    assert before < 0.3 and after > 0.5, (before, after)
