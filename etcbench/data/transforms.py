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

__all__ = ["augment_batch", "normalize", "random_crop_flip", "random_flip", "random_resized_crop", "resize",
           "resize_numpy", "to_nchw"]

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


def _uniform(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else "cpu"
    return torch.rand(n, generator=generator, device=gen_device).to(device)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random horizontal flip, one fair draw per image of an ``(N, C, H, W)`` batch."""
    flip = _uniform(x.shape[0], generator, x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x).contiguous()


def random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), interpolation: Interpolation = "bilinear",
                        generator: torch.Generator | None = None, attempts: int = 10) -> torch.Tensor:
    """torchvision's ``RandomResizedCrop`` for a whole uint8 ``(N, C, H, W)`` batch, to ``size x size``.

    Per image, as torchvision draws it: up to ``attempts`` boxes of area ``scale`` (relative) and log-uniform aspect
    ``ratio``; the first that fits is cropped at a uniform position, else the central crop of the clamped aspect.
    The crops are resampled in one ``grid_sample`` call (pixel centres as ``align_corners=False``; pixels outside
    a crop's border are clamped to the image border rather than to the crop's, the only difference).
    """
    n, _, h, w = x.shape
    dev = x.device
    area = h * w
    draws = _uniform(n * attempts * 2, generator, dev).reshape(2, n, attempts)
    target = area * (scale[0] + (scale[1] - scale[0]) * draws[0])
    log_lo, log_hi = torch.log(torch.tensor(ratio[0])), torch.log(torch.tensor(ratio[1]))
    aspect = torch.exp(log_lo + (log_hi - log_lo) * draws[1])
    cw = torch.sqrt(target * aspect).round()
    ch = torch.sqrt(target / aspect).round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.zeros(n, dtype=torch.long, device=dev))
    cw = cw.gather(1, first[:, None])[:, 0]
    ch = ch.gather(1, first[:, None])[:, 0]
    # fallback (no attempt fits): the whole image, cut to the nearest allowed aspect ratio, centred
    in_ratio = w / h
    fw = float(w) if ratio[0] <= in_ratio <= ratio[1] else (
        float(w) if in_ratio < ratio[0] else float(round(h * ratio[1])))
    fh = float(h) if ratio[0] <= in_ratio <= ratio[1] else (
        float(round(w / ratio[0])) if in_ratio < ratio[0] else float(h))
    found = ok.any(1)
    cw = torch.where(found, cw, torch.full_like(cw, fw))
    ch = torch.where(found, ch, torch.full_like(ch, fh))
    pos = _uniform(2 * n, generator, dev).reshape(2, n)
    top = torch.where(found, torch.floor(pos[0] * (h - ch + 1)), (h - ch) // 2)
    left = torch.where(found, torch.floor(pos[1] * (w - cw + 1)), (w - cw) // 2)
    # source coordinate of output pixel centre u: top + (u + 0.5) * ch / size - 0.5, normalised for grid_sample
    u = torch.arange(size, device=dev, dtype=torch.float32) + 0.5
    ys = top[:, None] + u[None] * (ch[:, None] / size) - 0.5
    xs = left[:, None] + u[None] * (cw[:, None] / size) - 0.5
    grid = torch.stack(torch.broadcast_tensors(((2 * xs + 1) / w - 1)[:, None, :],
                                               ((2 * ys + 1) / h - 1)[:, :, None]), dim=-1)
    y = F.grid_sample(x.float(), grid, mode=interpolation, padding_mode="border", align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def augment_batch(x: torch.Tensor, kind: str, size: int, *, padding: int = 4,
                  scale: tuple[float, float] = (0.08, 1.0), interpolation: Interpolation = "bicubic",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The recipe's augmentation (``none``, ``flip``, ``crop_flip``, ``random_resized_crop``) of a plain batch.

    ``random_resized_crop`` returns ``size x size`` images; the others keep the input size.
    """
    if kind == "none":
        return x
    if kind == "flip":
        return random_flip(x, generator)
    if kind == "crop_flip":
        return random_crop_flip(x, padding, generator)
    if kind == "random_resized_crop":
        return random_resized_crop(x, size, scale, interpolation=interpolation, generator=generator)
    raise ValueError(f"unknown augmentation {kind!r}")


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
    return random_flip(x, generator)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1, 1] with mean = std = 0.5."""
    return (x.float() / 255.0 - MEAN) / STD
