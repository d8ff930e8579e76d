"""Grayscale-based EtC: block scrambling of one single-channel YCbCr plane, for grayscale JPEG.

Chuman, Sirichotedumrong, Kiya, "Encryption-Then-Compression Systems Using Grayscale-Based Image Encryption for
JPEG Images", IEEE Transactions on Information Forensics and Security, 2019 (with the lab's GCCE 2018 and APSIPA TSIP
2019 papers). See ``docs/paper.md`` of the suite, section 3.2.

Steps:

1. RGB -> YCbCr with JPEG's full-range BT.601 conversion (:mod:`.ycbcr`);
2. chroma layout, fixed per registered name: ``etc-gray`` (:class:`EtCGray`) downsamples Cb and Cr to 4:2:0 and
   puts Y on top of ``[Cb | Cr]`` (a ``3H/2 x W`` plane); ``etc-gray-444`` (:class:`EtCGray444`) puts
   ``[Y | Cb | Cr]`` side by side (``H x 3W``);
3. cut the plane into M x M blocks (row-major over the whole plane);
4. block scrambling: output block ``j`` is plane block ``block_perm[j]``;
5. rotation and flip of each block, one of the 8 symmetries of a square, ``rot_flip[j]``;
6. negative-positive transformation ``v -> 255 - v`` of every value of blocks with ``negpos[j]``.

There is no colour shuffle: the plane has one channel. Steps 3-6 are the per-block edit of :mod:`.etc`
(:func:`.etc.block_edit`), compiled into one gather plus one mask per key (:mod:`.plan`). Decryption inverts the
gather, splits the plane, upsamples the chroma and converts back to RGB.

Choices the literature leaves open, fixed here:
    * colour conversion: libjpeg's integer fixed point (``jccolor.c`` / ``jdcolor.c``), so numpy and torch agree bit
      for bit; RGB -> YCbCr -> RGB without subsampling is off by at most one level (all 2^24 colours, tested);
    * 4:2:0: the mean of each 2x2 cell, rounded half up; decryption replicates each chroma value over its cell
      (libjpeg's "fancy" upsampling is not reproduced). The colour steps lose information, so ``decrypt(encrypt(x))``
      is the plain colour round trip ``from_plane(to_plane(x))`` (:mod:`.ycbcr`), exactly, not ``x``; the block
      steps on the plane are exactly invertible;
    * layout: Y on top of ``[Cb | Cr]`` (4:2:0) or ``[Y | Cb | Cr]`` (4:4:4); image sides must be multiples of 2M
      (4:2:0) or M (4:4:4), so that every chroma plane splits into whole blocks and no block straddles two planes;
    * block steps as in :mod:`.etc`: rotation/flip code ``c`` is ``rot90`` by ``c % 4`` quarter turns, then a
      left-right flip when ``c >= 4``; ``np_fraction="random"`` (a fair bit per block) or ``"half"``; each step is
      drawn from its own child of the seed (:func:`.etc.draw_block_steps`);
    * key: ``image_size`` is the RGB ``(H, W)``; the key arrays cover the plane's ``(Hp / M) (Wp / M)`` blocks;
    * float input in [0, 1] is clipped and quantised to ``round(255 x)`` first, and the result returned as
      ``uint8 result / 255`` in the input's dtype;
    * JPEG: the plane is meant to be coded as a grayscale JPEG (8x8 blocks, no chroma subsampling of its own), so the
      scheme is aligned iff ``M % 8 == 0``, whatever the subsampling asked for.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from .base import GatherScheme, Subsampling, check_dtype, image_hw
from .blocks import num_blocks
from .etc import block_edit, check_np_fraction, draw_block_steps
from .keys import Key
from .plan import GatherPlan, block_plan, is_torch
from .registry import register_scheme
from .ycbcr import Chroma, from_plane, plane_shape, to_plane

__all__ = ["EtCGray", "EtCGray444"]

_CHROMA_NAMES = {"420": "4:2:0", "444": "4:4:4"}


def _quantise(x: Any) -> tuple[Any, Any]:
    """uint8 images as they are; float images in [0, 1] as ``round(255 x)`` uint8. Returns ``(uint8, float dtype)``."""
    if is_torch(x):
        import torch

        if not x.is_floating_point():
            return x, None
        return (x.clamp(0, 1) * 255).round_().to(torch.uint8), x.dtype
    if not np.issubdtype(x.dtype, np.floating):
        return x, None
    return np.rint(np.clip(x, 0, 1) * x.dtype.type(255)).astype(np.uint8), x.dtype


def _dequantise(y: Any, dtype: Any) -> Any:
    """Undo :func:`_quantise`'s change of dtype: float results are ``uint8 result / 255``."""
    if dtype is None:
        return y
    return y.to(dtype) / 255 if is_torch(y) else y.astype(dtype) / dtype.type(255)


