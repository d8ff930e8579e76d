"""The run's grid: which settings, keys, encrypted sets, JPEG sets, models and attacks a configuration asks for.

The workflow (``workflow/rules/common.smk``) and ``etcbench rehearse`` expand a resolved configuration here, so the
rules hold no logic of their own. Nothing here imports numpy or torch: the facts about a scheme that the grid needs
(whether it works on blocks, whether it builds a chroma subsampling into one grayscale plane) are read from the
scheme classes (:mod:`etcbench.ciphers`) only when a grid is checked or expanded.

A setting is named ``s<image_size>-m<block_size>``:

>>> setting_id({"image_size": 64, "block_size": 16})
's64-m16'
>>> attacker_seeds(100, 3, defender_seeds=[1, 2])
[100, 101, 102]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from .errors import EtcbenchError

__all__ = ["GridError", "accuracy_records", "attack_runs", "attacker_seeds", "check_grid", "compression_records",
           "jpeg_subsamplings", "jpeg_variants", "plane_subsampling", "setting_id", "train_cells"]


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


def setting_id(entry: Mapping[str, Any]) -> str:
    """``s<image_size>-m<block_size>``: a grid setting's name in paths."""
    return f"s{entry['image_size']}-m{entry['block_size']}"


def attacker_seeds(attacker_seed: int, count: int, defender_seeds: Sequence[int]) -> list[int]:
    """The attacker's key seeds ``attacker_seed + i``, checked disjoint from the defender's seeds."""
    if count < 1:
        raise GridError(f"the attacker needs at least one key, got attacker_keys={count}")
    seeds = [int(attacker_seed) + i for i in range(count)]
    shared = sorted(set(seeds) & {int(s) for s in defender_seeds})
    if shared:
        raise GridError(f"attacker key seeds {seeds[0]}..{seeds[-1]} include the defender's seed(s) {shared}: "
                        f"choose an attacker_seed outside them")
    return seeds


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
        settings[sid] = dict(entry)
    if any(entry.get("attacks") for entry in config["grid"]):
        attack = config["attack"]
        try:
            attacker_seeds(attack["attacker_seed"], attack["attacker_keys"],
                           [config["key_seed"], config["key_seed"] + 1])
        except GridError as exc:
            raise GridError(f"config attack: {exc}") from None
    return settings


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
    """The evaluation record of every trained model, seed by seed."""
    return [f"results/eval/{sid}/{scheme}/{model}/seed{seed}.json"
            for sid, scheme, model in train_cells(config) for seed in config["seeds"]]


def compression_records(config: Mapping[str, Any]) -> list[str]:
    """The record of every JPEG set."""
    return [f"results/jpeg/{setting_id(entry)}/{scheme}/{variant}.json"
            for entry in config["grid"] for scheme in entry["schemes"] for variant in jpeg_variants(config, scheme)]


def attack_runs(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(setting id, scheme)`` of every attack job: each runs its setting's attacks, plus the "none" floor."""
    return [(setting_id(entry), scheme) for entry in config["grid"] if entry.get("attacks")
            for scheme in entry["schemes"]]
