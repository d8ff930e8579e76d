"""4-bit (nibble) splitting for the learnable-encryption family (LE, ELE), and the gather plans built on it.

Tanaka's learnable encryption and its extensions (``docs/paper.md`` of the suite, sections 3.3 and 3.4) split every
8-bit value into its lower and upper 4-bit halves, move and invert the halves, and merge them back into bytes.

Nibble-image layout (:func:`split_nibbles` / :func:`merge_nibbles`): an RGB image becomes a *six-channel* image of
the same height and width with values in 0..15; per pixel the channels are

    ``(R & 15, G & 15, B & 15, R >> 4, G >> 4, B >> 4)``

i.e. the lower halves of R, G, B first, then the upper halves (numpy: channels last, ``(..., H, W, 6)``; torch:
channels first, ``(..., 6, H, W)``). :func:`merge_nibbles` is the exact inverse: ``(upper << 4) | lower``.

Key-position order (:func:`tanaka_positions`): a block of the nibble image holds ``L = 6 M^2`` values. Keys index
them as Tanaka's code (``BlockScramble.doScramble`` of github.com/mastnk/ICCE-TW2018) does: the ``M x M x 3`` block
is flattened in (row, column, channel) order, all ``3 M^2`` lower halves come first, then all upper halves. For
``M > 1`` this differs from the six-channel image's own (row, column, channel) flattening, so the plan builder maps
key positions to image positions with :func:`tanaka_positions`; key arrays are thereby index-compatible with
Tanaka's key files (a permutation of the ``L`` positions).

Everything compiles into one :class:`~.plan.GatherPlan` over the six-channel image with ``mask_value=15``
(``v XOR 15 == 15 - v`` on 4-bit values): encryption is split -> gather+mask -> merge, decryption the same with the
inverse plan. Only uint8 images are accepted.

Execution layout (:func:`split_planes` / :func:`merge_planes`, :func:`planar_plan`): interleaving six channels
per pixel costs about ten times a copy of the batch, so :class:`NibbleScheme` runs the very same gather relabelled
onto the *plane-stacked* nibble image, the lower-half image on top of the upper-half image, ``(..., 2H, W, 3)``
numpy / ``(..., 3, 2H, W)`` torch (six-channel value ``(r, c, half * 3 + ch)`` is stacked value
``(half * H + r, c, ch)``). Splitting into planes and merging them are contiguous, copy-speed operations, and the
gather plan's torch path handles the ``(2H, W, 3)`` shape natively. Results are identical by construction (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import GatherScheme, Subsampling, image_hw
from .blocks import num_blocks
from .keys import Key
from .plan import GatherPlan, block_plan, is_torch

__all__ = [
    "NIBBLE_CHANNELS",
    "NibbleScheme",
    "merge_nibbles",
    "merge_planes",
    "nibble_plan",
    "planar_plan",
    "split_nibbles",
    "split_planes",
    "tanaka_flags",
    "tanaka_positions",
]

NIBBLE_CHANNELS = 6


def split_nibbles(x: Any) -> Any:
    """Split uint8 RGB images into six 4-bit channels (lower halves of R, G, B, then upper halves).

    Args:
        x: numpy ``(..., H, W, 3)`` (channels last) or torch ``(..., 3, H, W)`` (channels first), uint8.

    Returns:
        uint8 values in 0..15: numpy ``(..., H, W, 6)`` or torch ``(..., 6, H, W)``, a new array.
    """
    if is_torch(x):
        import torch

        if x.dtype != torch.uint8 or x.ndim < 3 or x.shape[-3] != 3:
            raise ValueError(f"expected uint8 (..., 3, H, W) tensors, got {x.dtype} {tuple(x.shape)}")
        return torch.cat([x & 15, x >> 4], dim=-3)
    if x.dtype != np.uint8 or x.ndim < 3 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 (..., H, W, 3) arrays, got {x.dtype} {x.shape}")
    out = np.empty(x.shape[:-1] + (NIBBLE_CHANNELS,), dtype=np.uint8)
    np.bitwise_and(x, 15, out=out[..., :3])
    np.right_shift(x, 4, out=out[..., 3:])
    return out


def merge_nibbles(z: Any) -> Any:
    """Exact inverse of :func:`split_nibbles`: byte = ``(upper << 4) | lower``.

    Args:
        z: numpy ``(..., H, W, 6)`` or torch ``(..., 6, H, W)``, uint8 values in 0..15.

    Returns:
        uint8 RGB images, numpy ``(..., H, W, 3)`` or torch ``(..., 3, H, W)``.
    """
    if is_torch(z):
        if z.ndim < 3 or z.shape[-3] != NIBBLE_CHANNELS:
            raise ValueError(f"expected (..., 6, H, W) nibble tensors, got {tuple(z.shape)}")
        out = z[..., 3:, :, :] << 4
        return out.bitwise_or_(z[..., :3, :, :])
    if z.ndim < 3 or z.shape[-1] != NIBBLE_CHANNELS:
        raise ValueError(f"expected (..., H, W, 6) nibble arrays, got {z.shape}")
    out = np.left_shift(z[..., 3:], 4)
    np.bitwise_or(out, z[..., :3], out=out)
    return out


def split_planes(x: Any) -> Any:
    """Split uint8 RGB images into the plane-stacked nibble layout: lower-half image above the upper-half image.

    Args:
        x: numpy ``(..., H, W, 3)`` or torch ``(..., 3, H, W)``, uint8.

    Returns:
        uint8 values in 0..15: numpy ``(..., 2H, W, 3)`` or torch ``(..., 3, 2H, W)``; rows ``0..H-1`` hold
        ``x & 15``, rows ``H..2H-1`` hold ``x >> 4``.
    """
    if is_torch(x):
        import torch

        return torch.cat([x & 15, x >> 4], dim=-2)
    h = x.shape[-3]
    out = np.empty(x.shape[:-3] + (2 * h,) + x.shape[-2:], dtype=np.uint8)
    np.bitwise_and(x, 15, out=out[..., :h, :, :])
    np.right_shift(x, 4, out=out[..., h:, :, :])
    return out


def merge_planes(z: Any) -> Any:
    """Exact inverse of :func:`split_planes`: ``(upper rows << 4) | lower rows``."""
    if is_torch(z):
        h = z.shape[-2] // 2
        return (z[..., h:, :] << 4).bitwise_or_(z[..., :h, :])
    h = z.shape[-3] // 2
    out = np.left_shift(z[..., h:, :, :], 4)
    np.bitwise_or(out, z[..., :h, :, :], out=out)
    return out


def planar_plan(plan: GatherPlan) -> GatherPlan:
    """The plan ``plan`` over the six-channel ``(H, W, 6)`` image, relabelled onto the ``(2H, W, 3)`` stacked image."""
    h, w, c = plan.shape
    if c != NIBBLE_CHANNELS:
        raise ValueError(f"expected a plan over (H, W, 6) nibble images, got shape {plan.shape}")
    # stacked flat index of every six-channel flat index: (r, c, half * 3 + ch) -> (half * H + r, c, ch)
    to_stacked = np.arange(2 * h * w * 3).reshape(2, h, w, 3).transpose(1, 2, 0, 3).ravel()
    perm = np.empty_like(plan.perm)
    perm[to_stacked] = to_stacked[plan.perm]
    mask = np.empty_like(plan.mask)
    mask[to_stacked] = plan.mask
    return GatherPlan(perm, mask, (2 * h, w, 3), mask_value=plan.mask_value)


def tanaka_positions(block_size: int) -> np.ndarray:
    """``(6 M^2,)``: entry ``p`` is where Tanaka's key position ``p`` lies in the flattened ``(M, M, 6)`` block.

    Tanaka's position ``p = half * 3 M^2 + (row * M + col) * 3 + channel`` (``half`` 0 = lower, 1 = upper) is the
    six-channel block position ``(row * M + col) * 6 + half * 3 + channel``.
    """
    m2 = block_size * block_size
    return np.arange(m2 * NIBBLE_CHANNELS).reshape(m2, 2, 3).transpose(1, 0, 2).ravel()


def tanaka_flags(nibble_perm: np.ndarray) -> np.ndarray:
    """Reversal flags as Tanaka's code derives them from the key: ``key > len(key) / 2`` (strictly greater)."""
    return nibble_perm > nibble_perm.shape[-1] / 2


