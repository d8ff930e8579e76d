"""Helpers shared by the cipher tests: random images, layout conversion, block grids and Tanaka's LE reference."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

from etcbench.ciphers.blocks import from_blocks, to_blocks

# (block size, blocks down, blocks across)
grid = st.tuples(st.sampled_from([2, 4, 8]), st.integers(1, 4), st.integers(1, 4))


def images(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """``n`` random uint8 ``(H, W, 3)`` images."""
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def nchw(x: np.ndarray) -> torch.Tensor:
    """numpy ``(N, H, W, C)`` -> contiguous torch ``(N, C, H, W)``."""
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def tanaka_nibbles(x: np.ndarray, m: int) -> np.ndarray:
    """``(N, n, 6 M^2)`` nibbles of every block in Tanaka's key order: (row, column, channel), lower halves first."""
    flat = to_blocks(x, m).reshape(x.shape[0], -1, m * m * 3)
    return np.concatenate([flat & 15, flat >> 4], axis=2)


def tanaka_le(x: np.ndarray, perms: np.ndarray, flags: np.ndarray, m: int) -> np.ndarray:
    """Tanaka's LE (paper.md 3.3) written step by step, independent of the gather plans.

    ``perms``/``flags`` are one key ``(6 M^2,)`` shared by every block, or one key per block ``(n, 6 M^2)``.
    """
    n, h, w, _ = x.shape
    blocks = to_blocks(x, m)
    v = tanaka_nibbles(x, m).astype(np.int64)
    d = v.shape[2] // 2
    perms, flags = np.broadcast_to(perms, v.shape[1:]), np.broadcast_to(flags, v.shape[1:])
    v = np.where(flags, 15 - v, v)
    v = np.take_along_axis(v, np.broadcast_to(perms, v.shape), axis=2)
    v = np.where(flags, 15 - v, v)
    out = ((v[..., d:] << 4) | v[..., :d]).astype(np.uint8)
    return from_blocks(out.reshape(blocks.shape), h, w)
