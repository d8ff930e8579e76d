"""The attack protocol: the attacker's data and keys never touch the target key or the target images."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from etcbench import attacks, ciphers
from etcbench.attacks.base import Attack, Reconstruction
from etcbench.attacks.protocol import (
    Scoring,
    attacker_data,
    attacker_key_seeds,
    default_options,
    run_attack,
    true_positions,
    unpaired_data,
)
from etcbench.cli import main as cli_main
from etcbench.errors import EtcbenchError
from etcbench.io import save_npz


class Spy(Attack):
    """A learning attack that records what it was fitted on and returns the all-grey image."""

    name = "spy"
    needs_training = True

    def fit(self, plain, encrypted, *, seed=0, device="cpu", progress=False):
        self.seen = (plain.copy(), encrypted.copy())
        return {"pairs": len(plain)}

    def reconstruct(self, encrypted):
        return Reconstruction(np.full_like(encrypted, 128))


def test_fit_never_sees_the_target_key_or_the_target_images(natural_images):
    scheme = ciphers.create("etc", block_size=16)
    target_key = scheme.generate_key(seed=7, image_size=(64, 64))
    target_plain, own = natural_images[:6], natural_images[6:]
    target = scheme.encrypt(target_plain, target_key)
    spy = Spy(block_size=16)
    seeds = attacker_key_seeds(20220413, target_key, 3)
    pairs = attacker_data(scheme, own, seeds, target_key)
    record, rgb = run_attack(spy, scheme, target_key, target, Scoring(target_plain), pairs)
    plain_seen, enc_seen = spy.seen
    assert np.array_equal(plain_seen, own)  # the attacker's own images, and only those
    rows = {im.tobytes() for im in target} | {im.tobytes() for im in target_plain}
    assert not rows & ({im.tobytes() for im in enc_seen} | {im.tobytes() for im in plain_seen})
    # image i is encrypted with attacker key i mod 3, never with the target key
    for i, im in enumerate(own):
        key = scheme.generate_key(seed=seeds[i % 3], image_size=(64, 64))
        assert np.array_equal(enc_seen[i], scheme.encrypt(im, key))
        assert not np.array_equal(enc_seen[i], scheme.encrypt(im, target_key))
    # the attacker's keys: derived per role (attacker 0, 1, 2) for the target's setting and scheme, all distinct
    from etcbench.ciphers.derive import KeyContext, MasterSecret

    master = MasterSecret.from_key_seed(20220413)
    assert seeds == [master.seed_for(KeyContext("s64-m16", "etc", f"attacker {i}")) for i in range(3)]
    assert len(set(seeds)) == 3 and master.seed_for(KeyContext("s64-m16", "etc")) not in seeds
    with pytest.raises(EtcbenchError, match="at least one key"):
        attacker_key_seeds(master, target_key, 0)
    assert record["attacker_keys"] == 3 and record["attacker_images"] == len(own) and record["fit"] == {"pairs": 10}
    assert rgb.shape == target_plain.shape and (rgb == 128).all() and record["ssim"] < 0.9


def test_a_learning_attack_without_attacker_data_is_refused(natural_images):
    scheme = ciphers.create("etc", block_size=16)
    key = scheme.generate_key(seed=7, image_size=(64, 64))
    with pytest.raises(EtcbenchError, match="no attacker data"):
        run_attack(Spy(block_size=16), scheme, key, natural_images, Scoring(natural_images), None)


def test_the_target_key_is_refused_as_an_attacker_key(natural_images):
    scheme = ciphers.create("etc", block_size=16)
    target_key = scheme.generate_key(seed=7, image_size=(64, 64))
    with pytest.raises(EtcbenchError, match="equals the target key"):
        attacker_data(scheme, natural_images[:4], [5, 7], target_key)


def test_no_attack_scores_the_encrypted_image_itself(natural_images):
    plain = ciphers.create("plain", block_size=16)
    key = plain.generate_key(seed=1, image_size=(64, 64))
    record, _ = run_attack(attacks.create("none", block_size=16), plain, key, natural_images,
                           Scoring(natural_images), None)
    assert record["ssim"] == pytest.approx(1.0) and record["psnr"] == float("inf")
    etc = ciphers.create("etc", block_size=16)
    key = etc.generate_key(seed=1, image_size=(64, 64))
    record, _ = run_attack(attacks.create("none", block_size=16), etc, key, etc.encrypt(natural_images, key),
                           Scoring(natural_images), None)
    assert record["ssim"] < 0.3 and record["attacker_keys"] == 0 and record["direct_comparison"] is None


def test_grayscale_plane_reconstructions_are_scored_in_rgb(natural_images):
    scheme = ciphers.create("etc-gray", block_size=16)
    key = scheme.generate_key(seed=1, image_size=(64, 64))
    record, rgb = run_attack(attacks.create("none", block_size=16), scheme, key, scheme.encrypt(natural_images, key),
                             Scoring(natural_images), None)
    assert rgb.shape == natural_images.shape and record["ssim"] < 0.5


def test_true_positions_follow_the_block_order_of_the_key():
    etc = ciphers.create("etc", block_size=8)
    key = etc.generate_key(seed=3, image_size=(32, 32))
    pos = true_positions(key, 2)
    assert pos.shape == (2, 16) and np.array_equal(pos[1], key.arrays["block_perm"])
    le_key = ciphers.create("le", block_size=8).generate_key(seed=3, image_size=(32, 32))
    assert np.array_equal(true_positions(le_key, 1)[0], np.arange(16))


def test_the_unpaired_gan_never_gets_a_plain_image_with_its_own_ciphertext(natural_images):
    scheme = ciphers.create("etc", block_size=16)
    target_key = scheme.generate_key(seed=7, image_size=(64, 64))
    data = unpaired_data(scheme, natural_images[:9], target_key)
    assert not set(data.plain_index) & set(data.encrypted_index)  # disjoint by index
    assert sorted([*data.plain_index, *data.encrypted_index]) == list(range(9))
    np.testing.assert_array_equal(data.plain, natural_images[data.plain_index])
    # the ciphertexts are the other images under the *target* key (the cloud's view)
    np.testing.assert_array_equal(data.encrypted, scheme.encrypt(natural_images[data.encrypted_index], target_key))
    assert data.key_fingerprints == [target_key.fingerprint]
    with pytest.raises(EtcbenchError, match="at least 4"):
        unpaired_data(scheme, natural_images[:3], target_key)


def test_scores_at_the_native_size_and_semantic_leakage(natural_images):
    from etcbench.data.transforms import resize_numpy

    native = resize_numpy(natural_images, 32)
    calls = []

    def classify(images, labels):
        calls.append(images.shape)
        return 0.25

    plain = ciphers.create("plain", block_size=16)
    key = plain.generate_key(seed=1, image_size=(64, 64))
    scoring = Scoring(natural_images, native=native, labels=np.zeros(len(native), int), classify=classify)
    record, _ = run_attack(attacks.create("none", block_size=16), plain, key, natural_images, scoring, None)
    # the plain image resized back is compared with the native image: near 1, not exactly (resampling twice)
    assert record["native_size"] == 32 and 0.8 < record["ssim_native"] <= 1.0
    assert record["semantic_top1"] == 0.25 and calls == [natural_images.shape]
    assert record["ssim_ci95"] == 0.0  # identical images: no spread


def test_learning_attacks_use_the_pixel_network_against_pe():
    assert default_options("itn", "pe", {}) == {"arch": "pixel"}
    assert default_options("gan", "etc", {"epochs": 2}) == {"epochs": 2, "arch": "block"}
    assert default_options("gan-paired", "pe", {}) == {"arch": "pixel"}
    assert default_options("itn", "pe", {"arch": "block"}) == {"arch": "block"}
    assert default_options("fr", "pe", {}) == {}


def test_attack_stage_bad_input_is_one_line_and_no_output(tmp_path, natural_images, capsys):
    scheme = ciphers.create("etc", block_size=16)
    key = scheme.generate_key(seed=7, image_size=(64, 64))
    ciphers.save_key(key, tmp_path / "k.npz")
    y = np.zeros(len(natural_images), np.int64)
    save_npz(tmp_path / "plain.npz", x=natural_images, y=y, key_fingerprint=np.array("plain"))
    save_npz(tmp_path / "data.npz", train_x=natural_images[:, ::2, ::2], train_y=y, test_x=natural_images[:, ::2, ::2],
             test_y=y)
    outs = [tmp_path / "a.json", tmp_path / "a.npz"]
    loose = tmp_path / "master.secret"
    loose.write_bytes(bytes(32))
    loose.chmod(0o644)
    base = [sys.executable, "-m", "etcbench", "attack", "--data", str(tmp_path / "data.npz"), "--key",
            str(tmp_path / "k.npz"), "--plain-test", str(tmp_path / "plain.npz"),
            "--num-images", "4", "--out", str(outs[0]), "--out-examples", str(outs[1])]
    cases = {
        "is readable by others": ["--attacks", "fr", "--master-file", str(loose)],
        "that are not run": ["--attacks", "fr", "--options", json.dumps({"itn": {}}), "--key-seed", "1"],
        "shared-key applies to": ["--attacks", "shared-key", "--key-seed", "1"],
        "exceeds the attacker's": ["--attacks", "kpa", "--options", json.dumps({"kpa": {"pairs": [1, 99]}}),
                                   "--train-images", "10", "--key-seed", "1"],
        "has no option depth": ["--attacks", "itn", "--options", json.dumps({"itn": {"depth": 3}}),
                                "--key-seed", "1"],
    }
    # the first case through a real CLI process (its whole stderr is the one line); the others through the same
    # entry point in this process (the CLI's main: parser, stage, error handling), which saves a process start each
    for i, (message, args) in enumerate(cases.items()):
        if i == 0:
            res = subprocess.run(base + args, capture_output=True, text=True)
            code, stderr = res.returncode, res.stderr
        else:
            code, stderr = cli_main(base[3:] + args), capsys.readouterr().err
        assert code == 1 and message in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert not any(p.exists() for p in outs)
    # an unknown attack name is a usage error (exit 2): argparse names the registered attacks
    res = subprocess.run(base + ["--attacks", "rot13", "--key-seed", "1"],
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "invalid choice: 'rot13'" in res.stderr and "'jigsaw'" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not any(p.exists() for p in outs)
    res = subprocess.run(base + ["--attacks", "fr", "--key-seed", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    records = json.loads(outs[0].read_text())["records"]
    assert [r["attack"] for r in records] == ["none", "fr"] and records[0]["n_images"] == 4
    assert key.fingerprint not in res.stderr
