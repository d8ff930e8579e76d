"""The attack protocol: the attacker's own data and keys, fitting, reconstruction of the target images, scores.

Ciphertext-only threat model (``docs/paper.md`` of the suite, section 10), as the lab's robustness code runs it:

1. The attacker takes their *own* plain images (here: the first ``train_images`` of the training split, which
   never overlaps the test split) and encrypts them with ``attacker_keys`` keys of their own, drawn from seeds
   ``attacker_seed, attacker_seed + 1, ...`` that must be disjoint from the defender's key seeds; image ``i`` uses
   key ``i mod attacker_keys``. A key equal to the target key is refused (compared by fingerprint).
2. Attacks that learn (ITN, GAN) are fitted on those pairs; the target key and the target test images are never
   passed to ``fit``.
3. The attack reconstructs the first ``num_images`` test images encrypted with the one fixed target key.
4. Each reconstruction is converted to RGB with the scheme's public (key-free) inverse layout and scored against
   the matching plain test image: SSIM (scikit-image, ``channel_axis=-1``, ``data_range=255``) and PSNR, mean and
   standard deviation over the images. The jigsaw solver is also scored on its recovered layout (direct and
   neighbour comparison against the true block sources from the key, which only the evaluator knows).

The ``none`` attack (the encrypted image as it is) gives each scheme's floor. :func:`attack_test_set` is the
workflow's attack stage (``etcbench attack``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import ciphers
from ..ciphers.blocks import num_blocks
from ..errors import EtcbenchError
from ..grid import attacker_seeds
from ..io import load_npz, save_npz, write_json
from ..manifest import manifest
from ..metrics import psnr_per_image, ssim_per_image
from .base import Attack, Reconstruction, create, register_attack

__all__ = ["AttackerData", "NoAttack", "attack_test_set", "attacker_data", "default_options", "run_attack",
           "true_positions"]

log = logging.getLogger(__name__)


@register_attack("none")
class NoAttack(Attack):
    """No attack: the encrypted images as they are (the floor every attack should beat)."""

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        return Reconstruction(images=np.array(encrypted, dtype=np.uint8, copy=True))


def default_options(attack: str, scheme: str, options: dict[str, Any]) -> dict[str, Any]:
    """The configured options of ``attack``, plus the lab's choice of network where the config leaves it open:
    the pixel-wise inverse network against PE (which has no blocks), the block-wise one otherwise."""
    options = dict(options)
    if attack in ("itn", "gan") and "arch" not in options:
        options["arch"] = "block" if ciphers.create(scheme, block_size=1).blockwise else "pixel"
    return options


@dataclass
class AttackerData:
    """The attacker's training pairs: plain images in the encrypted layout, and their encryptions."""

    plain: np.ndarray
    encrypted: np.ndarray
    key_fingerprints: list[str]


def attacker_data(scheme: ciphers.Scheme, images: np.ndarray, seeds: Sequence[int], target: ciphers.Key) -> AttackerData:
    """Encrypt the attacker's own ``(N, H, W, 3)`` uint8 images with their keys (image ``i`` with key ``i mod K``)."""
    h, w = images.shape[1:3]
    keys = [scheme.generate_key(seed=s, image_size=(h, w)) for s in seeds]
    fingerprints = [k.fingerprint for k in keys]
    if target.arrays and target.fingerprint in fingerprints:  # a key without secret arrays (plain) is no secret
        raise EtcbenchError(f"an attacker key equals the target key {target.key_id}: the protocol forbids it")
    c, hp, wp = scheme.encrypted_shape(h, w)
    encrypted = np.empty((len(images), hp, wp, c), dtype=np.uint8)
    for i, key in enumerate(keys):  # one vectorised call per key
        encrypted[i::len(keys)] = scheme.encrypt(images[i::len(keys)], key)
    return AttackerData(scheme.public_layout(images), encrypted, fingerprints)


