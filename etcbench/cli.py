"""Command line: ``etcbench <stage> ...`` (also ``python -m etcbench``), one subcommand per workflow stage.

This module only parses: each subcommand maps its arguments to the stage function of the package module that owns
it, runs it inside :func:`etcbench.io.all_or_nothing` and turns errors into exit codes. Exit status 2 is a usage
error (argparse: an unknown option, a missing argument, a name that is not one of the choices); a bad input (a
missing or corrupt file, a wrong option value) ends the stage with exit status 1, one line on stderr,
``etcbench <stage>: error: <message>``, and no output left behind; ``-v`` adds the traceback. Heavy libraries
(torch, timm, and numpy until a stage runs) are imported only by the stages that need them; the names a stage
accepts (schemes, models, attacks) come from the registries, imported when a name is checked.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import EtcbenchError


def _json_arg(text: str) -> dict[str, Any]:
    from .io import json_object  # numpy: imported when a stage is parsed, not for --help or --version

    try:
        return json_object(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Registered:
    """The names of a registry, as argparse ``choices``: the registry's module is imported only when a name is
    checked or listed."""

    def __init__(self, module: str) -> None:
        self.module = module

    def _names(self) -> list[str]:
        return list(importlib.import_module(self.module).available())

    def __contains__(self, name: object) -> bool:
        # ``available`` is a registry's bound method: asking the registry reads no entry point for a built-in name
        registry = importlib.import_module(self.module).available.__self__
        return name in registry

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


SCHEMES, MODELS, ATTACKS = (_Registered(f"etcbench.{name}") for name in ("ciphers", "models", "attacks"))


def _shows_default(action: argparse.Action) -> bool:
    """Whether ``--help`` names the option's default: options that take a value and have one."""
    return (bool(action.option_strings) and not action.required and action.nargs != 0
            and action.default is not None and action.default is not argparse.SUPPRESS)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: X)`` after every option that takes a value and has a default (not None, not a flag's False, not
    a required option's), also where the option has no help text, and not where the help text names its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if _shows_default(action) and "%(default)" not in text and "(default:" not in text:
            shown = "none" if action.default == [] else "%(default)s"  # an empty list of files: none
            text = f"{text} (default: {shown})".lstrip()
        return text

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and _shows_default(action):  # argparse prints no help line at all without a help text
            action = copy.copy(action)
            action.help = self._get_help_string(action)
        return super()._format_action(action)


def version() -> str:
    """The installed distribution's version, else the package's ``__version__``."""
    from importlib import metadata

    try:
        return metadata.version("etcbench")
    except metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module(__package__ or "etcbench"), "__version__", "unknown"))


