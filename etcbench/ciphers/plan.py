"""Gather plans: a key compiled into one index gather plus one negative-positive mask.

Every step of a block-wise EtC cipher (block scrambling, per-block rotation and flip, channel permutation)
moves values without changing them, and negative-positive transformation inverts values in place. So one
keyed encryption of an ``H x W x C`` image is exactly

    y[j] = x[perm[j]]  XOR  (255 if mask[j] else 0)        (uint8; float: 1 - v where mask)

over the flattened image. A :class:`GatherPlan` holds ``perm`` and ``mask`` once per key and image size and
applies them to a whole batch with a single vectorised gather, on numpy arrays (channels last) or torch
tensors (channels first, any device). Decryption is the inverse plan.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import from_blocks, to_blocks

__all__ = ["GatherPlan", "block_plan", "is_torch", "map_chunks", "thread_pool"]

_POOL: ThreadPoolExecutor | None = None
_CHUNK = 32  # images per gather task on the CPU: large enough to amortise overhead, small enough to stay in cache


def is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def thread_pool() -> ThreadPoolExecutor:
    """The ciphers' shared thread pool (one thread per core, at most 8), made on first use."""
    global _POOL
    if _POOL is None:
        import os

        _POOL = ThreadPoolExecutor(max_workers=max(1, min(8, len(os.sched_getaffinity(0)))))
    return _POOL


def map_chunks(x: np.ndarray, chunk: int, fn: Callable[[np.ndarray, np.ndarray], None]) -> np.ndarray:
    """``fn(src, dst)`` over chunks of ``chunk`` flattened images of ``x``, on the thread pool; the filled output.

    ``fn`` writes the result for the ``(r, L)`` images ``src`` into ``dst`` of the same shape and dtype.
    """
    n = x.shape[0]
    flat = np.ascontiguousarray(x).reshape(n, -1)
    out = np.empty_like(flat)
    chunks = [slice(i, min(i + chunk, n)) for i in range(0, n, chunk)]
    if len(chunks) > 1:
        list(thread_pool().map(lambda s: fn(flat[s], out[s]), chunks))
    elif chunks:
        fn(flat, out)
    return out.reshape(x.shape)


