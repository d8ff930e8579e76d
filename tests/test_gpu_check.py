"""The GPU check script, on the CPU with a tiny budget: it trains each model on each scheme through the suite's
pipeline and reports top-1 and samples/s beside timm's bare training throughput."""

from __future__ import annotations

import json
import subprocess
import sys

TINY = ["--image-size", "32", "--block-size", "8", "--train-size", "60", "--val-size", "20", "--test-size", "40",
        "--batch-size", "20", "--device", "cpu",
        "--model-options",
        '{"vit": {"arch": "vit_tiny_patch16_224", "depth": 1}, "convmixer": {"dim": 32, "depth": 1}}']


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etcbench.gpu_check", *args], capture_output=True, text=True,
                          timeout=300)


def test_tiny_budget_on_cpu(tmp_path, cifar_archive):
    out = tmp_path / "check.json"
    res = run("--archive", str(cifar_archive), *TINY, "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["device"].startswith("cpu")
    rows = {(r["model"], r["scheme"]): r for r in result["rows"]}
    assert set(rows) == {(m, s) for m in ("vit", "convmixer") for s in ("plain", "etc")}
    for r in rows.values():
        assert 0.0 <= r["top1"] <= 1.0 and r["samples_per_s"] > 0 and r["timm_samples_per_s"] > 0
        assert r["ratio_to_timm"] == r["samples_per_s"] / r["timm_samples_per_s"]
    # one reference per model, whatever the scheme; the models differ in size
    assert rows["vit", "plain"]["timm_samples_per_s"] == rows["vit", "etc"]["timm_samples_per_s"]
    assert rows["vit", "plain"]["parameters"] != rows["convmixer", "plain"]["parameters"]
    table = [line.split() for line in res.stdout.splitlines() if line.startswith(("vit", "convmixer"))]
    assert len(table) == 4 and all(len(cells) == 6 for cells in table)
    assert res.stdout.startswith("device: cpu")


def test_missing_archive_is_one_clear_line(tmp_path):
    res = run("--archive", str(tmp_path / "missing.tar.gz"), *TINY)
    assert res.returncode == 2
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "missing.tar.gz" in errors[0] and "Traceback" not in res.stderr
