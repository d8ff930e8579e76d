"""Command line: ``etcbench <stage> ...`` (also ``python -m etcbench``), one subcommand per workflow stage.

Every stage reads its inputs from files named on the command line and writes its outputs atomically; a bad
input ends the stage with one line on stderr naming the problem, exit status 2, and no output left behind.
Heavy libraries (torch, timm) are imported only by the stages that need them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import EtcbenchError

log = logging.getLogger("etcbench")


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _load_scheme(key_path: str) -> tuple[Any, Any]:
    """The key at ``key_path`` and the scheme (with the key's options) it belongs to."""
    from . import ciphers

    key = ciphers.load_key(key_path)
    return key, ciphers.create(key.scheme, key.block_size, **key.options)


def _require_key(data: Any, key: Any, data_path: str, key_path: str) -> None:
    """Refuse an image set that was not encrypted with ``key`` (compared by fingerprint)."""
    if str(data["key_fingerprint"]) != key.fingerprint:
        raise EtcbenchError(f"{data_path} was not encrypted with key {key_path}")


# stages -----------------------------------------------------------------------------------------------------------
def cmd_prepare(a: argparse.Namespace) -> None:
    from .data import cifar

    archive = cifar.resolve_archive(a.archive, Path(a.cache_dir))
    cifar.prepare(archive, Path(a.out), Path(a.info), a.train_size, a.val_size, a.test_size, a.seed)


def cmd_keygen(a: argparse.Namespace) -> None:
    from . import ciphers
    from .io import write_json

    scheme = ciphers.create(a.scheme, block_size=a.block_size, **a.options)
    key = scheme.generate_key(seed=a.seed, image_size=(a.image_size, a.image_size))
    ciphers.save_key(key, a.out)
    write_json(a.info, {"scheme": key.scheme, "block_size": key.block_size, "image_size": list(key.image_size),
                        "options": key.options, "key_fingerprint": key.fingerprint})
    log.info("key %s for %r written to %s (mode 0600)", key.key_id, a.scheme, a.out)


def cmd_encrypt(a: argparse.Namespace) -> None:
    import numpy as np

    from .io import load_npz, save_npz

    key, scheme = _load_scheme(a.key)
    data = load_npz(a.data)
    if f"{a.split}_x" not in data:
        raise EtcbenchError(f"{a.data} has no split {a.split!r}")
    x = data[f"{a.split}_x"]
    if x.shape[1:3] != (a.image_size, a.image_size):  # torch (the training resize) only where a resize is needed
        from .data.transforms import resize_numpy

        x = resize_numpy(x, a.image_size, a.interpolation)
    y = scheme.encrypt(x, key)
    save_npz(a.out, x=y, y=data[f"{a.split}_y"], key_fingerprint=np.array(key.fingerprint),
             scheme=np.array(key.scheme))
    log.info("%d %s images encrypted with %s key %s", len(y), a.split, key.scheme, key.key_id)


def compress_paths(out_dir: str, quality: int, subsampling: str) -> tuple[Path, Path]:
    """The decoded images (.npz) and the record (.json) 'compress' writes for one JPEG quality."""
    stem = Path(out_dir) / f"q{quality}-{subsampling}"
    return stem.with_suffix(".npz"), stem.with_suffix(".json")


def cmd_compress(a: argparse.Namespace) -> None:
    import numpy as np

    from . import jpeg
    from .io import load_npz, save_npz, write_json
    from .manifest import manifest
    from .metrics import psnr_per_image

    key, scheme = _load_scheme(a.key)
    enc, plain = load_npz(a.images), load_npz(a.plain)
    _require_key(enc, key, a.images, a.key)
    n, h, w = plain["x"].shape[:3]
    c, hp, wp = scheme.encrypted_shape(h, w)
    if enc["x"].shape != (n, hp, wp, c):
        raise EtcbenchError(f"{a.images} holds images of shape {enc['x'].shape[1:]}, but {key.scheme} encrypts the "
                            f"{h}x{w} images of {a.plain} to {(hp, wp, c)}")
    if scheme.plane_subsampling is not None and a.subsampling != scheme.plane_subsampling:
        raise EtcbenchError(f"{key.scheme} builds {scheme.plane_subsampling} chroma into its grayscale plane (a "
                            f"grayscale JPEG has no chroma subsampling): use --subsampling {scheme.plane_subsampling}")
    if len(set(a.quality)) != len(a.quality):
        raise EtcbenchError(f"--quality needs distinct values in 1..100, got {' '.join(map(str, a.quality))}")
    for quality in a.quality:  # every setting checked before the first file is written
        jpeg.check_settings(quality, a.subsampling)
    for quality in a.quality:
        started = time.time()
        decoded, nbytes = jpeg.roundtrip(enc["x"], quality, a.subsampling, a.workers)
        bpp = jpeg.bits_per_pixel(nbytes, h, w)  # per pixel of the RGB image, whatever the encrypted layout
        psnr = psnr_per_image(plain["x"], scheme.decrypt(decoded, key))
        record = {"dataset": a.dataset, "image_size": int(h), "block_size": key.block_size, "scheme": key.scheme,
                  "jpeg_quality": quality, "subsampling": a.subsampling, "bpp": float(bpp.mean()),
                  "bpp_std": float(bpp.std()), "psnr": float(psnr.mean()), "psnr_std": float(psnr.std()),
                  "n_images": int(len(decoded)), "jpeg_aligned": scheme.jpeg_aligned(a.subsampling),
                  "jpeg_mode": "gray" if c == 1 else "ycbcr", "key_fingerprint": key.fingerprint}
        out_images, out_metrics = compress_paths(a.out_dir, quality, a.subsampling)
        save_npz(out_images, x=decoded, y=enc["y"], key_fingerprint=enc["key_fingerprint"],
                 jpeg_quality=np.array(quality), subsampling=np.array(a.subsampling))
        write_json(out_metrics, {"record": record, "manifest": manifest("compress", started, time.time(),
                                                                       encoder=jpeg.libjpeg_version())})
        log.info("%s q%d %s: %.3f bpp, PSNR %.2f dB", key.scheme, quality, a.subsampling, record["bpp"],
                 record["psnr"])


def cmd_train(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from .train import Recipe, train_model

    pretrained: bool | str = {"true": True, "false": False}.get(str(a.pretrained).lower(), a.pretrained)
    train_model(data_path=Path(a.data), key_path=Path(a.key), test_path=Path(a.test), model_name=a.model,
                model_options=a.model_options, recipe=Recipe.from_dict(a.recipe), seed=a.seed, image_size=a.image_size,
                interpolation=a.interpolation, out_model=Path(a.out_model), out_metrics=Path(a.out_metrics),
                state_dir=Path(a.state_dir), pretrained=pretrained, device=a.device, progress=not a.no_progress,
                dataset=a.dataset)


def cmd_evaluate(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from . import ciphers
    from .evaluate import evaluate_arrays, load_trained_model
    from .io import load_npz, write_json
    from .manifest import manifest
    from .seeding import select_device

    started = time.time()
    dev = select_device(a.device)
    model, ckpt = load_trained_model(Path(a.model_file), dev)
    base = ckpt["record"]
    records = []
    for path in [a.test, *a.jpeg]:
        data = load_npz(path)
        if str(data["key_fingerprint"]) != ckpt["key_fingerprint"]:
            raise EtcbenchError(f"{path} was encrypted with another key than the one model {a.model_file} was trained on")
        top1, loss = evaluate_arrays(model, data["x"], data["y"], dev, a.batch_size)
        quality = int(data["jpeg_quality"]) if "jpeg_quality" in data else None
        records.append({**base, "jpeg_quality": quality, "subsampling": str(data["subsampling"]) if quality else "none",
                        "top1": top1, "loss": loss, "n_test": int(len(data["y"]))})
        log.info("%s/%s q=%s %s: top-1 %.4f", base["model"], base["scheme"], quality, records[-1]["subsampling"], top1)
    # key mismatch: the same test images encrypted with another key of the scheme, and not encrypted at all
    mismatch = [{**_mismatch_base(base), "test_key": "own", "top1": records[0]["top1"]}]
    if a.other_test:
        other = load_npz(a.other_test)
        if str(other["key_fingerprint"]) == ckpt["key_fingerprint"] and base["scheme"] != "plain":
            raise EtcbenchError(f"{a.other_test} was encrypted with the model's own key; a key mismatch needs another")
        top1, _ = evaluate_arrays(model, other["x"], other["y"], dev, a.batch_size)
        mismatch.append({**_mismatch_base(base), "test_key": "other", "top1": top1})
    if a.plain_test:
        plain = load_npz(a.plain_test)
        layout = ciphers.create(base["scheme"], base["block_size"]).public_layout(plain["x"])  # key-free part
        top1, _ = evaluate_arrays(model, layout, plain["y"], dev, a.batch_size)
        mismatch.append({**_mismatch_base(base), "test_key": "none", "top1": top1})
    for r in mismatch[1:]:
        log.info("%s/%s test key %s: top-1 %.4f", base["model"], base["scheme"], r["test_key"], r["top1"])
    write_json(a.out, {"records": records, "key_mismatch": mismatch,
                       "manifest": manifest("evaluate", started, time.time(), dev)})


def _mismatch_base(record: dict[str, Any]) -> dict[str, Any]:
    keys = ("dataset", "image_size", "block_size", "model", "scheme", "seed")
    return {k: record[k] for k in keys}


def cmd_attack(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    import numpy as np

    from . import attacks
    from .attacks.protocol import attacker_data, attacker_seeds, default_options, run_attack
    from .data.transforms import resize_numpy
    from .io import load_npz, save_npz, write_json
    from .manifest import manifest
    from .seeding import seed_everything, select_device

    started = time.time()
    key, scheme = _load_scheme(a.key)
    test, plain = load_npz(a.test), load_npz(a.plain)
    _require_key(test, key, a.test, a.key)
    if a.num_images > len(plain["x"]):
        raise EtcbenchError(f"--num-images {a.num_images} exceeds the {len(plain['x'])} test images of {a.plain}")
    unknown = sorted(set(a.options) - set(a.attacks))
    if unknown:
        raise EtcbenchError(f"--options names attack(s) {', '.join(unknown)} that are not run")
    names = ["none", *[n for n in a.attacks if n != "none"]]
    runs = [attacks.create(n, block_size=key.block_size, **default_options(n, key.scheme, a.options.get(n, {})))
            for n in names]
    seeds = attacker_seeds(a.attacker_seed, a.attacker_keys, a.defender_seeds)
    pairs = None
    if any(r.needs_training for r in runs):  # the attacker's pairs: encrypted once, shared by ITN and GAN
        data = load_npz(a.data)
        if a.train_images > len(data["train_x"]):
            raise EtcbenchError(f"--train-images {a.train_images} exceeds the {len(data['train_x'])} training images")
        own = resize_numpy(data["train_x"][:a.train_images], key.image_size[0], a.interpolation)
        pairs = attacker_data(scheme, own, seeds, key)
    dev = select_device(a.device)
    target, reference = test["x"][:a.num_images], plain["x"][:a.num_images]
    records, examples = [], {}
    for attack in runs:
        seed_everything(a.seed)
        record, rgb = run_attack(attack, scheme, key, target, reference, pairs, seed=a.seed, device=dev,
                                 progress=not a.no_progress)
        records.append({**record, "dataset": a.dataset})
        examples[attack.name] = rgb[:a.num_examples]
    save_npz(a.out_examples, plain=reference[:a.num_examples], scheme=np.array(key.scheme),
             attacks=np.array(names), **{f"x_{n}": x for n, x in examples.items()})
    write_json(a.out, {"records": records, "manifest": manifest("attack", started, time.time(), dev, seed=a.seed,
                                                                key_fingerprint=key.fingerprint)})


def cmd_report(a: argparse.Namespace) -> None:
    from .report.build import build_report

    build_report(accuracy=[Path(p) for p in a.accuracy], compression=[Path(p) for p in a.compression],
                 plain=Path(a.plain) if a.plain else None, examples=a.examples, num_examples=a.num_examples,
                 out_dir=Path(a.out_dir), config=a.config, attacks=[Path(p) for p in a.attacks],
                 attack_examples=[Path(p) for p in a.attack_examples])


def cmd_rehearse(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from .rehearsal import rehearse

    result = rehearse(a.configfile, Path(a.workdir), archive=a.archive, images=a.images, steps=a.steps,
                      device=a.device)
    print(f"{'setting':<9} {'scheme':<13} {'model':<16} {'arch':<34} {'depth':>5} {'width':>5} {'patch':>5} "
          f"{'grid':>7} {'params':>8}  {'pretrained':<11} {'recipe':<12} {'s':>5}")
    for c in result["cells"]:
        card = c["model_card"]
        patch = card["patch"][0] if card.get("patch") else "-"
        grid = "x".join(map(str, card["token_grid"]))
        source = card["pretrained"]["source"].split(":")[0]
        print(f"{c['setting']:<9} {c['scheme']:<13} {c['model']:<16} {card['arch']:<34} {card['depth']:>5} "
              f"{card['width']:>5} {patch:>5} {grid:>7} {card['parameters'] / 1e6:>7.2f}M  {source:<11} "
              f"{c['recipe_name']:<12} {c['seconds']:>5.1f}")
    print(f"rehearsed {len(result['cells'])} trained cells in {result['seconds']:.0f} s; report in "
          f"{Path(a.workdir) / 'report'}")


# parser -----------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="etcbench", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="STAGE")

    def stage(name: str, fn: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    s = stage("prepare", cmd_prepare, "Read CIFAR-10, verify its content digest, write the train/val/test splits.")
    s.add_argument("--archive", help="local cifar-10-python.tar.gz (default: $ETCBENCH_CIFAR10_ARCHIVE, else download)")
    s.add_argument("--cache-dir", default="results/data/download", help="where a downloaded archive is kept")
    s.add_argument("--train-size", type=int, required=True)
    s.add_argument("--val-size", type=int, required=True)
    s.add_argument("--test-size", type=int, required=True)
    s.add_argument("--seed", type=int, default=0, help="split seed")
    s.add_argument("--out", required=True, help="output .npz with the split arrays")
    s.add_argument("--info", required=True, help="output .json with digests and sizes")

    s = stage("keygen", cmd_keygen, "Generate a scheme's secret key from a seed (key file mode 0600).")
    s.add_argument("--scheme", required=True)
    s.add_argument("--block-size", type=int, required=True)
    s.add_argument("--image-size", type=int, required=True)
    s.add_argument("--seed", type=int, required=True, help="key seed (secret: it regenerates the key)")
    s.add_argument("--options", type=_json_arg, default={}, help="scheme options as a JSON object")
    s.add_argument("--out", required=True, help="key file (.npz)")
    s.add_argument("--info", required=True, help="public key info (.json): scheme, options, fingerprint")

    s = stage("encrypt", cmd_encrypt, "Resize a split to the model input size and encrypt it with a key.")
    s.add_argument("--data", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.add_argument("--image-size", type=int, required=True)
    s.add_argument("--interpolation", default="bicubic", choices=["nearest", "bilinear", "bicubic"])
    s.add_argument("--out", required=True)

    s = stage("compress", cmd_compress, "JPEG-encode encrypted images; record bpp and PSNR after decryption.")
    s.add_argument("--images", required=True, help="encrypted image set (.npz from 'encrypt')")
    s.add_argument("--plain", required=True, help="the same images unencrypted (the 'plain' scheme's set)")
    s.add_argument("--key", required=True)
    s.add_argument("--quality", type=int, nargs="+", required=True, help="JPEG qualities (1..100)")
    s.add_argument("--subsampling", choices=["444", "420"], required=True)
    s.add_argument("--workers", type=int, default=None, help="encoder threads (default: all cores)")
    s.add_argument("--dataset", default="cifar10")
    s.add_argument("--out-dir", required=True,
                   help="writes q{QUALITY}-{SUBSAMPLING}.npz (decoded images) and .json (bpp, PSNR) per quality")
    s.set_defaults(outputs=lambda a: [p for q in a.quality for p in compress_paths(a.out_dir, q, a.subsampling)])

    s = stage("train", cmd_train, "Train a model on images encrypted batch by batch with a fixed key.")
    s.add_argument("--data", required=True, help="split arrays from 'prepare'")
    s.add_argument("--key", required=True)
    s.add_argument("--test", required=True, help="encrypted test set from 'encrypt'")
    s.add_argument("--model", required=True, choices=["vit", "convmixer", "resnet18", "resnet18_tanaka",
                                                      "resnet18_madono"])
    s.add_argument("--model-options", type=_json_arg, default={})
    s.add_argument("--recipe", type=_json_arg, default={}, help="training settings as a JSON object")
    s.add_argument("--pretrained", default="false", help="false, true (timm hub) or a local checkpoint path")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-size", type=int, required=True)
    s.add_argument("--interpolation", default="bicubic", choices=["nearest", "bilinear", "bicubic"])
    s.add_argument("--dataset", default="cifar10")
    s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, ...")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--state-dir", required=True, help="resumable state (not an output)")
    s.add_argument("--out-model", required=True)
    s.add_argument("--out-metrics", required=True)

    s = stage("evaluate", cmd_evaluate, "Top-1 of a trained model on its test set and every JPEG version of it.")
    s.add_argument("--model-file", required=True)
    s.add_argument("--test", required=True, help="uncompressed encrypted test set")
    s.add_argument("--jpeg", nargs="*", default=[], help="JPEG-decoded test sets from 'compress'")
    s.add_argument("--other-test", help="the test set encrypted with another key of the scheme (key mismatch)")
    s.add_argument("--plain-test", help="the test set not encrypted (the 'plain' scheme's set)")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--out", required=True)

    s = stage("attack", cmd_attack, "Run a ciphertext-only attack on a scheme's encrypted test images and score it.")
    s.add_argument("--attacks", nargs="+", required=True, help="attacks to run (fr, itn, gan, jigsaw); the 'none' "
                                                               "floor (the encrypted image as it is) is always added")
    s.add_argument("--options", type=_json_arg, default={}, help="options per attack as a JSON object")
    s.add_argument("--data", required=True, help="split arrays from 'prepare' (the attacker's own images: train split)")
    s.add_argument("--key", required=True, help="the target key (only its scheme, fingerprint and, for scoring the "
                                                "jigsaw layout, its block order are used)")
    s.add_argument("--test", required=True, help="target test images encrypted with --key")
    s.add_argument("--plain", required=True, help="the same test images, plain (the 'plain' scheme's set)")
    s.add_argument("--num-images", type=int, default=100, help="target test images attacked and scored")
    s.add_argument("--train-images", type=int, default=2000, help="attacker's own plain images (train split)")
    s.add_argument("--attacker-keys", type=int, default=8, help="keys the attacker encrypts their images with")
    s.add_argument("--attacker-seed", type=int, required=True, help="first seed of the attacker's keys")
    s.add_argument("--defender-seeds", type=int, nargs="+", required=True,
                   help="the defender's key seeds (the attacker's must differ)")
    s.add_argument("--interpolation", default="bicubic", choices=["nearest", "bilinear", "bicubic"])
    s.add_argument("--seed", type=int, default=0, help="the attack's training seed")
    s.add_argument("--num-examples", type=int, default=4)
    s.add_argument("--dataset", default="cifar10")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--out", required=True, help="attack records (.json)")
    s.add_argument("--out-examples", required=True, help="first reconstructions, RGB (.npz)")

    s = stage("rehearse", cmd_rehearse, "Rehearse a config's whole grid on a few images: every model at its real size, "
                                        "two training steps of its real recipe, evaluation and the report.")
    s.add_argument("--configfile", nargs="*", default=[], help="config layers over config/config.yaml, in order")
    s.add_argument("--workdir", required=True, help="scratch folder for the rehearsal's files")
    s.add_argument("--archive", help="local cifar-10-python.tar.gz (default: $ETCBENCH_CIFAR10_ARCHIVE, else download)")
    s.add_argument("--images", type=int, default=8,
                   help="training images (a quarter as many, at least 2, for validation and test)")
    s.add_argument("--steps", type=int, default=2, help="optimiser steps per model")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)
    s.set_defaults(outputs=lambda a: [Path(a.workdir) / "rehearsal.json"])

    s = stage("report", cmd_report, "Tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) from the result records.")
    s.add_argument("--accuracy", nargs="+", required=True, help="records from 'evaluate'")
    s.add_argument("--compression", nargs="*", default=[], help="records from 'compress'")
    s.add_argument("--plain", help="plain test set for the example figure")
    s.add_argument("--examples", nargs="*", default=[], metavar="SCHEME=IMAGES.npz=KEY.npz",
                   help="encrypted set and key per scheme for the example figure")
    s.add_argument("--num-examples", type=int, default=6)
    s.add_argument("--attacks", nargs="*", default=[], help="records from 'attack'")
    s.add_argument("--attack-examples", nargs="*", default=[], help="example reconstructions from 'attack'")
    s.add_argument("--config", type=_json_arg, default=None,
                   help="the run's resolved configuration (JSON), written beside the tables as config.yaml")
    s.add_argument("--out-dir", required=True)
    return p


def _outputs(a: argparse.Namespace) -> list[Path]:
    """The files a stage writes: its own ``outputs`` (stages writing a set of files), else its --out* and --info."""
    if hasattr(a, "outputs"):
        return list(a.outputs(a))
    return [Path(v) for k, v in vars(a).items() if (k == "out" or k.startswith("out_") or k == "info") and v]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    started = time.time()
    try:
        args.func(args)
    except (EtcbenchError, ValueError, FileNotFoundError, PermissionError, KeyError) as exc:
        # no partial output: remove whatever this invocation wrote before failing
        for path in _outputs(args):
            if path.is_file() and path.stat().st_mtime >= started - 1:
                path.unlink()
        msg = str(exc) if not isinstance(exc, KeyError) else f"missing entry {exc}"
        print(f"etcbench {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return 0
