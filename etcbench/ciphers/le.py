"""LE: learnable image encryption with one key shared by every block.

Tanaka, "Learnable Image Encryption", IEEE ICCE-TW 2018; reference code github.com/mastnk/ICCE-TW2018
(``BlockScramble.py``). See ``docs/paper.md`` of the suite, sections 3.3 and 3.7.

Steps:

1. cut the image into M x M blocks (M = 4 on 32x32 CIFAR-10 in the literature);
2. split every 8-bit value into its lower and upper 4-bit halves: a block holds ``L = 6 M^2`` four-bit values;
3. reverse (``v -> 15 - v``) the values at key-selected positions;
4. shuffle the ``L`` values of the block with the key: output position ``k`` takes input position ``nibble_perm[k]``;
5. reverse the values at the same key-selected positions again;
6. merge pairs of halves back into bytes.

The key (``nibble_perm`` and ``flags``) is the same for every block and every image (shared-block scope). Steps
3-5 compose into one gather and one mask: output ``k`` is reversed iff ``flags[k] XOR flags[nibble_perm[k]]``
(reversed once at the source or once at the destination, never twice). All of it is one
:class:`~.plan.GatherPlan` over the six-channel nibble image (:mod:`.nibbles`),
executed on the bytes themselves as two gathers (:class:`.nibbles.NibblePairPlan`).

Choices the literature leaves open, fixed here:
    * key positions follow Tanaka's code: the ``M x M x 3`` block flattened in (row, column, channel) order, all
      lower halves first, then all upper halves (:func:`.nibbles.tanaka_positions`), so ``nibble_perm`` has the
      form of Tanaka's ``key.pkl``;
    * flags (default, ``independent_flags=False``): derived from the key as Tanaka's code does,
      ``flags = nibble_perm > L / 2`` (strictly greater: ``L / 2 - 1`` flagged positions, 47 of 96 for M = 4); the
      key space is ``L!`` (``96! ~ 10^150`` for M = 4);
    * ``independent_flags=True``: one fair bit per position, drawn independently of the permutation (the reading
      of the paper's text; key space ``L! 2^L``, ``~10^178.9`` for M = 4); the reversal is still applied before and
      after the shuffle, so the mask rule above is unchanged;
    * the permutation and the independent flags come from separate children of the seed;
    * uint8 input only (the 4-bit split needs integer values); never JPEG-aligned.
"""

from __future__ import annotations

import numpy as np

from .keys import Key
from .nibbles import NIBBLE_CHANNELS, NibbleScheme, nibble_plan, tanaka_flags
from .plan import GatherPlan
from .registry import register_scheme

__all__ = ["LE"]


@register_scheme("le")
class LE(NibbleScheme):
    """Tanaka's learnable encryption: one nibble permutation + reversal key shared by all blocks.

    Args:
        block_size: block size M; H and W must be multiples of it (4 on 32x32 in the literature).
        independent_flags: draw the reversal flags as independent fair bits instead of deriving them from the key
            (``nibble_perm > L / 2``, Tanaka's code).

    Key arrays: ``nibble_perm`` int64 ``(6 M^2,)`` and ``flags`` bool ``(6 M^2,)``, in Tanaka's key order.

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> import etcbench.ciphers.le
        >>> scheme = ciphers.create("le", block_size=4)
        >>> key = scheme.generate_key(seed=1234, image_size=(32, 32))
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> bool((scheme.decrypt(scheme.encrypt(x, key), key) == x).all())
        True
    """

    block_local = True  # the nibble shuffle stays inside a block (ELE adds whole-block scrambling)

    def __init__(self, block_size: int, independent_flags: bool = False) -> None:
        super().__init__(block_size)
        self.independent_flags = bool(independent_flags)

    @property
    def key_length(self) -> int:
        """``L = 6 M^2``, the number of 4-bit values in a block."""
        return NIBBLE_CHANNELS * self.block_size**2

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        rng_perm, rng_flags = (np.random.default_rng(s) for s in seed_seq.spawn(2))
        perm = rng_perm.permutation(self.key_length)
        flags = rng_flags.random(self.key_length) < 0.5 if self.independent_flags else tanaka_flags(perm)
        return {"nibble_perm": perm, "flags": flags}

    def build_plan(self, key: Key) -> GatherPlan:
        h, w = key.image_size
        return nibble_plan(key.arrays["nibble_perm"], key.arrays["flags"], self.block_size, h, w)
