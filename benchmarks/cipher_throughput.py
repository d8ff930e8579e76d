"""Cipher throughput: encrypt/decrypt of a uint8 batch as a ratio to a numpy copy of the same array.

Ratios are measured in one process, interleaved round by round, and the median is reported, because the
machines are shared and absolute times drift. Usage::

    python benchmarks/cipher_throughput.py [--batch 256] [--size 224] [--block 16] [--rounds 7] [--schemes etc]
"""

from __future__ import annotations

import argparse
import statistics
import timeit

import numpy as np

from etcbench import ciphers
from etcbench.ciphers.ycbcr import from_plane, to_plane


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--block", type=int, default=16)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--schemes", nargs="+", default=[s for s in ciphers.available() if s != "plain"])
    p.add_argument("--torch", action="store_true", help="also time the torch (N, 3, H, W) path on CPU/CUDA")
    a = p.parse_args()

    x = np.random.default_rng(0).integers(0, 256, (a.batch, a.size, a.size, 3), dtype=np.uint8)
    print(f"batch {x.shape} uint8 = {x.nbytes / 2**20:.0f} MiB, block {a.block}, {a.rounds} interleaved rounds")
    for name in a.schemes:
        scheme = ciphers.create(name, block_size=a.block)
        key = scheme.generate_key(seed=1, image_size=(a.size, a.size))
        y = scheme.encrypt(x, key)  # warm-up, builds and caches the gather plan
        if scheme.plane_subsampling is None:
            assert np.array_equal(scheme.decrypt(y, key), x)
        else:  # grayscale-plane schemes: exact up to their (lossy) colour conversion and chroma subsampling
            assert np.array_equal(scheme.decrypt(y, key), from_plane(to_plane(x, scheme.plane_subsampling),
                                                                     scheme.plane_subsampling))
        timers = {"copy": lambda: x.copy(), "encrypt": lambda: scheme.encrypt(x, key),
                  "decrypt": lambda: scheme.decrypt(y, key)}
        if a.torch:
            import torch

            dev = "cuda" if torch.cuda.is_available() else "cpu"
            xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().to(dev)
            scheme.encrypt(xt, key)
            sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
            timers["torch_copy"] = lambda: (xt.clone(), sync())
            timers[f"torch_encrypt_{dev}"] = lambda: (scheme.encrypt(xt, key), sync())
        times: dict[str, list[float]] = {k: [] for k in timers}
        for _ in range(a.rounds):
            for k, fn in timers.items():
                times[k].append(min(timeit.repeat(fn, number=1, repeat=1)))
        base = statistics.median(times["copy"])
        print(f"{name}: numpy copy {base * 1e3:.1f} ms (median)")
        for k, ts in times.items():
            if k == "copy":
                continue
            ref = statistics.median(times["torch_copy"]) if k.startswith("torch_encrypt") else base
            ratios = [t / c for t, c in zip(ts, times["torch_copy" if k.startswith("torch_encrypt") else "copy"])]
            print(f"  {k:>20}: {statistics.median(ts) * 1e3:8.1f} ms  ratio to copy {statistics.median(ratios):.2f}x "
                  f"(min {min(ratios):.2f}, max {max(ratios):.2f}); "
                  f"median-of-medians {statistics.median(ts) / ref:.2f}x")


if __name__ == "__main__":
    main()
