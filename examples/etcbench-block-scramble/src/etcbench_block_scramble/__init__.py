"""Block scrambling, with optional negative-positive blocks: an example etcbench scheme plug-in.

Installed beside etcbench (``pip install ./examples/etcbench-block-scramble``), it is the scheme
``block-scramble``: a config's grid can name it, ``etcbench check-scheme block-scramble`` checks it against the
scheme contract, and the report shows it like the built-in schemes. See etcbench's ``docs/extending.md``.

It is EtC (Kurihara et al. 2015) without the rotation/flip and colour steps: output block ``j`` is input block
``block_perm[j]``, inverted (``255 - v``) where ``negpos[j]``. Like every :class:`~etcbench.ciphers.GatherScheme`,
it only draws its key arrays (:meth:`BlockScramble._draw`) and says how one image of indices is encrypted
(:meth:`BlockScramble.build_plan`); etcbench compiles that into one gather and one mask, applied to numpy or torch
batches on any device.
"""

from __future__ import annotations

import numpy as np

from etcbench.ciphers import GatherPlan, GatherScheme, Key
from etcbench.ciphers.blocks import num_blocks
from etcbench.ciphers.plan import block_plan

__all__ = ["BlockScramble"]


class BlockScramble(GatherScheme):
    """Permute the M x M blocks of an image with the key; optionally invert key-selected blocks.

    Args:
        block_size: M; the image sides must be multiples of it (of 8, or 16 for 4:2:0, to stay JPEG-aligned).
        negative_positive: invert the values of about half of the blocks (a fair bit per block).
    """

    def __init__(self, block_size: int, negative_positive: bool = False) -> None:
        super().__init__(block_size)
        self.negative_positive = bool(negative_positive)

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        n = num_blocks(height, width, self.block_size)
        perm_seed, np_seed = seed_seq.spawn(2)  # each step from its own child: switching NP off keeps the order
        negpos = np.random.default_rng(np_seed).random(n) < 0.5
        return {"block_perm": np.random.default_rng(perm_seed).permutation(n),
                "negpos": negpos if self.negative_positive else np.zeros(n, dtype=bool)}

    def build_plan(self, key: Key) -> GatherPlan:
        h, w = key.image_size
        perm, negpos = key.arrays["block_perm"], key.arrays["negpos"].astype(bool)

        def edit(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return blocks[perm], negpos[:, None, None, None]

        return block_plan(h, w, self.block_size, edit)
