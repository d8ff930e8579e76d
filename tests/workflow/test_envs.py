"""The conda environments of envs/: every rule has one, their versions agree with pyproject.toml, and each rule's
stage imports nothing that its environment lacks.

conda cannot run on these machines (docs: environment.md), so the environments are checked as data: the versions
against pyproject's specifiers, and the imports by running each rule's command with the project dependencies
missing from its environment made unimportable.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from test_workflow import REPO, snakemake

ENVS = REPO / "envs"
# distribution name -> top-level module, where they differ
MODULE = {"pillow": "PIL", "scikit-image": "skimage", "scikit-learn": "sklearn", "pyyaml": "yaml"}
# workflow tooling, not imported by any stage
TOOLING = {"snakemake", "snakemake-executor-plugin-slurm", "pygments"}
PINNED_TOGETHER = ("torch", "torchvision", "timm")


def project_requirements() -> dict[str, Requirement]:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, meta["dependencies"])}


def env_packages(path: Path) -> dict[str, str]:
    """``{distribution: version}`` of a conda environment file, conda and pip entries alike."""
    spec = yaml.safe_load(path.read_text())
    pins: dict[str, str] = {}
    for dep in spec["dependencies"]:
        for entry in dep["pip"] if isinstance(dep, dict) else [dep]:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*={1,2}\s*([0-9][^\s=]*)", entry)
            assert m, f"{path.name}: {entry!r} is not pinned to one version"
            pins[canonicalize_name(m[1])] = m[2]
    return pins


def rule_envs() -> dict[str, Path]:
    """``{rule: environment file}`` from the rule files (``use rule`` inherits the parent's)."""
    envs: dict[str, Path] = {}
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = smk.read_text()
        for m in re.finditer(r"^rule (\w+):\n(.*?)(?=^\S|\Z)", text, re.S | re.M):
            conda = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", m[2])
            assert conda, f"rule {m[1]} has no conda directive"
            envs[m[1]] = (smk.parent / conda[1]).resolve()
        for m in re.finditer(r"^use rule (\w+) as (\w+)", text, re.M):
            envs[m[2]] = envs[m[1]]
    return envs


def test_every_rule_has_an_existing_environment():
    envs = rule_envs()
    assert {"prepare_data", "make_key", "plain_test", "encrypt_examples", "compress_jpeg", "train_model",
            "evaluate_scheme", "attack_scheme", "make_report"} <= set(envs)
    for rule, path in envs.items():
        assert path.is_file() and path.parent == ENVS, (rule, path)
    assert {p.resolve() for p in envs.values()} == set(ENVS.glob("*.yaml"))  # and no unused environment


@pytest.mark.parametrize("env", sorted(p.name for p in ENVS.glob("*.yaml")))
def test_environment_versions_agree_with_pyproject(env):
    required = project_requirements()
    pins = env_packages(ENVS / env)
    assert pins.get("python", "").startswith("3.1") and Version(pins["python"] + ".0") >= Version("3.11")
    shared = set(pins) & set(required)
    assert shared, f"{env} shares no package with pyproject.toml"
    for name in shared:
        assert required[name].specifier.contains(pins[name], prereleases=True), (
            f"{env}: {name} {pins[name]} is outside pyproject's {required[name].specifier}")
    if "torch" in pins:  # the trio that must be installed together, exactly as pyproject pins it
        for name in PINNED_TOGETHER:
            assert f"=={pins[name]}" == str(required[name].specifier), (env, name)


def _rule_commands(workdir: Path) -> dict[str, list[str]]:
    """The etcbench arguments of one job per rule, from a dry run of the smoke config."""
    res = snakemake("-n", "-p", "--configfile", str(REPO / "config/smoke.yaml"), "--directory", str(workdir))
    assert res.returncode == 0, res.stderr[-2000:]
    commands: dict[str, list[str]] = {}
    for block in (res.stdout + res.stderr).split("\nrule ")[1:]:
        rule = block.split(":", 1)[0].strip()
        m = re.search(r"^Shell command: python -m etcbench (.*?)(?: 2> \S+)?$", block, re.M)
        if m and rule not in commands:
            commands[rule] = shlex.split(m[1])
    return commands


BLOCKER = """
import importlib.abc, importlib.machinery, runpy, sys
FORBIDDEN = set(sys.argv.pop(1).split(","))
class Missing(importlib.abc.Loader):
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        raise ModuleNotFoundError(f"BLOCKED: no module named {module.__name__!r} in this rule's environment")
class Block(importlib.abc.MetaPathFinder):
    # a spec whose loading fails: optional-import probes (importlib.util.find_spec) still work
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            return importlib.machinery.ModuleSpec(name, Missing())
sys.meta_path.insert(0, Block())
sys.argv[0] = "etcbench"
runpy.run_module("etcbench", run_name="__main__", alter_sys=True)
"""


def test_each_rule_imports_only_what_its_environment_has(tmp_path):
    """Each rule's command, run where its inputs are missing, gets as far as its input check (past the stage's
    imports) with every project dependency that is not in its environment unimportable."""
    required = {n for n in project_requirements() if n not in TOOLING}
    commands = _rule_commands(tmp_path)
    envs = rule_envs()
    assert {"prepare_data", "train_model", "attack_scheme", "make_report"} <= set(commands)
    for rule, command in commands.items():
        available = set(env_packages(envs[rule]))
        forbidden = sorted(MODULE.get(n, n.replace("-", "_")) for n in required - available)
        args = command
        res = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(forbidden), *args], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120,
                             env={"PATH": "/usr/bin:/bin", "ETCBENCH_CIFAR10_ARCHIVE": str(tmp_path / "missing.tgz"),
                                  "PYTHONPATH": str(REPO)})
        assert "BLOCKED" not in res.stderr, f"rule {rule} ({envs[rule].name}): {res.stderr[-1500:]}"
        # a stage without inputs (keygen) runs through; the others stop at their first missing input
        assert res.returncode == 0 or (res.returncode == 1 and f"etcbench {args[0]}: error:" in res.stderr), (
            rule, res.stderr[-1500:])