@register_scheme("etc-gray")
class EtCGray(GatherScheme):
    """Grayscale-based EtC with 4:2:0 chroma: one ``3H/2 x W`` plane (Y over ``[Cb | Cr]``); each step can be off.

    Args:
        block_size: block size M (8 for grayscale JPEG); H and W must be multiples of 2M.
        scramble: permute block positions.
        rotate_flip: rotate/flip each block (8 ways).
        negative_positive: invert the values of key-selected blocks.
        np_fraction: ``"random"`` (a fair bit per block) or ``"half"`` (exactly half the blocks).

    Key arrays: ``block_perm``, ``rot_flip`` and ``negpos``, one entry per block of the plane.

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> from etcbench.ciphers.ycbcr import from_plane, to_plane
        >>> scheme = ciphers.create("etc-gray", block_size=8)
        >>> key = scheme.generate_key(seed=1234, image_size=(32, 32))
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> y = scheme.encrypt(x, key)
        >>> y.shape, scheme.encrypted_shape(32, 32)
        ((2, 48, 32, 1), (1, 48, 32))
        >>> bool((scheme.decrypt(y, key) == from_plane(to_plane(x, "420"), "420")).all())
        True
    """

    chroma: ClassVar[Chroma] = "420"
    plane_subsampling: ClassVar[str | None] = "420"
    # not affine: RGB -> YCbCr rounds to uint8 first (a weighted mean of ciphertexts is the ciphertext of the mean
    # only up to rounding); not block_local: a ciphertext block is a block of one Y, Cb or Cr plane, so pasted
    # blocks give Y and chroma of one RGB region from different images (block_local stays False, from Scheme)
    affine: ClassVar[bool] = False

    def __init__(
            self,
            block_size: int,
            scramble: bool = True,
            rotate_flip: bool = True,
            negative_positive: bool = True,
            np_fraction: Literal["random", "half"] = "random",
    ) -> None:
        super().__init__(block_size)
        self.np_fraction = check_np_fraction(np_fraction)
        self.scramble = bool(scramble)
        self.rotate_flip = bool(rotate_flip)
        self.negative_positive = bool(negative_positive)

    # shapes ----------------------------------------------------------------------------------------------------
    def check_image_size(self, height: int, width: int) -> None:
        """Raise ``ValueError`` unless every plane of a ``height x width`` image splits into whole M x M blocks."""
        unit = 2 * self.block_size if self.chroma == "420" else self.block_size
        if height < 1 or width < 1 or height % unit or width % unit:
            why = (f"multiples of 2 x block size = {unit}, so that the half-size Cb and Cr planes split into whole "
                   f"{self.block_size}x{self.block_size} blocks" if self.chroma == "420"
                   else f"multiples of the block size {unit}")
            raise ValueError(f"{self.name} with {_CHROMA_NAMES[self.chroma]} chroma needs image sides that are {why}; "
                             f"got {height}x{width}")

    def plane_shape(self, height: int, width: int) -> tuple[int, int]:
        """``(rows, cols)`` of the plane of one ``height x width`` image."""
        self.check_image_size(height, width)
        return plane_shape(height, width, self.chroma)

    def encrypted_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return (1, *self.plane_shape(height, width))

    def jpeg_aligned(self, subsampling: Subsampling) -> bool:
        """A grayscale JPEG of the plane codes 8x8 blocks: aligned iff ``M % 8 == 0``, whatever ``subsampling``."""
        return self.block_size % 8 == 0

    # keys ------------------------------------------------------------------------------------------------------
    def generate_key(self, seed: int, image_size: tuple[int, int]) -> Key:
        """Draw a key for ``image_size = (H, W)`` RGB images; its arrays cover the blocks of their plane."""
        h, w = (int(s) for s in image_size)
        self.check_image_size(h, w)
        return super().generate_key(seed, (h, w))

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        n = num_blocks(*self.plane_shape(height, width), self.block_size)
        return draw_block_steps(seed_seq.spawn(3), n, self.scramble, self.rotate_flip, self.negative_positive,
                                self.np_fraction)

    def build_plan(self, key: Key) -> GatherPlan:
        rows, cols = self.plane_shape(*key.image_size)
        return block_plan(rows, cols, self.block_size, block_edit(key.arrays, self.block_size), channels=1)

    # encryption ------------------------------------------------------------------------------------------------
    def encrypt(self, x: Any, key: Key) -> Any:
        """RGB images -> encrypted planes.

        Args:
            x: numpy ``(N, H, W, 3)`` / ``(H, W, 3)`` or torch ``(N, 3, H, W)`` / ``(3, H, W)``, uint8 or float in
                [0, 1].

        Returns:
            numpy ``(N, Hp, Wp, 1)`` / ``(Hp, Wp, 1)`` or torch ``(N, 1, Hp, Wp)`` / ``(1, Hp, Wp)`` (same device),
            in the input's dtype, ``(Hp, Wp) = plane_shape(H, W)``.
        """
        h, w, batched = image_hw(x)
        self.check_key(key, h, w)
        u8, dtype = _quantise(x if batched else x[None])
        y = _dequantise(self.plan(key).apply(to_plane(u8, self.chroma)), dtype)
        return y if batched else y[0]

    def decrypt(self, y: Any, key: Key) -> Any:
        """Encrypted planes (layouts of :meth:`encrypt`'s output, uint8 or float) -> RGB images in the input's layout.

        The colour steps are lossy: the result equals ``from_plane(to_plane(x))`` of the original images ``x``.
        """
        self.check_key(key, *key.image_size)
        batched = self._check_planes(y, key)
        u8, dtype = _quantise(y if batched else y[None])
        x = _dequantise(from_plane(self.plan(key).inverse().apply(u8), self.chroma), dtype)
        return x if batched else x[0]

    def public_layout(self, x: np.ndarray) -> np.ndarray:
        """The unencrypted plane of ``(N, H, W, 3)`` uint8 images (colour conversion and layout, no key)."""
        return to_plane(np.asarray(x), self.chroma)

    def from_public_layout(self, y: np.ndarray) -> np.ndarray:
        """``(N, Hp, Wp, 1)`` uint8 planes -> RGB, without the key (no unscrambling)."""
        return from_plane(np.asarray(y), self.chroma)

    def _check_planes(self, y: Any, key: Key) -> bool:
        """Check the layout, size and dtype of encrypted planes for ``key``; return whether they are batched."""
        h, w = key.image_size
        rows, cols = self.plane_shape(h, w)
        torch_input = is_torch(y)
        layout = f"(N, 1, {rows}, {cols}) torch" if torch_input else f"(N, {rows}, {cols}, 1) numpy"
        if y.ndim not in (3, 4):
            raise ValueError(f"expected a batch of encrypted planes with 3 or 4 dimensions, {layout}, "
                             f"got shape {tuple(y.shape)}")
        if tuple(y.shape[-3:]) != ((1, rows, cols) if torch_input else (rows, cols, 1)):
            raise ValueError(f"expected {layout} planes of {rows}x{cols} for key {key.key_id} ({h}x{w} images, "
                             f"chroma {_CHROMA_NAMES[self.chroma]}), got shape {tuple(y.shape)}")
        check_dtype(y, "planes")
        return y.ndim == 4


@register_scheme("etc-gray-444")
class EtCGray444(EtCGray):
    """Grayscale-based EtC without chroma subsampling: one ``H x 3W`` plane ``[Y | Cb | Cr]``.

    Args: as :class:`EtCGray`; H and W must be multiples of M.
    """

    chroma: ClassVar[Chroma] = "444"
    plane_subsampling: ClassVar[str | None] = "444"
