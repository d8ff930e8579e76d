"""PE: pixel-based encryption.

Sirichotedumrong, Kinoshita, Kiya, "Pixel-Based Image Encryption Without Key Management for
Privacy-Preserving Deep Neural Networks", IEEE Access 7, 2019. See
``docs/paper.md`` of the suite, section 3.5.

Steps, in the written order of the paper:

1. work pixel by pixel (no blocks);
2. negative-positive: value ``c`` of pixel ``(r, col)`` becomes ``255 - v`` where ``negpos[r, col, c]``;
3. colour shuffle: output channel ``k`` of pixel ``(r, col)`` is channel ``perm[k]`` of step 2's result, with
   ``perm = CHANNEL_PERMS[channel_perm[r, col]]`` (one of the 6 permutations of R, G, B).

Everything compiles into one gather plus one mask per key (:mod:`.plan`).

Choices the literature leaves open, fixed here:
    * key scope: the original scheme is "without key management" and draws a new key for every image. Here
      :meth:`PE.generate_key` draws ONE key (per-pixel arrays for the whole ``H x W`` image), so encryption is a
      deterministic gather and every image encrypted with that key shares it. The per-image-key variant of the
      paper is obtained by generating one key per image (different seeds) and encrypting each image with its own
      key;
    * NP bits index the channels *before* the colour shuffle (the written order NP, then shuffle); each of the
      ``3 * H * W`` bits is an independent fair bit;
    * colour permutation code ``c`` selects ``itertools.permutations((0, 1, 2))[c]``, drawn uniformly per pixel,
      read from an unmodified copy (a true permutation, as in :mod:`.etc`);
    * ``color_shuffle=False`` gives the simplified PE of the lab's attack code (random element-wise inversion
      only): ``y = where(negpos, 255 - x, x)``;
    * NP bits and colour permutations come from separate children of the seed, so switching the colour shuffle
      off leaves the NP bits unchanged;
    * ``block_size`` is accepted (every scheme has one) and stored in the key, but PE has no blocks: it does not
      constrain the image size and does not affect encryption;
    * never JPEG-aligned: per-pixel NP and colour shuffling destroy the local correlation JPEG relies on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import GatherScheme, Subsampling
from .etc import CHANNEL_PERMS
from .keys import Key
from .plan import GatherPlan
from .registry import register_scheme

__all__ = ["PE"]


@register_scheme("pe")
class PE(GatherScheme):
    """Pixel-based encryption: per-pixel NP bits for each channel and a per-pixel colour permutation.

    Args:
        block_size: stored in the key for uniformity, otherwise unused (any image size is accepted).
        color_shuffle: permute the three colour values of every pixel; ``False`` leaves NP only.

    Key arrays: ``negpos`` ``(H, W, 3)`` bool and ``channel_perm`` ``(H, W)`` codes in 0..5.

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> import etcbench.ciphers.pe
        >>> scheme = ciphers.create("pe", block_size=16)
        >>> key = scheme.generate_key(seed=1234, image_size=(30, 20))
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 30, 20, 3), dtype=np.uint8)
        >>> bool((scheme.decrypt(scheme.encrypt(x, key), key) == x).all())
        True
    """

    def __init__(self, block_size: int, color_shuffle: bool = True) -> None:
        super().__init__(block_size)
        self.color_shuffle = bool(color_shuffle)

    @property
    def options(self) -> dict[str, Any]:
        return {"color_shuffle": self.color_shuffle}

    def jpeg_aligned(self, subsampling: Subsampling) -> bool:
        return False

    def generate_key(self, seed: int, image_size: tuple[int, int]) -> Key:
        """Draw one key for ``image_size`` images; unlike block schemes, any positive size is accepted."""
        h, w = (int(s) for s in image_size)
        if h < 1 or w < 1:
            raise ValueError(f"image size must be positive, got {h}x{w}")
        ss = np.random.SeedSequence(int(seed))
        return Key(self.name, self.block_size, (h, w), dict(self.options), self._draw(ss, h, w))

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        rng_np, rng_ch = (np.random.default_rng(s) for s in seed_seq.spawn(2))
        shape = (height, width)
        return {
            "negpos": rng_np.random((*shape, 3)) < 0.5,
            "channel_perm": rng_ch.integers(0, 6, shape) if self.color_shuffle else np.zeros(shape, dtype=np.int64),
        }

    def build_plan(self, key: Key) -> GatherPlan:
        h, w = key.image_size
        a = key.arrays
        index_image = np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3)
        channels = CHANNEL_PERMS[a["channel_perm"]]  # (H, W, 3): output channel k <- channel channels[..., k]
        perm = np.take_along_axis(index_image, channels, axis=2).ravel()
        # NP happens before the shuffle, so an output value is inverted when its source channel's bit is set
        mask = np.take_along_axis(a["negpos"].astype(bool), channels, axis=2).ravel()
        return GatherPlan(np.ascontiguousarray(perm), np.ascontiguousarray(mask), (h, w, 3))
