"""The attack protocol: the attacker's own data and keys, fitting, reconstruction of the target images, scores.

Ciphertext-only threat model (``docs/paper.md`` of the suite, section 10), as the lab's robustness code runs it:

1. The attacker takes their *own* plain images (here: the first ``train_images`` of the training split, which
   never overlaps the test split) and encrypts them with ``attacker_keys`` keys of their own, derived from the
   benchmark's master secret with the roles ``attacker 0``, ``attacker 1``, ... (so they share no key material with
   the defender's keys; the attacker learns nothing else from the master); image ``i`` uses key
   ``i mod attacker_keys``. A key equal to the target key is refused (compared by fingerprint).
2. Attacks that learn (ITN, GAN) are fitted on those pairs; the target key and the target test images are never
   passed to ``fit``.
3. The attack reconstructs the first ``num_images`` test images encrypted with the one fixed target key.
4. Each reconstruction is converted to RGB with the scheme's public (key-free) inverse layout and scored against
   the matching plain test image: SSIM (scikit-image, ``channel_axis=-1``, ``data_range=255``) and PSNR, mean and
   standard deviation over the images. The jigsaw solver is also scored on its recovered layout (direct and
   neighbour comparison against the true block sources from the key, which only the evaluator knows).

Other attackers the stage runs next to the ciphertext-only one:

* ``gan`` (the lab's GAN-Attack) is the cloud that holds training images encrypted with the **target** key and
  plain images, unpaired: the first half of the attacker's ``train_images`` plain, the second half under the
  target key (:func:`unpaired_data`), so by index no plain image is ever the source of a ciphertext it sees (the
  lab shuffles one set twice; disjoint halves make "unpaired" hold by construction, at half the images each);
* ``kpa`` (:mod:`.known_plaintext`) holds ``k`` of the attacker's own images encrypted with the target key, for
  each ``k`` of its ``pairs`` option: one record per ``k`` with the share of the key recovered;
* ``shared-key`` (:mod:`.shared_key`) estimates the in-block key that pixel shuffling and LE share by all
  blocks from the target ciphertexts alone.

Scores besides SSIM/PSNR at the setting's image size: the same at the dataset's native size (the reconstruction
resized back, e.g. to CIFAR's 32 px, with the configured interpolation, against the original test image; the
literature's resolution); *semantic leakage*, the top-1 that the plain-trained classifier of the setting
(``classifier``) reaches on the reconstructions (next to its top-1 on the plain images); for the jigsaw solver the
share of the largest correctly assembled component and the SSIM of the best of its global candidates (an upper
bound: edges cannot tell them apart); the share of the key recovered where an attack estimates one.

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
from ..ciphers.derive import KeyContext, MasterSecret
from ..encryption import encrypted_test_set
from ..errors import EtcbenchError
from ..grid import setting_id
from ..io import load_npz, require_images, save_npz, write_json
from ..manifest import manifest
from ..metrics import psnr_per_image, ssim_per_image
from .base import ATTACKS, Attack, Reconstruction, create, default_options, register_attack

__all__ = ["AttackerData", "KnownPlaintextAttack", "NoAttack", "Scoring", "attack_test_set", "attacker_data",
           "default_options", "not_applicable", "run_attack", "run_known_plaintext", "true_positions",
           "unpaired_data"]

log = logging.getLogger(__name__)


@register_attack("none")
class NoAttack(Attack):
    """No attack: the encrypted images as they are (the floor every attack should beat)."""

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        return Reconstruction(images=np.array(encrypted, dtype=np.uint8, copy=True))


def _known_algorithm(attack: str, key: ciphers.Key, options: dict[str, Any]) -> dict[str, Any]:
    """The attacker knows the algorithm with its options, not the key (each attack's ``algorithm_options``);
    configured options win."""
    return {**ATTACKS.get(attack).algorithm_options(key.scheme, dict(key.options)), **options}


def not_applicable(attack: str, scheme: str) -> str | None:
    """Why ``attack`` cannot run against ``scheme`` (one line), or ``None`` when it can."""
    return ATTACKS.get(attack).not_applicable(scheme)


@register_attack("kpa")
class KnownPlaintextAttack(Attack):
    """Known-plaintext attack (:mod:`.known_plaintext`) as the attack stage runs it: for each ``k`` in ``pairs``,
    recover the key from the first ``k`` of the attacker's own images encrypted with the target key, then decrypt
    the target images with it (:func:`run_known_plaintext`).

    Args:
        block_size: the scheme's block size.
        pairs: the numbers of known pairs to try (each at most the attacker's ``train_images``).
    """

    def __init__(self, block_size: int, pairs: Sequence[int] = (1, 2, 4, 8)) -> None:
        super().__init__(block_size)
        pairs = list(pairs)
        if not pairs or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in pairs):
            raise ValueError(f"pairs must be a non-empty list of positive integers, got {pairs!r}")
        self.pairs = sorted(set(pairs))

    @classmethod
    def not_applicable(cls, scheme: str) -> str | None:
        from .known_plaintext import SUPPORTED

        return None if scheme in SUPPORTED else f"kpa has no key recovery for scheme {scheme!r}"


@dataclass
class AttackerData:
    """The attacker's training pairs: plain images in the encrypted layout, and their encryptions."""

    plain: np.ndarray
    encrypted: np.ndarray
    key_fingerprints: list[str]
    plain_index: np.ndarray | None = None  # training-split indices of the plain and the encrypted images
    encrypted_index: np.ndarray | None = None


def attacker_key_seeds(master: MasterSecret | int, target: ciphers.Key, count: int) -> list[int]:
    """The seeds of the attacker's ``count`` keys for ``target``'s setting and scheme: derived from ``master`` (an
    int: the config's key_seed) with the roles ``attacker 0``, ``attacker 1``, ..., so they share no key material
    with the defender's keys (:mod:`etcbench.ciphers.derive`)."""
    if count < 1:
        raise EtcbenchError(f"the attacker needs at least one key, got attacker_keys={count}")
    if not isinstance(master, MasterSecret):
        master = MasterSecret.from_key_seed(master)
    setting = setting_id({"image_size": target.image_size, "block_size": target.block_size})
    return [master.seed_for(KeyContext(setting, target.scheme, f"attacker {i}")) for i in range(count)]


def attacker_data(scheme: ciphers.Scheme, images: np.ndarray, seeds: Sequence[int],
                  target: ciphers.Key) -> AttackerData:
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


def unpaired_data(scheme: ciphers.Scheme, images: np.ndarray, target: ciphers.Key) -> AttackerData:
    """The unpaired GAN's view of the attacker's ``(N, H, W, 3)`` images: the first half plain (in the public
    layout), the second half encrypted with the **target** key, so no plain image is the source of a ciphertext
    it is given (``plain_index`` and ``encrypted_index`` are disjoint)."""
    if len(images) < 4:
        raise EtcbenchError(f"the unpaired GAN needs at least 4 of the attacker's images (2 plain, 2 encrypted), "
                            f"got {len(images)}")
    half = len(images) // 2
    return AttackerData(scheme.public_layout(images[:half]), scheme.encrypt(images[half:], target),
                        [target.fingerprint], plain_index=np.arange(half), encrypted_index=np.arange(half, len(images)))


def true_positions(key: ciphers.Key, count: int) -> np.ndarray:
    """``(count, n)``: the plain-image block each encrypted block came from (identity without scrambling)."""
    h, w = key.image_size
    plan_blocks = key.arrays.get("block_perm")
    if plan_blocks is None:
        plan_blocks = np.arange(num_blocks(h, w, key.block_size))
    return np.broadcast_to(np.asarray(plan_blocks, dtype=np.int64), (count, len(plan_blocks))).copy()


@dataclass
class Scoring:
    """What the evaluator scores a reconstruction against (the attack never sees it).

    Attributes:
        plain: ``(N, H, W, 3)`` the plain target images at the setting's size.
        native: the same images at the dataset's native size (``None``: not scored there).
        labels: their class labels (for semantic leakage).
        classify: top-1 of the plain-trained classifier on ``(N, H, W, 3)`` uint8 images and labels (``None``:
            no semantic leakage score).
        interpolation: how a reconstruction is resized to the native size.
    """

    plain: np.ndarray
    native: np.ndarray | None = None
    labels: np.ndarray | None = None
    classify: Any = None
    interpolation: str = "bicubic"

    def scores(self, rgb: np.ndarray) -> dict[str, Any]:
        ssim, psnr = ssim_per_image(self.plain, rgb), psnr_per_image(self.plain, rgb)
        out: dict[str, Any] = {"ssim": float(ssim.mean()), "ssim_std": float(ssim.std()),
                               "ssim_ci95": _ci95(ssim), "psnr": _mean_std(psnr)[0], "psnr_std": _mean_std(psnr)[1],
                               "ssim_native": None, "psnr_native": None, "native_size": None, "semantic_top1": None,
                               "semantic_top1_plain": None}
        if self.native is not None:
            from ..data.transforms import resize_numpy

            small = resize_numpy(rgb, self.native.shape[1], self.interpolation)
            ssim_n, psnr_n = ssim_per_image(self.native, small), psnr_per_image(self.native, small)
            out.update(ssim_native=float(ssim_n.mean()), ssim_native_std=float(ssim_n.std()),
                       psnr_native=_mean_std(psnr_n)[0], native_size=int(self.native.shape[1]))
        if self.classify is not None and self.labels is not None:
            out["semantic_top1"] = float(self.classify(rgb, self.labels))
        return out


def _ci95(values: np.ndarray) -> float:
    """Half-width of the normal 95% interval of the mean over images (0 for one image)."""
    return float(1.96 * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


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
        scoring: Scoring,
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
        scoring: the plain target images (and what else the reconstructions are scored with).
        attacker: the data the attack learns from (:func:`attacker_data`: the attacker's pairs, shared by the
            attacks that use pairs; for an unpaired attack, plain images and target-key ciphertexts of other
            images); ``None`` when the attack does not learn.
        seed: the attack's training seed.
    """
    if len(target_encrypted) != len(scoring.plain):
        raise EtcbenchError(f"{len(target_encrypted)} encrypted but {len(scoring.plain)} plain target images")
    started = time.perf_counter()
    stats: dict[str, Any] = {}
    if attack.needs_training:
        if attacker is None:
            raise EtcbenchError(f"attack {attack.name!r} learns, but no attacker data was given")
        stats = attack.fit(attacker.plain, attacker.encrypted, seed=seed, device=device, progress=progress)
    fit_seconds = time.perf_counter() - started
    result = attack.reconstruct(target_encrypted)
    rgb = scheme.from_public_layout(result.images)
    record = _record(attack, target_key, rgb, scoring)
    record.update({
        "attacker_images": int(len(attacker.plain)) if attack.needs_training else 0,
        "attacker_ciphertexts": int(len(attacker.encrypted)) if attack.needs_training else 0,
        "attacker_keys": len(attacker.key_fingerprints) if attack.needs_training else 0,
        "target_key_ciphertexts": bool(attack.needs_training and not getattr(attack, "paired", True)),
        "fit_seconds": fit_seconds, "seconds": time.perf_counter() - started, "fit": stats,
    })
    if "positions" in result.extra:
        record.update(_layout_scores(attack, scheme, target_key, result, scoring))
    if "pixel_perm_estimate" in result.extra:  # the shared in-block permutation, up to the block's symmetries
        from .shared_key import permutation_recovery_share

        name, channels = ("nibble_perm", 6) if target_key.scheme == "le" else ("pixel_perm", 3)
        record["key_share"] = permutation_recovery_share(result.extra["pixel_perm_estimate"],
                                                         target_key.arrays[name], target_key.block_size, channels,
                                                         up_to_symmetry=True)
    log.info("%s on %s: SSIM %.3f, PSNR %.2f dB (%d images, %.1f s)", attack.name, target_key.scheme,
             record["ssim"], record["psnr"], len(rgb), record["seconds"])
    return record, rgb


def _record(attack: Attack, key: ciphers.Key, rgb: np.ndarray, scoring: Scoring) -> dict[str, Any]:
    """The fields every attack record has, with the reconstruction's scores."""
    return {
        "scheme": key.scheme, "block_size": key.block_size, "image_size": int(scoring.plain.shape[1]),
        "attack": attack.name, "n_images": int(len(rgb)), **scoring.scores(rgb),
        "direct_comparison": None, "neighbour_comparison": None, "largest_component": None,
        "direct_comparison_sym": None, "neighbour_comparison_sym": None, "largest_component_sym": None,
        "ssim_best_candidate": None, "global_candidates": None, "known_pairs": None, "key_share": None,
        "attacker_images": 0, "attacker_ciphertexts": 0, "attacker_keys": 0, "target_key_ciphertexts": False,
        "options": attack.options, "fit": {}, "key_fingerprint": key.fingerprint,
    }


def _layout_scores(attack: Attack, scheme: ciphers.Scheme, key: ciphers.Key, result: Reconstruction,
                   scoring: Scoring) -> dict[str, Any]:
    """The jigsaw literature's layout scores (against the true block sources, which only the evaluator knows) and
    the SSIM of the best global candidate of each solved image (an upper bound: edges cannot choose it)."""
    from .jigsaw import global_candidates
    from .layout import direct_comparison, largest_component, neighbour_comparison

    n = len(result.images)
    truth = true_positions(key, n)
    c, hp, wp = scheme.encrypted_shape(*key.image_size)
    grid = (hp // key.block_size, wp // key.block_size)
    found = result.extra["positions"]
    opts = attack.options
    rotations = bool(opts.get("rotate_flip", True))
    out: dict[str, Any] = {}
    for suffix, sym in (("", False), ("_sym", True)):
        out[f"direct_comparison{suffix}"] = float(direct_comparison(
            found, truth, grid=grid, up_to_symmetry=sym, rotations=rotations).mean())
        out[f"neighbour_comparison{suffix}"] = float(neighbour_comparison(
            found, truth, grid, up_to_symmetry=sym, rotations=rotations).mean())
        out[f"largest_component{suffix}"] = float(largest_component(
            found, truth, grid, up_to_symmetry=sym, rotations=rotations).mean())
    candidates, labels = global_candidates(result.images, rotate_flip=rotations,
                                           negative_positive=bool(opts.get("negative_positive", True)),
                                           color_permutation=bool(opts.get("color_permutation", True)))
    best = np.full(n, -np.inf)
    for candidate in candidates:
        best = np.maximum(best, ssim_per_image(scoring.plain, scheme.from_public_layout(candidate)))
    out.update(ssim_best_candidate=float(best.mean()), global_candidates=len(labels))
    return out


def run_known_plaintext(attack: KnownPlaintextAttack, scheme: ciphers.Scheme, target_key: ciphers.Key,
                        target_encrypted: np.ndarray, scoring: Scoring,
                        own: np.ndarray) -> list[tuple[dict[str, Any], np.ndarray]]:
    """The known-plaintext attack for each ``k`` of ``attack.pairs``: the first ``k`` of the attacker's ``own``
    plain images encrypted with the target key are the known pairs; returns ``(record, RGB decryption)`` per k."""
    from .known_plaintext import attack as kpa_attack
    from .known_plaintext import key_recovery_share

    if max(attack.pairs) > len(own):
        raise EtcbenchError(f"kpa pairs {max(attack.pairs)} exceeds the attacker's {len(own)} images (train_images)")
    pairs_plain = own[:max(attack.pairs)]
    pairs_encrypted = scheme.encrypt(pairs_plain, target_key)
    out = []
    for k in attack.pairs:
        started = time.perf_counter()
        rgb, recovered = kpa_attack(scheme, pairs_plain, pairs_encrypted, target_encrypted, pairs=k)
        record = _record(attack, target_key, rgb, scoring)
        record.update(known_pairs=k, key_share=key_recovery_share(recovered, target_key),
                      key_determined_share=recovered.determined_share, seconds=time.perf_counter() - started,
                      fit_seconds=0.0, options={"pairs": k})
        log.info("kpa with %d pairs on %s: key share %.3f, SSIM %.3f", k, target_key.scheme, record["key_share"],
                 record["ssim"])
        out.append((record, rgb))
    return out


def attack_test_set(
        attack_names: Sequence[str],
        options: dict[str, dict[str, Any]],
        data_path: Path,
        key_path: Path,
        plain_path: Path,
        out: Path,
        out_examples: Path,
        *,
        master: MasterSecret | int,
        attacker_keys: int = 8,
        num_images: int = 100,
        train_images: int = 2000,
        interpolation: str = "bicubic",
        seed: int = 0,
        num_examples: int = 4,
        dataset: str = "cifar10",
        classifier: Path | None = None,
        device: str = "auto",
        progress: bool = False,
) -> dict[str, Any]:
    """The attack stage: run ``attack_names`` (and the ``none`` floor) on the first ``num_images`` test images
    encrypted with the key at ``key_path`` (the plain test set ``plain_path`` encrypted here, in-process); write
    the records to ``out`` and the first reconstructions (RGB) to ``out_examples``. The attacker's own images are
    the first ``train_images`` of the data's training split (the unpaired GAN sees half of them plain and half
    under the target key); ``classifier``, a model trained on plain images of the same setting, scores semantic
    leakage."""
    from ..data.transforms import resize_numpy
    from ..seeding import seed_everything, select_device

    started = time.time()
    key, scheme = ciphers.load_scheme(key_path)
    data = load_npz(data_path)
    require_images(data["train_x"], f"{data_path} (train_x)")
    unknown = sorted(set(options) - set(attack_names))
    if unknown:
        raise EtcbenchError(f"--options names attack(s) {', '.join(unknown)} that are not run")
    names = ["none", *[n for n in attack_names if n != "none"]]
    for name in names:
        reason = not_applicable(name, key.scheme)
        if reason:
            raise EtcbenchError(reason)
    try:
        runs = [create(n, block_size=key.block_size,
                       **_known_algorithm(n, key, default_options(n, key.scheme, options.get(n, {})))) for n in names]
    except ValueError as exc:
        raise EtcbenchError(f"attack options: {exc}") from None
    seeds = attacker_key_seeds(master, key, attacker_keys)
    for attack in runs:
        if isinstance(attack, KnownPlaintextAttack) and max(attack.pairs) > train_images:
            raise EtcbenchError(f"kpa pairs {max(attack.pairs)} exceeds the attacker's {train_images} images "
                                f"(--train-images)")
    test = encrypted_test_set(plain_path, key_path, count=num_images)  # the attacked images only, once all is checked
    plain = {"x": test.plain, "y": test.y}
    learners = [r for r in runs if r.needs_training]
    own = None
    if learners or any(isinstance(r, KnownPlaintextAttack) for r in runs):  # the attacker's own images
        if train_images > len(data["train_x"]):
            raise EtcbenchError(f"--train-images {train_images} exceeds the {len(data['train_x'])} training images")
        own = resize_numpy(data["train_x"][:train_images], key.image_size[0], interpolation)
    pairs = target_set = None
    if any(getattr(r, "paired", True) for r in learners):  # the attacker's pairs: encrypted once, shared
        pairs = attacker_data(scheme, own, seeds, key)
        pairs.plain_index = pairs.encrypted_index = np.arange(train_images)
    if any(not getattr(r, "paired", True) for r in learners):
        target_set = unpaired_data(scheme, own, key)
    dev = select_device(device)
    target, reference = test.x, test.plain
    scoring = _scoring(data, plain, num_images, interpolation, classifier, dev)
    records, examples = [], {}
    for attack in runs:
        seed_everything(seed)
        if isinstance(attack, KnownPlaintextAttack):
            for record, rgb in run_known_plaintext(attack, scheme, key, target, scoring, own):
                records.append({**record, "dataset": dataset})
                examples[f"kpa-{record['known_pairs']}"] = rgb[:num_examples]
            continue
        data_for = (target_set if not getattr(attack, "paired", True) else pairs) if attack.needs_training else None
        record, rgb = run_attack(attack, scheme, key, target, scoring, data_for, seed=seed, device=dev,
                                 progress=progress)
        records.append({**record, "dataset": dataset})
        examples[attack.name] = rgb[:num_examples]
    if scoring.classify is not None:
        ceiling = float(scoring.classify(reference, scoring.labels))
        for record in records:
            record["semantic_top1_plain"] = ceiling
    save_npz(out_examples, plain=reference[:num_examples], scheme=np.array(key.scheme),
             attacks=np.array(list(examples)), **{f"x_{n}": x for n, x in examples.items()})
    result = {"records": records, "manifest": manifest("attack", started, time.time(), dev, seed=seed,
                                                       key_fingerprint=key.fingerprint)}
    write_json(out, result)
    return result


def _scoring(data: dict[str, np.ndarray], plain: dict[str, np.ndarray], n: int, interpolation: str,
             classifier: Path | None, device: Any) -> Scoring:
    """The evaluator's side: plain targets at the setting's and the native size, labels, the classifier."""
    labels = np.asarray(plain["y"][:n])
    native = data["test_x"][:n]
    if not np.array_equal(np.asarray(data["test_y"][:n]), labels):
        raise EtcbenchError("the plain test set and the data's test split disagree (labels differ): rebuild them")
    classify = None
    if classifier is not None:
        from ..evaluate import evaluate_arrays, load_trained_model

        model, _ = load_trained_model(classifier, device)

        def classify(images: np.ndarray, y: np.ndarray) -> float:
            return evaluate_arrays(model, images, y, device)[0]
    return Scoring(plain=plain["x"][:n], native=native, labels=labels, classify=classify, interpolation=interpolation)
