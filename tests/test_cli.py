"""CLI: every stage has --help with its defaults and choices; a usage error exits 2 (argparse), a bad input exits 1
with one clear error line (the traceback only with -v) and no output."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from etcbench import ciphers, jpeg
from etcbench.cli import build_parser, main
from etcbench.io import load_npz, save_npz

STAGES = ["prepare", "keygen", "encrypt", "compress", "train", "evaluate", "rehearse", "report"]


def etcbench(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "etcbench", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def assert_one_error_line(res: subprocess.CompletedProcess, stage: str, *words: str) -> None:
    """A runtime failure: exit status 1 and one error line, the last on stderr (after any log lines)."""
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, res.stderr
    assert errors[0].startswith(f"etcbench {stage}: error:") and res.stderr.splitlines()[-1] == errors[0], res.stderr
    for w in words:
        assert w in errors[0], errors[0]
    assert "Traceback" not in res.stderr


def test_every_stage_has_help():
    parser = build_parser()
    for stage in STAGES:
        with pytest.raises(SystemExit) as exc:
            parser.parse_args([stage, "--help"])
        assert exc.value.code == 0


def test_scheme_and_model_choices_are_the_registries_names(capsys, monkeypatch):
    from etcbench import models

    monkeypatch.setenv("COLUMNS", "1000")  # help on one line per option
    parser = build_parser()
    for stage, option, names in (("keygen", "--scheme", ciphers.available()), ("train", "--model", models.available())):
        with pytest.raises(SystemExit):
            parser.parse_args([stage, "--help"])
        help_text = capsys.readouterr().out
        assert f"one of {', '.join(names)}" in help_text, (stage, help_text)
        action = next(a for a in parser._subparsers._group_actions[0].choices[stage]._actions
                      if option in a.option_strings)
        assert list(action.choices) == names and "rot13" not in action.choices


def _stage_parsers() -> dict[str, argparse.ArgumentParser]:
    return dict(build_parser()._subparsers._group_actions[0].choices)


def _option_help(help_text: str) -> dict[str, str]:
    """Each option's entry in ``--help`` (invocation and help text, wrapped lines joined), by its first spelling."""
    blocks = re.split(r"\n(?=  -)", help_text.split("\noptions:\n", 1)[1])
    return {block.split()[0].rstrip(","): " ".join(block.split()) for block in blocks}


def test_version_is_the_installed_distributions(capsys):
    from importlib import metadata

    res = etcbench("--version")
    assert res.returncode == 0 and res.stdout == f"etcbench {metadata.version('etcbench')}\n", res
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == res.stdout


def test_every_help_shows_the_defaults(capsys, monkeypatch):
    """Every option that takes a value and has a default says it once in --help; required options, flags and
    options without a default (None) say none."""
    monkeypatch.setenv("COLUMNS", "1000")
    stages = _stage_parsers()
    assert set(STAGES) | {"attack", "position-leak"} <= set(stages)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--version" in capsys.readouterr().out
    for stage, parser in stages.items():
        with pytest.raises(SystemExit) as exc:
            main([stage, "--help"])
        assert exc.value.code == 0
        entries = _option_help(capsys.readouterr().out)
        for action in parser._actions:
            if not action.option_strings or action.default is argparse.SUPPRESS:
                continue
            entry = entries[action.option_strings[0]]
            shown = not action.required and action.nargs != 0 and action.default is not None
            said = action.help is not None and "(default:" in action.help  # e.g. --archive's environment variable
            assert entry.count("(default:") == (1 if shown or said else 0), (stage, entry)
            assert not (shown and said), (stage, "the help text repeats the default", entry)
            if shown and action.default not in ([], {}):
                assert f"(default: {action.default})" in entry, (stage, entry)


def test_a_bad_choice_is_a_usage_error_naming_the_choices(tmp_path, capsys):
    from etcbench import attacks, models

    common = ["--out", str(tmp_path / "o"), "--info", str(tmp_path / "i")]
    for argv, names in ((["keygen", "--scheme", "rot13", "--block-size", "8", "--image-size", "32", "--key-seed", "1",
                          *common], ciphers.available()),
                        (["train", "--model", "rot13", "--data", "d", "--key", "k", "--plain-test", "t",
                          "--state-dir", "s", "--out-model", "m", "--out-metrics", "x"], models.available()),
                        (["attack", "--attacks", "fr", "rot13", "--data", "d", "--key", "k", "--plain-test",
                          "p", "--key-seed", "1", "--out", "o", "--out-examples", "e"],
                         attacks.available())):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "invalid choice: 'rot13'" in err, err
        assert all(repr(name) in err for name in names) and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def _missing_input(tmp_path) -> list[str]:
    return ["encrypt", "--data", str(tmp_path / "none.npz"), "--key", str(tmp_path / "none.key.npz"),
            "--out", str(tmp_path / "o.npz")]


