"""The one block-reshape helper: cut images into M x M blocks and put them back.

Works on numpy arrays and torch tensors alike (only ``reshape`` and an axis permutation are used), in the
channels-last layout ``(N, H, W, C)``. Blocks are numbered in row-major order, as in the EtC literature.
"""

from __future__ import annotations

import operator
from typing import Any

__all__ = ["check_block_size", "check_block_grid", "to_blocks", "from_blocks", "num_blocks"]


def _permute(x: Any, axes: tuple[int, ...]) -> Any:
    return x.permute(*axes) if hasattr(x, "permute") else x.transpose(axes)


def check_block_size(block_size: Any) -> int:
    """``block_size`` as an int, or ``ValueError`` unless it is a positive integer (numpy integers too)."""
    try:
        value = operator.index(block_size)
    except TypeError:
        value = 0
    if isinstance(block_size, bool) or value < 1:
        raise ValueError(f"block size must be a positive integer, got {block_size!r}")
    return value


def check_block_grid(height: int, width: int, block_size: int) -> None:
    """Raise ``ValueError`` unless an ``height x width`` image splits into whole ``block_size`` blocks."""
    if block_size < 1:
        raise ValueError(f"block size must be a positive integer, got {block_size}")
    if height % block_size or width % block_size:
        raise ValueError(
            f"image size {height}x{width} is not a multiple of the block size {block_size}: "
            f"choose a block size that divides both sides"
        )


def num_blocks(height: int, width: int, block_size: int) -> int:
    check_block_grid(height, width, block_size)
    return (height // block_size) * (width // block_size)


def to_blocks(x: Any, block_size: int) -> Any:
    """``(N, H, W, C)`` -> ``(N, n, M, M, C)`` with ``n = (H/M)(W/M)`` blocks in row-major order.

    Shape:
        x: ``(N, H, W, C)``; returns ``(N, (H/M)*(W/M), M, M, C)``.
    """
    n, h, w, c = x.shape
    check_block_grid(h, w, block_size)
    m = block_size
    grid = x.reshape(n, h // m, m, w // m, m, c)
    return _permute(grid, (0, 1, 3, 2, 4, 5)).reshape(n, (h // m) * (w // m), m, m, c)


def from_blocks(blocks: Any, height: int, width: int) -> Any:
    """Inverse of :func:`to_blocks`: ``(N, n, M, M, C)`` -> ``(N, H, W, C)``."""
    n, nb, m, m2, c = blocks.shape
    if m != m2 or nb != num_blocks(height, width, m):
        raise ValueError(f"{nb} blocks of {m}x{m2} do not tile a {height}x{width} image")
    grid = blocks.reshape(n, height // m, width // m, m, m, c)
    return _permute(grid, (0, 1, 3, 2, 4, 5)).reshape(n, height, width, c)