@dataclass(frozen=True, eq=False)
class GatherPlan:
    """``y = x[..., perm] ^ mask`` over images flattened in ``(H, W, C)`` order.

    Args:
        perm: int64 ``(L,)``; output element ``j`` takes input element ``perm[j]``. Need not be a permutation
            (a lossy legacy mode can repeat sources), but then the plan has no inverse.
        mask: bool ``(L,)``; output elements to negative-positive transform.
        shape: the ``(H, W, C)`` image shape the plan was built for.
        mask_value: what masked elements are XOR-ed with: 255 inverts 8-bit values (``255 - v``); 15 inverts the
            4-bit values of nibble-split schemes (``15 - v``). Float input is supported for 255 only (``1 - v``).
    """

    perm: np.ndarray
    mask: np.ndarray
    shape: tuple[int, int, int]
    mask_value: int = 255
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def bijective(self) -> bool:
        return bool(np.array_equal(np.sort(self.perm), np.arange(self.perm.size)))

    def inverse(self) -> GatherPlan:
        """The plan that undoes this one: ``x[i] = y[inv[i]] ^ mask[inv[i]]``."""
        if "inverse" not in self._cache:
            if not self.bijective:
                raise ValueError("this cipher configuration is not a bijection, so it cannot be inverted")
            inv = np.empty_like(self.perm)
            inv[self.perm] = np.arange(self.perm.size, dtype=self.perm.dtype)
            self._cache["inverse"] = GatherPlan(inv, self.mask[inv], self.shape, self.mask_value)
        return self._cache["inverse"]

    def apply(self, x: Any) -> Any:
        """Apply the plan to ``(N, H, W, C)`` numpy or ``(N, C, H, W)`` torch images (uint8, or float in [0, 1])."""
        return self._apply_torch(x) if is_torch(x) else self._apply_numpy(x)

    # numpy: channels last ------------------------------------------------------------------------------------
    def _apply_numpy(self, x: np.ndarray) -> np.ndarray:
        return map_chunks(x, _CHUNK, self._gather_numpy)

    def _gather_numpy(self, src: np.ndarray, dst: np.ndarray) -> None:
        np.take(src, self.perm, axis=1, out=dst, mode="clip")  # indices are valid by construction
        if not self.mask.any():
            return
        if dst.dtype == np.uint8:
            np.bitwise_xor(dst, self._mask_u8, out=dst)
        else:
            self._check_float()
            dst[:, self.mask] = 1 - dst[:, self.mask]

    @property
    def _mask_u8(self) -> np.ndarray:
        if "mask_u8" not in self._cache:
            self._cache["mask_u8"] = self.mask.astype(np.uint8) * np.uint8(self.mask_value)
        return self._cache["mask_u8"]

    def _check_float(self) -> None:
        if self.mask_value != 255:
            raise ValueError(f"this cipher works on integer values (mask {self.mask_value}): pass uint8 images")

    # torch: channels first -------------------------------------------------------------------------------------
    def _torch_plan(self, device: Any) -> tuple[Any, Any, Any]:
        """The same plan re-indexed for ``(C, H, W)`` flattening, as tensors on ``device`` (cached)."""
        key = ("torch", str(device))
        if key not in self._cache:
            import torch

            h, w, c = self.shape
            # position in (C, H, W) order of each element of the (H, W, C) order
            to_chw = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()
            perm_chw = np.empty_like(self.perm)
            perm_chw[to_chw] = to_chw[self.perm]
            mask_chw = np.empty_like(self.mask)
            mask_chw[to_chw] = self.mask
            self._cache[key] = (
                torch.from_numpy(perm_chw).to(device),
                torch.from_numpy(mask_chw).to(device),
                torch.from_numpy(mask_chw.astype(np.uint8) * np.uint8(self.mask_value)).to(device),
            )
        return self._cache[key]

    def _apply_torch(self, x: Any) -> Any:
        import torch

        perm, mask, mask_u8 = self._torch_plan(x.device)
        n = x.shape[0]
        flat = x.reshape(n, -1)
        out = torch.gather(flat, 1, perm.expand(n, -1))
        if self.mask.any():
            if out.dtype == torch.uint8:
                out.bitwise_xor_(mask_u8)
            else:
                self._check_float()
                out = torch.where(mask, 1 - out, out)
        return out.reshape(x.shape)


BlockEdit = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def block_plan(height: int, width: int, block_size: int, edit: BlockEdit, channels: int = 3,
               mask_value: int = 255) -> GatherPlan:
    """Compile a block-wise cipher into a :class:`GatherPlan` by encrypting an image of its own indices.

    Args:
        height, width: image size.
        block_size: M.
        edit: receives the ``(n, M, M, C)`` blocks of an image whose values are their own flat ``(H, W, C)``
            indices and returns ``(blocks, mask)``: the encrypted index blocks (the gather map) and a boolean
            negative-positive mask that broadcasts to their shape.
        channels: C (3 for colour images, 6 for nibble-split ones).
        mask_value: see :class:`GatherPlan`.
    """
    index_image = np.arange(height * width * channels, dtype=np.int64).reshape(1, height, width, channels)
    blocks, mask = edit(to_blocks(index_image, block_size)[0])
    shape = (1, *blocks.shape)
    perm = from_blocks(np.ascontiguousarray(blocks).reshape(shape), height, width).ravel()
    mask = from_blocks(np.ascontiguousarray(np.broadcast_to(mask, blocks.shape)).reshape(shape), height, width).ravel()
    return GatherPlan(np.ascontiguousarray(perm), np.ascontiguousarray(mask, dtype=bool), (height, width, channels),
                      mask_value)
