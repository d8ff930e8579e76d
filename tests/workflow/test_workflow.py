"""The Snakemake workflow: lint, dry runs of every config, and a smoke run of the whole DAG.

Snakemake runs in a subprocess under ``timeout -k`` (it can ignore SIGTERM while jobs run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake_command(*args: str, timeout: int = 120) -> list[str]:
    """Snakemake with ``args`` under ``timeout``: SIGTERM past ``timeout`` seconds, SIGKILL 10 s later (Snakemake can
    ignore SIGTERM while jobs run)."""
    return ["timeout", "-k", "10", str(timeout), *SNAKEMAKE, *args]


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = snakemake_command(*args, timeout=timeout)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})


def job_counts(stdout: str) -> dict[str, int]:
    table = stdout.split("Job stats:")[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"}


def test_lint_is_clean():
    res = snakemake("--lint")
    assert res.returncode == 0, res.stdout + res.stderr


# the published subsampling of the grayscale-based EtC variants (etc-gray: 4:2:0; etc-gray-444: 4:4:4), written out
# here so that the scheme classes, which the grid reads, are checked against it
PLANE_SUBSAMPLING = {"etc-gray": "420", "etc-gray-444": "444"}


def expected_jobs(cfg: dict) -> dict[str, int]:
    """Job counts the grid of a config file implies (defaults as in the schema)."""
    seeds = len(cfg.get("seeds", [0]))
    jpeg = cfg.get("jpeg", {})
    subsampling = len(jpeg.get("subsampling", ["444", "420"]))
    runs = jpeg_runs = evaluations = keys = other_keys = variants = attacks = leaks = 0
    for setting in cfg["grid"]:
        schemes = setting["schemes"]
        runs += sum(len(models) for models in schemes.values()) * seeds
        # the JPEG-trained arms: one training each; the transformation arm: pixel shuffling (the one scheme with a
        # model transformation) evaluates the transformed plain model
        jpeg_trained = setting.get("jpeg_trained", {})
        jpeg_runs += sum(len(models) for models in jpeg_trained.values()) * seeds
        evaluated = {s for s, models in schemes.items() if models or s in jpeg_trained}
        evaluated |= {"pixel-shuffle"} & set(schemes) if setting.get("transform") else set()
        # one evaluation job per evaluated scheme and seed, for all its models
        evaluations += len(evaluated) * seeds
        keys += len(set(schemes) | {"plain"})  # plain is the PSNR reference of every setting
        # the "other" key of every evaluated scheme (plain has no key material)
        other_keys += len(evaluated - {"plain"})
        # one JPEG job per (scheme, chroma subsampling), coding every quality
        variants += sum(1 if s in PLANE_SUBSAMPLING else subsampling for s in schemes)
        # an attack by name runs on every scheme of its setting (fr, which every config lists, applies to all);
        # {name: [schemes]} on those schemes
        listed = setting.get("attacks", [])
        named = {s for item in listed if isinstance(item, dict) for schemes in item.values() for s in schemes}
        attacks += len(schemes) if any(isinstance(item, str) for item in listed) else len(named)
        # position leakage: every ViT trained on an encrypted scheme of an attacked setting with a plain ViT
        if listed and "vit" in schemes.get("plain", []):
            leaks += sum(1 for s, models in schemes.items() if s != "plain" and "vit" in models) * seeds
    # one stored test set per setting (the plain one); the examples of the main setting's encrypted schemes only
    examples = len(set(cfg["grid"][0]["schemes"]) - {"plain"})
    return {"train_model": runs, "train_model_jpeg": jpeg_runs,
            "evaluate_scheme": evaluations, "make_key": keys, "plain_test": len(cfg["grid"]),
            "encrypt_examples": examples, "encrypt_seed_test": 0,
            "make_other_key": other_keys, "encrypt_other_test": 0, "compress_jpeg": variants,
            "attack_scheme": attacks, "position_leak": leaks, "prepare_data": 1, "make_report": 1}


@pytest.mark.parametrize("configfile", ["config/config.yaml", "config/smoke.yaml", "config/paper.yaml"])
def test_dry_run_builds_the_whole_grid(configfile):
    import yaml

    res = snakemake("-n", "--configfile", str(REPO / configfile), "--directory", str(REPO))
    assert res.returncode == 0, res.stderr[-2000:]
    counts = job_counts(res.stdout)
    cfg = yaml.safe_load((REPO / configfile).read_text())
    assert {k: counts.get(k, 0) for k in expected_jobs(cfg)} == expected_jobs(cfg)
    # no encrypted test set is stored: the one test set of a setting is the plain one
    assert re.search(r"results/encrypted/s\d+-m\d+/plain/test\.npz", res.stdout)
    assert not re.search(r"results/encrypted/s\d+-m\d+/(?!plain/)[^/\s]+/test[^/\s]*\.npz", res.stdout)
    # grayscale-plane schemes are compressed at their own chroma subsampling only
    for scheme, ss in PLANE_SUBSAMPLING.items():
        other = "444" if ss == "420" else "420"
        assert not re.search(rf"/{scheme}/q\d+-{other}\.json", res.stdout)
        if scheme in cfg["grid"][0]["schemes"]:
            assert re.search(rf"/{scheme}/q\d+-{ss}\.json", res.stdout)


def test_key_per_seed_gives_every_training_seed_its_own_keys_and_jpeg_versions(tmp_path):
    layer = tmp_path / "kps.yaml"
    layer.write_text("key_per_seed: true\nseeds: [0, 1]\n")
    res = snakemake("-n", "-p", "--configfile", str(REPO / "config/smoke.yaml"), str(layer), "--directory",
                    str(REPO))
    assert res.returncode == 0, res.stderr[-2000:]
    counts = job_counts(res.stdout)
    cfg = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    # every evaluated scheme: a trained model, or an arm (pixel shuffling of s32-m8 evaluates the transformed ViT)
    trained = [(g["image_size"], g["block_size"], s) for g in cfg["grid"] for s, m in g["schemes"].items()
               if (m or s in g.get("jpeg_trained", {}) or (s == "pixel-shuffle" and g.get("transform")))
               and s != "plain"]
    assert (32, 8, "pixel-shuffle") in trained
    variants = sum(1 if s in PLANE_SUBSAMPLING else 2 for _, _, s in trained)
    assert counts["make_seed_key"] == counts["make_seed_other_key"] == 2 * len(trained)
    # no test set per seed: the stages encrypt the plain one with the seed's keys themselves
    assert "encrypt_seed_test" not in counts and "test.seed" not in res.stdout
    assert counts["compress_seed_jpeg"] == 2 * variants and "make_other_key" not in counts  # no shared other key
    assert counts["make_key"] == expected_jobs(cfg)["make_key"]  # the shared keys stay: compression and attacks
    for size, block, scheme in trained:
        base = f"s{size}-m{block}"
        for seed in (0, 1):
            # every training of the scheme (none for the transformed ViT's pixel shuffling) with the seed's key
            trains = [line for line in res.stdout.splitlines() if "etcbench train" in line
                      and f"models/{base}/{scheme}/" in line and f"seed{seed}/model.pt" in line]
            assert trains or scheme == "pixel-shuffle"
            for train in trains:
                assert f"--key results/keys/{base}/{scheme}.seed{seed}.key.npz" in train
                assert f"--plain-test results/encrypted/{base}/plain/test.npz" in train
            evaluate = next(line for line in res.stdout.splitlines() if "etcbench evaluate" in line
                            and f"eval/{base}/{scheme}/seed{seed}.json" in line)
            assert f"results/jpeg/{base}/{scheme}/seed{seed}/q50-" in evaluate
            assert (f"--key results/keys/{base}/{scheme}.seed{seed}.key.npz "
                    f"--plain-test results/encrypted/{base}/plain/test.npz") in evaluate
            assert f"--other-key results/keys/{base}/{scheme}.seed{seed}.other.key.npz" in evaluate
            models = next(g["schemes"][scheme] for g in cfg["grid"]
                          if (g["image_size"], g["block_size"]) == (size, block))
            assert all(f"models/{base}/{scheme}/{m}/seed{seed}/model.pt" in evaluate for m in models)
            keygen = next(line for line in res.stdout.splitlines() if "etcbench keygen" in line
                          and f"{scheme}.seed{seed}.key.npz" in line)
            assert f"--training-seed {seed}" in keygen and "--role defender" in keygen
    # plain has no key material: its models of every seed share the plain set
    assert "plain.seed" not in res.stdout


def test_a_master_file_is_made_once_read_only_and_every_key_is_derived_from_it(tmp_path, cifar_archive):
    """key_master_file: the master_secret rule makes it (0600, then read-only as a protected output), and the keys
    (0600) record a file master with its fingerprint, the same for both of a scheme's keys, which differ."""
    targets = ["results/keys/s32-m8/etc.json", "results/keys/s32-m8/etc.other.json"]
    res = snakemake("--cores", "2", "--configfile", str(REPO / "config/smoke.yaml"), "--config",
                    "key_master_file=results/keys/master.secret", "--directory", str(tmp_path), *targets,
                    env={"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)})
    assert res.returncode == 0, res.stderr[-3000:]
    master = tmp_path / "results/keys/master.secret"
    assert master.stat().st_mode & 0o777 == 0o400 and master.stat().st_size == 32
    own, other = (json.loads((tmp_path / t).read_text()) for t in targets)
    assert own["master"]["source"] == other["master"]["source"] == "file"
    assert own["master"]["fingerprint"] == other["master"]["fingerprint"] != ""
    assert own["key_fingerprint"] != other["key_fingerprint"]
    for key in (tmp_path / "results/keys/s32-m8").glob("*.key.npz"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    assert master.read_bytes().hex() not in res.stdout + res.stderr


def test_plane_subsampling_is_read_from_the_scheme_classes():
    from etcbench import ciphers, grid

    planes = {n: ciphers.create(n, block_size=8).plane_subsampling for n in ciphers.available()}
    assert {n: s for n, s in planes.items() if s is not None} == PLANE_SUBSAMPLING
    assert {n: grid.plane_subsampling(n) for n in ciphers.available()} == planes
    rules = "".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))
    assert "420" not in rules.replace("444|420", "")  # no subsampling fact is copied into the rules
    schema = (REPO / "workflow/schemas/config.schema.yaml").read_text()
    enums = [e.split(", ") for e in re.findall(r"propertyNames: \{enum: \[(.*?)\]\}", schema)]
    assert ciphers.available() in [sorted(e) for e in enums]  # the grid's scheme names


@pytest.mark.parametrize(("grid", "message"), [
    ("[{image_size: 64, block_size: 16, schemes: {etc: [vit]}}, {image_size: 64, block_size: 16, schemes: {le: []}}]",
     "settings 1 and 2 are both s64-m16"),
    ("[{image_size: 40, block_size: 16, schemes: {etc: [vit]}}]", "not a multiple of block_size 16"),
    ("[{image_size: 48, block_size: 16, schemes: {etc-gray: []}}]", "etc-gray"),
    ("[{image_size: 64, block_size: 16, schemes: {rot13: [vit]}}]", "rot13"),
    ("[{image_size: 64, block_size: 16, schemes: {etc: [vgg]}}]", "vgg"),
])
def test_bad_grid_is_one_clear_error(tmp_path, grid, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"grid: {grid}\n")
    res = snakemake("-n", "--configfile", str(bad), "--directory", str(REPO))
    assert res.returncode != 0
    assert message in res.stdout + res.stderr


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
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[].")

    walk(schema, "")
    assert missing == []
    for name in ("config.yaml", "smoke.yaml", "paper.yaml"):
        jsonschema.validate(yaml.safe_load((REPO / "config" / name).read_text()), schema)


def test_every_training_job_runs_the_resolved_model_and_its_whole_recipe():
    """What `snakemake -n -p --configfile config/paper.yaml` shows is what the resolved config says, cell by cell."""
    import json
    import shlex

    from etcbench.config import model_entry, recipe_json, resolve
    from etcbench.grid import train_cells

    config = resolve([REPO / "config/paper.yaml"])
    res = snakemake("-n", "-p", "--configfile", str(REPO / "config/paper.yaml"), "--directory", str(REPO))
    assert res.returncode == 0, res.stderr[-2000:]
    seen = set()
    for line in res.stdout.splitlines():
        if "etcbench train " not in line:
            continue
        args = shlex.split(line[line.index("python -m etcbench train"):].split(" 2>")[0])
        opt = dict(zip(args[::1], args[1::1]))
        setting, scheme = re.search(r"results/keys/(s\d+-m\d+)/([a-z0-9-]+)\.key\.npz", opt["--key"]).groups()
        model = opt["--model"]
        assert json.loads(opt["--model-options"]) == model_entry(config, model), (model, scheme)
        assert json.loads(opt["--recipe"]) == json.loads(recipe_json(config, model, scheme)), (model, scheme)
        assert opt["--pretrained"] == str(config["pretrained"].get(model, False)).lower()
        seen.add((setting, scheme, model))
    assert seen == set(train_cells(config))
    assert ("s224-m16", "etc", "vit") in seen and model_entry(config, "vit") == {
        "arch": "vit_base_patch16_224.orig_in21k"}


@pytest.mark.parametrize(("layer", "message"), [
    ("model_options: {vit: {depth: 12}}", "model_options.vit names no architecture (arch)"),
    ("model_options: {vit: {arch: vit_tiny_patch16_224}}", "leaves out depth: 6 of"),
    ("train: {vit: {epochs: 2, stpes: 3}}", "config train.vit: Additional properties are not allowed ('stpes'"),
])
def test_config_layers_that_would_change_a_model_silently_stop_the_run(tmp_path, layer, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(layer + "\n")
    work = tmp_path / "work"
    work.mkdir()
    res = snakemake("-n", "--configfile", str(bad), "--directory", str(work))
    assert res.returncode != 0 and message in res.stdout + res.stderr
    assert not (work / "results").exists()


def test_unknown_config_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset:\n  trian_size: 10\n")
    res = snakemake("-n", "--configfile", str(bad), "--directory", str(REPO))
    assert res.returncode != 0
    assert "trian_size" in res.stdout + res.stderr


@pytest.mark.workflow
def test_smoke_run_produces_the_report(smoke_run, cifar_archive):
    import yaml

    env = {"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)}
    tmp_path = smoke_run
    report = tmp_path / "results/report"
    cfg = yaml.safe_load((REPO / "config/smoke.yaml").read_text())
    acc = pd.read_csv(report / "accuracy.csv", dtype={"subsampling": str})
    assert list(acc.columns) == ["dataset", "image_size", "block_size", "model", "scheme", "jpeg_quality",
                                 "subsampling", "seed", "top1"]
    # every (setting, scheme, model) of the grid, uncompressed and at every JPEG variant of its scheme
    qualities = cfg["jpeg"]["qualities"]
    expected = set()
    for setting in cfg["grid"]:
        for scheme, models in setting["schemes"].items():
            variants = [(None, "none")] + [(q, ss) for q in qualities
                                           for ss in ([PLANE_SUBSAMPLING[scheme]] if scheme in PLANE_SUBSAMPLING
                                                      else cfg["jpeg"]["subsampling"])]
            # the arms: the JPEG-trained models by their label, the transformed plain ViT on pixel shuffling
            arms = [f"{m}@q50-420" for m in setting.get("jpeg_trained", {}).get(scheme, [])]
            arms += [f"{m}@transformed" for m in setting.get("transform", []) if scheme == "pixel-shuffle"]
            expected |= {(setting["image_size"], setting["block_size"], scheme, model, q, ss)
                         for model in [*models, *arms] for q, ss in variants}
    got = {(r.image_size, r.block_size, r.scheme, r.model, None if pd.isna(r.jpeg_quality) else int(r.jpeg_quality),
            r.subsampling) for r in acc.itertuples()}
    assert got == expected and len(acc) == len(expected)
    assert (acc.dataset == "cifar10").all() and acc.top1.between(0, 1).all()
    comp = pd.read_csv(report / "compression.csv", dtype={"subsampling": str})
    assert (comp.bpp > 0).all() and len(comp) == sum(
        len(qualities) * (1 if s in PLANE_SUBSAMPLING else 2) for st in cfg["grid"] for s in st["schemes"])
    # plain JPEG loses a little; EtC's 8-px blocks fit the 4:4:4 grid, so its PSNR stays within 1 dB there,
    # while LE's nibble shuffle does not survive JPEG; grayscale EtC is coded as grayscale JPEG of its plane
    q90 = comp[(comp.jpeg_quality == 90) & (comp.image_size == 32)].set_index(["block_size", "scheme", "subsampling"])
    assert abs(q90.psnr[8, "etc", "444"] - q90.psnr[8, "plain", "444"]) < 1.0
    assert q90.psnr[4, "le", "444"] < q90.psnr[8, "plain", "444"] - 5  # the same 32-px images
    assert q90.jpeg_mode[8, "etc-gray", "420"] == "gray" and q90.jpeg_mode[8, "etc", "420"] == "ycbcr"
    # the rate without the headers: several hundred bytes of tables in every 32-px file
    assert (comp.payload_bpp > 0).all() and (comp.payload_bpp < comp.bpp).all() and (comp.header_bytes > 250).all()
    # Bjontegaard deltas against plain JPEG of the same setting and subsampling (the 4-px setting has no plain)
    bd = pd.read_csv(report / "bd_rate.csv", dtype={"subsampling": str})
    assert sorted(zip(bd.scheme, bd.subsampling)) == [("etc", "420"), ("etc", "444"), ("etc-gray", "420"),
                                                      ("pe", "420"), ("pe", "444"), ("pixel-shuffle", "420"),
                                                      ("pixel-shuffle", "444")]
    assert (bd.block_size == 8).all() and (bd.anchor == "plain").all() and (bd.n_points == len(qualities)).all()
    # EtC's 8-px blocks fit the 4:4:4 grid: about plain's rate (2 % measured on 100 CIFAR-10 images)
    assert abs(bd.set_index(["scheme", "subsampling"]).bd_rate_payload_pct["etc", "444"]) < 20
    # key mismatch: every model with its own key, another key (not for plain) and no encryption
    km = pd.read_csv(report / "key_mismatch.csv")
    assert len(km) == 3 * len(acc[acc.subsampling == "none"]) - len(acc[(acc.subsampling == "none") &
                                                                        (acc.scheme == "plain")])
    assert set(km.test_key) == {"own", "other", "none"} and km.top1.between(0, 1).all()
    # attacks: every scheme of the first attacked setting, each attack (kpa once per number of pairs) plus the
    # "none" floor; the second setting's shared-key estimation on its two shared-key schemes
    att = pd.read_csv(report / "attacks.csv", dtype={"known_pairs": "Int64"})
    attacked = cfg["grid"][0]
    first = att[att.block_size == attacked["block_size"]]
    pairs = cfg["attack"]["options"]["kpa"]["pairs"]
    names = [name for item in attacked["attacks"] for name in item]  # {name: [schemes]} entries
    targets = {s for item in attacked["attacks"] for schemes in item.values() for s in schemes}
    assert len(first) == len(targets) * (len(names) + len(pairs)) and set(first.scheme) == targets
    assert set(first.attack) == {"none", *names} and att.ssim.between(-1, 1).all()
    second = att[att.block_size == 4]
    assert sorted(zip(second.scheme, second.attack)) == [("le", "none"), ("le", "shared-key"),
                                                         ("pixel-shuffle", "none"), ("pixel-shuffle", "shared-key")]
    assert second.loc[second.attack == "shared-key", "key_share"].between(0, 1).all()
    floor = first.set_index(["scheme", "attack"])
    assert floor.ssim["plain", "none"] == pytest.approx(1.0) and floor.ssim["etc", "none"] < 0.5
    assert first.loc[first.attack == "jigsaw", ["direct_comparison", "largest_component", "ssim_best_candidate"]
                     ].apply(lambda c: c.between(-1, 1)).all().all()
    # layout scores come from the attacks that place blocks: the jigsaw solver, and shared-key on scrambled blocks
    assert att.loc[~att.attack.isin(["jigsaw", "shared-key"]), "direct_comparison"].isna().all()
    assert second.loc[(second.attack == "shared-key") & (second.scheme == "pixel-shuffle"),
                      "direct_comparison"].between(0, 1).all()
    # known pairs recover EtC's key exactly; the native size is CIFAR's; the plain model scores the semantics
    kpa = first[(first.attack == "kpa") & (first.scheme == "etc")]
    assert kpa.known_pairs.tolist() == pairs and (kpa.key_share == 1.0).all() and (kpa.ssim == 1.0).all()
    assert (first.native_size == 32).all() and first.semantic_top1.between(0, 1).all()
    learned = first[first.attack.isin(["itn", "gan", "gan-paired"])]
    control = learned[learned.scheme == "plain"].set_index("attack").ssim_native
    assert (learned.control_ssim_native == learned.attack.map(control)).all()
    assert learned.under_trained.notna().all() and first.loc[first.attack == "fr", "under_trained"].isna().all()
    leak = pd.read_csv(report / "position_leak.csv")
    assert leak[["scheme", "model"]].values.tolist() == [["etc-gray", "vit"]]  # a plane: not applicable
    # the paper-style tables: a comparison row per setting and model (no paper column: no published value is
    # known), a row per setting and scheme
    comparison = pd.read_csv(report / "comparison.csv")
    uncompressed = acc[acc.subsampling == "none"]
    assert len(comparison) == len(uncompressed.groupby(["image_size", "block_size", "model"]))
    assert not [c for c in comparison.columns if "paper" in c]
    # every trained model's size from its model card, in millions ("0.91–0.93" where the schemes' inputs differ)
    assert all(float(part) > 0 for text in comparison["parameters_m"] for part in str(text).split("–"))
    assert r"\toprule" in (report / "comparison.tex").read_text()
    assert "not available" not in (report / "summary.md").read_text() + (report / "comparison.md").read_text()
    schemes = pd.read_csv(report / "schemes.csv", dtype={"jpeg_subsampling": str})
    assert len(schemes) == sum(len(setting["schemes"]) for setting in cfg["grid"])
    assert [c for c in schemes.columns if c.startswith("delta_top1_pp_")] and schemes.best_attack.notna().any()
    for name in ("top1_by_model_scheme", "top1_vs_jpeg_quality", "jpeg_bpp_psnr", "examples", "attack_ssim",
                 "attack_examples", "attack_semantic", "training_curves", "confusion_matrices"):
        assert (report / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (report / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    for table in ("accuracy", "summary", "comparison", "schemes", "compression", "bd_rate", "key_mismatch", "attacks",
                  "position_leak", "keys", "model_transformation", "jpeg_training"):
        assert (report / f"{table}.tex").stat().st_size > 0 and (report / f"{table}.md").stat().st_size > 0
    # the arms: the plain ViT transformed with the pixel-shuffling key equals the plain ViT on plain images, to float
    # rounding, and is tested with a wrong key; the JPEG-trained ConvMixer sits next to the uncompressed-trained one
    (transformed,) = pd.read_csv(report / "model_transformation.csv").to_dict("records")
    plain_vit = acc[(acc.model == "vit") & (acc.scheme == "plain") & (acc.subsampling == "none")].top1.item()
    assert transformed["equal_top1"] and transformed["transformed_top1"] == transformed["plain_top1"] == plain_vit
    assert transformed["prediction_agreement"] == 1.0 and transformed["max_abs_logit_diff"] < 1e-3
    assert (transformed["scheme"], transformed["model"]) == ("pixel-shuffle", "vit")
    assert 0 <= transformed["wrong_key_top1"] <= 1 and transformed["chance"] == 0.1
    (jpeg_arm,) = pd.read_csv(report / "jpeg_training.csv").to_dict("records")
    assert (jpeg_arm["scheme"], jpeg_arm["model"], jpeg_arm["train_input"]) == ("etc", "convmixer", "JPEG q50 4:2:0")
    arm_rows = acc[acc.model == "convmixer@q50-420"]
    assert jpeg_arm["jpeg_arm_top1"] == arm_rows[(arm_rows.jpeg_quality == 50) & (arm_rows.subsampling == "420")
                                                 ].top1.item()
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
    assert "top1_vs_jpeg_quality.png" in text and "examples.png" in text and "attack_examples.png" in text
    assert "training_curves.png" in text and "confusion_matrices.png" in text and "comparison.csv" in text


def test_smoke_outputs_are_shareable_and_only_keys_private(smoke_run):
    """Under umask 022 (the smoke run's), every result file is readable by the group and others, except the key
    files, which are 0600; a finished training leaves no resumable state behind."""
    files = [p for p in (smoke_run / "results").rglob("*") if p.is_file()]
    keys = [p for p in files if p.name.endswith(".key.npz")]
    assert keys and len(files) > 100
    for path in files:
        mode = path.stat().st_mode & 0o777
        if path in keys:
            assert mode == 0o600, (path, oct(mode))
        else:
            assert mode & 0o044 == 0o044, (path, oct(mode))
    assert not [p for p in (smoke_run / "results" / "state").rglob("*") if p.is_file()]


def test_no_key_material_or_master_secret_in_any_file_of_a_smoke_run(smoke_run, cifar_archive):
    """Every file of the smoke run outside the key files (logs, metrics, tables, figures and their metadata,
    Snakemake's own logs and metadata, the HTML report) is searched for each key's secret arrays (raw bytes, and
    as decimal lists or hex) and for the master secret (raw and hex). Fingerprints are all that may appear."""
    from etcbench.ciphers.derive import master_from_key_seed

    html = smoke_run / "report.html"
    if not html.exists():
        res = snakemake("--configfile", str(REPO / "config/smoke.yaml"), "--directory", str(smoke_run), "--report",
                        str(html), timeout=180, env={"ETCBENCH_CIFAR10_ARCHIVE": str(cifar_archive)})
        assert res.returncode == 0, res.stderr[-3000:]
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    master = master_from_key_seed(cfg["key_seed"])
    needles = {"master secret": [master, master.hex().encode()]}
    key_files = sorted((smoke_run / "results/keys").rglob("*.key.npz"))
    assert len(key_files) >= 10
    for path in key_files:
        with np.load(path, allow_pickle=False) as data:
            for name in data.files:
                if name == "__meta__":
                    continue
                a = np.ascontiguousarray(data[name])
                if a.nbytes < 16 or np.unique(a).size < 3:  # too short or too uniform to be told from chance
                    continue
                flat = a.ravel()[:64]
                needles[f"{path.name}:{name}"] = [
                    a.tobytes(), a.tobytes().hex().encode(),
                    json.dumps(flat.tolist()).encode(), ", ".join(map(str, flat.tolist())).encode()]
    assert len(needles) > 10
    searched = 0
    for path in [*smoke_run.rglob("*"), html]:
        if not path.is_file() or path.name.endswith(".key.npz"):
            continue
        content = path.read_bytes()
        searched += 1
        for what, forms in needles.items():
            assert not any(form in content for form in forms), f"{what} found in {path.relative_to(smoke_run)}"
    assert searched > 200
    print(f"\nsearched {searched} files of the smoke run for {len(needles)} secrets (the master secret and "
          f"{len(needles) - 1} key arrays, {sum(map(len, needles.values()))} encodings): none found")
