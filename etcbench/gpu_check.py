"""GPU check: train ViT and ConvMixer on plain and EtC CIFAR-10 for a short fixed budget, next to timm's own
training throughput for the same model and batch.

    python -m etcbench.gpu_check --archive cifar-10-python.tar.gz --out gpu_check.json

For every (model, scheme) it runs the suite's real pipeline (the stage functions of ``etcbench prepare``,
``keygen`` and ``encrypt``, then :func:`etcbench.train.train_model`, which crops, resizes and encrypts every batch
on the device), and prints top-1 on the encrypted test set and the training samples/s. Beside it, ``timm
samples/s`` is what a bare timm training step reaches for the same model, input and batch size: random tensors
already on the device, AdamW, bf16 autocast on CUDA as in the suite, timed after warm-up steps with the device
synchronised (the "train" mode of timm's ``benchmark.py``). Their ratio is the cost of the suite's data path and
encryption.

The defaults are the paper's scale (224 px, patch 16, ViT-B/16 and ConvMixer-1024/20 from random initialisation)
on 10,000 training images for 1 epoch, sized for a 10-minute GPU budget (not yet timed on a GPU); the test suite
runs it on the CPU with a tiny budget (``--image-size 32 --block-size 8 --train-size 60 ...``). Results:
``docs/gpu.md``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import EtcbenchError
from .io import json_object
from .models import available as available_models

__all__ = ["main", "options_for", "timm_train_throughput", "train_rows"]

log = logging.getLogger("etcbench.gpu_check")

DEFAULT_OPTIONS = {  # the models of config/paper.yaml (random initialisation here)
    "vit": {"arch": "vit_base_patch16_224"},
    "convmixer": {"arch": "convmixer_1024_20_ks9_p14"},
}


def timm_train_throughput(model_name: str, options: dict[str, Any], image_size: int, patch_size: int,
                          batch_size: int, device: Any, steps: int = 20, warmup: int = 5) -> float:
    """Training samples/s of a bare step (forward, cross-entropy, backward, AdamW) on random inputs on ``device``."""
    import torch
    import torch.nn.functional as F

    from .models import build_model

    dev = torch.device(device)
    model = build_model(model_name, 10, image_size, patch_size, dict(options)).to(dev).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch_size, 3, image_size, image_size, device=dev)
    y = torch.randint(0, 10, (batch_size,), device=dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return steps * batch_size / (time.perf_counter() - start)


def options_for(models: Sequence[str], model_options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each model's options: its entry of ``model_options``, replacing its :data:`DEFAULT_OPTIONS` whole (as config
    layers do), never merged with them."""
    return {m: model_options.get(m, DEFAULT_OPTIONS.get(m, {})) for m in models}


def train_rows(models: Sequence[str], schemes: Sequence[str], model_options: dict[str, dict[str, Any]],
               image_size: int, block_size: int, archive: str | None, train_size: int, batch_size: int,
               device: Any, *, val_size: int = 64, test_size: int = 64, epochs: int = 1, lr: float = 5e-4,
               key_seed: int = 20220413, rounds: int = 1) -> list[dict[str, Any]]:
    """Train every model on every scheme through the suite's stage functions in a scratch folder: top-1 on the
    encrypted test set, samples/s and seconds of training, parameters. The data, keys and test sets are made once;
    with ``rounds`` > 1 every cell is trained again in each round (cells interleaved, the schemes' order rotated by one
    each round), one row per cell and round."""
    from .data import cifar
    from .encryption import encrypt_split, make_key
    from .recipes import Recipe
    from .train import train_model

    options = options_for(models, model_options)
    recipe = Recipe(epochs=epochs, batch_size=batch_size, lr=lr, warmup_epochs=0.1 * epochs,
                    eval_batch_size=max(batch_size, 256))
    rows = []
    with tempfile.TemporaryDirectory(prefix="etcbench-train-rows-") as tmp:
        work = Path(tmp)
        data = work / "data.npz"
        cifar.prepare(cifar.resolve_archive(archive, work / "download"), data, work / "data.json", train_size,
                      val_size, test_size, 0)
        for scheme in schemes:
            make_key(scheme, block_size, image_size, key_seed, {}, work / f"{scheme}.key.npz", work / f"{scheme}.json")
        make_key("plain", block_size, image_size, key_seed, {}, work / "plain.key.npz", work / "plain.json")
        encrypt_split(data, work / "plain.key.npz", work / "plain.test.npz")  # the stages encrypt it themselves
        for round_ in range(rounds):
            turn = round_ % len(schemes)  # the order rotated each round: no scheme always trains first or last
            for scheme in [*schemes[turn:], *schemes[:turn]]:
                for model in models:
                    result = train_model(
                        data_path=data, key_path=work / f"{scheme}.key.npz", plain_test=work / "plain.test.npz",
                        model_name=model, model_options=options[model], recipe=recipe, seed=0,
                        interpolation="bicubic", out_model=work / f"{model}-{scheme}.pt",
                        out_metrics=work / f"{model}-{scheme}.json", state_dir=work / f"{model}-{scheme}",
                        device=str(device), progress=False)
                    rows.append({"model": model, "scheme": scheme, "round": round_, "top1": result["record"]["top1"],
                                 "samples_per_s": result["train"]["samples_per_s"],
                                 "train_seconds": result["train"]["train_seconds"],
                                 "parameters": result["train"]["parameters"]})
    return rows


