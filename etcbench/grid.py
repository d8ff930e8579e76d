"""The run's grid: which settings, keys, encrypted sets, JPEG sets, models and attacks a configuration asks for.

The workflow (``workflow/rules/common.smk``) and ``etcbench rehearse`` expand a resolved configuration here, so the
rules hold no logic of their own. Nothing here imports numpy or torch: the facts about a scheme that the grid needs
(whether it works on blocks, whether it builds a chroma subsampling into one grayscale plane) are read from the
scheme classes (:mod:`etcbench.ciphers`) only when a grid is checked or expanded.

A setting is named ``s<image_size>-m<block_size>``:

>>> setting_id({"image_size": 64, "block_size": 16})
's64-m16'
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from .errors import EtcbenchError

__all__ = ["GridError", "accuracy_records", "attack_classifier", "attack_plan", "attack_runs", "check_grid",
           "compression_records", "evaluated_cells", "jpeg_arm", "jpeg_model_label", "jpeg_subsamplings",
           "jpeg_trained_cells", "key_records", "jpeg_variants", "plane_subsampling", "position_leak_runs",
           "seed_key_tag", "setting_id", "train_cells", "transform_arms", "transforms_models"]


class GridError(EtcbenchError):
    """A grid the schema accepts but the schemes cannot run (one line naming the setting)."""


@cache
def _scheme_facts(name: str) -> tuple[bool, str | None]:
    """``(blockwise, plane_subsampling)`` of a scheme: class attributes of its registered class."""
    from .ciphers.registry import SCHEMES

    try:
        cls = SCHEMES.get(name)
    except ValueError as exc:
        raise GridError(str(exc)) from None
    return cls.blockwise, cls.plane_subsampling


def plane_subsampling(scheme: str) -> str | None:
    """The chroma subsampling a grayscale-based scheme builds into its plane (its only JPEG setting), else None."""
    return _scheme_facts(scheme)[1]


def transforms_models(scheme: str) -> bool:
    """Whether a model trained on plain images can be transformed with the scheme's key (``Scheme.transform_model``)."""
    from .ciphers.registry import SCHEMES

    return bool(SCHEMES.get(scheme).transforms_models)


def setting_id(entry: Mapping[str, Any]) -> str:
    """``s<image_size>-m<block_size>``: a grid setting's name in paths and in key contexts; an ``image_size`` may
    also be a key's ``(height, width)``, named ``s64`` when square and ``s64x48`` when not (grid settings never are).

    >>> setting_id({"image_size": (64, 48), "block_size": 16})
    's64x48-m16'
    """
    size = entry["image_size"]
    if not isinstance(size, int):
        h, w = (int(n) for n in size)
        size = h if h == w else f"{h}x{w}"
    return f"s{size}-m{int(entry['block_size'])}"