def nibble_plan(nibble_perm: np.ndarray, flags: np.ndarray, block_size: int, height: int, width: int,
                block_perm: np.ndarray | None = None) -> GatherPlan:
    """Compile block scrambling + per-block LE into one gather plan over the six-channel nibble image.

    Step order: output block ``j`` is input block ``block_perm[j]`` (identity when ``None``); then block ``j`` gets
    Tanaka's LE with key ``nibble_perm[j]`` and flags ``flags[j]`` (one shared row broadcasts to every block). In
    Tanaka's key order, LE reverses the flagged positions, gathers (output ``k`` = input ``nibble_perm[k]``) and
    reverses the flagged positions again, so output ``k`` ends up reversed iff ``flags[k] XOR flags[nibble_perm[k]]``.

    Args:
        nibble_perm: int ``(L,)`` or ``(n, L)`` with ``L = 6 M^2``, each row a permutation, in Tanaka's key order.
        flags: bool, the same shape as ``nibble_perm``.
        block_size: M.
        height, width: image size.
        block_perm: optional int ``(n,)`` block permutation.

    Returns:
        A :class:`GatherPlan` over ``(H, W, 6)`` with ``mask_value=15``.
    """
    m = block_size
    n = num_blocks(height, width, m)
    length = NIBBLE_CHANNELS * m * m
    perm = np.broadcast_to(np.asarray(nibble_perm, dtype=np.int64), (n, length))
    flags = np.broadcast_to(np.asarray(flags, dtype=bool), (n, length))
    to_image = tanaka_positions(m)
    from_tanaka = np.argsort(to_image)

    def edit(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if block_perm is not None:
            blocks = blocks[np.asarray(block_perm, dtype=np.int64)]
        tanaka = blocks.reshape(n, length)[:, to_image]  # the block in Tanaka's key order
        gathered = np.take_along_axis(tanaka, perm, axis=1)
        mask = flags ^ np.take_along_axis(flags, perm, axis=1)
        shape = (n, m, m, NIBBLE_CHANNELS)
        return gathered[:, from_tanaka].reshape(shape), mask[:, from_tanaka].reshape(shape)

    return block_plan(height, width, m, edit, channels=NIBBLE_CHANNELS, mask_value=15)


class NibbleScheme(GatherScheme):
    """Base of nibble-split schemes: encrypt = split -> gather plan (mask 15) -> merge; uint8 only.

    Subclasses implement ``_draw`` and ``build_plan`` (usually via :func:`nibble_plan`), a plan over the six-channel
    nibble image; encryption runs it relabelled onto the plane-stacked layout (:func:`planar_plan`).
    """

    def __init__(self, block_size: int) -> None:
        super().__init__(block_size)
        self._planar: dict[str, GatherPlan] = {}

    def planar(self, key: Key) -> GatherPlan:
        """:meth:`plan` relabelled onto the plane-stacked ``(2H, W, 3)`` layout (cached per key)."""
        fp = key.fingerprint
        if fp not in self._planar:
            if len(self._planar) > 8:
                self._planar.clear()
            self._planar[fp] = planar_plan(self.plan(key))
        return self._planar[fp]

    def _run(self, x: Any, key: Key, inverse: bool) -> Any:
        h, w, batched = image_hw(x)
        if str(x.dtype) not in ("uint8", "torch.uint8"):
            raise ValueError(
                f"scheme {self.name!r} splits 8-bit values into 4-bit halves and works on integer pixel values: "
                f"pass uint8 images (0..255), got dtype {x.dtype}"
            )
        self.check_key(key, h, w)
        plan = self.planar(key)
        plan = plan.inverse() if inverse else plan
        y = merge_planes(plan.apply(split_planes(x if batched else x[None])))
        return y if batched else y[0]

    def jpeg_aligned(self, subsampling: Subsampling) -> bool:
        """Never: splitting values into 4-bit halves destroys the pixel correlation JPEG relies on."""
        return False