def run(a: argparse.Namespace, dev: Any) -> list[dict[str, Any]]:
    rows = train_rows(a.models, a.schemes, a.model_options, a.image_size, a.block_size, a.archive, a.train_size,
                      a.batch_size, dev, val_size=a.val_size, test_size=a.test_size, epochs=a.epochs, lr=a.lr,
                      key_seed=a.key_seed)
    options = options_for(a.models, a.model_options)
    for model in a.models:  # the reference, once per model (the scheme does not change the network)
        ref = timm_train_throughput(model, options[model], a.image_size, a.block_size, a.batch_size, dev)
        for row in rows:
            if row["model"] == model:
                row["timm_samples_per_s"] = ref
                row["ratio_to_timm"] = row["samples_per_s"] / ref
    return rows


def _device_name(dev: Any) -> str:
    import torch

    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m etcbench.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--archive", help="local cifar-10-python.tar.gz (default: $ETCBENCH_CIFAR10_ARCHIVE)")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_OPTIONS), choices=available_models(),
                   help="registered models to train (default: the paper's, %(default)s; any other starts from its "
                        "default arch unless --model-options gives its entry)")
    p.add_argument("--schemes", nargs="+", default=["plain", "etc"])
    p.add_argument("--model-options", type=json_object, default={},
                   help='JSON per model, each replacing that model\'s defaults whole, e.g. '
                        '\'{"vit": {"arch": "vit_tiny_patch16_224", "depth": 1}}\'')
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--block-size", type=int, default=16, help="block = patch size")
    p.add_argument("--train-size", type=int, default=10000)
    p.add_argument("--val-size", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--key-seed", type=int, default=20220413)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="also write the rows and the device as JSON here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    started = time.perf_counter()
    try:
        from .seeding import select_device

        dev = select_device(a.device)
        device = _device_name(dev)
        rows = run(a, dev)
    except (EtcbenchError, ValueError, FileNotFoundError) as exc:
        print(f"etcbench gpu_check: error: {exc}", file=sys.stderr)
        return 2
    print(f"device: {device}; {a.image_size} px, patch {a.block_size}, batch {a.batch_size}, {a.train_size} training "
          f"images x {a.epochs} epoch(s); {time.perf_counter() - started:.0f} s in all")
    print(f"{'model':<10} {'scheme':<8} {'top-1':>7} {'samples/s':>10} {'timm samples/s':>15} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<10} {r['scheme']:<8} {100 * r['top1']:>6.2f}% {r['samples_per_s']:>10.1f} "
              f"{r['timm_samples_per_s']:>15.1f} {r['ratio_to_timm']:>6.2f}")
    if a.out:
        from .io import write_json

        write_json(a.out, {"device": device, "settings": {k: v for k, v in vars(a).items() if k != "out"},
                           "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
