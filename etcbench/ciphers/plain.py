"""The identity "scheme": the unencrypted baseline, so that plain images flow through the same stages."""

from __future__ import annotations

import numpy as np

from .base import GatherScheme
from .blocks import check_block_grid
from .keys import Key
from .plan import GatherPlan
from .registry import register_scheme


@register_scheme("plain")
class Plain(GatherScheme):
    """No encryption. Its key has no arrays; encrypt and decrypt return a copy of the input."""

    block_local = True  # nothing moves

    def jpeg_aligned(self, subsampling: str) -> bool:
        return True  # nothing is moved, so nothing can straddle a JPEG coding unit

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        return {}

    def build_plan(self, key: Key) -> GatherPlan:
        h, w = key.image_size
        check_block_grid(h, w, self.block_size)
        size = h * w * 3
        return GatherPlan(np.arange(size, dtype=np.int64), np.zeros(size, dtype=bool), (h, w, 3))
