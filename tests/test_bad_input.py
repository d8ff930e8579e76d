"""Bad input to the stages, through the command line as a job runs them: one line naming the problem, a non-zero
exit, and no output file. (Other cases live in their stage's own tests: test_cli, test_config, data/test_cifar,
ciphers/test_key_files.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from etcbench import ciphers
from etcbench.io import save_npz


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A small valid data set, key, encrypted test set and plain set, to be damaged one at a time; a key for another
    image size."""
    tmp = tmp_path_factory.mktemp("bad-input")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    y = np.arange(12) % 4
    save_npz(tmp / "data.npz", train_x=x, train_y=y, val_x=x[:4], val_y=y[:4], test_x=x, test_y=y)
    scheme = ciphers.create("etc", block_size=8)
    key = scheme.generate_key(seed=1, image_size=(32, 32))
    ciphers.save_key(key, tmp / "key.npz")
    save_npz(tmp / "test.npz", x=scheme.encrypt(x, key), y=y, key_fingerprint=np.array(key.fingerprint),
             scheme=np.array("etc"))  # an encrypted set as 'encrypt' writes it
    save_npz(tmp / "plain.npz", x=x, y=y, key_fingerprint=np.array("plain"))
    ciphers.save_key(scheme.generate_key(seed=1, image_size=(16, 16)), tmp / "small.key.npz")
    return tmp


def _etcbench(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etcbench", *map(str, args)], capture_output=True, text=True,
                          timeout=180, check=False)


def _damaged(inputs: Path, tmp: Path, name: str, how: str) -> Path:
    """A copy of ``inputs/name`` damaged ``how``: truncated, garbage, a folder, float or 4-channel images."""
    src, out = inputs / name, tmp / name
    if how == "truncated":
        out.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    elif how == "garbage":
        out.write_bytes(b"PK\x03\x04 this is not a zip archive" * 10)
    elif how == "folder":
        out.mkdir()
    elif how in ("float", "channels", "empty"):
        with np.load(src) as data:
            arrays = {k: data[k] for k in data.files}
        for k in [k for k in arrays if k == "x" or k.endswith("_x")]:
            arrays[k] = {"float": lambda a: a.astype(np.float32) / 255,
                         "channels": lambda a: np.concatenate([a, a[..., :1]], axis=-1),
                         "empty": lambda a: a[:0]}[how](arrays[k])
        save_npz(out, **arrays)
    if out.is_file():
        out.chmod(0o600)  # key files must stay private to be read at all
    return out


# (stage, the input damaged, how, words the error line must hold)
CASES = [
    ("encrypt", "data.npz", "float", ["data.npz", "must be uint8", "float32"]),
    ("encrypt", "data.npz", "channels", ["data.npz", "(N, H, W, 3)", "(12, 32, 32, 4)"]),
    ("encrypt", "data.npz", "truncated", ["data.npz", "not a readable .npz file"]),
    ("encrypt", "data.npz", "garbage", ["data.npz", "not a readable .npz file"]),
    ("encrypt", "data.npz", "folder", ["data.npz", "is a folder"]),
    ("encrypt", "key.npz", "truncated", ["key.npz", "not a valid etcbench key"]),
    ("encrypt", "key.npz", "folder", ["key.npz", "does not exist"]),
    ("compress", "plain.npz", "float", ["plain.npz", "must be uint8"]),
    ("compress", "plain.npz", "truncated", ["plain.npz", "not a readable .npz file"]),
    ("compress", "plain.npz", "channels", ["plain.npz", "(N, H, W, 3)"]),
    ("compress", "key.npz", "truncated", ["key.npz", "not a valid etcbench key"]),
    ("attack", "plain.npz", "float", ["plain.npz", "must be uint8"]),
    ("attack", "plain.npz", "empty", ["plain.npz", "(N, H, W, 3)"]),
    ("attack", "data.npz", "garbage", ["data.npz", "not a readable .npz file"]),
]


def _command(stage: str, files: dict[str, Path], out: Path) -> list:
    if stage == "encrypt":
        return ["encrypt", "--data", files["data.npz"], "--key", files["key.npz"], "--out", out / "enc.npz"]
    if stage == "compress":
        return ["compress", "--plain-test", files["plain.npz"], "--key", files["key.npz"],
                "--quality", "50", "--subsampling", "444", "--out-dir", out]
    if stage == "train":
        return ["train", "--data", files["data.npz"], "--key", files["key.npz"], "--plain-test", files["plain.npz"],
                "--model", "vit", "--model-options", '{"arch": "vit_tiny_patch16_224", "depth": 1}', "--recipe",
                '{"epochs": 1, "batch_size": 4}', "--device", "cpu", "--no-progress", "--state-dir", out / "state",
                "--out-model", out / "m.pt", "--out-metrics", out / "m.json"]
    return ["attack", "--attacks", "fr", "--data", files["data.npz"], "--key", files["key.npz"], "--plain-test",
            files["plain.npz"], "--num-images", "4", "--key-seed", "1", "--device", "cpu",
            "--out", out / "a.json", "--out-examples", out / "a.npz"]


