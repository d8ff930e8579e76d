"""The import rules of docs/architecture.md, checked on the package's own imports (module-level and inside
functions alike), read from the source with ``ast``."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "etcbench"
# modules every layer may use: errors, atomic files, the name registry, the Bjontegaard deltas (pure numpy)
BASE = {"errors", "io", "registry", "bjontegaard", "labels"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str) -> str:
    """The package module an import names: ``ciphers.blocks`` for ``from ..ciphers.blocks import x`` or
    ``from ..ciphers import blocks``; ``ciphers`` for ``from .. import ciphers``."""
    while name and not ((PACKAGE / name.replace(".", "/")).with_suffix(".py").is_file()
                        or (PACKAGE / name.replace(".", "/")).is_dir()):
        name = name.rpartition(".")[0]
    return name


def import_graph() -> dict[str, set[str]]:
    """Module -> the etcbench modules it imports (names relative to the package; ``""`` is the package itself)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("etcbench"):
                target = node.module.removeprefix("etcbench").lstrip(".")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("etcbench"):
                        graph[module].add(_resolve(alias.name.removeprefix("etcbench").lstrip(".")))
                continue
            else:
                continue
            for alias in node.names:
                name = f"{target}.{alias.name}" if target else alias.name
                graph[module].add(_resolve(name) or _resolve(target))
    return graph


GRAPH = import_graph()


def _area(module: str) -> str:
    return module.split(".")[0]


def test_the_graph_is_read_from_the_source():
    assert "ciphers.keys" in GRAPH["ciphers.etc"] and "cli" in GRAPH["__main__"]
    assert "train" in GRAPH["cli"]  # lazy imports inside functions count too


@pytest.mark.parametrize(("area", "allowed", "why"), [
    ("ciphers", BASE, "ciphers import nothing above them"),
    ("report", BASE, "the report reads result files: no cipher, model or training code"),
    ("data", BASE, "data loading and transforms sit below the stages"),
    ("models", BASE | {"ciphers"}, "models are built from timm and torch, not from stages"),
])
def test_areas_import_only_what_sits_below_them(area, allowed, why):
    bad = {(m, t) for m, targets in GRAPH.items() if _area(m) == area for t in targets
           if _area(t) != area and t not in allowed and _area(t) not in allowed}
    assert not bad, f"{why}: {sorted(bad)}"


def test_the_base_imports_nothing_above_it():
    assert not {(m, t) for m in BASE for t in GRAPH.get(m, set()) if t not in BASE}


def test_only_the_entry_point_imports_the_cli():
    importers = sorted(m for m, targets in GRAPH.items() if "cli" in targets)
    assert importers == ["__main__"]


def test_the_model_factory_and_the_adaptation_networks_do_not_import_each_other_both_ways():
    assert not ("models.factory" in GRAPH["models.adaptation"] and "models.adaptation" in GRAPH["models.factory"])
    assert "models.factory" not in GRAPH["models.adaptation"]


def test_no_import_cycle_between_modules():
    """Package ``__init__`` re-exports aside (a package imports its own modules), no module reaches itself."""
    edges = {m: {t for t in ts if t != m and not m.startswith(f"{t}.") and t != ""} for m, ts in GRAPH.items()}

    def reaches(start: str) -> bool:
        seen, stack = set(), list(edges.get(start, ()))
        while stack:
            node = stack.pop()
            if node == start:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(edges.get(node, ()))
        return False

    cyclic = sorted(m for m in edges if reaches(m))
    assert not cyclic, cyclic
