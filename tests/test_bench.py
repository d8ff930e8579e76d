"""``etcbench bench``: the loop reference computes what each scheme computes, ratios are per-round medians, and the
command writes its table and JSON (run on tiny sizes: what is checked here is the wiring, not the speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench import ciphers
from etcbench.bench import _row, bench_images, interleaved, loop_reference

SCHEMES = ciphers.available()


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(SCHEMES), block=st.sampled_from([4, 8]), blocks=st.integers(1, 3),
       n=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_the_loop_reference_gives_the_schemes_output(name, block, blocks, n, seed):
    scheme = ciphers.create(name, block_size=block)
    size = 2 * block * blocks  # a multiple of 2M fits every scheme, 4:2:0 planes included
    key = scheme.generate_key(seed=seed, image_size=(size, size))
    x = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = scheme.encrypt(x, key)
    assert np.array_equal(loop_reference(scheme, key, x), y)
    assert np.array_equal(loop_reference(scheme, key, y, inverse=True), scheme.decrypt(y, key))


def test_a_ratio_is_the_median_of_per_round_ratios():
    row = _row("ciphers", "x", [2.0, 4.0, 1.0], "copy", [1.0, 1.0, 1.0], "copy")
    assert row["ratio"] == 2.0 and (row["ratio_min"], row["ratio_max"]) == (1.0, 4.0)
    assert row["meets_target"] is True and row["target"] == "<= 2"
    # per-round ratios 1, 0.5, 3: median 1, not the ratio of the medians (2 / 3): a slow round of the machine
    # slows item and reference alike
    paired = _row("ciphers", "x", [1.0, 2.0, 9.0], "copy", [1.0, 4.0, 3.0], "copy")
    assert paired["ratio"] == 1.0 and paired["seconds"] / paired["reference_seconds"] == pytest.approx(2 / 3)
    speed = _row("training", "x", [1.0, 1.0, 1.0], "plain", [0.9, 0.95, 0.99], "plain", speedup=True)
    assert speed["ratio"] == pytest.approx(0.95) and speed["meets_target"] is False


def test_interleaved_calls_every_timer_once_per_round_in_turn():
    calls = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b"] * 3 and all(len(t) == 3 and min(t) >= 0 for t in times.values())


def test_bench_images_are_natural_and_sized():
    x = bench_images(10, 48)
    assert x.shape == (10, 48, 48, 3) and x.dtype == np.uint8
    assert len({img.tobytes() for img in x}) > 4 and x.std() > 30  # distinct photographs, not flat


def test_the_command_writes_its_tables_and_the_torch_free_stages_stay_so(tmp_path):
    out = tmp_path / "bench"
    res = subprocess.run([sys.executable, "-m", "etcbench", "bench", "--sections", "ciphers", "jpeg", "startup",
                          "--schemes", "etc", "etc-gray", "le", "pe", "--batch", "4", "--image-size", "32",
                          "--block-size", "8", "--rounds", "2", "--jpeg-batch", "8", "--stages", "keygen", "compress",
                          "report", "train", "--out-dir", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((out / "bench.json").read_text())
    rows = {r["item"]: r for r in result["rows"]}
    for name in ("etc", "etc-gray", "le", "pe"):
        for op in ("encrypt", "decrypt"):
            assert rows[f"{name} {op} (numpy)"]["reference"] == "numpy copy"
            assert rows[f"{name} {op} (numpy) vs loop"]["ratio_is"] == "speed-up"
            assert rows[f"{name} {op} (torch cpu)"]["reference"] == "torch clone (cpu)"
    assert {"JPEG round trip, 2 workers", "JPEG round trip, 1 worker"} <= set(rows)
    for stage in ("keygen", "compress", "report"):
        assert rows[f"etcbench {stage}"]["imports_torch"] is False, stage
    assert rows["etcbench train"]["imports_torch"] is True  # the probe sees torch where a stage imports it
    assert rows["etcbench train"]["meets_target"] is None and rows["etcbench keygen"]["target"] == "no torch"
    assert all(r["rounds"] == 2 and r["ratio_min"] <= r["ratio"] <= r["ratio_max"] for r in result["rows"])
    table = (out / "bench.md").read_text()
    assert "## ciphers" in table and "## jpeg" in table and "## startup" in table and table in res.stdout


def test_an_unknown_section_is_a_usage_error(tmp_path):
    res = subprocess.run([sys.executable, "-m", "etcbench", "bench", "--sections", "gpu", "--out-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "invalid choice: 'gpu'" in res.stderr
    assert not any(tmp_path.iterdir())


def test_training_without_models_is_one_line_before_any_work(tmp_path):
    res = subprocess.run([sys.executable, "-m", "etcbench", "bench", "--sections", "ciphers", "training",
                          "--out-dir", str(tmp_path / "bench")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.strip().splitlines() == [
        "etcbench bench: error: the training section needs --models"]
    assert not (tmp_path / "bench").exists()


def test_training_compares_each_scheme_with_plain_for_the_same_model(tmp_path, cifar_archive):
    from etcbench.bench import training_rows

    rows = training_rows(["vit"], ["etc"], {"vit": {"arch": "vit_tiny_patch16_224", "depth": 1}}, 32, 8,
                         str(cifar_archive), 64, 32, 2, "cpu")
    assert [(r["model"], r["scheme"]) for r in rows] == [("vit", "etc")]
    row = rows[0]
    assert row["samples_per_s"] > 0 and row["plain_samples_per_s"] > 0 and row["rounds"] == 2
    assert row["ratio"] == pytest.approx(np.median([row["ratio_min"], row["ratio_max"]]))


def test_training_rounds_rotate_the_order_of_the_schemes(tmp_path, cifar_archive, monkeypatch):
    """Round r trains the schemes in the order rotated by r: with one round per scheme each trains once in every
    position (a cell trained after the others could be slower or faster for that alone)."""
    import etcbench.train
    from etcbench.gpu_check import train_rows

    order = []

    def fake_train_model(**kwargs):
        order.append(Path(kwargs["key_path"]).name.split(".")[0])
        return {"record": {"top1": 0.1}, "train": {"samples_per_s": 1.0, "train_seconds": 1.0, "parameters": 1}}

    monkeypatch.setattr(etcbench.train, "train_model", fake_train_model)
    rows = train_rows(["vit"], ["plain", "etc", "pixel-shuffle"], {}, 32, 8, str(cifar_archive), 64, 32, "cpu",
                      rounds=3)
    assert order == ["plain", "etc", "pixel-shuffle", "etc", "pixel-shuffle", "plain", "pixel-shuffle", "plain", "etc"]
    assert [r["round"] for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
