"""The config schema allows exactly the registered names: schemes, models and attacks are written once, in their
registries (``etcbench/ciphers``, ``etcbench/models/factory.py``, ``etcbench/attacks``), and adding one without
updating ``workflow/schemas/config.schema.yaml`` fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from etcbench import attacks, ciphers, models

SCHEMA = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
SCHEMES = sorted(ciphers.available())
MODELS = sorted(models.available())
# "none" (the encrypted image as it is) is not chosen in a config: it is added to every non-empty attack list
ATTACKS = sorted(set(attacks.available()) - {"none"})


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())["properties"]


def test_the_registries_hold_the_suites_names():
    assert "none" in attacks.available()
    assert {"plain", "etc", "le", "ele"} <= set(SCHEMES)
    assert {"vit", "convmixer", "resnet18", "resnet18_tanaka", "resnet18_madono"} <= set(MODELS)
    assert {"fr", "itn", "gan", "gan-paired", "jigsaw", "kpa", "shared-key"} <= set(ATTACKS)


def test_grid_enums_are_the_registered_names(schema):
    setting = schema["grid"]["items"]["properties"]
    assert sorted(setting["schemes"]["propertyNames"]["enum"]) == SCHEMES
    assert sorted(setting["schemes"]["additionalProperties"]["items"]["enum"]) == MODELS
    by_name, by_mapping = setting["attacks"]["items"]["oneOf"]
    assert sorted(by_name["enum"]) == ATTACKS
    assert sorted(by_mapping["propertyNames"]["enum"]) == ATTACKS


def test_per_name_sections_cover_the_registered_names(schema):
    assert sorted(schema["scheme_options"]["properties"]) == SCHEMES
    assert sorted(schema["model_options"]["properties"]) == MODELS
    assert sorted(schema["pretrained"]["properties"]) == MODELS
    assert sorted(schema["attack"]["properties"]["options"]["properties"]) == ATTACKS


def test_model_option_defaults_name_the_registered_default_arch(schema):
    for name, entry in schema["model_options"]["properties"].items():
        assert entry["default"]["arch"] == models.DEFAULT_ARCH[name], name


def test_recipe_names_are_the_registered_models_and_schemes(schema):
    """Recipe names: default, a model, or model/scheme; beside them the JPEG-trained arms' entry (train.jpeg)."""
    pattern = schema["train"]["propertyNames"]["pattern"]
    m = re.fullmatch(r"\^\(jpeg\|default\|\(([^()]+)\)\(/\(([^()]+)\)\)\?\)\$", pattern)
    assert m, pattern
    assert sorted(m[1].split("|")) == MODELS
    assert sorted(m[2].split("|")) == SCHEMES
    assert list(schema["train"]["properties"]) == ["jpeg"]


def test_arm_names_are_registered_models_and_schemes(schema):
    setting = schema["grid"]["items"]["properties"]
    assert sorted(setting["jpeg_trained"]["propertyNames"]["enum"]) == SCHEMES
    assert sorted(setting["jpeg_trained"]["additionalProperties"]["items"]["enum"]) == MODELS
    assert setting["transform"]["items"]["enum"] == ["vit"]  # the one model a scheme's transformation reads


@pytest.mark.parametrize("kind", ["ciphers", "attacks"])
def test_every_registered_class_reports_the_options_it_was_built_with(kind):
    """``options`` (one generic property) reads each constructor option back: a class that stored an option under
    another name would fail here, and rebuilding from the reported options gives the same object."""
    import importlib

    from etcbench.registry import option_names

    module = importlib.import_module(f"etcbench.{kind}")
    required = {"shared-key": {"scheme": "le"}}  # the one option without a default: the scheme it estimates
    for name in module.available():
        built = module.create(name, block_size=8, **required.get(name, {}))
        assert list(built.options) == option_names(type(built))
        assert module.create(name, block_size=8, **built.options).options == built.options
