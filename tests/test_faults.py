"""Faults: training and attack processes killed with SIGKILL at random points and restarted end with the results of an
uninterrupted run; a disk that fills up during a write leaves the previous output intact.

The kill points are drawn from a seeded generator and printed (``pytest -s`` shows them): for training, a random
moment inside a random epoch (after the log line of the epoch before it, so mostly mid-epoch, between checkpoints),
for attacks a random moment of an uninterrupted run's wall time.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from etcbench import ciphers
from etcbench.data.transforms import resize_numpy
from etcbench.errors import EtcbenchError
from etcbench.io import atomic_write, save_npz, write_json

SIZE, BLOCK, EPOCHS = 32, 8, 6
KILLS = 3
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    """A learnable 4-class task on EtC images, with its key and encrypted test set."""
    tmp = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 4
        return (y[:, None, None, None] * 60 + rng.integers(0, 20, (n, 16, 16, 3))).astype(np.uint8), y

    (tx, ty), (vx, vy), (sx, sy) = make(384), make(32), make(64)
    save_npz(tmp / "data.npz", train_x=tx, train_y=ty, val_x=vx, val_y=vy, test_x=sx, test_y=sy)
    scheme = ciphers.create("etc", block_size=BLOCK)
    key = scheme.generate_key(seed=3, image_size=(SIZE, SIZE))
    ciphers.save_key(key, tmp / "key.npz")
    test = resize_numpy(sx, SIZE)
    save_npz(tmp / "plain.npz", x=test, y=sy, key_fingerprint=np.array("plain"))
    return tmp


def _train(tmp: Path, name: str) -> list[str]:
    recipe = {"epochs": EPOCHS, "batch_size": 16, "lr": 0.01, "warmup_epochs": 0.5, "augment": "crop_flip"}
    return [sys.executable, "-m", "etcbench", "train", "--data", str(tmp / "data.npz"), "--key", str(tmp / "key.npz"),
            "--plain-test", str(tmp / "plain.npz"), "--model", "convmixer", "--model-options",
            json.dumps({"arch": "convmixer", "dim": 32, "depth": 2, "kernel_size": 3}), "--recipe",
            json.dumps(recipe), "--seed", "0", "--device", "cpu", "--threads", "1", "--no-progress", "--state-dir",
            str(tmp / name / "state"),
            "--out-model", str(tmp / name / "model.pt"), "--out-metrics", str(tmp / name / "metrics.json")]


EPOCH_DONE = re.compile(r"etcbench\.train: epoch (\d+):|resuming from .* after epoch (\d+)|(model card)")


def _kill_in_epoch(cmd: list[str], epoch: int, fraction: float, epoch_seconds: float) -> int:
    """Start ``cmd``; once it logs that epoch ``epoch - 1`` is done (its model card for epoch 1; a resumed run may be
    past it already), wait ``fraction`` of an epoch and SIGKILL it. Returns the exit status."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV)
    for line in proc.stderr:  # the log, line by line as it is written
        match = EPOCH_DONE.search(line)
        if match and (match.group(3) or int(match.group(1) or match.group(2)) >= epoch - 1):
            if match.group(3) and epoch > 1:
                continue
            time.sleep(fraction * epoch_seconds)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    proc.stderr.close()
    return proc.returncode


