"""Augmentation of *encrypted* batches: only augmentations that commute with the cipher ("block-safe").

A client encrypts its images once with a secret key and uploads them; the cloud never sees a plain image, so it can
only augment ciphertexts. An augmentation of ciphertexts is meaningful when it is the encryption of an augmentation
of the same kind of the plain images, ``aug(E_k(x1), E_k(x2)) == E_k'(aug'(x1, x2))``: then the model trains on
ciphertexts of augmented images, as a plain-domain model would. Flips, shifts, crops and resizing of a block-wise
ciphertext do not commute (they move pixels across block boundaries or within blocks that the key scrambled and
rotated), so they are not offered.

Augmentations (:data:`AUGMENTS`), on torch ``(N, C, H, W)`` batches, vectorised, on the batch's device, drawn from a
``torch.Generator``; each returns the images and the mixed soft targets ``(N, num_classes)``:

* ``none``: the batch and its one-hot targets as they are;
* ``mixup``: ``x' = lam x + (1 - lam) x[perm]`` and the same for the targets, one ``lam ~ Beta(alpha, alpha)`` for
  the whole batch (the usual batch mode of mixup) and ``perm`` a random permutation of the batch. Float output:
  float32 on the input's value scale for uint8 input (0..255, so :func:`.transforms.normalize` applies as it is),
  the input's dtype for float input;
* ``block_cutmix``: CutMix on the block grid. One rectangle of whole ``block_size`` blocks for the whole batch is
  pasted from ``x[perm]`` into ``x``; as in CutMix, ``lam ~ Beta(alpha, alpha)``, the rectangle's sides are
  ``sqrt(1 - lam)`` of the grid's (in whole blocks, rounded down), its centre block is uniform on the grid and it is
  clipped to the grid; the targets' weight of ``x[perm]`` is the exact fraction of pixels pasted. Keeps the dtype.

Which scheme each augmentation is block-safe for (:func:`block_safe_reason`, read from the scheme class attributes
``affine``, ``per_image_keys`` and ``block_local`` of :class:`etcbench.ciphers.Scheme`; the tests check every
built-in scheme both ways, safe ones commute exactly and unsafe ones do not):

========================  ======  ==============  =====================================================
scheme                    mixup   block_cutmix    why
========================  ======  ==============  =====================================================
plain                     safe    safe            nothing is encrypted
etc, pixel-shuffle        safe    safe            one gather + negative-positive per key: affine per value;
                                                  each ciphertext block comes from one plain block
pe-fixed                  safe    safe            the same gather + NP, per pixel, and no pixel moves
pe                        unsafe  safe            a key per image: a mix of two ciphertexts mixes two keys;
                                                  no pixel moves and per-pixel keys are independent draws
le, ele                   unsafe  safe            bytes are rebuilt from 4-bit halves (not affine);
                                                  the nibble shuffle stays inside a block
etc-gray, etc-gray-444    unsafe  unsafe          colour conversion rounds to uint8 (mixup commutes only
                                                  to 1-2 levels of 255); a ciphertext block is a block of
                                                  the Y, Cb or Cr plane, so pasted blocks decrypt to
                                                  regions with Y from one image and chroma from the other
========================  ======  ==============  =====================================================

Mixup: for one key, a gather + NP scheme maps each value to ``v`` or ``1 - v`` (``255 - v``) of one input value,
and ``1 - (lam a + (1 - lam) b) = lam (1 - a) + (1 - lam) (1 - b)``, so ``mix(E(x1), E(x2)) == E(mix(x1, x2))`` in
floating point (to rounding). Block CutMix: ciphertext block ``j`` comes from plain block ``perm[j]`` only, so the
pasted ciphertext blocks decrypt to an image whose blocks each come from ``x1`` or ``x2`` (x2's being the plain
blocks of the pasted ciphertext blocks, scattered by the scrambling, not a rectangle), as many as were pasted, and
the label weight (fraction of pixels) is the same in both domains. The rectangle must consist of whole cipher blocks:
``block_size`` a multiple of the scheme's block size (pixel-wise schemes: any).

Example:
    >>> import torch
    >>> x = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    >>> x_aug, y_soft = apply("block_cutmix", x, torch.tensor([0, 1, 2, 3]), 4, torch.Generator().manual_seed(0),
    ...                       num_classes=10)
    >>> x_aug.dtype, tuple(y_soft.shape), bool(torch.allclose(y_soft.sum(1), torch.ones(4)))
    (torch.uint8, (4, 10), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .block_safety import AUGMENTS, block_safe_reason, check_augment

__all__ = ["AUGMENTS", "MixDraw", "apply", "block_safe_reason", "check_batch", "draw", "mix", "pasted_mask",
           "soft_targets"]

@dataclass(frozen=True)
class MixDraw:
    """The random choices of one augmentation of a batch.

    Attributes:
        augment: one of :data:`AUGMENTS`.
        lam: weight of each image itself (``1 - lam``: of its partner ``x[perm]``), in images and targets. For
            ``block_cutmix``: ``1 -`` the fraction of pixels pasted (after clipping and rounding to whole blocks).
        perm: CPU int64 ``(N,)``: image ``i``'s partner is ``perm[i]``.
        box: ``block_cutmix`` only: ``(top, bottom, left, right)`` of the pasted rectangle in blocks, half-open.
        block_size: side of a block in pixels.
    """

    augment: str
    lam: float
    perm: torch.Tensor
    box: tuple[int, int, int, int] | None = None
    block_size: int = 1


def check_batch(x: Any, block_size: int) -> tuple[int, int, int]:
    """``(N, H, W)`` of an ``(N, C, H, W)`` uint8 or float tensor whose sides split into ``block_size`` blocks."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a torch (N, C, H, W) tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) batch with 4 dimensions, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise ValueError(f"expected uint8 or floating-point images, got dtype {x.dtype}")
    if isinstance(block_size, bool) or not isinstance(block_size, int | np.integer) or block_size < 1:
        raise ValueError(f"block size must be a positive integer, got {block_size!r}")
    n, _, h, w = x.shape
    if h % block_size or w % block_size:
        raise ValueError(f"block size {block_size} does not divide the image size {h}x{w}")
    return n, h, w


