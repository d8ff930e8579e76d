"""Configuration layers: how ``config/config.yaml``, each ``--configfile`` and ``--config`` combine into one config.

The workflow and ``etcbench rehearse`` resolve a run's configuration here, so both see exactly the same thing.

Layers apply in order (defaults first, the command line's ``--config`` last). Mappings merge key by key, and
every other value (a list such as ``grid``, a number) is replaced, as Snakemake merges config files, **except**:

* ``model_options.<model>``: a layer's entry replaces the earlier one *whole*. A model is never built from one
  layer's architecture and another layer's leftovers (``depth: 6`` of a tiny CPU ViT surviving into ViT-B/16).
  Every entry names its architecture (``arch``); an entry that keeps the earlier ``arch`` must restate every key
  the earlier entry set (values may change), so nothing about a model changes without the layer saying so.
* ``train.<recipe>``: a layer's recipe replaces the earlier one whole; keys it leaves out take the recipe
  defaults of the schema (:class:`etcbench.recipes.Recipe`), never another layer's or another model's values.

After merging, the result is validated against ``workflow/schemas/config.schema.yaml`` and the schema's defaults
are filled in (as ``snakemake.utils.validate`` does). Any problem is a :class:`ConfigError` with one line naming
the layer and the key.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .errors import EtcbenchError
from .grid import check_grid
from .recipes import JPEG_ARM, recipe_for

__all__ = ["ConfigError", "DEFAULTS", "SCHEMA", "REPLACED_PER_ENTRY", "load_layer", "merge_layers", "model_entry",
           "recipe_json", "resolve", "validate"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = ROOT / "config" / "config.yaml"
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
# sections whose entries (one per model or recipe) a layer replaces whole instead of merging key by key
REPLACED_PER_ENTRY = ("model_options", "train")


class ConfigError(EtcbenchError):
    """A configuration problem, named by layer and key."""


def load_layer(path: str | Path) -> tuple[str, dict[str, Any]]:
    """``(name, mapping)`` of one YAML (or JSON) config file; an empty file is an empty layer."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: expected a mapping at the top level, got {type(data).__name__}")
    return str(path), dict(data)


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> None:
    """Snakemake's merge: mappings key by key (recursively), everything else replaced."""
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)


def _check_model_entries(name: str, entries: Any, current: Mapping[str, Any], origin: Mapping[str, str]) -> None:
    if entries is None:
        return
    if not isinstance(entries, Mapping):
        raise ConfigError(f"{name}: model_options must map model names to their options")
    for model, entry in entries.items():
        if not isinstance(entry, Mapping) or "arch" not in entry:
            raise ConfigError(f"{name}: model_options.{model} names no architecture (arch); a layer states a model's "
                              f"options whole, so leaving arch out would silently build another model")
        before = current.get(model)
        if isinstance(before, Mapping) and before.get("arch") == entry["arch"]:
            dropped = [k for k in before if k not in entry]
            if dropped:
                lost = ", ".join(f"{k}: {json.dumps(before[k])}" for k in dropped)
                raise ConfigError(f"{name}: model_options.{model} keeps arch {entry['arch']} but leaves out {lost} "
                                  f"of {origin[model]}; options are replaced whole per model, so restate "
                                  f"{'it' if len(dropped) == 1 else 'them'} (or name another arch)")


def merge_layers(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Merge ``(name, mapping)`` layers in order with the rules of the module docstring."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}  # model -> layer that set its options
    for name, layer in layers:
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{name}: expected a mapping, got {type(layer).__name__}")
        layer = dict(layer)
        _check_model_entries(name, layer.get("model_options"), merged.get("model_options", {}), origin)
        for section in REPLACED_PER_ENTRY:
            if section not in layer:
                continue
            entries = layer.pop(section)
            if not isinstance(entries, Mapping):
                raise ConfigError(f"{name}: {section} must be a mapping of entries, got {type(entries).__name__}")
            target = merged.setdefault(section, {})
            for entry, value in entries.items():
                target[entry] = copy.deepcopy(dict(value) if isinstance(value, Mapping) else value)
                if section == "model_options":
                    origin[entry] = name
        _merge(merged, layer)
    return merged


def _validator(schema: Mapping[str, Any]) -> Any:
    """A draft 2020-12 validator that fills in ``default:`` values (as ``snakemake.utils.validate``)."""
    from jsonschema import Draft202012Validator, validators

    def set_defaults(validator: Any, properties: Mapping[str, Any], instance: Any, subschema: Any) -> Any:
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, Mapping) and "default" in sub:
                    instance.setdefault(prop, copy.deepcopy(sub["default"]))
        yield from Draft202012Validator.VALIDATORS["properties"](validator, properties, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)


def validate(config: dict[str, Any], schema: str | Path = SCHEMA) -> dict[str, Any]:
    """Check ``config`` against the schema, filling defaults in place; the first problem as one line."""
    from .plugins import check_config_plugins, schema_with_plugins

    schema_data = schema_with_plugins(yaml.safe_load(Path(schema).read_text()))  # plug-ins' names are accepted
    errors = sorted(_validator(schema_data).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"config {where}: {err.message}")
    for entry in config.get("train", {}):  # every recipe builds (cross-key rules the schema cannot state)
        if entry == JPEG_ARM:
            continue
        model, _, scheme = entry.partition("/")
        try:
            recipe_for(config["train"], model, scheme or "-")
        except EtcbenchError as exc:
            raise ConfigError(f"config {exc}") from None
    try:
        check_grid(config)  # the grid's own rules (etcbench.grid)
    except EtcbenchError as exc:
        raise ConfigError(str(exc)) from None
    check_config_plugins(config)  # the plug-ins the grid names import and keep the scheme contract
    return config


def resolve(configfiles: Iterable[str | Path] = (), overrides: Mapping[str, Any] | None = None, *,
            defaults: str | Path | None = DEFAULTS, schema: str | Path = SCHEMA) -> dict[str, Any]:
    """The validated configuration of ``defaults`` + ``configfiles`` + ``overrides`` (``--config``), in order."""
    layers = [load_layer(defaults)] if defaults is not None else []
    layers += [load_layer(p) for p in configfiles]
    if overrides:
        layers.append(("--config", dict(overrides)))
    return validate(merge_layers(layers), schema)


def model_entry(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The resolved options of ``model`` (its ``model_options`` entry)."""
    return dict(config["model_options"].get(model, {}))


def recipe_json(config: Mapping[str, Any], model: str, scheme: str) -> str:
    """The whole recipe of ``model`` on ``scheme`` as compact JSON, every setting spelled out."""
    return json.dumps(recipe_for(config["train"], model, scheme).to_dict(), sort_keys=True, separators=(",", ":"))
