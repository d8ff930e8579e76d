"""Every command in the README's code blocks runs as printed: Snakemake commands as dry runs (``-n``) from a copy of
the checkout, the install and test commands through ``.ci/run``, the rehearsal by ``tests/test_rehearsal.py``, the
Python example as a script. Each Snakemake run must report the workflow profile (``profiles/default``)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from readme_commands import EXAMPLE_ARCHIVE, bash_commands, code_blocks, find
from test_workflow import REPO

TEST_COMMAND = 'python -m pip install -e ".[test]" && python -m pytest'
# Snakemake's own words when it loads profiles/default (after "Using profiles X and" where --profile is given)
WORKFLOW_PROFILE = "workflow specific profile profiles/default for setting default command line arguments"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the checkout's tracked layout (no results, no .snakemake), where a new user would type."""
    dest = tmp_path_factory.mktemp("checkout") / "etcbench"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", "results", ".snakemake", "__pycache__",
                                                              "*.egg-info", ".pytest_cache", "runs"))
    return dest


PLUGIN = "block-scramble"  # the README's plug-in commands need the example installed: tests/test_plugins.py runs them


def _snakemake_runs():
    return [c for c in bash_commands() if "snakemake" in c.text and PLUGIN not in c.text]


def test_the_readme_shows_the_commands_the_tests_run():
    texts = [c.text for c in bash_commands()]
    assert TEST_COMMAND in texts  # the quick-start test command, run verbatim by .ci/run
    assert any(t.startswith("snakemake --cores 2 --profile workflow/profiles/smoke") for t in texts)
    assert len(_snakemake_runs()) >= 5 and find("etcbench rehearse")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (REPO / ".ci/run").read_text().splitlines()
    assert TEST_COMMAND in ci
    for c in bash_commands():  # every pip line of the README installs this checkout, as .ci/run does
        for part in c.text.split(" && "):
            if "pip install" in part:
                assert part in {"python -m pip install -e .", 'python -m pip install -e ".[test]"',
                                "python -m pip install ./examples/etcbench-block-scramble"}, c.text
            if part.endswith("python -m pytest"):
                assert part.split()[-3:] == ["python", "-m", "pytest"], c.text


@pytest.mark.parametrize("command", _snakemake_runs(), ids=lambda c: c.text[:70])
def test_snakemake_commands_dry_run_as_printed_with_the_workflow_profile(command, checkout, cifar_archive):
    snakemake_part = command.text.split(" && ")[-1]
    assert snakemake_part.startswith("snakemake"), command.text
    text = snakemake_part.replace(EXAMPLE_ARCHIVE, str(cifar_archive))
    env = {**os.environ, **{k: v.replace(EXAMPLE_ARCHIVE, str(cifar_archive)) for k, v in command.env.items()}}
    argv = [sys.executable, "-m", *shlex.split(text), "-n"]
    res = subprocess.run(["timeout", "-k", "10", "300", *argv], cwd=checkout, capture_output=True, text=True,
                         env=env)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{command.text}\n{out[-3000:]}"
    assert WORKFLOW_PROFILE in out, out[:2000]
    assert "Job stats:" in out and "make_report" in out, out[-2000:]


def test_the_python_example_runs_and_writes_a_private_key(tmp_path):
    (block,) = code_blocks("python")
    script = ("import numpy as np\n"  # the example's input: x, a uint8 batch of the size it names
              "x = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)\n" + block)
    old = os.umask(0o022)
    try:
        res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300)
    finally:
        os.umask(old)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "etc.key.npz").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("command", [c for c in find("etcbench ") if PLUGIN not in c.text], ids=lambda c: c.text[:70])
def test_etcbench_commands_parse_as_printed(command):
    """Every ``etcbench`` command the README prints is accepted by the CLI's parser as printed (the rehearsal runs
    in tests/test_rehearsal.py, the bench on small sizes in tests/test_bench.py: their full runs take minutes)."""
    from etcbench.cli import build_parser

    args = build_parser().parse_args(shlex.split(command.text, comments=True)[1:])
    assert callable(args.func), command.text
