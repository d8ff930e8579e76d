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
(``v XOR 15 == 15 - v`` on 4-bit values): that plan is the *definition* of the cipher (split -> gather+mask ->
merge; decryption uses the inverse plan). Only uint8 images are accepted.

Execution (:class:`NibblePairPlan`): materialising the nibble image costs more than the gather itself, so
:class:`NibbleScheme` never builds it. Every output byte is ``lower | upper << 4`` where each half is one nibble of
one *source byte*, so the six-channel plan is rewritten per output byte ``j`` as

    ``y[j] = (((x[a[j]] >> sa[j]) & 15) | ((x[b[j]] << sb[j]) & 0xF0)) ^ m[j]``

(``sa[j]`` is 4 if the lower half comes from an upper half, ``sb[j]`` is 4 if the upper half comes from a lower
half, ``m[j]`` is the byte mask): two gathers over the original byte array and five element-wise operations.
numpy's ``take`` costs nearly as much per 1-byte element as per 8-byte one (a byte gather runs at a
sixth of copy speed or less), so on numpy up to 16 images are packed into
the bytes of 8-byte words, position by position (a transposition), gathered as words, combined with word-wide
operations and transposed back; chunks of 16 images run on the thread pool of :mod:`.plan`. Torch runs the
formula directly, one gather per half, on any device. Both are tested to equal the six-channel plan.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import GatherScheme, Subsampling, image_hw
from .blocks import num_blocks
from .keys import Key
from .plan import GatherPlan, block_plan, is_torch, map_chunks

__all__ = [
    "NIBBLE_CHANNELS",
    "NibbleScheme",
    "NibblePairPlan",
    "merge_nibbles",
    "nibble_plan",
    "split_nibbles",
    "tanaka_flags",
    "tanaka_positions",
]

NIBBLE_CHANNELS = 6
_GROUP = 16  # images per numpy chunk: two planes of 8-byte words (one byte per image), one thread-pool task
_LO = 0x0F0F0F0F0F0F0F0F  # lower halves of every byte of a word
_SCRATCH = threading.local()  # per-thread work buffers, reused so that chunks do not fault in fresh pages


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