def test_training_killed_at_random_points_ends_like_an_uninterrupted_run(task):
    t0 = time.time()
    whole = subprocess.run(_train(task, "whole"), capture_output=True, text=True, env=ENV, check=False)
    assert whole.returncode == 0, whole.stderr[-2000:]
    reference = json.loads((task / "whole" / "metrics.json").read_text())
    epoch_seconds = reference["train"]["train_seconds"] / EPOCHS
    rng = random.Random(2026)
    points = sorted((rng.randint(1, EPOCHS), round(rng.random(), 2)) for _ in range(KILLS))
    print(f"\ntraining: {time.time() - t0:.1f} s uninterrupted, {epoch_seconds:.2f} s an epoch; kill points "
          f"(epoch, fraction of it): {points}")
    cmd = _train(task, "killed")
    killed = 0
    for epoch, fraction in points:
        status = _kill_in_epoch(cmd, epoch, fraction, epoch_seconds)
        killed += status == -signal.SIGKILL
        assert not (task / "killed" / "model.pt").exists() or status == 0
    assert killed >= 2  # most points land inside the run (a late one may find it finished)
    rest = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=False)
    assert rest.returncode == 0, rest.stderr[-2000:]
    result = json.loads((task / "killed" / "metrics.json").read_text())
    assert result["record"]["top1"] == reference["record"]["top1"]
    assert [h["epoch"] for h in result["history"]] == list(range(1, EPOCHS + 1))
    for got, want in zip(result["history"], reference["history"], strict=True):
        for name in ("train_loss", "train_top1", "val_top1", "val_loss", "lr"):
            assert got[name] == pytest.approx(want[name], rel=1e-5, abs=1e-7), (got["epoch"], name)
    a = torch.load(task / "whole" / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(task / "killed" / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
    assert a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    assert not (task / "killed" / "state").exists()  # the finished run cleaned up, leftovers of the kills included


def _attack(tmp: Path, name: str) -> list[str]:
    options = {"itn": {"epochs": 3, "batch_size": 8, "optimizer": "adam", "lr": 0.001, "schedule": "cosine"}}
    return [sys.executable, "-m", "etcbench", "attack", "--attacks", "fr", "itn", "kpa", "--options",
            json.dumps({**options, "kpa": {"pairs": [1]}}), "--data", str(tmp / "data.npz"), "--key",
            str(tmp / "key.npz"), "--plain-test", str(tmp / "plain.npz"),
            "--num-images", "16", "--train-images", "96", "--attacker-keys", "2", "--key-seed", "7", "--device",
            "cpu", "--threads", "1", "--no-progress", "--out", str(tmp / name / "attack.json"), "--out-examples",
            str(tmp / name / "examples.npz")]


def _untimed(value):
    """``value`` without its timings (keys naming seconds or a rate per second), at every depth."""
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if "second" not in k and not k.endswith("per_s")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def _scores(path: Path) -> str:
    """The attack records without their timings, as canonical JSON (so that NaN equals NaN)."""
    return json.dumps(_untimed(json.loads(path.read_text())["records"]), sort_keys=True)


def test_an_attack_killed_at_random_points_ends_like_an_uninterrupted_run(task):
    t0 = time.time()
    whole = subprocess.run(_attack(task, "whole"), capture_output=True, text=True, env=ENV, check=False)
    seconds = time.time() - t0
    assert whole.returncode == 0, whole.stderr[-2000:]
    rng = random.Random(14)
    points = sorted(round(rng.uniform(0.3, 0.95) * seconds, 1) for _ in range(KILLS))
    print(f"\nattack: {seconds:.1f} s uninterrupted; SIGKILL after (s): {points}")
    cmd = _attack(task, "killed")
    for delay in points:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # killed mid-run: no half-written file under either output name
        for out in ("attack.json", "examples.npz"):
            path = task / "killed" / out
            assert not path.exists() or proc.returncode == 0 or _complete(path), path
    rest = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=False)
    assert rest.returncode == 0, rest.stderr[-2000:]
    assert _scores(task / "killed" / "attack.json") == _scores(task / "whole" / "attack.json")
    with np.load(task / "whole" / "examples.npz") as a, np.load(task / "killed" / "examples.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


def _complete(path: Path) -> bool:
    """A file under its final name is whole (written to a temporary name and renamed)."""
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            with np.load(path) as data:
                [data[k] for k in data.files]
    except Exception:
        return False
    return True


class _FullDisk:
    """A file object that takes ``room`` bytes, then fails as a full disk does (ENOSPC)."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.real.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_full_disk_during_a_write_leaves_the_previous_output_intact(tmp_path, monkeypatch):
    import etcbench.io as io_mod

    path = tmp_path / "metrics.json"
    write_json(path, {"top1": 0.5, "history": list(range(100))})
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(io_mod.os, "fdopen", lambda fd, *a, **k: _FullDisk(real_fdopen(fd, *a, **k), 64))
    with pytest.raises(OSError, match="No space left on device"):
        write_json(path, {"top1": 0.9, "history": list(range(1000))})
    assert path.read_bytes() == before  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary file left behind
    monkeypatch.setattr(io_mod.os, "fdopen", real_fdopen)
    with pytest.raises(EtcbenchError, match="failed"), atomic_write(path) as fh:  # an error inside the block
        fh.write(b"partial")
        raise EtcbenchError("failed")
    assert path.read_bytes() == before


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0 or not Path("/bin/mount").exists(),
                    reason="needs root and mount to make a small tmpfs")
def test_a_real_full_tmpfs_leaves_the_previous_output_intact(tmp_path):
    """The same on a real file system that fills up: a 1-MiB tmpfs."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                         text=True, check=False)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        out = mnt / "test.npz"
        save_npz(out, x=np.zeros((100, 32, 32, 3), np.uint8))  # 300 KB
        before = out.read_bytes()
        with pytest.raises(OSError) as exc:
            save_npz(out, x=np.ones((300, 32, 32, 3), np.uint8))  # 900 KB: does not fit beside the old one
        assert exc.value.errno == errno.ENOSPC
        assert out.read_bytes() == before and sorted(p.name for p in mnt.iterdir()) == ["test.npz"]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
