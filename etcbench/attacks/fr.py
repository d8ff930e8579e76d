"""FR-Attack: feature reconstruction of images encrypted with negative-positive transformation.

Chang, Guo, Chen, Deng et al. (feature reconstruction attack on learnable image encryption, originally MATLAB);
``docs/paper.md`` of the suite, section 10. No training: every value of the encrypted image goes through a fixed
map.

Method (the basic form against NP-based encryption, as the lab's robustness code runs it, the default here): fold
every value, ``v -> 255 - v`` when ``v > 127``, channel by channel, so ``v`` and ``255 - v`` give the same result
and a random negative-positive inversion (per block, per pixel or per value) disappears up to that fold. The output
lies in ``0..127`` and shows edges and shapes (a value close to 0 or 255 maps near 0, mid-grey near 127); it is
scored as it is, so the SSIM is comparable with the lab's.

Two options give the form etcbench used before (``color="mean", stretch=True``):

* ``stretch=True``: ``u -> round(u * 255 / 127)`` after the fold, so 127 maps to 255 (round half to even, no
  clipping needed). SSIM is not gain-invariant, so stretched and lab scores are not comparable.
* ``color="mean"``: the per-pixel mean of the three folded channels in every channel, a channel-symmetric
  statistic that also neutralises colour-channel shuffling (any permutation of a pixel's channels gives the same
  mean); rounded once (in the stretch, or to the nearest integer without it). ``color="keep"`` (the default)
  leaves the channels as they are. One-channel images (grayscale-based EtC) pass through either mode unchanged
  apart from fold and stretch.

What FR gives. Its output is an edge/shape map, not an estimate of the plain colours: the fold maps bright and
dark regions alike to dark values and mid-tones to bright ones. Its SSIM against the plain image is therefore
limited even on unencrypted input; the tests check its invariances (to NP inversion and, in mean mode, to colour
shuffling) exactly. FR does not restore block positions or undo block rotation/flip: the output keeps the
encrypted image's block layout. LE's 16-auxiliary-image variant that recovers the in-block permutation of a shared
key is not implemented.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import Attack, Reconstruction, register_attack

__all__ = ["FeatureReconstruction", "COLOR_MODES", "fold"]

COLOR_MODES = ("keep", "mean")
_STRETCH = 255.0 / 127.0


def fold(x: np.ndarray) -> np.ndarray:
    """The NP fold ``v -> 255 - v`` for ``v > 127``, i.e. ``min(v, 255 - v)``; uint8 in, uint8 in ``0..127`` out."""
    return np.minimum(x, 255 - x)


@register_attack("fr")
class FeatureReconstruction(Attack):
    """FR-Attack: fold away negative-positive inversion channel by channel (the lab's form); optionally average
    the channels and stretch to 0..255.

    Args:
        block_size: the scheme's block size (recorded; FR works value by value and ignores it).
        color: ``"keep"`` (fold each channel separately, the lab's) or ``"mean"`` (per-pixel mean of the folded
            channels in every channel, neutralises colour shuffling).
        stretch: scale the folded values ``0..127`` to ``0..255`` (not the lab's).

    Examples:
        >>> import numpy as np
        >>> import etcbench.attacks.fr
        >>> from etcbench import attacks
        >>> x = np.array([[[[0, 127, 128]]]], dtype=np.uint8)
        >>> attacks.create("fr", block_size=1).reconstruct(x).images.ravel().tolist()
        [0, 127, 127]
        >>> attacks.create("fr", block_size=1, stretch=True).reconstruct(x).images.ravel().tolist()
        [0, 255, 255]
    """

    def __init__(self, block_size: int, color: Literal["keep", "mean"] = "keep", stretch: bool = False) -> None:
        super().__init__(block_size)
        if color not in COLOR_MODES:
            raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
        if not isinstance(stretch, bool):
            raise ValueError(f"stretch must be true or false, got {stretch!r}")
        self.color = color
        self.stretch = stretch

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        """Fold, (average,) (stretch); ``(N, H, W, C)`` uint8 in, same shape uint8 out."""
        encrypted = np.asarray(encrypted)
        if encrypted.dtype != np.uint8 or encrypted.ndim != 4:
            raise ValueError(f"FR needs (N, H, W, C) uint8 images, got {encrypted.dtype} of shape {encrypted.shape}")
        folded = fold(encrypted)
        if self.color == "keep" and not self.stretch:
            return Reconstruction(images=folded)
        gain = _STRETCH if self.stretch else 1.0
        if self.color == "mean":
            # exact integer mean: sum in int32, then one rounding
            total = folded.sum(axis=-1, dtype=np.int32, keepdims=True)
            out = np.broadcast_to(np.rint(total * (gain / encrypted.shape[-1])), encrypted.shape)
        else:
            out = np.rint(folded * gain)
        return Reconstruction(images=np.clip(out, 0, 255).astype(np.uint8))
