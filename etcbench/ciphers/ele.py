"""ELE: extended learnable encryption, block scrambling plus LE with a different key in every block.

Madono, Tanaka, Onishi, Ogawa, "Block-wise Scrambled Image Recognition Using Adaptation Network", AAAI-20
Workshop on AI for Privacy and Security (arXiv:2001.07761). See ``docs/paper.md`` of the suite, sections 3.3, 3.4
and 3.7; the LE operation itself is described in :mod:`.le`.

Steps, in the written order (the same convention as :mod:`.etc`):

1. cut the image into M x M blocks (row-major numbering; M = 4, 64 blocks on 32x32 in the literature);
2. block scrambling (global): output block ``j`` is input block ``block_perm[j]``;
3. LE of every block with its own key: block ``j`` (the *scrambled*, output position) is nibble-split, reversed at
   ``flags[j]``, shuffled by ``nibble_perm[j]`` (output position ``k`` takes ``nibble_perm[j, k]``), reversed at
   ``flags[j]`` again and merged; net effect: output ``k`` is reversed iff ``flags[j, k] XOR flags[j, perm[j, k]]``.

All of it is one :class:`~.plan.GatherPlan` over the six-channel nibble image (:mod:`.nibbles`),
executed on the bytes themselves as two gathers (:class:`.nibbles.NibblePairPlan`).

Choices the literature leaves open, fixed here:
    * order and indexing: scrambling first, per-block keys indexed by the output position (as :mod:`.etc`).
      Madono's public code runs the per-block LE first, keyed by the *source* position ``i``, then shuffles the
      blocks. The two are the same family of ciphers: Madono's keys ``K_i`` with block order ``block_perm`` equal
      this scheme with ``nibble_perm[j] = K_{block_perm[j]}`` (and the same for ``flags``). To replay Madono's keys,
      reorder their rows by ``block_perm``;
    * key positions in Tanaka's order (:func:`.nibbles.tanaka_positions`), and flags derived from each block's
      key as in Tanaka's code, ``flags[j] = nibble_perm[j] > L / 2`` (``independent_flags=False``, key space
      ``n! (L!)^n``, ``~10^9688.9`` for M = 4 on 32x32); ``independent_flags=True`` draws one fair bit per position
      and block instead;
    * the block permutation, the per-block permutations and the independent flags come from separate children of
      the seed;
    * uint8 input only (the 4-bit split needs integer values); never JPEG-aligned.
"""

from __future__ import annotations

import numpy as np

from .blocks import num_blocks
from .keys import Key
from .le import LE
from .nibbles import nibble_plan, tanaka_flags
from .plan import GatherPlan
from .registry import register_scheme

__all__ = ["ELE"]


@register_scheme("ele")
class ELE(LE):
    """Madono et al.'s extended learnable encryption: block scrambling + per-block LE keys.

    Args:
        block_size: block size M; H and W must be multiples of it (4 on 32x32 in the literature).
        independent_flags: draw the reversal flags as independent fair bits instead of deriving them from each
            block's key (``nibble_perm[j] > L / 2``, Tanaka's code).

    Key arrays: ``block_perm`` int64 ``(n,)``; ``nibble_perm`` int64 ``(n, 6 M^2)`` and ``flags`` bool
    ``(n, 6 M^2)``, row ``j`` for output (scrambled) block ``j``, in Tanaka's key order.

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> import etcbench.ciphers.ele
        >>> scheme = ciphers.create("ele", block_size=4)
        >>> key = scheme.generate_key(seed=1234, image_size=(32, 32))
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> bool((scheme.decrypt(scheme.encrypt(x, key), key) == x).all())
        True
    """

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        n = num_blocks(height, width, self.block_size)
        length = self.key_length
        rng_blocks, rng_perm, rng_flags = (np.random.default_rng(s) for s in seed_seq.spawn(3))
        perms = rng_perm.permuted(np.broadcast_to(np.arange(length), (n, length)), axis=1)
        flags = rng_flags.random((n, length)) < 0.5 if self.independent_flags else tanaka_flags(perms)
        return {"block_perm": rng_blocks.permutation(n), "nibble_perm": perms, "flags": flags}

    def build_plan(self, key: Key) -> GatherPlan:
        h, w = key.image_size
        a = key.arrays
        return nibble_plan(a["nibble_perm"], a["flags"], self.block_size, h, w, block_perm=a["block_perm"])