def test_a_runtime_failure_exits_1_with_one_line(tmp_path, capsys):
    assert main(_missing_input(tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"etcbench encrypt: error: key file {tmp_path / 'none.key.npz'} does not exist"], err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_adds_the_traceback(tmp_path, capsys, where):
    argv = ["-v", *_missing_input(tmp_path)] if where == "before" else [*_missing_input(tmp_path), "-v"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "EtcbenchError" in err, err
    assert err.splitlines()[-1].startswith("etcbench encrypt: error: key file")


def test_the_attack_choices_are_the_registrys():
    from etcbench import attacks

    action = next(a for a in _stage_parsers()["attack"]._actions if "--attacks" in a.option_strings)
    assert list(action.choices) == attacks.available() and "itn" in action.choices


def test_parsing_and_help_import_no_torch():
    code = ("import sys\n"
            "from etcbench.cli import build_parser\n"
            "for stage in ('keygen', 'train', 'attack'):\n"
            "    try:\n"
            "        build_parser().parse_args([stage, '--help'])\n"
            "    except SystemExit:\n"
            "        pass\n"
            "build_parser().parse_args(['train', '--model', 'vit', '--data', 'd', '--key', 'k', '--plain-test', 't',\n"
            "                           '--state-dir', 's', '--out-model', 'm', '--out-metrics', 'x'])\n"
            "print(sorted(m for m in ('torch', 'timm') if m in sys.modules))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "[]", res.stdout + res.stderr


def test_training_imports_neither_scikit_learn_nor_scipy():
    # the evaluation's confusion matrix imports scikit-learn only when it is computed: several seconds that every
    # training job (which imports etcbench.evaluate for its validation) would pay otherwise
    code = ("import sys, etcbench.train, etcbench.evaluate\n"
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "[]", res.stdout + res.stderr


def test_truncated_archive(tmp_path, cifar_archive):
    bad = tmp_path / "cifar.tar.gz"
    with open(cifar_archive, "rb") as fh:
        bad.write_bytes(fh.read(2_000_000))
    out, info = tmp_path / "d.npz", tmp_path / "d.json"
    res = etcbench("prepare", "--archive", str(bad), "--train-size", "10", "--val-size", "10", "--test-size", "10",
                   "--out", str(out), "--info", str(info))
    assert_one_error_line(res, "prepare", str(bad))
    assert not out.exists() and not info.exists() and list(tmp_path.iterdir()) == [bad]


def test_keygen_block_size_must_divide_image(tmp_path):
    res = etcbench("keygen", "--scheme", "etc", "--block-size", "16", "--image-size", "40", "--key-seed", "1",
                   "--out", str(tmp_path / "k.npz"), "--info", str(tmp_path / "k.json"))
    assert_one_error_line(res, "keygen", "40x40", "block size 16")
    assert list(tmp_path.iterdir()) == []


def test_keygen_unknown_option_and_bad_json(tmp_path):
    res = etcbench("keygen", "--scheme", "etc", "--block-size", "8", "--image-size", "32", "--key-seed", "1",
                   "--options", '{"rotate": true}', "--out", str(tmp_path / "k.npz"),
                   "--info", str(tmp_path / "k.json"))
    assert res.returncode == 1 and "rotate" in res.stderr and list(tmp_path.iterdir()) == []
    res = etcbench("keygen", "--scheme", "etc", "--block-size", "8", "--image-size", "32", "--key-seed", "1",
                   "--options", "{oops", "--out", str(tmp_path / "k.npz"), "--info", str(tmp_path / "k.json"))
    assert res.returncode == 2 and "not valid JSON" in res.stderr


def test_keygen_writes_private_key_and_public_fingerprint(tmp_path):
    res = etcbench("keygen", "--scheme", "etc", "--block-size", "8", "--image-size", "32", "--key-seed", "1",
                   "--out", str(tmp_path / "k.npz"), "--info", str(tmp_path / "k.json"))
    assert res.returncode == 0, res.stderr
    key = ciphers.load_key(tmp_path / "k.npz")
    assert (tmp_path / "k.npz").stat().st_mode & 0o777 == 0o600
    assert key.fingerprint in (tmp_path / "k.json").read_text()
    assert key.fingerprint not in res.stderr and key.key_id in res.stderr
    info = json.loads((tmp_path / "k.json").read_text())
    assert info["context"] == {"setting": "s32-m8", "scheme": "etc", "role": "defender", "seed": None}
    assert info["master"]["source"] == "key_seed" and len(info["master"]["fingerprint"]) == 16


def test_keygen_derives_from_a_master_file_per_role_and_training_seed(tmp_path):
    master = tmp_path / "master.secret"
    res = etcbench("master", "--out", str(master))
    assert res.returncode == 0 and "created" in res.stderr and master.stat().st_mode & 0o777 == 0o600, res.stderr
    secret = master.read_bytes()
    assert "kept" in etcbench("master", "--out", str(master)).stderr and master.read_bytes() == secret
    fingerprints = {}
    for name, extra in {"defender": [], "other": ["--role", "other"], "seed1": ["--training-seed", "1"]}.items():
        res = etcbench("keygen", "--scheme", "etc", "--block-size", "8", "--image-size", "32", "--master-file",
                       str(master), *extra, "--out", str(tmp_path / f"{name}.npz"), "--info",
                       str(tmp_path / f"{name}.json"))
        assert res.returncode == 0, res.stderr
        info = json.loads((tmp_path / f"{name}.json").read_text())
        assert info["master"]["source"] == "file" and secret.hex() not in json.dumps(info)
        fingerprints[name] = info["key_fingerprint"]
    assert len(set(fingerprints.values())) == 3
    assert json.loads((tmp_path / "seed1.json").read_text())["context"]["seed"] == 1
    # the same master file gives the same key again; key_seed and a master file together are a usage error
    etcbench("keygen", "--scheme", "etc", "--block-size", "8", "--image-size", "32", "--master-file", str(master),
             "--out", str(tmp_path / "again.npz"), "--info", str(tmp_path / "again.json"))
    assert json.loads((tmp_path / "again.json").read_text())["key_fingerprint"] == fingerprints["defender"]
    res = etcbench("keygen", "--scheme", "etc", "--block-size", "8", "--image-size", "32", "--master-file",
                   str(master), "--key-seed", "1", "--out", str(tmp_path / "x.npz"), "--info", str(tmp_path / "x.json"))
    assert res.returncode == 2 and "not allowed with argument" in res.stderr


def test_compress_codes_the_plain_set_encrypted_with_its_key(tmp_path):
    """No encrypted test set is stored: compress encrypts the plain one with --key; its JPEG files are those of the
    set 'encrypt' wrote with that key, and carry the key's fingerprint."""

    scheme = ciphers.create("etc", block_size=8)
    key = scheme.generate_key(seed=2, image_size=(32, 32))
    ciphers.save_key(key, tmp_path / "k.npz")
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    save_npz(tmp_path / "plain.npz", x=x, y=np.arange(4), key_fingerprint=np.array("plain"))
    res = etcbench("compress", "--plain-test", str(tmp_path / "plain.npz"), "--key", str(tmp_path / "k.npz"),
                   "--quality", "50", "--subsampling", "420", "--out-dir", str(tmp_path / "jpeg"))
    assert res.returncode == 0, res.stderr
    stored = load_npz(tmp_path / "jpeg" / "q50-420.npz")
    data, offsets = jpeg.pack(jpeg.roundtrip_files(scheme.encrypt(x, key), 50, "420", 1)[0])
    np.testing.assert_array_equal(stored["jpeg"], data)
    np.testing.assert_array_equal(stored["offsets"], offsets)
    assert str(stored["key_fingerprint"]) == key.fingerprint and stored["y"].tolist() == [0, 1, 2, 3]


def test_compress_codes_grayscale_planes_at_their_own_subsampling(tmp_path, natural_images):
    scheme = ciphers.create("etc-gray", block_size=8)
    key = scheme.generate_key(seed=1, image_size=(64, 64))
    ciphers.save_key(key, tmp_path / "k.npz")
    x = natural_images
    save_npz(tmp_path / "plain.npz", x=x, y=np.zeros(len(x), np.int64), key_fingerprint=np.array("plain"))
    args = ["compress", "--plain-test", str(tmp_path / "plain.npz"),
            "--key", str(tmp_path / "k.npz"), "--quality", "50", "90", "--out-dir", str(tmp_path / "jpeg")]
    res = etcbench(*args, "--subsampling", "444")
    assert_one_error_line(res, "compress", "use --subsampling 420")
    assert not (tmp_path / "jpeg").exists()
    res = etcbench(*args, "--subsampling", "420")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (tmp_path / "jpeg").iterdir()) == [
        "q50-420.json", "q50-420.npz", "q90-420.json", "q90-420.npz"]
    records = [json.loads((tmp_path / "jpeg" / f"q{q}-420.json").read_text())["record"] for q in (50, 90)]
    assert [r["jpeg_quality"] for r in records] == [50, 90]
    assert all(r["jpeg_mode"] == "gray" and r["jpeg_aligned"] and r["subsampling"] == "420" for r in records)
    assert records[0]["bpp"] < records[1]["bpp"] and records[0]["psnr"] < records[1]["psnr"]
    # bits per pixel of the 64x64 RGB image; the plane has 1.5 x 64 x 64 one-byte pixels
    assert 0.5 < records[1]["bpp"] < 8 and records[1]["psnr"] > 28
    stored = load_npz(tmp_path / "jpeg" / "q90-420.npz")
    assert "x" not in stored  # the JPEG files themselves, not the decoded images
    assert [jpeg.read_subsampling(b) for b in jpeg.unpack(stored["jpeg"], stored["offsets"])] == ["gray"] * len(x)
    assert jpeg.images_of(stored).shape == (len(x), 96, 64, 1)
    res = etcbench(*args[:7], "--quality", "90", "90", "--out-dir", str(tmp_path / "again"), "--subsampling", "420")
    assert_one_error_line(res, "compress", "distinct values")
    assert not (tmp_path / "again").exists()
    res = etcbench(*args[:7], "--quality", "90", "0", "--out-dir", str(tmp_path / "again"), "--subsampling", "420")
    assert_one_error_line(res, "compress", "quality must be in 1..100")
    assert not (tmp_path / "again").exists()  # checked before the valid quality 90 is written


def test_missing_input_file(tmp_path):
    res = etcbench("encrypt", "--data", str(tmp_path / "none.npz"), "--key", str(tmp_path / "none.key.npz"),
                   "--out", str(tmp_path / "o.npz"))
    assert_one_error_line(res, "encrypt", "none.key.npz")
    assert not (tmp_path / "o.npz").exists()


def test_report_with_a_bad_record_leaves_no_files(tmp_path):
    import json

    good = {"dataset": "cifar10", "image_size": 32, "block_size": 8, "model": "vit", "scheme": "etc",
            "jpeg_quality": None, "subsampling": "none", "seed": 0, "top1": 0.5, "loss": 1.0, "n_test": 10,
            "key_fingerprint": "ab"}
    bad = {k: v for k, v in good.items() if k != "top1"}
    (tmp_path / "a.json").write_text(json.dumps({"records": [good, {**bad, "model": "convmixer"}]}))
    out = tmp_path / "report"
    res = etcbench("report", "--accuracy", str(tmp_path / "a.json"), "--out-dir", str(out))
    assert_one_error_line(res, "report", "top1")
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


@pytest.fixture
def train_inputs(tmp_path):
    """A tiny split, an EtC key and the plain test set for `etcbench train`."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    y = np.arange(16) % 2
    save_npz(tmp_path / "data.npz", train_x=x, train_y=y, val_x=x[:4], val_y=y[:4], test_x=x[:4], test_y=y[:4])
    scheme = ciphers.create("etc", block_size=8)
    key = scheme.generate_key(seed=1, image_size=(32, 32))
    ciphers.save_key(key, tmp_path / "key.npz")
    save_npz(tmp_path / "plain.npz", x=x[:4], y=y[:4], key_fingerprint=np.array("plain"))

    def train(*extra: str) -> subprocess.CompletedProcess:
        return etcbench("train", "--data", str(tmp_path / "data.npz"), "--key", str(tmp_path / "key.npz"),
                        "--plain-test", str(tmp_path / "plain.npz"), "--state-dir",
                        str(tmp_path / "state"), "--out-model", str(tmp_path / "out/model.pt"),
                        "--out-metrics", str(tmp_path / "out/metrics.json"), "--no-progress", *extra)
    return tmp_path, train


def test_train_refuses_an_unknown_recipe_key(train_inputs):
    tmp_path, train = train_inputs
    res = train("--model", "vit", "--model-options", '{"arch": "vit_tiny_patch16_224", "depth": 1}',
                "--recipe", '{"epochz": 1}')
    assert_one_error_line(res, "train", "unknown training setting(s) epochz")
    assert not (tmp_path / "out").exists()


def test_train_refuses_a_checkpoint_of_another_architecture_or_a_truncated_one(train_inputs):
    import torch

    from etcbench.models import build_model

    tmp_path, train = train_inputs
    other = tmp_path / "resnet.pth"
    torch.save(build_model("resnet18", 10, 32, 8, {}).state_dict(), other)
    vit = ("--model", "vit", "--model-options", '{"arch": "vit_tiny_patch16_224", "depth": 1}',
           "--recipe", '{"steps": 1, "batch_size": 8}')
    res = train(*vit, "--pretrained", str(other))
    assert_one_error_line(res, "train", f"pretrained checkpoint file:{other} does not fit vit", "unexpected",
                          "missing")
    assert not (tmp_path / "out").exists()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(other.read_bytes()[:5000])
    res = train(*vit, "--pretrained", str(cut))
    assert_one_error_line(res, "train", f"could not read checkpoint {cut}", "truncated")
    assert not (tmp_path / "out").exists()
