"""The Snakemake workflow: lint, dry runs of every config, and a smoke run of the whole DAG.

Snakemake runs in a subprocess under ``timeout -k`` (it can ignore SIGTERM while jobs run).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest


REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ["timeout", "-k", "10", str(timeout), *SNAKEMAKE, *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})


def job_counts(stdout: str) -> dict[str, int]:
    table = stdout.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def test_lint_is_clean():
    res = snakemake("--lint")
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/smoke.yaml", "config/paper.yaml"])
def test_dry_run_builds_the_whole_grid(configfile):
    import yaml

    res = snakemake("-n", "--configfile", str(REPO / configfile), "--directory", str(REPO))
    assert res.returncode == 0, res.stderr[-2000:]
    counts = job_counts(res.stdout)
    cfg = yaml.safe_load((REPO / configfile).read_text())
    schemes = len(cfg.get("schemes", ["plain", "etc"]))
    models, seeds = len(cfg.get("models", [1, 2, 3])), len(cfg.get("seeds", [0]))
    jpeg = cfg.get("jpeg", {})
    variants = len(jpeg.get("qualities", [30, 50, 70, 90])) * len(jpeg.get("subsampling", ["444", "420"]))
    assert counts["train_model"] == counts["evaluate_model"] == schemes * models * seeds
    assert counts["compress_jpeg"] == schemes * variants
    assert counts["make_key"] == counts["encrypt_test"] == schemes
    assert counts["prepare_data"] == counts["make_report"] == 1


def test_every_config_key_has_a_description_and_the_default_validates():
    import jsonschema
    import yaml

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    missing = []

    def walk(node: dict, path: str) -> None:
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub:
                missing.append(path + name)
            walk(sub, f"{path}{name}.")

    walk(schema, "")
    assert missing == []
    for name in ("config.yaml", "smoke.yaml", "paper.yaml"):
        jsonschema.validate(yaml.safe_load((REPO / "config" / name).read_text()), schema)


def test_unknown_config_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  trian_size: 10\n")
    res = snakemake("-n", "--configfile", str(bad), "--directory", str(REPO))
    assert res.returncode != 0
    assert "trian_size" in res.stdout + res.stderr


@pytest.mark.workflow
def test_smoke_run_produces_the_report(tmp_path, cifar_archive):
    env = {"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)}
    res = snakemake("--cores", "2", "--configfile", str(REPO / "config/smoke.yaml"), "--directory", str(tmp_path),
                    timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-4000:]
    report = tmp_path / "results/report"
    acc = pd.read_csv(report / "accuracy.csv", dtype={"subsampling": str})
    assert list(acc.columns) == ["dataset", "image_size", "block_size", "model", "scheme", "jpeg_quality",
                                 "subsampling", "seed", "top1"]
    # 3 models x 2 schemes x (uncompressed + 2 qualities x 2 subsamplings) x 1 seed
    assert len(acc) == 3 * 2 * 5
    assert set(acc.model) == {"vit", "convmixer", "resnet18"} and set(acc.scheme) == {"plain", "etc"}
    assert set(acc.subsampling) == {"none", "444", "420"}
    assert acc.jpeg_quality.isna().sum() == 6 and set(acc.jpeg_quality.dropna().astype(int)) == {50, 90}
    assert (acc.dataset == "cifar10").all() and (acc.image_size == 32).all() and (acc.block_size == 8).all()
    assert acc.top1.between(0, 1).all()
    comp = pd.read_csv(report / "compression.csv", dtype={"subsampling": str})
    assert len(comp) == 2 * 2 * 2 and (comp.bpp > 0).all()
    # plain JPEG loses a little; EtC's 8-px blocks fit the 4:4:4 grid, so its PSNR stays within 1 dB there
    q90 = comp[(comp.jpeg_quality == 90) & (comp.subsampling == "444")].set_index("scheme")
    assert abs(q90.psnr["etc"] - q90.psnr["plain"]) < 1.0
    assert "not available" in (report / "summary.md").read_text()
    for name in ("top1_by_model_scheme", "top1_vs_jpeg_quality", "jpeg_bpp_psnr", "examples"):
        assert (report / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (report / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    for table in ("accuracy", "summary", "compression"):
        assert (report / f"{table}.tex").stat().st_size > 0 and (report / f"{table}.md").stat().st_size > 0
    resolved = (report / "config.yaml").read_text()
    assert "train_size: 200" in resolved and "key_seed" not in resolved
    # keys stay private and only fingerprints reach results
    keys = list((tmp_path / "results/keys").rglob("*.key.npz"))
    assert keys and all((k.stat().st_mode & 0o777) == 0o600 for k in keys)
    html = tmp_path / "report.html"
    res = snakemake("--configfile", str(REPO / "config/smoke.yaml"), "--directory", str(tmp_path), "--report",
                    str(html), timeout=180, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    text = html.read_text(errors="replace")
    assert "top1_vs_jpeg_quality.png" in text and "examples.png" in text
