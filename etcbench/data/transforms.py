"""Batch transforms on torch tensors: resize, plain-domain augmentation, normalisation.

All operate on whole ``(N, C, H, W)`` batches on the tensor's device, without Python loops over images.
Order in training (as the paper's official code): augment the *plain* image, resize to the model's input
size, encrypt with the fixed key, then normalise.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["resize", "resize_numpy", "random_crop_flip", "normalize", "to_nchw"]

Interpolation = Literal["nearest", "bilinear", "bicubic"]
MEAN = STD = 0.5  # the ViT code base's normalisation; negative-positive then maps to plain negation


def to_nchw(x: np.ndarray) -> torch.Tensor:
    """``(N, H, W, C)`` numpy -> contiguous ``(N, C, H, W)`` tensor (no copy of the values' dtype)."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()


def resize(x: torch.Tensor, size: int, interpolation: Interpolation = "bicubic") -> torch.Tensor:
    """Resize a uint8 ``(N, C, H, W)`` batch to ``size x size``; returns uint8 (rounded, clamped)."""
    if x.shape[-2:] == (size, size):
        return x
    kwargs = {} if interpolation == "nearest" else {"align_corners": False}
    y = F.interpolate(x.float(), size=(size, size), mode=interpolation, **kwargs)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def resize_numpy(x: np.ndarray, size: int, interpolation: Interpolation = "bicubic",
                 batch: int = 1024) -> np.ndarray:
    """:func:`resize` for ``(N, H, W, 3)`` numpy arrays, in chunks to bound memory."""
    if x.shape[1:3] == (size, size):
        return x
    out = np.empty((x.shape[0], size, size, x.shape[3]), dtype=np.uint8)
    for i in range(0, x.shape[0], batch):  # chunks of a batch, not single images
        out[i:i + batch] = resize(to_nchw(x[i:i + batch]), size, interpolation).permute(0, 2, 3, 1).numpy()
    return out


def random_crop_flip(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, one draw per image, vectorised.

    Shape:
        x: ``(N, C, H, W)``; returns the same shape and dtype.
    """
    n, _, h, w = x.shape
    gen_device = generator.device if generator is not None else "cpu"
    if padding > 0:
        padded = F.pad(x, (padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gen_device).to(x.device)
        ox = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gen_device).to(x.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
        idx = torch.arange(n, device=x.device)[:, None, None]
        x = padded[idx, :, rows, cols].permute(0, 3, 1, 2)  # advanced indices first: (N, H, W, C) -> NCHW
    flip = torch.rand(n, generator=generator, device=gen_device).to(x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x).contiguous()


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1] with mean = std = 0.5."""
    return (x.float() / 255.0 - MEAN) / STD
