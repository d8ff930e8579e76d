"""Helpers shared by the attack tests: held-out natural-image tiles and crops."""

from __future__ import annotations

import numpy as np

HELD_OUT = np.array([3, 7, 11, 15])  # natural-image tiles whose crops are never trained on


def crops(x: np.ndarray, size: int) -> np.ndarray:
    """Cut ``(N, H, W, C)`` images into ``size x size`` crops, row-major per image."""
    n, h, w, c = x.shape
    grid = x.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(grid.reshape(-1, size, size, c))