class _VersionAction(argparse.Action):
    """``--version``: print ``etcbench <version>`` and exit 0; the version is looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: Any = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"etcbench {version()}")
        parser.exit()


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


# stages: each maps its arguments to one package function -----------------------------------------------------------
def cmd_prepare(a: argparse.Namespace) -> None:
    from .data import cifar

    archive = cifar.resolve_archive(a.archive, Path(a.cache_dir))
    cifar.prepare(archive, Path(a.out), Path(a.info), a.train_size, a.val_size, a.test_size, a.seed)


def cmd_keygen(a: argparse.Namespace) -> None:
    from .encryption import make_key

    make_key(a.scheme, a.block_size, a.image_size, _master(a), a.options, Path(a.out), Path(a.info), a.role,
             a.training_seed)


def cmd_master(a: argparse.Namespace) -> None:
    from .ciphers.derive import MasterSecret

    existed = Path(a.out).exists()
    master = MasterSecret.from_file(a.out, create=True)
    logging.getLogger("etcbench.master").info("master secret %s %s (fingerprint %s, mode 0600)", a.out,
                                              "kept" if existed else "created", master.fingerprint)


def _master(a: argparse.Namespace):
    """The master secret of ``--key-seed`` or ``--master-file`` (exactly one is given)."""
    from .ciphers.derive import MasterSecret

    return MasterSecret.from_file(a.master_file) if a.master_file else MasterSecret.from_key_seed(a.key_seed)


def _master_arguments(s: argparse.ArgumentParser) -> None:
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--key-seed", type=int, help="the config's key_seed: keys anyone with the config regenerates "
                                                    "(a reproducible benchmark)")
    group.add_argument("--master-file", help="a 32-byte master secret file (mode 0600; 'etcbench master' makes one)")


def cmd_encrypt(a: argparse.Namespace) -> None:
    from .encryption import encrypt_split

    if a.out is None and a.out_examples is None:
        raise EtcbenchError("nothing to write: give --out, --out-examples or both")
    encrypt_split(Path(a.data), Path(a.key), _path(a.out), a.split, a.interpolation, _path(a.out_examples),
                  a.num_examples)


def cmd_compress(a: argparse.Namespace) -> None:
    from .compression import compress_set

    compress_set(Path(a.plain_test), Path(a.key), a.quality, a.subsampling, Path(a.out_dir), a.workers,
                 a.dataset)


def cmd_train(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from .recipes import JpegArm, Recipe
    from .train import train_model

    pretrained: bool | str = {"true": True, "false": False}.get(str(a.pretrained).lower(), a.pretrained)
    train_model(data_path=Path(a.data), key_path=Path(a.key), plain_test=Path(a.plain_test), model_name=a.model,
                model_options=a.model_options, recipe=Recipe.from_dict(a.recipe), seed=a.seed,
                interpolation=a.interpolation, out_model=Path(a.out_model), out_metrics=Path(a.out_metrics),
                state_dir=Path(a.state_dir), pretrained=pretrained, device=a.device, progress=not a.no_progress,
                dataset=a.dataset, channels_last=a.channels_last, compile_model=a.compile,
                jpeg_arm=JpegArm.from_dict(a.train_jpeg) if a.train_jpeg is not None else None)


def cmd_evaluate(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from .evaluate import evaluate_models

    evaluate_models([Path(p) for p in a.model_file], Path(a.key), Path(a.plain_test), Path(a.out),
                    [Path(p) for p in a.jpeg], _path(a.other_key), a.batch_size, a.device,
                    transform_files=[Path(p) for p in a.transform_model_file])


def cmd_attack(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from .attacks.protocol import attack_test_set

    attack_test_set(a.attacks, a.options, Path(a.data), Path(a.key), Path(a.plain_test), Path(a.out),
                    Path(a.out_examples), master=_master(a), attacker_keys=a.attacker_keys, num_images=a.num_images,
                    train_images=a.train_images, interpolation=a.interpolation, seed=a.seed,
                    num_examples=a.num_examples, dataset=a.dataset,
                    classifier=_path(a.classifier), device=a.device, progress=not a.no_progress)


def cmd_position_leak(a: argparse.Namespace) -> None:
    from .attacks.position_leak import position_leak
    from .io import write_json

    init = {"none": None, "random": False, "pretrained": True}.get(a.init, a.init)
    record = position_leak(Path(a.model), _path(a.reference), Path(a.key), init=init, method=a.method)
    write_json(Path(a.out), record)
    shares = ("not applicable: " + record["reason"] if record["share"] is None else
              f"{record['share']:.3f} of {record['tokens']} block positions recovered "
              f"({record['share_up_to_symmetry']:.3f} up to a symmetry of the grid; identity guess "
              f"{record['identity_share']:.3f}, chance {record['chance']:.3f})")
    logging.getLogger("etcbench.position_leak").info("%s %s on %s: %s", record["model"], f"seed {record['seed']}",
                                                     record["scheme"], shares)


def cmd_report(a: argparse.Namespace) -> None:
    from .report.build import build_report

    build_report(accuracy=[Path(p) for p in a.accuracy], compression=[Path(p) for p in a.compression],
                 examples=[Path(p) for p in a.examples], num_examples=a.num_examples, out_dir=Path(a.out_dir),
                 config=a.config, attacks=[Path(p) for p in a.attacks],
                 attack_examples=[Path(p) for p in a.attack_examples],
                 position_leaks=[Path(p) for p in a.position_leaks], metrics=[Path(p) for p in a.metrics],
                 keys=[Path(p) for p in a.keys], workers=a.threads)


def cmd_bench(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from .bench import run_bench

    out_dir = Path(a.out_dir)
    run_bench(out_dir, a.sections, schemes=a.schemes, batch=a.batch, image_size=a.image_size,
              block_size=a.block_size, rounds=a.rounds, jpeg_batch=a.jpeg_batch, quality=a.quality,
              subsampling=a.subsampling, stages=a.stages, models=a.models, train_schemes=a.train_schemes,
              model_options=a.model_options, train_image_size=a.train_image_size, train_block_size=a.train_block_size,
              train_size=a.train_size, train_batch=a.train_batch, train_rounds=a.train_rounds, archive=a.archive,
              device=a.device)
    print((out_dir / "bench.md").read_text(), end="")


def cmd_rehearse(a: argparse.Namespace) -> None:
    _set_threads(a.threads)
    from .rehearsal import card_table, rehearse

    result = rehearse(a.configfile, Path(a.workdir), archive=a.archive, images=a.images, steps=a.steps,
                      device=a.device, keep_weights=a.keep_weights)
    print(card_table(result))
    print(f"rehearsed {len(result['cells'])} trained cells in {result['seconds']:.0f} s; report in "
          f"{Path(a.workdir) / 'report'}")


def cmd_cost(a: argparse.Namespace) -> None:
    from .cost import markdown, run_cost

    result = run_cost(a.configfile, cores=a.cores, device=a.device, benchmarks=_path(a.benchmarks),
                      out_dir=Path(a.out_dir), profile=_path(a.profile))
    print(markdown(result), end="")


def cmd_check_scheme(a: argparse.Namespace) -> None:
    from .ciphers import SCHEMES as REGISTRY
    from .contract import check_scheme

    label = REGISTRY.plugins().get(a.name, f"built-in scheme {a.name!r}")
    checks = check_scheme(a.name, a.options, a.block_size, (a.image_size, a.image_size))
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    if failed:
        raise EtcbenchError(f"{label} fails its contract: {failed[0].name}: {failed[0].detail}")
    print(f"{label} keeps the scheme contract ({len(checks)} checks)")


PLAIN_TEST_HELP = ("the plain scheme's test set ('encrypt' with a plain key: "
                   "results/encrypted/<setting>/plain/test.npz), at the key's image size")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# parser -----------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    verbose = "debug logging, and the traceback of an error"
    p = argparse.ArgumentParser(prog="etcbench", description=__doc__.splitlines()[0], formatter_class=_HelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help=verbose)
    p.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="STAGE")
    # -v also after the stage's name; SUPPRESS keeps a -v given before the name
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose)

    def stage(name: str, fn: Callable[[argparse.Namespace], None], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, parents=[common], formatter_class=_HelpFormatter)
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

    s = stage("master", cmd_master, "Create a master secret file (32 random bytes, mode 0600) unless it exists.")
    s.add_argument("--out", required=True, help="the master secret file")

    s = stage("keygen", cmd_keygen, "Derive a scheme's secret key from the master secret (HKDF-SHA256; key file "
                                    "mode 0600).")
    s.add_argument("--scheme", required=True, choices=SCHEMES, metavar="SCHEME", help="one of %(choices)s")
    s.add_argument("--block-size", type=int, required=True)
    s.add_argument("--image-size", type=int, required=True)
    _master_arguments(s)
    s.add_argument("--role", default="defender", choices=["defender", "other"],
                   help="the key models are trained and tested with, or a second key for the key-mismatch test")
    s.add_argument("--training-seed", type=int, default=None,
                   help="the training seed the key belongs to (key_per_seed); default: one key for every seed")
    s.add_argument("--options", type=_json_arg, default={}, help="scheme options as a JSON object")
    s.add_argument("--out", required=True, help="key file (.npz)")
    s.add_argument("--info", required=True, help="public key info (.json): scheme, options, fingerprint")

    s = stage("encrypt", cmd_encrypt, "Resize a split to the key's image size and encrypt it with the key.")
    s.add_argument("--data", required=True)
    s.add_argument("--key", required=True, help="key file; its image size is the size the split is resized to")
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.add_argument("--interpolation", default="bicubic", choices=["nearest", "bilinear", "bicubic"])
    s.add_argument("--out", help="the encrypted split (.npz); the workflow stores only the plain scheme's test set: "
                                 "the later stages encrypt it with their key themselves")
    s.add_argument("--out-examples", help="also (without --out: only) write the first images plain, encrypted and "
                                          "decrypted (.npz) for the report")
    s.add_argument("--num-examples", type=int, default=6, help="images in --out-examples")

    s = stage("compress", cmd_compress, "JPEG-encode the test set encrypted with a key; record bpp and PSNR after "
                                        "decryption.")
    s.add_argument("--plain-test", required=True,
                   help=PLAIN_TEST_HELP + "; encrypted here with --key, and the PSNR's reference")
    s.add_argument("--key", required=True)
    s.add_argument("--quality", type=int, nargs="+", required=True, help="JPEG qualities (1..100)")
    s.add_argument("--subsampling", choices=["444", "420"], required=True)
    s.add_argument("--workers", type=int, default=None, help="encoder threads (default: all cores)")
    s.add_argument("--dataset", default="cifar10")
    s.add_argument("--out-dir", required=True,
                   help="writes q{QUALITY}-{SUBSAMPLING}.npz (decoded images) and .json (bpp, PSNR) per quality")

    s = stage("train", cmd_train, "Train a model on images encrypted batch by batch with a fixed key.")
    s.add_argument("--data", required=True, help="split arrays from 'prepare'")
    s.add_argument("--key", required=True)
    s.add_argument("--plain-test", required=True, help=PLAIN_TEST_HELP + "; the final test encrypts it with --key")
    s.add_argument("--model", required=True, choices=MODELS, metavar="MODEL", help="one of %(choices)s")
    s.add_argument("--model-options", type=_json_arg, default={}, help="model options as a JSON object")
    s.add_argument("--recipe", type=_json_arg, default={}, help="training settings as a JSON object")
    s.add_argument("--train-jpeg", type=_json_arg, default=None,
                   help="train and test on the ciphertexts JPEG-coded and decoded (the JPEG-trained arm), as a JSON "
                        "object: quality, subsampling, augment (of the ciphertexts), alpha")
    s.add_argument("--pretrained", default="false", help="false, true (timm hub) or a local checkpoint path")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--interpolation", default="bicubic", choices=["nearest", "bilinear", "bicubic"],
                   help="resize of the training images to the key's image size")
    s.add_argument("--dataset", default="cifar10")
    s.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, ...")
    s.add_argument("--channels-last", choices=["auto", "on", "off"], default="auto",
                   help="channels-last memory format; auto: the convolutional models on CUDA")
    s.add_argument("--compile", action="store_true", help="run the training passes through torch.compile")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--state-dir", required=True,
                   help="resumable state (not an output; removed when the training finishes)")
    s.add_argument("--out-model", required=True)
    s.add_argument("--out-metrics", required=True)

    s = stage("evaluate", cmd_evaluate, "Top-1 of the models trained on one scheme, setting and seed on their test "
                                        "set, every JPEG version of it (each loaded once for all the models) and "
                                        "under key mismatch.")
    s.add_argument("--model-file", nargs="*", default=[],
                   help="the trained models (one scheme, setting, seed and key; 'train' writes them)")
    s.add_argument("--transform-model-file", nargs="*", default=[],
                   help="models trained on plain images of the setting, transformed here with --key (the "
                        "model-transformation arm: schemes with a model transformation only)")
    s.add_argument("--key", required=True, help="the models' key: the test set is --plain-test encrypted with it here")
    s.add_argument("--plain-test", required=True, help=PLAIN_TEST_HELP)
    s.add_argument("--jpeg", nargs="*", default=[], help="JPEG test sets from 'compress' (decoded here, once)")
    s.add_argument("--other-key", help="another key of the scheme (key mismatch): the plain test set is encrypted "
                                       "with it here as well")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--out", required=True)

    s = stage("attack", cmd_attack, "Run a ciphertext-only attack on a scheme's encrypted test images and score it.")
    s.add_argument("--attacks", nargs="+", required=True, choices=ATTACKS, metavar="ATTACK",
                   help="attacks to run, of %(choices)s; the 'none' floor (the encrypted image as it is) is always "
                        "added")
    s.add_argument("--options", type=_json_arg, default={}, help="options per attack as a JSON object")
    s.add_argument("--data", required=True, help="split arrays from 'prepare' (the attacker's own images: train split)")
    s.add_argument("--key", required=True, help="the target key (only its scheme, fingerprint and, for scoring the "
                                                "jigsaw layout, its block order are used)")
    s.add_argument("--plain-test", required=True,
                   help=PLAIN_TEST_HELP + "; the targets are its first --num-images encrypted here with --key")
    s.add_argument("--num-images", type=int, default=100, help="target test images attacked and scored")
    s.add_argument("--train-images", type=int, default=2000, help="attacker's own plain images (train split)")
    s.add_argument("--attacker-keys", type=int, default=8, help="keys the attacker encrypts their images with")
    _master_arguments(s)
    s.add_argument("--interpolation", default="bicubic", choices=["nearest", "bilinear", "bicubic"])
    s.add_argument("--seed", type=int, default=0, help="the attack's training seed")
    s.add_argument("--num-examples", type=int, default=4)
    s.add_argument("--dataset", default="cifar10")
    s.add_argument("--classifier", help="a model trained on plain images of the same setting (model.pt from "
                                        "'train'): its top-1 on each attack's reconstructions is the semantic leakage")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--out", required=True, help="attack records (.json)")
    s.add_argument("--out-examples", required=True, help="first reconstructions, RGB (.npz)")

    s = stage("position-leak", cmd_position_leak, "Recover a scheme's block permutation from the position embeddings "
                                                  "of a ViT trained on it, matched against the plain-trained ViT.")
    s.add_argument("--model", required=True, help="a ViT trained on the scheme's images (model.pt from 'train')")
    s.add_argument("--reference", help="the same ViT trained on plain images (default: the model's start, --init)")
    s.add_argument("--key", required=True, help="the scheme's key (its block order scores the estimate)")
    s.add_argument("--init", default="random",
                   help="what both models started from, subtracted before matching: random (the seeded random "
                        "start of training), pretrained (the hub weights), none, or a checkpoint path")
    s.add_argument("--method", default="combined", choices=["combined", "linear", "structure"])
    s.add_argument("--out", required=True, help="the record (.json)")

    s = stage("rehearse", cmd_rehearse, "Rehearse a config's whole grid on a few images: every model at its real size, "
                                        "two training steps of its real recipe, evaluation and the report.")
    s.add_argument("--configfile", nargs="*", default=[], help="config layers over config/config.yaml, in order")
    s.add_argument("--workdir", required=True, help="scratch folder for the rehearsal's files")
    s.add_argument("--archive", help="local cifar-10-python.tar.gz (default: $ETCBENCH_CIFAR10_ARCHIVE, else download)")
    s.add_argument("--images", type=int, default=8,
                   help="training images; a quarter as many, at least 2, for validation and test")
    s.add_argument("--steps", type=int, default=2, help="optimiser steps per model")
    s.add_argument("--keep-weights", action="store_true",
                   help="keep each cell's model.pt (340 MB per ViT-B cell)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None)

    s = stage("cost", cmd_cost, "Predict a config's run before it is submitted: per rule and in total, wall time with "
                                "--cores cores, CPU-hours, device-hours and disk, from short calibrations on this "
                                "device (or an earlier run's benchmark files); write cost.json and cost.md.")
    s.add_argument("--configfile", nargs="*", default=[], help="config layers over config/config.yaml, in order")
    s.add_argument("--cores", type=_positive_int, default=2, help="the cores 'snakemake --cores' will use")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="the device the training, evaluation and attack jobs will use (auto: CUDA if present)")
    s.add_argument("--profile", help="a Snakemake profile folder whose set-threads the run will use (e.g. "
                                     "workflow/profiles/smoke)")
    s.add_argument("--benchmarks", help="an earlier run's results/benchmarks folder: a job with a benchmark file "
                                        "there takes its recorded seconds")
    s.add_argument("--out-dir", default="results/cost")

    s = stage("check-scheme", cmd_check_scheme, "Check a registered scheme, built-in or plug-in, against the scheme "
                                                "contract (docs/extending.md): keys, round trip, numpy/torch parity, "
                                                "batching, bad input, declared JPEG alignment.")
    s.add_argument("name", choices=SCHEMES, metavar="NAME", help="a registered scheme: one of %(choices)s")
    s.add_argument("--options", type=_json_arg, default={}, help="the scheme's options as JSON, e.g. "
                                                                 "'{\"scramble\": false}'")
    s.add_argument("--block-size", type=_positive_int, default=16)
    s.add_argument("--image-size", type=_positive_int, default=64, help="side of the square test images (a "
                                                                         "multiple of the block size)")

    s = stage("bench", cmd_bench, "Time every hot stage against its reference (a copy, a torch clone, a per-block "
                                  "loop, bare encoder calls, plain training) in interleaved rounds; write "
                                  "bench.json and bench.md.")
    s.add_argument("--sections", nargs="+", default=["ciphers", "jpeg", "startup"],
                   choices=["ciphers", "jpeg", "startup", "training"], metavar="SECTION",
                   help="of %(choices)s (training needs the CIFAR-10 archive and --models)")
    s.add_argument("--schemes", nargs="+", choices=SCHEMES, metavar="SCHEME",
                   help="schemes to time (default: every scheme but plain)")
    s.add_argument("--batch", type=int, default=256, help="images per cipher call")
    s.add_argument("--image-size", type=int, default=224, help="cipher and JPEG image side")
    s.add_argument("--block-size", type=int, default=16)
    s.add_argument("--rounds", type=int, default=7, help="interleaved rounds per item (the median is reported)")
    s.add_argument("--jpeg-batch", type=int, default=256, help="images per JPEG round trip")
    s.add_argument("--quality", type=int, default=75)
    s.add_argument("--subsampling", choices=["444", "420"], default="444")
    s.add_argument("--stages", nargs="+", metavar="STAGE", help="stages whose start-up is timed (default: every "
                                                                "stage the workflow runs)")
    s.add_argument("--models", nargs="+", choices=MODELS, metavar="MODEL", default=[],
                   help="models whose training samples/s are compared, plain vs --train-schemes")
    s.add_argument("--train-schemes", nargs="+", choices=SCHEMES, metavar="SCHEME", default=["etc"])
    s.add_argument("--model-options", type=_json_arg, default={},
                   help="JSON per model, replacing its defaults whole, e.g. '{\"vit\": {\"arch\": "
                        "\"vit_tiny_patch16_224\"}}'")
    s.add_argument("--train-image-size", type=int, default=32)
    s.add_argument("--train-block-size", type=int, default=8)
    s.add_argument("--train-size", type=int, default=512, help="training images: one epoch per cell and round")
    s.add_argument("--train-batch", type=int, default=64)
    s.add_argument("--train-rounds", type=int, default=None,
                   help="interleaved training rounds (default: one per scheme, plain included: the order is rotated "
                        "each round, so each scheme trains once in every position)")
    s.add_argument("--archive", help="local cifar-10-python.tar.gz (default: $ETCBENCH_CIFAR10_ARCHIVE, else download)")
    s.add_argument("--device", default="cpu", help="training device")
    s.add_argument("--threads", type=int, default=None)
    s.add_argument("--out-dir", default="results/bench")

    s = stage("report", cmd_report, "Tables (CSV, Markdown, LaTeX) and figures (PNG, PDF) from the result records.")
    s.add_argument("--accuracy", nargs="+", required=True, help="records from 'evaluate'")
    s.add_argument("--compression", nargs="*", default=[], help="records from 'compress'")
    s.add_argument("--examples", nargs="*", default=[], metavar="EXAMPLES.npz",
                   help="example images from 'encrypt --out-examples', one file per scheme, for the example figure")
    s.add_argument("--num-examples", type=int, default=6)
    s.add_argument("--attacks", nargs="*", default=[], help="records from 'attack'")
    s.add_argument("--attack-examples", nargs="*", default=[], help="example reconstructions from 'attack'")
    s.add_argument("--position-leaks", nargs="*", default=[], help="records from 'position-leak'")
    s.add_argument("--metrics", nargs="*", default=[], metavar="METRICS.json",
                   help="training records (metrics.json) from 'train', for the training curves")
    s.add_argument("--keys", nargs="*", default=[], metavar="KEY.json",
                   help="the keys' public records from 'keygen --info', for the key table")
    s.add_argument("--config", type=_json_arg, default=None,
                   help="the run's resolved configuration (JSON), written beside the tables as config.yaml")
    s.add_argument("--threads", type=int, default=1, help="figures drawn side by side in this many processes")
    s.add_argument("--out-dir", required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:  # the names a stage accepts include plug-ins' (entry points): one that cannot be used is one line
        args = build_parser().parse_args(argv)
    except EtcbenchError as exc:
        print(f"etcbench: error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from .io import all_or_nothing

    try:
        with all_or_nothing():  # no partial output: whatever the stage wrote is removed if it fails
            args.func(args)
    # a runtime failure (usage errors exit 2 inside parse_args): exit 1, one line, the traceback only with -v;
    # OSError includes FileNotFoundError and PermissionError
    except (EtcbenchError, ValueError, OSError, KeyError) as exc:
        if args.verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        msg = str(exc) if not isinstance(exc, KeyError) else f"missing entry {exc}"
        msg = " ".join(line.strip() for line in msg.splitlines() if line.strip()) or type(exc).__name__
        print(f"etcbench {args.command}: error: {msg}", file=sys.stderr)
        return 1
    return 0
