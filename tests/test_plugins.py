"""Plug-ins: the example package under examples/ installed into the test environment (a ``--target`` folder on
``PYTHONPATH``, so nothing outside the session's tmp folders changes), its contract check, a smoke grid that names it,
and plug-ins that cannot be used: one line naming them, before any job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from background_runs import Run, register
from background_runs import run as background_run
from offline_archive import shared_archive

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "etcbench-block-scramble"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
PLUGIN_SMOKE_TIMEOUT = 900  # seconds; 50 s alone on 2 cores


def install_command(target: Path) -> list[str]:
    """pip installing a copy of the example into ``target``, offline (no index, no build isolation, no
    dependencies); the build writes into the copy, so neither the checkout nor another install sees its files."""
    source = target.parent / f"{target.name}-source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-build-isolation",
            "--target", str(target), str(source)]


def _plugin_smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Run | None:
    """Install the example plug-in, then run its smoke grid (examples/.../smoke.yaml) through Snakemake."""
    archive = shared_archive()
    if archive is None:
        return None
    target, workdir = tmp_path_factory.mktemp("plugin-site"), tmp_path_factory.mktemp("plugin-smoke")
    snakemake = ["timeout", "-k", "10", str(PLUGIN_SMOKE_TIMEOUT), *SNAKEMAKE, "--cores", "2", "--configfile",
                 str(EXAMPLE / "smoke.yaml"), "--directory", str(workdir)]
    script = " ".join(map(_quote, install_command(target))) + " && " + " ".join(map(_quote, snakemake))
    env = {"ETCBENCH_CIFAR10_ARCHIVE": str(archive), "PYTHONPATH": _pythonpath(target)}
    return Run(["bash", "-c", script], REPO, tmp_path_factory.mktemp("plugin-smoke-log") / "snakemake.log", workdir,
               env, PLUGIN_SMOKE_TIMEOUT + 60)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(str(arg))


def _pythonpath(*folders: Path) -> str:
    return os.pathsep.join([*map(str, folders), *filter(None, [os.environ.get("PYTHONPATH")])])


register("plugin_smoke_run", _plugin_smoke_run)


@pytest.fixture(scope="session")
def plugin_smoke_run(tmp_path_factory, cifar_archive) -> Path:
    run = background_run("plugin_smoke_run", tmp_path_factory)
    res = run.wait()
    assert res.returncode == 0, res.stdout[-4000:]
    return run.workdir


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory) -> Path:
    """A folder holding the installed example plug-in (its package and its dist-info with the entry point)."""
    target = tmp_path_factory.mktemp("plugin-check-site")
    subprocess.run(install_command(target), check=True, capture_output=True, text=True)
    return target


def etcbench(*args: str, path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etcbench", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": _pythonpath(REPO, *path)})


def test_the_example_plugin_keeps_the_scheme_contract(plugin_site):
    res = etcbench("check-scheme", "block-scramble", "--options", '{"negative_positive": true}', path=(plugin_site,))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    checks = ["builds", "keys", "round trip", "batching", "numpy/torch parity", "bad input", "JPEG alignment"]
    assert [line.split(":")[0] for line in lines[:-1]] == [f"ok   {c}" for c in checks]
    assert "444: aligned" in lines[-2] and "420: aligned" in lines[-2]  # block 16: checked through real JPEG
    assert lines[-1] == ("plug-in 'block-scramble' (etcbench.schemes, from etcbench-block-scramble 0.1.0) keeps the "
                         "scheme contract (7 checks)")
    # without the plug-in on the path the name is unknown
    assert etcbench("check-scheme", "block-scramble").returncode == 2


def fake_plugin(root: Path, entry_points: str, module: str = "", name: str = "fakeplug") -> Path:
    """A minimal installed distribution: dist-info with METADATA and entry_points.txt, and a module."""
    dist = root / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)
    if module:
        (root / f"{name}_mod.py").write_text(module)
    return root


BROKEN_SCHEME = '''
from etcbench.ciphers import GatherScheme
from etcbench.ciphers.blocks import num_blocks
from etcbench.ciphers.plan import block_plan
import numpy as np


class Broken(GatherScheme):
    """Scrambles blocks, but decrypts with the forward plan (no inverse)."""

    def _draw(self, seed_seq, height, width):
        return {"block_perm": np.random.default_rng(seed_seq).permutation(num_blocks(height, width, self.block_size))}

    def build_plan(self, key):
        h, w = key.image_size
        return block_plan(h, w, self.block_size, lambda b: (b[key.arrays["block_perm"]], np.zeros(1, bool)))

    def decrypt(self, x, key):
        return self.encrypt(x, key)


class NotAScheme:
    pass
'''

BAD = {
    "does not import": ("[etcbench.schemes]\nghost = fakeplug_missing:Ghost\n", "",
                        "plug-in 'ghost' (etcbench.schemes, from fakeplug 0.1): cannot import fakeplug_missing:Ghost: "
                        "ModuleNotFoundError"),
    "name taken": ("[etcbench.schemes]\netc = fakeplug_mod:Broken\n", BROKEN_SCHEME,
                   "plug-in 'etc' (etcbench.schemes, from fakeplug 0.1): the scheme name 'etc' is registered twice "
                   "(also by a built-in scheme)"),
    "wrong kind": ("[etcbench.schemes]\nodd = fakeplug_mod:NotAScheme\n", BROKEN_SCHEME,
                   "plug-in 'odd' (etcbench.schemes, from fakeplug 0.1): fakeplug_mod:NotAScheme is not a subclass "
                   "of etcbench.ciphers.base.Scheme"),
    "fails its contract": ("[etcbench.schemes]\nbroken = fakeplug_mod:Broken\n", BROKEN_SCHEME,
                           "plug-in 'broken' (etcbench.schemes, from fakeplug 0.1) fails its contract"),
}


def grid_config(tmp_path: Path, scheme: str) -> Path:
    config = tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump({"grid": [{"image_size": 32, "block_size": 8,
                                                "schemes": {"plain": [], scheme: []}}]}))
    return config


@pytest.mark.parametrize("problem", sorted(BAD))
def test_a_plugin_that_cannot_be_used_is_one_line_before_any_job(tmp_path, problem):
    entry_points, module, message = BAD[problem]
    site = fake_plugin(tmp_path / "site", entry_points, module)
    name = entry_points.splitlines()[1].split(" =")[0]
    # the stage that checks it
    res = etcbench("check-scheme", name, path=(site,))
    assert res.returncode == 1 and res.stdout.count("FAIL") <= 1
    error = res.stderr.strip().splitlines()
    assert len(error) == 1 and message in error[0], res.stderr
    # a grid that names it: reading the config (what the Snakefile does first) stops with the same line; one case
    # through Snakemake itself, which stops before it schedules a job
    if problem != "fails its contract":
        code = f"from etcbench import config; config.resolve([{str(grid_config(tmp_path, name))!r}])"
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": _pythonpath(REPO, site)})
        assert res.returncode != 0 and message in res.stderr, res.stderr
        return
    workdir = tmp_path / "run"
    res = subprocess.run([*SNAKEMAKE, "-n", "--cores", "1", "--configfile", str(grid_config(tmp_path, name)),
                          "--directory", str(workdir)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": _pythonpath(site)})
    assert res.returncode != 0 and message in res.stdout + res.stderr, res.stdout + res.stderr
    assert "Building DAG of jobs" not in res.stdout + res.stderr
    assert not (workdir / "results").exists()


def test_the_contract_check_reports_the_broken_promise(tmp_path):
    site = fake_plugin(tmp_path / "site", BAD["fails its contract"][0], BROKEN_SCHEME)
    res = etcbench("check-scheme", "broken", path=(site,))
    assert "FAIL round trip: decrypt(encrypt(x)) is not x" in res.stdout
    assert "fails its contract: round trip: decrypt(encrypt(x)) is not x" in res.stderr


def test_two_distributions_declaring_one_name_are_refused(tmp_path):
    site = tmp_path / "site"
    fake_plugin(site, "[etcbench.schemes]\ntwin = fakeplug_mod:Broken\n", BROKEN_SCHEME)
    fake_plugin(site, "[etcbench.schemes]\ntwin = fakeplug_mod:Broken\n", name="otherplug")
    code = f"from etcbench import config; config.resolve([{str(grid_config(tmp_path, 'twin'))!r}])"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": _pythonpath(REPO, site)})
    assert res.returncode != 0
    assert "the scheme name 'twin' is registered twice" in res.stderr
    assert "fakeplug 0.1" in res.stderr and "otherplug 0.1" in res.stderr


def test_the_smoke_grid_that_names_the_plugin_runs_through_the_report(plugin_smoke_run):
    report = plugin_smoke_run / "results" / "report"
    accuracy = pd.read_csv(report / "accuracy.csv")
    assert set(accuracy["scheme"]) == {"block-scramble"}
    assert len(accuracy) == 2  # uncompressed and JPEG q50
    schemes = pd.read_csv(report / "schemes.csv").set_index("scheme")
    assert set(schemes.index) == {"plain", "block-scramble"}
    row = schemes.loc["block-scramble"]
    assert row["jpeg_q50_payload_bpp"] > 0 and row["jpeg_q50_top1_pct_vit"] >= 0 and row["other_key_top1_pct_vit"] >= 0
    config = yaml.safe_load((report / "config.yaml").read_text())
    assert config["scheme_options"]["block-scramble"] == {"negative_positive": True}
    assert any((plugin_smoke_run / "results" / "keys").rglob("block-scramble.key.npz"))


def test_the_schema_accepts_a_plugin_name_where_it_accepts_a_built_in_one(plugin_site, tmp_path):
    """Grid schemes, scheme options (checked by the constructor) and train keys; an unknown option is refused."""
    config = tmp_path / "grid.yaml"
    grid = {"grid": [{"image_size": 32, "block_size": 8, "schemes": {"plain": [], "block-scramble": ["vit"]}}],
            "scheme_options": {"block-scramble": {"negative_positive": True}},
            "train": {"vit/block-scramble": {"epochs": 3}}}
    config.write_text(yaml.safe_dump(grid))
    code = ("import json; from etcbench import config; c = config.resolve([{!r}]); print(json.dumps("
            "[c['scheme_options']['block-scramble'], config.recipe_json(c, 'vit', 'block-scramble')]))")
    res = subprocess.run([sys.executable, "-c", code.format(str(config))], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": _pythonpath(REPO, plugin_site)})
    assert res.returncode == 0, res.stderr
    options, recipe = json.loads(res.stdout)
    assert options == {"negative_positive": True} and json.loads(recipe)["epochs"] == 3
    grid["scheme_options"]["block-scramble"] = {"rotate": True}
    config.write_text(yaml.safe_dump(grid))
    res = subprocess.run([sys.executable, "-c", code.format(str(config))], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": _pythonpath(REPO, plugin_site)})
    assert res.returncode != 0 and "has no option rotate" in res.stderr


def test_an_attack_plugin_that_does_not_import_stops_the_config_and_the_stage(tmp_path):
    site = fake_plugin(tmp_path / "site", "[etcbench.attacks]\nlens = fakeplug_gone:Lens\n")
    message = "plug-in 'lens' (etcbench.attacks, from fakeplug 0.1): cannot import fakeplug_gone:Lens"
    code = f"from etcbench import config; config.resolve([{str(grid_config(tmp_path, 'etc'))!r}])"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": _pythonpath(REPO, site)})
    assert res.returncode != 0 and message in res.stderr
    res = etcbench("attack", "--attacks", "fr", "--help", path=(site,))
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [f"etcbench: error: {message}: "
                                                                       "ModuleNotFoundError: No module named "
                                                                       "'fakeplug_gone'"]


def test_the_readme_plugin_commands_are_the_ones_run_here():
    """The README's plug-in block: the install (done here into a --target folder), the contract check and the smoke
    grid, which this module runs with the same arguments."""
    from readme_commands import bash_commands

    texts = [c.text.split(" #")[0] for c in bash_commands() if "block-scramble" in c.text]  # without comments
    assert texts == ["python -m pip install ./examples/etcbench-block-scramble",
                     "etcbench check-scheme block-scramble",
                     "snakemake --cores 2 --configfile examples/etcbench-block-scramble/smoke.yaml"]
    assert str(EXAMPLE.relative_to(REPO)) in texts[0] and str(EXAMPLE.relative_to(REPO) / "smoke.yaml") in texts[2]
