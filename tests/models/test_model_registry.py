"""Checks every registered model must pass: it builds from its name alone (its default arch, kept tiny by options),
maps a batch to ``num_classes`` logits, and the names need no torch; an unknown name is one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from etcbench import models
from etcbench.errors import EtcbenchError
from etcbench.models import build_model
from etcbench.registry import Registry

MODELS = models.available()
# options that keep a model tiny; models not listed are small at 32 px already
TINY = {"vit": {"arch": "vit_tiny_patch16_224", "depth": 1}, "convmixer": {"dim": 16, "depth": 1}}


def test_the_registry_holds_every_model_once():
    assert {"vit", "convmixer", "resnet18", "resnet18_tanaka", "resnet18_madono"} <= set(MODELS)
    assert list(models.MODELS) == MODELS == sorted(MODELS)
    assert set(models.DEFAULT_ARCH) == set(MODELS)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("patch", [4, 8])
def test_every_model_builds_tiny_and_gives_logits(name, patch):
    torch.manual_seed(0)
    model = build_model(name, 7, 32, patch, dict(TINY.get(name, {})))
    assert isinstance(model, torch.nn.Module)
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_builders_are_registered_with_their_name_and_default_arch(name):
    builder = models.factory.get(name)
    assert builder.name == name and builder.default_arch == models.DEFAULT_ARCH[name]


def test_options_are_not_modified():
    options = {"arch": "vit_tiny_patch16_224", "depth": 1}
    build_model("vit", 10, 32, 8, options)
    assert options == {"arch": "vit_tiny_patch16_224", "depth": 1}


def test_unknown_model_is_one_line():
    with pytest.raises(EtcbenchError) as info:
        build_model("vgg", 10, 32, 8)
    assert str(info.value) == f"unknown model 'vgg'; available: {', '.join(MODELS)}"
    with pytest.raises(ValueError, match="^unknown model 'vgg'; available: convmixer, "):
        models.factory.get("vgg")


def test_the_names_come_without_torch():
    code = ("import sys, etcbench.models as m\n"
            "from etcbench.models import available, MODELS, DEFAULT_ARCH\n"
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'torch imported'\n"
            "from etcbench.models import build_model\n"
            "assert 'torch' not in sys.modules, 'build_model imports torch'\n"
            "print(','.join(m.available()))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == ",".join(MODELS)


def test_the_adaptation_networks_do_not_import_the_factory():
    """One direction only: the factory's adaptation builders import :mod:`.adaptation`, never the reverse."""
    import ast
    import inspect

    from etcbench.models import adaptation, cnn

    for module in (adaptation, cnn):
        imported = set()
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.ImportFrom):
                imported |= {node.module or ""} | {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
        assert not any("factory" in name or name == "build_model" for name in imported), (module.__name__, imported)


def test_registry_get_and_register_take_functions():
    reg: Registry[int] = Registry("thing")

    @reg.register("one")
    def one() -> int:
        return 1

    assert one.name == "one" and reg.get("one") is one and reg.available() == ["one"]
    with pytest.raises(ValueError, match="^unknown thing 'two'; available: one$"):
        reg.get("two")
    with pytest.raises(ValueError, match="^unknown thing 'two'; available: one$"):
        reg.create("two", block_size=8)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("one")(lambda: 2)