def true_positions(key: ciphers.Key, count: int) -> np.ndarray:
    """``(count, n)``: the plain-image block each encrypted block came from (identity without scrambling)."""
    h, w = key.image_size
    plan_blocks = key.arrays.get("block_perm")
    if plan_blocks is None:
        plan_blocks = np.arange(num_blocks(h, w, key.block_size))
    return np.broadcast_to(np.asarray(plan_blocks, dtype=np.int64), (count, len(plan_blocks))).copy()


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation; an infinite PSNR (identical images) makes the mean inf and the std NaN."""
    if np.isfinite(values).all():
        return float(values.mean()), float(values.std())
    return float(values.mean()), float("nan")


def run_attack(
        attack: Attack,
        scheme: ciphers.Scheme,
        target_key: ciphers.Key,
        target_encrypted: np.ndarray,
        target_plain: np.ndarray,
        attacker: AttackerData | None,
        *,
        seed: int = 0,
        device: Any = "cpu",
        progress: bool = False,
) -> tuple[dict[str, Any], np.ndarray]:
    """Run one attack on one scheme's target images; returns ``(record, RGB reconstructions)``.

    Args:
        attack: the attack object.
        scheme, target_key: the defender's scheme and key.
        target_encrypted: ``(N, Hp, Wp, C)`` target test images encrypted with ``target_key``.
        target_plain: ``(N, H, W, 3)`` the same test images, plain.
        attacker: the attacker's training pairs (:func:`attacker_data`, built once and shared by every learning
            attack of a scheme); ``None`` when no attack learns.
        seed: the attack's training seed.
    """
    if len(target_encrypted) != len(target_plain):
        raise EtcbenchError(f"{len(target_encrypted)} encrypted but {len(target_plain)} plain target images")
    started = time.perf_counter()
    stats: dict[str, Any] = {}
    if attack.needs_training:
        if attacker is None:
            raise EtcbenchError(f"attack {attack.name!r} learns, but no attacker data was given")
        stats = attack.fit(attacker.plain, attacker.encrypted, seed=seed, device=device, progress=progress)
    fit_seconds = time.perf_counter() - started
    result = attack.reconstruct(target_encrypted)
    rgb = scheme.from_public_layout(result.images)
    ssim, psnr = ssim_per_image(target_plain, rgb), psnr_per_image(target_plain, rgb)
    record: dict[str, Any] = {
        "scheme": target_key.scheme, "block_size": target_key.block_size, "image_size": int(target_plain.shape[1]),
        "attack": attack.name, "n_images": int(len(rgb)),
        "ssim": float(ssim.mean()), "ssim_std": float(ssim.std()),
        "psnr": _mean_std(psnr)[0], "psnr_std": _mean_std(psnr)[1],
        "direct_comparison": None, "neighbour_comparison": None,
        "direct_comparison_sym": None, "neighbour_comparison_sym": None,
        "attacker_images": int(len(attacker.plain)) if attack.needs_training else 0,
        "attacker_keys": len(attacker.key_fingerprints) if attack.needs_training else 0,
        "fit_seconds": fit_seconds, "seconds": time.perf_counter() - started,
        "options": attack.options, "fit": stats, "key_fingerprint": target_key.fingerprint,
    }
    if "positions" in result.extra:
        from .layout import direct_comparison, neighbour_comparison

        truth = true_positions(target_key, len(rgb))
        c, hp, wp = scheme.encrypted_shape(*target_key.image_size)
        grid = (hp // target_key.block_size, wp // target_key.block_size)
        found = result.extra["positions"]
        rotations = bool(attack.options.get("rotate_flip", True))
        for suffix, sym in (("", False), ("_sym", True)):
            record[f"direct_comparison{suffix}"] = float(direct_comparison(
                found, truth, grid=grid, up_to_symmetry=sym, rotations=rotations).mean())
            record[f"neighbour_comparison{suffix}"] = float(neighbour_comparison(
                found, truth, grid, up_to_symmetry=sym, rotations=rotations).mean())
    log.info("%s on %s: SSIM %.3f, PSNR %.2f dB (%d images, %.1f s)", attack.name, target_key.scheme,
             record["ssim"], record["psnr"], len(rgb), record["seconds"])
    return record, rgb


def attack_test_set(
        attack_names: Sequence[str],
        options: dict[str, dict[str, Any]],
        data_path: Path,
        key_path: Path,
        test_path: Path,
        plain_path: Path,
        out: Path,
        out_examples: Path,
        *,
        attacker_seed: int,
        defender_seeds: Sequence[int],
        attacker_keys: int = 8,
        num_images: int = 100,
        train_images: int = 2000,
        interpolation: str = "bicubic",
        seed: int = 0,
        num_examples: int = 4,
        dataset: str = "cifar10",
        device: str = "auto",
        progress: bool = False,
) -> dict[str, Any]:
    """The attack stage: run ``attack_names`` (and the ``none`` floor) on the first ``num_images`` test images
    encrypted with the key at ``key_path``; write the records to ``out`` and the first reconstructions (RGB) to
    ``out_examples``. The attacker's own images are the first ``train_images`` of the data's training split."""
    from ..data.transforms import resize_numpy
    from ..seeding import seed_everything, select_device

    started = time.time()
    key, scheme = ciphers.load_scheme(key_path)
    test, plain = load_npz(test_path), load_npz(plain_path)
    ciphers.require_encrypted_with(test, key.fingerprint, test_path, f"key {key_path}")
    if num_images > len(plain["x"]):
        raise EtcbenchError(f"--num-images {num_images} exceeds the {len(plain['x'])} test images of {plain_path}")
    unknown = sorted(set(options) - set(attack_names))
    if unknown:
        raise EtcbenchError(f"--options names attack(s) {', '.join(unknown)} that are not run")
    names = ["none", *[n for n in attack_names if n != "none"]]
    runs = [create(n, block_size=key.block_size, **default_options(n, key.scheme, options.get(n, {})))
            for n in names]
    seeds = attacker_seeds(attacker_seed, attacker_keys, defender_seeds)
    pairs = None
    if any(r.needs_training for r in runs):  # the attacker's pairs: encrypted once, shared by ITN and GAN
        data = load_npz(data_path)
        if train_images > len(data["train_x"]):
            raise EtcbenchError(f"--train-images {train_images} exceeds the {len(data['train_x'])} training images")
        own = resize_numpy(data["train_x"][:train_images], key.image_size[0], interpolation)
        pairs = attacker_data(scheme, own, seeds, key)
    dev = select_device(device)
    target, reference = test["x"][:num_images], plain["x"][:num_images]
    records, examples = [], {}
    for attack in runs:
        seed_everything(seed)
        record, rgb = run_attack(attack, scheme, key, target, reference, pairs, seed=seed, device=dev,
                                 progress=progress)
        records.append({**record, "dataset": dataset})
        examples[attack.name] = rgb[:num_examples]
    save_npz(out_examples, plain=reference[:num_examples], scheme=np.array(key.scheme), attacks=np.array(names),
             **{f"x_{n}": x for n, x in examples.items()})
    result = {"records": records, "manifest": manifest("attack", started, time.time(), dev, seed=seed,
                                                       key_fingerprint=key.fingerprint)}
    write_json(out, result)
    return result