def soft_targets(y: Any, n: int, num_classes: int | None = None) -> torch.Tensor:
    """Float ``(N, num_classes)`` targets from int labels ``(N,)`` (one-hot) or float targets ``(N, K)`` (as given).

    Integer labels need ``num_classes``; float targets keep their dtype and device, labels give float32 on theirs.
    """
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"expected labels as a torch tensor, got {type(y).__name__}")
    if y.ndim == 2 and y.is_floating_point():
        if y.shape[0] != n or (num_classes is not None and y.shape[1] != num_classes):
            want = f"({n}, {num_classes if num_classes is not None else 'K'})"
            raise ValueError(f"expected soft targets of shape {want}, got {tuple(y.shape)}")
        return y
    if y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool or y.shape[0] != n:
        raise ValueError(f"expected {n} integer labels (N,) or float targets (N, K), got {y.dtype} {tuple(y.shape)}")
    if num_classes is None or num_classes < 1:
        raise ValueError(f"integer labels need num_classes (a positive integer), got {num_classes!r}")
    if n and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, got {int(y.min())}..{int(y.max())}")
    return torch.nn.functional.one_hot(y.long(), num_classes).float()


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A numpy generator seeded by one draw from ``generator`` (torch samples no Beta law from a generator)."""
    device = generator.device if generator is not None else "cpu"
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=device).item()
    return np.random.default_rng(int(seed))


def _block_box(grid_h: int, grid_w: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """CutMix's rectangle on a ``grid_h x grid_w`` block grid: sides ``sqrt(1 - lam)`` of the grid's (whole blocks),
    centre block uniform, clipped to the grid; ``(top, bottom, left, right)``, half-open."""
    ratio = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(grid_h * ratio), int(grid_w * ratio)
    cy, cx = int(rng.integers(0, grid_h)), int(rng.integers(0, grid_w))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + (cut_h + 1) // 2, grid_h)
    left, right = max(cx - cut_w // 2, 0), min(cx + (cut_w + 1) // 2, grid_w)
    return top, bottom, left, right


def draw(augment: str, shape: tuple[int, ...], block_size: int, generator: torch.Generator | None = None,
         alpha: float = 1.0) -> MixDraw:
    """The random choices of ``augment`` for an ``(N, C, H, W)`` batch of ``shape``; they depend on the shape only.

    ``generator`` advances by one draw; None uses torch's global generator.
    """
    check_augment(augment)
    if not alpha > 0:
        raise ValueError(f"alpha of the Beta(alpha, alpha) law must be positive, got {alpha!r}")
    n, h, w = check_batch(torch.empty(shape, dtype=torch.uint8, device="meta"), block_size)
    rng = _numpy_rng(generator)
    perm = torch.from_numpy(rng.permutation(n))
    if augment == "none":
        return MixDraw(augment, 1.0, torch.arange(n), None, block_size)
    lam = float(rng.beta(alpha, alpha))
    if augment == "mixup":
        return MixDraw(augment, lam, perm, None, block_size)
    box = _block_box(h // block_size, w // block_size, lam, rng)
    pasted = (box[1] - box[0]) * (box[3] - box[2]) * block_size**2
    return MixDraw(augment, 1.0 - pasted / (h * w), perm, box, block_size)


def pasted_mask(d: MixDraw, height: int, width: int, device: Any = "cpu") -> torch.Tensor:
    """Bool ``(H, W)``: the pixels that ``block_cutmix`` takes from ``x[perm]`` (all False for the others)."""
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    if d.box is None:
        return torch.zeros(height, width, dtype=torch.bool, device=device)
    top, bottom, left, right = (b * d.block_size for b in d.box)
    return ((rows >= top) & (rows < bottom))[:, None] & ((cols >= left) & (cols < right))[None, :]


def mix(x: torch.Tensor, y_soft: torch.Tensor, d: MixDraw) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the drawn augmentation ``d`` to images ``x`` ``(N, C, H, W)`` and soft targets ``y_soft`` ``(N, K)``."""
    n, h, w = check_batch(x, d.block_size)
    if d.perm.shape != (n,):
        raise ValueError(f"the draw is for {d.perm.shape[0]} images, the batch has {n}")
    y_soft = soft_targets(y_soft, n)
    y_mixed = d.lam * y_soft + (1.0 - d.lam) * y_soft[d.perm.to(y_soft.device)]
    perm = d.perm.to(x.device)
    if d.augment == "none":
        return x, y_soft
    if d.augment == "mixup":
        xf = x if x.is_floating_point() else x.float()
        return d.lam * xf + (1.0 - d.lam) * xf[perm], y_mixed
    check_augment(d.augment)
    return torch.where(pasted_mask(d, h, w, x.device), x[perm], x), y_mixed


def apply(augment: str, x: torch.Tensor, y: torch.Tensor, block_size: int,
          generator: torch.Generator | None = None, *, alpha: float = 1.0,
          num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch of ciphertexts: ``(x_aug, y_soft)``.

    Args:
        augment: one of :data:`AUGMENTS`.
        x: ``(N, C, H, W)`` uint8 or float ciphertexts, any device; H and W multiples of ``block_size``.
        y: int labels ``(N,)`` (with ``num_classes``) or float targets ``(N, K)``.
        block_size: the block grid of ``block_cutmix`` (the cipher's block size or a multiple of it).
        generator: the source of randomness (one draw per call); None: torch's global generator.
        alpha: of ``lam ~ Beta(alpha, alpha)``.
        num_classes: the number of classes, for integer labels.

    Returns:
        ``x_aug`` (``mixup``: float, see the module docstring; otherwise ``x``'s dtype) on ``x``'s device, and float
        ``(N, K)`` targets whose rows sum to the input rows' sums (1 for labels).
    """
    check_augment(augment)
    n, _, _ = check_batch(x, block_size)
    y_soft = soft_targets(y, n, num_classes)
    return mix(x, y_soft, draw(augment, tuple(x.shape), block_size, generator, alpha))