@dataclass(frozen=True, eq=False)
class NibblePairPlan:
    """A nibble :class:`~.plan.GatherPlan` executed on bytes: two gathers over the original image, no nibble image.

    Output byte ``j`` (flat ``(H, W, 3)`` order) is ``(((x[a[j]] >> sa[j]) & 15) | ((x[b[j]] << sb[j]) & 0xF0))
    ^ m[j]``: its lower half is a nibble of source byte ``a[j]`` (the upper one when ``sa[j] == 4``), its upper
    half a nibble of source byte ``b[j]`` (the lower one when ``sb[j] == 4``), and ``m[j]`` inverts the halves the
    nibble plan masks. Build it with :meth:`from_nibble_plan`; results equal ``merge(plan.apply(split(x)))``.

    Args:
        a, b: int64 ``(L,)`` source bytes of the lower and upper halves.
        sa, sb: uint8 ``(L,)`` shifts, 0 or 4.
        m: uint8 ``(L,)`` XOR mask (``0x0F`` / ``0xF0`` bits for a reversed lower / upper half).
        shape: ``(H, W, 3)``.
        nibble: the six-channel plan it executes (used for :meth:`inverse`).
    """

    a: np.ndarray
    b: np.ndarray
    sa: np.ndarray
    sb: np.ndarray
    m: np.ndarray
    shape: tuple[int, int, int]
    nibble: GatherPlan = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_nibble_plan(cls, plan: GatherPlan) -> NibblePairPlan:
        """Rewrite a ``(H, W, 6)``, ``mask_value=15`` plan (the :func:`split_nibbles` layout) per output byte."""
        h, w, c = plan.shape
        if c != NIBBLE_CHANNELS or plan.mask_value != 15:
            raise ValueError(f"expected a plan over (H, W, 6) nibble images with mask 15, got shape {plan.shape}, "
                             f"mask {plan.mask_value}")
        j = np.arange(h * w * 3)
        lower = j // 3 * NIBBLE_CHANNELS + j % 3  # six-channel positions of byte j's halves
        upper = lower + 3

        def source(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            s = plan.perm[p]  # six-channel source position -> (byte, half): (r, c, half * 3 + ch) -> (r, c, ch)
            pixel, k = np.divmod(s, NIBBLE_CHANNELS)
            return pixel * 3 + k % 3, (k >= 3)

        a, a_upper = source(lower)
        b, b_upper = source(upper)
        u8 = np.uint8
        return cls(a, b, (4 * a_upper).astype(u8), (4 * ~b_upper).astype(u8),
                   (15 * plan.mask[lower] | 0xF0 * plan.mask[upper]).astype(u8), (h, w, 3), plan)

    def inverse(self) -> NibblePairPlan:
        if "inverse" not in self._cache:
            self._cache["inverse"] = NibblePairPlan.from_nibble_plan(self.nibble.inverse())
        return self._cache["inverse"]

    def apply(self, x: Any) -> Any:
        """Apply to uint8 ``(N, H, W, 3)`` numpy or ``(N, 3, H, W)`` torch images (a new array)."""
        return self._apply_torch(x) if is_torch(x) else self._apply_numpy(x)

    # numpy: packed words -----------------------------------------------------------------------------------------
    def _words(self, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``sa``, ``sb`` and ``m`` (byte replicated) as unsigned words of ``width`` bytes (cached)."""
        key = ("words", width)
        if key not in self._cache:
            dtype = np.dtype(f"u{width}")
            ones = dtype.type(int.from_bytes(b"\x01" * width, "little"))
            self._cache[key] = (self.sa.astype(dtype), self.sb.astype(dtype), self.m.astype(dtype) * ones)
        return self._cache[key]

    def _apply_numpy(self, x: np.ndarray) -> np.ndarray:
        return map_chunks(x, _GROUP, self._chunk_numpy)

    def _chunk_numpy(self, src: np.ndarray, dst: np.ndarray) -> None:
        """Encrypt ``r <= 16`` flat images: pack image ``i`` into byte ``i % w`` of plane ``i // w``'s words."""
        r, length = src.shape
        k = 1 << (r - 1).bit_length()  # a power of two >= r: 1, 2, 4, 8 or 16 images
        width = min(k, 8)
        planes = k // width
        if k != r:
            padded = np.zeros((k, length), np.uint8)
            padded[:r] = src
            src = padded
        packed, lo, hi = _scratch((planes, length, width))
        np.stack(src.reshape(planes, width, length).swapaxes(0, 1), axis=2, out=packed)  # the transposition
        np.take(packed, self.a, axis=1, out=lo, mode="clip")  # indices are valid by construction
        np.take(packed, self.b, axis=1, out=hi, mode="clip")
        dtype = np.dtype(f"u{width}")
        lw, hw = lo.view(dtype)[..., 0], hi.view(dtype)[..., 0]
        sa, sb, m = self._words(width)
        nib = dtype.type(_LO & (1 << 8 * width) - 1)
        np.right_shift(lw, sa, out=lw)
        np.bitwise_and(lw, nib, out=lw)
        np.left_shift(hw, sb, out=hw)
        np.bitwise_and(hw, ~nib, out=hw)
        np.bitwise_or(lw, hw, out=lw)
        np.bitwise_xor(lw, m, out=lw)
        unpacked = lo.transpose(0, 2, 1)  # (planes, width, L)
        if k == r:
            np.copyto(dst.reshape(planes, width, length), unpacked)
        else:
            np.copyto(dst, unpacked.reshape(k, length)[:r])

    # torch: channels first ---------------------------------------------------------------------------------------
    def _torch_arrays(self, device: Any) -> tuple[Any, ...]:
        """``a``, ``b``, ``sa``, ``sb``, ``m`` re-indexed for ``(3, H, W)`` flattening, on ``device`` (cached)."""
        key = ("torch", str(device))
        if key not in self._cache:
            import torch

            h, w, c = self.shape
            to_chw = np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()  # CHW position of HWC j
            arrays = []
            for v, is_index in ((self.a, True), (self.b, True), (self.sa, False), (self.sb, False), (self.m, False)):
                chw = np.empty_like(v)
                chw[to_chw] = to_chw[v] if is_index else v
                arrays.append(torch.from_numpy(chw).to(device))
            self._cache[key] = tuple(arrays)
        return self._cache[key]

    def _apply_torch(self, x: Any) -> Any:
        import torch

        a, b, sa, sb, m = self._torch_arrays(x.device)
        n = x.shape[0]
        flat = x.reshape(n, -1)
        lo = torch.gather(flat, 1, a.expand(n, -1))
        hi = torch.gather(flat, 1, b.expand(n, -1))
        lo >>= sa
        lo &= 0x0F
        hi <<= sb
        hi &= 0xF0
        return lo.bitwise_or_(hi).bitwise_xor_(m).reshape(x.shape)


def _scratch(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three uint8 work buffers of ``shape`` owned by the calling thread (reallocated when the shape changes)."""
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None or bufs[0].shape != shape:
        bufs = tuple(np.empty(shape, np.uint8) for _ in range(3))
        _SCRATCH.bufs = bufs
    return bufs


class NibbleScheme(GatherScheme):
    """Base of nibble-split schemes: encrypt = split -> gather plan (mask 15) -> merge; uint8 only.

    Subclasses implement ``_draw`` and ``build_plan`` (usually via :func:`nibble_plan`), a plan over the six-channel
    nibble image; encryption executes it on bytes (:class:`NibblePairPlan`), without building the nibble image.

    Not ``affine``: a byte is assembled from 4-bit halves of other bytes, and halves of a weighted mean of two
    images are not the weighted mean of their halves (carries).
    """

    affine = False

    def __init__(self, block_size: int) -> None:
        super().__init__(block_size)
        self._pairs: dict[str, NibblePairPlan] = {}

    def pair_plan(self, key: Key) -> NibblePairPlan:
        """:meth:`plan` rewritten per output byte (cached per key)."""
        fp = key.fingerprint
        if fp not in self._pairs:
            if len(self._pairs) > 8:
                self._pairs.clear()
            self._pairs[fp] = NibblePairPlan.from_nibble_plan(self.plan(key))
        return self._pairs[fp]

    def _run(self, x: Any, key: Key, inverse: bool) -> Any:
        h, w, batched = image_hw(x)
        if str(x.dtype) not in ("uint8", "torch.uint8"):
            raise ValueError(
                f"scheme {self.name!r} splits 8-bit values into 4-bit halves and works on integer pixel values: "
                f"pass uint8 images (0..255), got dtype {x.dtype}"
            )
        self.check_key(key, h, w)
        plan = self.pair_plan(key)
        plan = plan.inverse() if inverse else plan
        y = plan.apply(x if batched else x[None])
        return y if batched else y[0]

    def jpeg_aligned(self, subsampling: Subsampling) -> bool:
        """Never: splitting values into 4-bit halves destroys the pixel correlation JPEG relies on."""
        return False