def check_grid(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The grid's settings by id, after the checks the schema cannot express (one clear line each)."""
    settings: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(config["grid"], 1):
        size, block, sid = entry["image_size"], entry["block_size"], setting_id(entry)
        if sid in settings:
            raise GridError(f"config grid: settings {list(settings).index(sid) + 1} and {i} are both {sid}")
        bad = []
        for name in entry["schemes"]:
            blockwise, planes = _scheme_facts(name)
            unit = 2 * block if planes == "420" else block  # 4:2:0 planes halve the chroma
            if blockwise and size % unit:
                bad.append(name)
        if bad:
            raise GridError(f"config grid setting {i}: image_size {size} is not a multiple of block_size {block} "
                            f"(of 2 x {block} for etc-gray) as {', '.join(bad)} need")
        _check_arms(config, entry, i)
        settings[sid] = dict(entry)
    if any(entry.get("attacks") for entry in config["grid"]):
        _check_attacks(config)
    return settings


def _check_arms(config: Mapping[str, Any], entry: Mapping[str, Any], i: int) -> None:
    """A setting's model-transformation and JPEG-trained arms name what the setting has (one line each)."""
    where = f"config grid setting {i}"
    plain = entry["schemes"].get("plain", [])
    for model in entry.get("transform") or []:
        if model not in plain:
            raise GridError(f"{where}: transform names {model}, which the setting does not train on plain images "
                            f"(add it to schemes.plain)")
    if entry.get("transform") and not any(transforms_models(s) for s in entry["schemes"]):
        raise GridError(f"{where}: transform needs a scheme with a model transformation (pixel-shuffle); the "
                        f"setting has {', '.join(entry['schemes'])}")
    trained = entry.get("jpeg_trained") or {}
    if not trained:
        return
    arm = jpeg_arm(config)
    if arm is None:
        raise GridError(f"{where}: jpeg_trained needs train.jpeg (its quality and subsampling)")
    from .ciphers.registry import SCHEMES
    from .data.block_safety import block_safe_reason

    for scheme, models in trained.items():
        if scheme not in entry["schemes"]:
            raise GridError(f"{where}: jpeg_trained names scheme {scheme}, which the setting does not have")
        variant = arm.variant(plane_subsampling(scheme))
        if variant not in jpeg_variants(config, scheme):
            raise GridError(f"{where}: the JPEG-trained arm of {scheme} is tested at {variant}, which is not among "
                            f"its JPEG test sets ({', '.join(jpeg_variants(config, scheme))}); add the quality to "
                            f"jpeg.qualities")
        reason = block_safe_reason(arm.augment, SCHEMES.get(scheme))
        if reason:
            raise GridError(f"config train.jpeg.augment: {reason} (jpeg_trained {scheme}: {', '.join(models)})")


def jpeg_arm(config: Mapping[str, Any]) -> Any:
    """The JPEG-trained arms' settings (:class:`etcbench.recipes.JpegArm`), or None when ``train.jpeg`` is unset."""
    from .recipes import JPEG_ARM, JpegArm

    values = config.get("train", {}).get(JPEG_ARM)
    return None if values is None else JpegArm.from_dict(values)


def jpeg_model_label(config: Mapping[str, Any], scheme: str, model: str) -> str:
    """The name a model of a JPEG-trained arm goes by (in paths and records): ``vit@q50-420``."""
    from .labels import jpeg_label

    return jpeg_label(model, jpeg_arm(config).variant(plane_subsampling(scheme)))


def jpeg_trained_cells(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(setting id, scheme, model)`` of every JPEG-trained arm (once per seed); its label is
    :func:`jpeg_model_label`."""
    return [(setting_id(entry), scheme, model) for entry in config["grid"]
            for scheme, models in (entry.get("jpeg_trained") or {}).items() for model in models]


def transform_arms(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(setting id, scheme, model)`` of every model-transformation arm: each plain-trained model a setting names
    under ``transform``, with each of its schemes that transforms models."""
    return [(setting_id(entry), scheme, model) for entry in config["grid"] for model in entry.get("transform") or []
            for scheme in entry["schemes"] if transforms_models(scheme)]


def evaluated_cells(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(setting id, scheme)`` of every evaluation job: the schemes with a trained, JPEG-trained or transformed
    model, in the grid's order."""
    cells = [(sid, scheme) for sid, scheme, _ in train_cells(config) + jpeg_trained_cells(config)
             + transform_arms(config)]
    order = {(setting_id(entry), scheme): n for n, (entry, scheme) in
             enumerate((e, s) for e in config["grid"] for s in e["schemes"])}
    return sorted(dict.fromkeys(cells), key=order.__getitem__)


def _attack_entries(entry: Mapping[str, Any]) -> list[tuple[str, list[str] | None]]:
    """A setting's ``attacks`` as ``(attack, schemes)``: ``None`` for a bare name (every scheme it applies to)."""
    out = []
    for item in entry.get("attacks") or []:
        if isinstance(item, str):
            out.append((item, None))
        else:
            out += [(name, list(schemes)) for name, schemes in item.items()]
    return out


def attack_plan(entry: Mapping[str, Any]) -> dict[str, list[str]]:
    """Scheme -> the attacks run against it in a grid setting, in the config's order.

    An attack listed by name runs against every scheme of the setting it applies to (the attack class says which,
    ``Attack.not_applicable``); one listed as ``{name: [schemes]}`` against those schemes only.
    """
    from .attacks.base import ATTACKS

    plan: dict[str, list[str]] = {scheme: [] for scheme in entry["schemes"]}
    for name, schemes in _attack_entries(entry):
        cls = ATTACKS.get(name)
        for scheme in (schemes if schemes is not None else entry["schemes"]):
            if schemes is not None or cls.not_applicable(scheme) is None:
                plan[scheme].append(name)
    return {scheme: names for scheme, names in plan.items() if names}


def _check_attacks(config: Mapping[str, Any]) -> None:
    """Every attack the grid names exists, applies to the schemes it is named for, and takes the configured
    options; the attacker's images and known-plaintext pairs fit the data (one line each)."""
    from .attacks.base import ATTACKS, default_options

    attack = config["attack"]
    if attack["train_images"] > config["dataset"]["train_size"]:
        raise GridError(f"config attack.train_images {attack['train_images']} exceeds dataset.train_size "
                        f"{config['dataset']['train_size']}")
    for i, entry in enumerate(config["grid"], 1):
        where = f"config grid setting {i}"
        for name, schemes in _attack_entries(entry):
            try:
                cls = ATTACKS.get(name)
            except ValueError as exc:
                raise GridError(f"{where}: {exc}") from None
            for scheme in schemes or []:
                if scheme not in entry["schemes"]:
                    raise GridError(f"{where}: attack {name} names scheme {scheme}, which the setting does not have")
                reason = cls.not_applicable(scheme)
                if reason:
                    raise GridError(f"{where}: {reason}")
        for scheme, names in attack_plan(entry).items():
            for name in names:
                try:
                    ATTACKS.create(name, block_size=entry["block_size"],
                                   **default_options(name, scheme, attack["options"].get(name, {})))
                except (TypeError, ValueError) as exc:
                    raise GridError(f"config attack.options.{name}: {exc}") from None
        names = {name for names in attack_plan(entry).values() for name in names}
        pairs = max(attack["options"].get("kpa", {}).get("pairs", [1, 2, 4, 8])) if "kpa" in names else 0
        if pairs > attack["train_images"]:
            raise GridError(f"config attack.options.kpa: {pairs} known pairs exceed the attacker's "
                            f"{attack['train_images']} images (attack.train_images)")


def train_cells(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(setting id, scheme, model)`` of every model the grid trains (once per seed)."""
    return [(setting_id(entry), scheme, model) for entry in config["grid"]
            for scheme, models in entry["schemes"].items() for model in models]


def jpeg_subsamplings(config: Mapping[str, Any], scheme: str) -> list[str]:
    """The chroma subsamplings ``scheme`` is coded at: grayscale planes at their own only."""
    planes = plane_subsampling(scheme)
    return [planes] if planes else list(config["jpeg"]["subsampling"])


def jpeg_variants(config: Mapping[str, Any], scheme: str) -> list[str]:
    """``q<quality>-<subsampling>`` of every JPEG set of ``scheme``."""
    return [f"q{q}-{s}" for q in config["jpeg"]["qualities"] for s in jpeg_subsamplings(config, scheme)]


def accuracy_records(config: Mapping[str, Any]) -> list[str]:
    """The evaluation record of every setting and scheme that trains a model, seed by seed (each holds every model
    of its scheme)."""
    return [f"results/eval/{sid}/{scheme}/seed{seed}.json" for sid, scheme in evaluated_cells(config)
            for seed in config["seeds"]]


def key_records(config: Mapping[str, Any]) -> list[str]:
    """The public record (``.json``) of every key the run makes: each setting's plain key (its unencrypted test set
    is every scheme's reference), each scheme's key, and the other key of each scheme a model is trained on; with
    ``key_per_seed``, the own and other key of every training seed of those schemes instead of the shared other
    key."""
    out = []
    evaluated = set(evaluated_cells(config))
    for entry in config["grid"]:
        sid = setting_id(entry)
        for scheme in ["plain", *[s for s in entry["schemes"] if s != "plain"]]:
            out.append(f"results/keys/{sid}/{scheme}.json")
            if scheme != "plain" and (sid, scheme) in evaluated:
                tags = [seed_key_tag(config, scheme, seed) for seed in config["seeds"]]
                for tag in dict.fromkeys(tags):  # one shared tag "" without key_per_seed
                    out += [f"results/keys/{sid}/{scheme}{tag}.json"] if tag else []
                    out.append(f"results/keys/{sid}/{scheme}{tag}.other.json")
    return out


def seed_key_tag(config: Mapping[str, Any], scheme: str, seed: int | str) -> str:
    """The part of a key's file names that names its training seed: ``.seed3`` with ``key_per_seed`` (a new key for
    every training seed), else empty (one key for all seeds). Plain images have no key material: always empty.

    >>> seed_key_tag({"key_per_seed": True}, "etc", 3), seed_key_tag({"key_per_seed": True}, "plain", 3)
    ('.seed3', '')
    """
    return f".seed{seed}" if config.get("key_per_seed") and scheme != "plain" else ""


def compression_records(config: Mapping[str, Any]) -> list[str]:
    """The record of every JPEG set."""
    return [f"results/jpeg/{setting_id(entry)}/{scheme}/{variant}.json"
            for entry in config["grid"] for scheme in entry["schemes"] for variant in jpeg_variants(config, scheme)]


def attack_runs(config: Mapping[str, Any]) -> list[tuple[str, str, list[str]]]:
    """``(setting id, scheme, attacks)`` of every attack job: each runs its attacks, plus the "none" floor."""
    return [(setting_id(entry), scheme, names) for entry in config["grid"] if entry.get("attacks")
            for scheme, names in attack_plan(entry).items()]


def attack_classifier(config: Mapping[str, Any], setting: str) -> str | None:
    """The model file whose top-1 on reconstructions is the semantic leakage of a setting's attacks: the first
    model trained on plain images in that setting, first seed (``None`` when the setting trains none)."""
    for entry in config["grid"]:
        if setting_id(entry) == setting and entry["schemes"].get("plain"):
            model = entry["schemes"]["plain"][0]
            return f"results/models/{setting}/plain/{model}/seed{config['seeds'][0]}/model.pt"
    return None


def position_leak_runs(config: Mapping[str, Any]) -> list[tuple[str, str, str, int]]:
    """``(setting, scheme, model, seed)`` of every ViT trained on an encrypted scheme of an attacked setting whose
    plain images trained the same model: its position embeddings are matched against the plain one's (a scheme
    whose key scrambles no blocks gets a record saying so)."""
    runs = []
    for entry in config["grid"]:
        if not entry.get("attacks"):
            continue
        plain = entry["schemes"].get("plain", [])
        runs += [(setting_id(entry), scheme, model, seed) for scheme, models in entry["schemes"].items()
                 if scheme != "plain" for model in models if model == "vit" and model in plain
                 for seed in config["seeds"]]
    return runs