@pytest.mark.parametrize(("stage", "name", "how", "words"), CASES,
                         ids=[f"{c[0]}-{c[1].split('.')[0]}-{c[2]}" for c in CASES])
def test_a_damaged_input_is_one_line_and_no_output(inputs, tmp_path, stage, name, how, words):
    files = {n: inputs / n for n in ("data.npz", "key.npz", "test.npz", "plain.npz")}
    (tmp_path / "in").mkdir()
    files[name] = _damaged(inputs, tmp_path / "in", name, how)
    out = tmp_path / "out"
    res = _etcbench(*_command(stage, files, out))
    assert res.returncode == 1, res.stderr
    error = res.stderr.strip().splitlines()[-1]
    assert error.startswith(f"etcbench {stage}: error:") and "Traceback" not in res.stderr, res.stderr
    assert [line for line in res.stderr.splitlines() if "error" in line.lower()] == [error]
    for word in words:
        assert word in error, error
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


@pytest.mark.parametrize("stage", ["compress", "attack", "train"])
@pytest.mark.parametrize("wrong", ["small.key.npz", "test.npz", "missing.npz"])
def test_a_plain_test_set_the_key_does_not_fit_is_one_line_and_no_output(inputs, tmp_path, stage, wrong):
    """The stages encrypt the stored plain test set with their key themselves: a key for another image size, an
    encrypted set given as the plain one, or a missing plain set is refused before anything is encrypted."""
    files = {n: inputs / n for n in ("data.npz", "key.npz", "test.npz", "plain.npz")}
    if wrong == "small.key.npz":
        files["key.npz"], words = inputs / wrong, ["small.key.npz", "is for 16x16 images", "holds 32x32 images"]
    elif wrong == "test.npz":
        files["plain.npz"], words = inputs / wrong, ["test.npz", "give the plain scheme's test set"]
    else:
        files["plain.npz"], words = tmp_path / wrong, ["missing.npz", "does not exist"]
    out = tmp_path / "out"
    res = _etcbench(*_command(stage, files, out))
    assert res.returncode == 1, res.stderr
    error = res.stderr.strip().splitlines()[-1]
    assert error.startswith(f"etcbench {stage}: error:") and "Traceback" not in res.stderr, res.stderr
    for word in words:
        assert word in error, error
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


def test_the_valid_inputs_pass(inputs, tmp_path):
    """The same commands on the undamaged files succeed (the cases above fail for the damage alone)."""
    files = {n: inputs / n for n in ("data.npz", "key.npz", "test.npz", "plain.npz")}
    for stage in ("encrypt", "compress"):
        res = _etcbench(*_command(stage, files, tmp_path / stage))
        assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["--quality", "0"], ["quality"]),
    (["--quality", "101"], ["quality"]),
    (["--subsampling", "411"], ["411"]),
])
def test_an_invalid_jpeg_setting_is_refused_before_any_file(inputs, tmp_path, args, words):
    files = {n: inputs / n for n in ("data.npz", "key.npz", "test.npz", "plain.npz")}
    cmd = _command("compress", files, tmp_path / "out")
    for flag, value in zip(args[::2], args[1::2], strict=True):
        cmd[cmd.index(flag) + 1] = value
    res = _etcbench(*cmd)
    assert res.returncode in (1, 2) and "Traceback" not in res.stderr, res.stderr
    assert all(w in res.stderr.strip().splitlines()[-1] for w in words), res.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.*"))


def test_a_truncated_model_file_is_refused_by_evaluate(inputs, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(b"\x80\x02not a torch file")
    out = tmp_path / "eval.json"
    res = _etcbench("evaluate", "--model-file", model, "--key", inputs / "key.npz", "--plain-test",
                    inputs / "plain.npz", "--device", "cpu", "--out", out)
    assert res.returncode == 1 and "is not an etcbench model file" in res.stderr.strip().splitlines()[-1], res.stderr
    assert "Traceback" not in res.stderr and not out.exists()
