"""FR-Attack: feature reconstruction of images encrypted with negative-positive transformation.

Chang, Guo, Chen, Deng et al. (feature reconstruction attack on learnable image encryption, originally MATLAB);
``docs/paper.md`` of the suite, section 10. No training: every value of the encrypted image goes through a fixed
map.

Method (the basic form against NP-based encryption):

1. fold every value: ``v -> 255 - v`` when ``v > 127``, so ``v`` and ``255 - v`` give the same result and a random
   negative-positive inversion (per block, per pixel or per value) disappears up to that fold; the output lies
   in ``0..127`` and shows edges and shapes (a value close to 0 or 255 maps near 0, mid-grey maps near 127);
2. stretch to the full range: ``u -> round(u * 255 / 127)``, so 127 maps to 255 (display and scoring in 0..255);
3. with ``color="mean"`` replace the three folded channels by their per-pixel mean before the stretch, a
   channel-symmetric statistic that also neutralises colour-channel shuffling (any permutation of a pixel's
   channels gives the same mean); ``color="keep"`` leaves the channels as they are.

What FR gives. Its output is an edge/shape map, not an estimate of the plain colours: the fold maps bright and
dark regions alike to dark values and mid-tones to bright ones. Its SSIM against the plain image is therefore
limited even on unencrypted input; the tests check its invariances (to NP inversion and to colour shuffling)
exactly instead. FR does not restore block positions or undo block rotation/flip: the output keeps the encrypted
image's block layout.

Choices the literature leaves open, fixed here:
    * fold threshold: ``v > 127`` folds (127 stays, 128 becomes 127), so the output of step 1 is ``min(v, 255 - v)``;
    * stretch: ``* 255 / 127`` with round half to even and no clipping needed (the result lies in 0..255);
    * colour: the per-pixel mean of the three folded channels (``"mean"``, the default) rather than the sorted
      channels; it is rounded only once, in the stretch; one-channel images (grayscale-based EtC) pass through
      either mode unchanged apart from fold and stretch;
    * LE's 16-auxiliary-image variant that recovers the in-block permutation of a shared key is not implemented.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .base import Attack, Reconstruction, register_attack

__all__ = ["FeatureReconstruction", "COLOR_MODES", "fold"]

COLOR_MODES = ("mean", "keep")
_STRETCH = 255.0 / 127.0


def fold(x: np.ndarray) -> np.ndarray:
    """The NP fold ``v -> 255 - v`` for ``v > 127``, i.e. ``min(v, 255 - v)``; uint8 in, uint8 in ``0..127`` out."""
    return np.minimum(x, 255 - x)


@register_attack("fr")
class FeatureReconstruction(Attack):
    """FR-Attack: fold away negative-positive inversion, optionally average the channels, stretch to 0..255.

    Args:
        block_size: the scheme's block size (recorded; FR works value by value and ignores it).
        color: ``"mean"`` (per-pixel mean of the folded channels in every channel, neutralises colour shuffling)
            or ``"keep"`` (fold each channel separately).

    Examples:
        >>> import numpy as np
        >>> import etcbench.attacks.fr
        >>> from etcbench import attacks
        >>> x = np.array([[[[0, 127, 128]]]], dtype=np.uint8)
        >>> attacks.create("fr", block_size=1, color="keep").reconstruct(x).images.ravel().tolist()
        [0, 255, 255]
    """

    def __init__(self, block_size: int, color: Literal["mean", "keep"] = "mean") -> None:
        super().__init__(block_size)
        if color not in COLOR_MODES:
            raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
        self.color = color

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        """Fold, (average,) stretch; ``(N, H, W, C)`` uint8 in, same shape uint8 out."""
        encrypted = np.asarray(encrypted)
        if encrypted.dtype != np.uint8 or encrypted.ndim != 4:
            raise ValueError(f"FR needs (N, H, W, C) uint8 images, got {encrypted.dtype} of shape {encrypted.shape}")
        folded = fold(encrypted)
        if self.color == "mean":
            # exact integer mean: sum in int32, then one rounding in the stretch
            total = folded.sum(axis=-1, dtype=np.int32, keepdims=True)
            value = total * (_STRETCH / encrypted.shape[-1])
            out = np.broadcast_to(np.rint(value), encrypted.shape)
        else:
            out = np.rint(folded * _STRETCH)
        return Reconstruction(images=np.clip(out, 0, 255).astype(np.uint8))
