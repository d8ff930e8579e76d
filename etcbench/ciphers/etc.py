"""Colour block-scrambling EtC (encryption-then-compression).

Kurihara, Kikuchi, Imaizumi, Shiota, Kiya, "An encryption-then-compression system for JPEG/Motion JPEG
standard", IEICE Trans. 2015; used with isotropic networks by MaungMaung & Kiya, "Privacy-Preserving Image
Classification Using Isotropic Network", IEEE MultiMedia 2022 (https://arxiv.org/abs/2204.07707).

Steps, in the written order of the EtC literature (see ``docs/paper.md`` of the suite, section 3.1):

1. cut the image into M x M blocks (row-major numbering);
2. block scrambling: output block ``j`` is input block ``block_perm[j]``;
3. rotation and flip of each block, one of the 8 symmetries of a square, ``rot_flip[j]``;
4. negative-positive transformation ``p -> 255 - p`` of every value of blocks with ``negpos[j]``;
5. colour-channel permutation of each block, one of 6, ``channel_perm[j]``.

Per-block parameters of steps 3-5 are indexed by the *scrambled* (output) position ``j``. Decryption undoes
the steps in reverse order. All of it compiles into one gather plus one mask per key (:mod:`.plan`).

Choices the literature leaves open, fixed here:
    * rotation/flip: code ``c`` in 0..7 means ``rot90`` by ``c % 4`` quarter turns (counter-clockwise), then
      a left-right flip when ``c >= 4``: the 8 distinct symmetries, drawn uniformly (Madono's code draws
      12 codes of which only 8 differ);
    * negative-positive: ``np_fraction="random"`` gives each block an independent fair bit;
      ``"half"`` inverts exactly half of the blocks (rounded down), as Madono's public code does;
    * colour permutation: code ``c`` selects ``itertools.permutations((0, 1, 2))[c]``; output channel ``k`` is
      input channel ``perm[k]``, read from an unmodified copy (a true permutation);
    * ``legacy_channel_bug=True`` reproduces the in-place channel overwrite of Madono's public code
      (paper.md section 3.8) for replication only: five of six codes duplicate a channel, so the scheme is
      lossy and :meth:`decrypt` raises.

Each step is drawn from its own child of the seed, so switching one step off leaves the others unchanged.

The per-block edit (:func:`block_edit`) and the draw of steps 2-4 (:func:`draw_block_steps`) are shared with
grayscale-based EtC (:mod:`.etc_gray`), which applies them to one-channel YCbCr planes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import permutations
from typing import Literal

import numpy as np

from .base import GatherScheme
from .blocks import num_blocks
from .keys import Key
from .plan import BlockEdit, GatherPlan, block_plan
from .registry import register_scheme

__all__ = ["EtC", "CHANNEL_PERMS", "LEGACY_CHANNEL_MAPS", "block_edit", "check_np_fraction", "dihedral_maps",
           "draw_block_steps"]

CHANNEL_PERMS = np.array(list(permutations((0, 1, 2))), dtype=np.int64)
# effective output (R, G, B) <- input channel maps of the in-place bug, one per channel code (paper.md 3.8)
LEGACY_CHANNEL_MAPS = np.array([(0, 1, 2), (1, 1, 2), (2, 1, 2), (0, 2, 2), (2, 2, 2), (1, 2, 1)], dtype=np.int64)


def dihedral_maps(block_size: int) -> np.ndarray:
    """``(8, M*M)`` in-block source indices: row ``c`` is the flattened block after symmetry code ``c``."""
    base = np.arange(block_size * block_size).reshape(block_size, block_size)
    maps = [np.rot90(base, k=c % 4) for c in range(4)]
    maps += [np.fliplr(m) for m in maps]
    return np.stack([m.ravel() for m in maps])


def check_np_fraction(np_fraction: str) -> str:
    """``np_fraction`` if it is ``"random"`` or ``"half"``, else ``ValueError``."""
    if np_fraction not in ("random", "half"):
        raise ValueError(f"np_fraction must be 'random' or 'half', got {np_fraction!r}")
    return np_fraction


def draw_block_steps(children: Sequence[np.random.SeedSequence], n: int, scramble: bool, rotate_flip: bool,
                     negative_positive: bool, np_fraction: Literal["random", "half"]) -> dict[str, np.ndarray]:
    """Draw the key arrays of steps 2-4 for ``n`` blocks, each step from its own child of the seed.

    Args:
        children: three child seeds: block permutation, rotation/flip codes, NP flags.
        n: number of blocks.
        scramble, rotate_flip, negative_positive: whether each step is on (off: identity arrays).
        np_fraction: ``"random"`` (a fair bit per block) or ``"half"`` (exactly ``n // 2`` flagged blocks).

    Returns:
        ``block_perm`` (a permutation of ``n``), ``rot_flip`` (codes 0..7) and ``negpos`` (bool), each ``(n,)``.
    """
    rng_perm, rng_rot, rng_np = (np.random.default_rng(s) for s in children)
    negpos = rng_np.permutation(np.arange(n) < n // 2) if np_fraction == "half" else rng_np.random(n) < 0.5
    return {
        "block_perm": rng_perm.permutation(n) if scramble else np.arange(n),
        "rot_flip": rng_rot.integers(0, 8, n) if rotate_flip else np.zeros(n, dtype=np.int64),
        "negpos": negpos if negative_positive else np.zeros(n, dtype=bool),
    }


def block_edit(arrays: Mapping[str, np.ndarray], block_size: int, channel_table: np.ndarray | None = None) -> BlockEdit:
    """The per-block edit of EtC, for :func:`.plan.block_plan`: scramble, rotate/flip, permute channels; NP mask.

    Output block ``j`` is input block ``arrays["block_perm"][j]`` turned by symmetry ``arrays["rot_flip"][j]``
    (:func:`dihedral_maps`); with ``channel_table``, its output channel ``k`` then takes channel
    ``channel_table[arrays["channel_perm"][j], k]``. The mask flags every value of the blocks with
    ``arrays["negpos"]``. Without ``channel_table`` it works for any number of channels (one for grayscale planes).

    Args:
        arrays: the key arrays, indexed by output block.
        block_size: M.
        channel_table: ``(codes, C)`` channel maps, or ``None`` for no channel step.
    """
    m = block_size

    def edit(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, c = blocks.shape[0], blocks.shape[-1]
        blocks = blocks[arrays["block_perm"]].reshape(n, m * m, c)
        blocks = np.take_along_axis(blocks, dihedral_maps(m)[arrays["rot_flip"]][:, :, None], axis=1)
        if channel_table is not None:
            blocks = np.take_along_axis(blocks, channel_table[arrays["channel_perm"]][:, None, :], axis=2)
        return blocks.reshape(n, m, m, c), arrays["negpos"].astype(bool)[:, None, None, None]

    return edit


@register_scheme("etc")
class EtC(GatherScheme):
    """Colour block-scrambling EtC; each step can be switched off.

    Args:
        block_size: block size M; H and W must be multiples of it (8 for JPEG 4:4:4, 16 for 4:2:0).
        scramble: permute block positions.
        rotate_flip: rotate/flip each block (8 ways).
        negative_positive: invert the values of key-selected blocks.
        color_shuffle: permute the colour channels of each block (6 ways).
        np_fraction: ``"random"`` (a fair bit per block) or ``"half"`` (exactly half the blocks).
        legacy_channel_bug: reproduce the lossy in-place channel shuffle of Madono's code (not invertible).

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> scheme = ciphers.create("etc", block_size=8)
        >>> key = scheme.generate_key(seed=1234, image_size=(32, 32))
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> y = scheme.encrypt(x, key)
        >>> bool((scheme.decrypt(y, key) == x).all()), bool((scheme.encrypt(x, key) == y).all())
        (True, True)
    """

    block_local = True  # every step moves or inverts values within one block, or moves a whole block

    def __init__(
            self,
            block_size: int,
            scramble: bool = True,
            rotate_flip: bool = True,
            negative_positive: bool = True,
            color_shuffle: bool = True,
            np_fraction: Literal["random", "half"] = "random",
            legacy_channel_bug: bool = False,
    ) -> None:
        super().__init__(block_size)
        self.np_fraction = check_np_fraction(np_fraction)
        self.scramble = bool(scramble)
        self.rotate_flip = bool(rotate_flip)
        self.negative_positive = bool(negative_positive)
        self.color_shuffle = bool(color_shuffle)
        self.legacy_channel_bug = bool(legacy_channel_bug)

    @property
    def invertible(self) -> bool:  # type: ignore[override]
        return not (self.legacy_channel_bug and self.color_shuffle)

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        n = num_blocks(height, width, self.block_size)
        *children, child_ch = seed_seq.spawn(4)
        arrays = draw_block_steps(children, n, self.scramble, self.rotate_flip, self.negative_positive,
                                  self.np_fraction)
        rng_ch = np.random.default_rng(child_ch)
        arrays["channel_perm"] = rng_ch.integers(0, 6, n) if self.color_shuffle else np.zeros(n, dtype=np.int64)
        return arrays

    def build_plan(self, key: Key) -> GatherPlan:
        h, w = key.image_size
        channel_table = LEGACY_CHANNEL_MAPS if self.legacy_channel_bug else CHANNEL_PERMS
        return block_plan(h, w, self.block_size, block_edit(key.arrays, self.block_size, channel_table))
