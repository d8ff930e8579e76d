"""JPEG's RGB <-> YCbCr conversion in integer fixed point, chroma resampling and the grayscale-plane layout.

The colour conversion is the full-range BT.601 conversion of JFIF (ITU-T T.871), computed as libjpeg does it
(``jccolor.c`` / ``jdcolor.c``): coefficients scaled by ``2^16`` and rounded to integers, rounding by adding half
before an arithmetic right shift. Every step is integer arithmetic (int32; int16 where the range allows), never
floating point, so numpy and torch (any device) give bit-identical results.

Forward (``jccolor.c``; ``FIX(v) = round(v * 2^16)``)::

    Y  = ( FIX(0.29900) R + FIX(0.58700) G + FIX(0.11400) B + 2^15) >> 16
    Cb = (-FIX(0.16874) R - FIX(0.33126) G + FIX(0.5) B + (128 << 16) + 2^15 - 1) >> 16
    Cr = ( FIX(0.5) R - FIX(0.41869) G - FIX(0.08131) B + (128 << 16) + 2^15 - 1) >> 16

(libjpeg's ``2^15 - 1`` for the chroma keeps the largest output at 255; all three lie in 0..255.) Inverse
(``jdcolor.c``), clipped to 0..255::

    R = Y + ((FIX(1.40200) (Cr - 128) + 2^15) >> 16)
    G = Y + ((-FIX(0.34414) (Cb - 128) - FIX(0.71414) (Cr - 128) + 2^15) >> 16)
    B = Y + ((FIX(1.77200) (Cb - 128) + 2^15) >> 16)

Implementation notes (none changes a result; the tests compare with the formulas above over all 2^24 colours):
the forward sums are evaluated on ``R - G`` and ``B - G`` (the fixed-point coefficients of Y sum to ``2^16``, those
of Cb and Cr to 0, so the integers are the same); the inverse offsets depend on the chroma alone, so
:func:`from_plane` computes them at chroma resolution and replicates them; numpy work runs in tasks of about
``2^15`` pixels (whole images or even-row bands) on the package's worker pool (:mod:`.plan`), in per-thread
scratch buffers that stay in cache.

Chroma resampling (:func:`downsample_chroma`, :func:`upsample_chroma`): 4:2:0 keeps the mean of every 2x2 cell,
rounded half up, ``(a + b + c + d + 2) >> 2`` (libjpeg alternates the bias 1, 2 between columns, so it can differ by
one level); upsampling replicates each value over its 2x2 cell (libjpeg's "fancy" triangular upsampling is not
reproduced).

Grayscale-plane layout (:func:`to_plane` / :func:`from_plane`; ``docs/paper.md`` section 3.2), one channel:

    * ``"420"``: Y (``H x W``) on top; below it Cb and Cr (each ``H/2 x W/2``) side by side: ``3H/2 x W``;
    * ``"444"``: ``[Y | Cb | Cr]`` side by side: ``H x 3W``.

Layouts: numpy images are channels last, ``(..., H, W, 3)``, and planes ``(..., Hp, Wp, 1)``; torch images are
channels first, ``(..., 3, H, W)``, and planes ``(..., 1, Hp, Wp)``. Every function takes and returns uint8.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from .plan import is_torch, thread_pool

__all__ = [
    "CHROMA",
    "Chroma",
    "downsample_chroma",
    "from_plane",
    "image_shape",
    "plane_shape",
    "rgb_to_ycbcr",
    "to_plane",
    "upsample_chroma",
    "ycbcr_to_rgb",
]

Chroma = Literal["420", "444"]
CHROMA: tuple[str, ...] = ("420", "444")

SCALEBITS = 16
ONE_HALF = 1 << (SCALEBITS - 1)
CBCR_OFFSET = 128 << SCALEBITS


def _fix(v: float) -> int:
    return int(v * (1 << SCALEBITS) + 0.5)


# jccolor.c
Y_R, Y_G, Y_B = _fix(0.29900), _fix(0.58700), _fix(0.11400)  # 19595, 38470, 7471
CB_R, CB_G, CB_B = _fix(0.16874), _fix(0.33126), _fix(0.50000)  # 11059, 21709, 32768
CR_R, CR_G, CR_B = _fix(0.50000), _fix(0.41869), _fix(0.08131)  # 32768, 27439, 5329
CHROMA_ROUND = CBCR_OFFSET + ONE_HALF - 1
# jdcolor.c
R_CR, G_CB, G_CR, B_CB = _fix(1.40200), _fix(0.34414), _fix(0.71414), _fix(1.77200)  # 91881, 22554, 46802, 116130
# what the difference form R - G, B - G of the forward conversion relies on
assert Y_R + Y_G + Y_B == 1 << SCALEBITS and CB_R + CB_G == CB_B and CR_G + CR_B == CR_R

_PIXELS_PER_TASK = 1 << 17  # numpy: pixels per task (per-call overhead vs. cache)
_TORCH_PIXELS = 1 << 22  # torch: pixels per step, to bound the int32 temporaries
_U8_MIN, _U8_MAX = np.int16(0), np.int16(255)


# torch kernels (channels first, any device) ------------------------------------------------------------------
def _ycc_torch(r: Any, g: Any, b: Any) -> tuple[Any, Any, Any]:
    """Forward conversion of three uint8 planes of one shape; returns int32 Y, Cb, Cr in 0..255."""
    import torch

    g = g.to(torch.int32)
    d1, d2 = r.to(torch.int32) - g, b.to(torch.int32) - g  # R - G, B - G
    y = ((d1 * Y_R).add_(d2 * Y_B).add_(ONE_HALF) >> SCALEBITS).add_(g)
    cb = (d2 * CB_B).sub_(d1 * CB_R).add_(CHROMA_ROUND) >> SCALEBITS
    cr = (d1 * CR_R).sub_(d2 * CR_B).add_(CHROMA_ROUND) >> SCALEBITS
    return y, cb, cr


def _rgb_torch(y: Any, cb: Any, cr: Any, subsampled: bool) -> Any:
    """Inverse conversion of uint8 Y ``(n, H, W)`` and Cb, Cr (``(n, H/2, W/2)`` when ``subsampled``, replicated over
    2x2 cells, else ``(n, H, W)``); returns uint8 ``(n, 3, H, W)``."""
    import torch

    cbi, cri = cb.to(torch.int32) - 128, cr.to(torch.int32) - 128
    offsets = (
        (cri * R_CR).add_(ONE_HALF) >> SCALEBITS,
        (cbi * -G_CB).sub_(cri * G_CR).add_(ONE_HALF) >> SCALEBITS,
        (cbi * B_CB).add_(ONE_HALF) >> SCALEBITS,
    )
    y = y.to(torch.int32)
    planes = [(y + (_rep2(off) if subsampled else off)).clamp_(0, 255) for off in offsets]
    return torch.stack(planes, dim=1).to(torch.uint8)


def _pool2(c: Any) -> Any:
    """``(..., H, W)`` integers (numpy or torch) -> ``(..., H/2, W/2)``: ``(a + b + c + d + 2) >> 2`` per 2x2 cell."""
    s = c[..., 0::2, :] + c[..., 1::2, :]
    s = s[..., 0::2] + s[..., 1::2]
    s += 2
    s >>= 2
    return s


def _rep2(c: Any) -> Any:
    """``(..., h, w)`` -> ``(..., 2h, 2w)`` (numpy or torch): each value replicated over its 2x2 cell."""
    h, w = c.shape[-2:]
    lead = tuple(c.shape[:-2])
    if is_torch(c):
        return c[..., :, None, :, None].expand(*lead, h, 2, w, 2).reshape(*lead, 2 * h, 2 * w)
    return np.broadcast_to(c[..., :, None, :, None], (*lead, h, 2, w, 2)).reshape(*lead, 2 * h, 2 * w)


# numpy kernels (channels last), on per-thread scratch buffers ------------------------------------------------
class _Scratch(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}


_SCRATCH = _Scratch()


def _scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """An uninitialised array from this thread's buffer ``name``, reused from call to call (no fresh pages)."""
    size = math.prod(shape)
    buf = _SCRATCH.buffers.get(name)
    if buf is None or buf.dtype != dtype or buf.size < size:
        buf = _SCRATCH.buffers[name] = np.empty(max(size, 1), dtype=dtype)
    return buf[:size].reshape(shape)


def _ycc_numpy(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Forward conversion of a C-contiguous uint8 ``(n, h, W, 3)`` task.

    Returns int32 Y, Cb, Cr ``(n, h, W)`` in 0..255, in this thread's scratch buffers (valid until its next call).
    """
    shape = c.shape[:-1]
    f = _scratch("rgb", (c.size,), np.int32)
    np.copyto(f, c.reshape(-1))  # one contiguous cast; R, G, B are the strided views f[k::3]
    g, d1, d2, t, y, cb = (_scratch(k, shape, np.int32).reshape(-1) for k in ("g", "d1", "d2", "t", "y", "cb"))
    np.copyto(g, f[1::3])
    np.subtract(f[0::3], g, out=d1)  # R - G
    np.subtract(f[2::3], g, out=d2)  # B - G
    np.multiply(d1, Y_R, out=y)
    y += np.multiply(d2, Y_B, out=t)
    y += ONE_HALF
    y >>= SCALEBITS
    y += g
    np.multiply(d2, CB_B, out=cb)
    cb -= np.multiply(d1, CB_R, out=t)
    cb += CHROMA_ROUND
    cb >>= SCALEBITS
    np.multiply(d2, CR_B, out=t)
    cr = np.multiply(d1, CR_R, out=d1)
    cr -= t
    cr += CHROMA_ROUND
    cr >>= SCALEBITS
    return y.reshape(shape), cb.reshape(shape), cr.reshape(shape)


def _pool2_numpy(c: np.ndarray) -> np.ndarray:
    """:func:`_pool2` of int32 ``(n, h, W)`` into a scratch buffer (row pairs first: contiguous reads)."""
    n, h, w = c.shape
    rows = _scratch("pool_rows", (n, h // 2, w), np.int32)
    np.add(c[:, 0::2], c[:, 1::2], out=rows)
    out = _scratch("pool", (n, h // 2, w // 2), np.int32)
    np.add(rows[..., 0::2], rows[..., 1::2], out=out)
    out += 2
    out >>= 2
    return out


def _rgb_numpy(y: np.ndarray, cb: np.ndarray, cr: np.ndarray, dst: np.ndarray, subsampled: bool) -> None:
    """Inverse conversion of a task: ``dst[..., k] = clip(y + offset_k(cb, cr), 0, 255)``.

    Args:
        y: uint8 ``(n, h, W)``.
        cb, cr: uint8 ``(n, h/2, W/2)`` when ``subsampled`` (replicated over 2x2 cells), else ``(n, h, W)``.
        dst: uint8 ``(n, h, W, 3)``, written.
    """
    n, h, w = y.shape
    cs = cb.shape
    ci = _scratch("ci", (2, *cs), np.int32)
    np.subtract(cb, 128, out=ci[0], dtype=np.int32)
    np.subtract(cr, 128, out=ci[1], dtype=np.int32)
    cbi, cri = ci
    off, t = _scratch("off", (3, *cs), np.int32), _scratch("t", cs, np.int32)
    np.multiply(cri, R_CR, out=off[0])
    np.multiply(cbi, -G_CB, out=off[1])
    off[1] -= np.multiply(cri, G_CR, out=t)
    np.multiply(cbi, B_CB, out=off[2])
    off += ONE_HALF
    off >>= SCALEBITS  # R - Y, G - Y, B - Y: in -227..226
    if subsampled:
        # horizontal replication for free: both int16 halves of every 32-bit word get the offset
        u, tu = off.view(np.uint32), t.view(np.uint32)
        u &= 0xFFFF
        for k in range(3):  # R, G, B offsets
            u[k] |= np.left_shift(u[k], 16, out=tu)
        off16 = off.view(np.int16)  # (3, n, h/2, W)
    else:
        off16 = _scratch("off16", (3, *cs), np.int16)
        np.copyto(off16, off, casting="same_kind")
    acc = _scratch("acc", (n, h, w), np.int16)
    for k in range(3):  # R, G, B
        if subsampled:  # image rows 2i and 2i + 1 share chroma row i
            np.add(y.reshape(n, h // 2, 2, w), off16[k][:, :, None, :], out=acc.reshape(n, h // 2, 2, w),
                   dtype=np.int16)
        else:
            np.add(y, off16[k], out=acc, dtype=np.int16)
        np.clip(acc, _U8_MIN, _U8_MAX, out=acc)
        dst[..., k] = acc


# tasks -------------------------------------------------------------------------------------------------------
def _tasks(n: int, height: int, width: int) -> list[tuple[slice, slice]]:
    """``(images, rows)`` slices of about ``_PIXELS_PER_TASK`` pixels: whole images, or even-row bands of one image."""
    pixels = height * width
    if pixels <= _PIXELS_PER_TASK:
        per = _PIXELS_PER_TASK // max(1, pixels)
        return [(slice(i, min(i + per, n)), slice(0, height)) for i in range(0, n, per)]
    band = max(2, _PIXELS_PER_TASK // width // 2 * 2)
    return [(slice(i, i + 1), slice(r, min(r + band, height))) for i in range(n) for r in range(0, height, band)]


def _run_tasks(n: int, height: int, width: int, fn: Callable[[slice, slice], None]) -> None:
    """Call ``fn(images, rows)`` for every task, on the package's worker pool when there are several."""
    tasks = _tasks(n, height, width)
    if len(tasks) > 1:
        list(thread_pool().map(lambda task: fn(*task), tasks))
    elif tasks:
        fn(*tasks[0])


def _torch_steps(n: int, pixels: int) -> list[slice]:
    per = max(1, _TORCH_PIXELS // max(1, pixels))
    return [slice(i, min(i + per, n)) for i in range(0, n, per)]


# checks ------------------------------------------------------------------------------------------------------
def _check_chroma(chroma: str) -> None:
    if chroma not in CHROMA:
        raise ValueError(f"chroma must be one of {', '.join(CHROMA)}, got {chroma!r}")


def _check_uint8(x: Any, channels: int, what: str) -> tuple[int, int]:
    """Check uint8 numpy ``(..., H, W, C)`` / torch ``(..., C, H, W)`` with ``C = channels``; return ``(H, W)``."""
    torch_input = is_torch(x)
    layout = f"(..., {channels}, H, W) torch" if torch_input else f"(..., H, W, {channels}) numpy"
    if x.ndim < 3 or (x.shape[-3] if torch_input else x.shape[-1]) != channels:
        raise ValueError(f"expected {layout} {what}, got shape {tuple(x.shape)}")
    if str(x.dtype) not in ("uint8", "torch.uint8"):
        raise ValueError(f"expected uint8 {what}, got dtype {x.dtype}")
    return (x.shape[-2], x.shape[-1]) if torch_input else (x.shape[-3], x.shape[-2])


def plane_shape(height: int, width: int, chroma: Chroma) -> tuple[int, int]:
    """``(rows, cols)`` of the plane of one ``height x width`` image; ``"420"`` needs even sides."""
    _check_chroma(chroma)
    if chroma == "444":
        return height, 3 * width
    if height % 2 or width % 2:
        raise ValueError(f"4:2:0 chroma needs even image sides, got {height}x{width}")
    return 3 * height // 2, width


def image_shape(rows: int, cols: int, chroma: Chroma) -> tuple[int, int]:
    """``(H, W)`` of the images whose planes are ``rows x cols`` (inverse of :func:`plane_shape`)."""
    _check_chroma(chroma)
    if chroma == "444":
        if cols % 3:
            raise ValueError(f"a 4:4:4 plane is H x 3W, got {rows}x{cols}")
        return rows, cols // 3
    if rows % 3 or cols % 2:
        raise ValueError(f"a 4:2:0 plane is 3H/2 x W with even H and W, got {rows}x{cols}")
    return 2 * rows // 3, cols


# public functions --------------------------------------------------------------------------------------------
def rgb_to_ycbcr(x: Any) -> Any:
    """JPEG's RGB -> YCbCr (full range, libjpeg's fixed point).

    Args:
        x: uint8 RGB images, numpy ``(..., H, W, 3)`` or torch ``(..., 3, H, W)``.

    Returns:
        uint8 Y, Cb, Cr in the same layout (a new array, same device).
    """
    h, w = _check_uint8(x, 3, "RGB images")
    if is_torch(x):
        import torch

        flat = x.reshape(-1, 3, h, w)
        out = torch.empty_like(flat)
        for s in _torch_steps(flat.shape[0], h * w):
            out[s] = torch.stack(_ycc_torch(flat[s, 0], flat[s, 1], flat[s, 2]), dim=1)
        return out.reshape(x.shape)
    flat = np.ascontiguousarray(x).reshape(-1, h, w, 3)
    out = np.empty_like(flat)

    def work(si: slice, sr: slice) -> None:
        for k, plane in enumerate(_ycc_numpy(flat[si, sr])):
            out[si, sr, :, k] = plane

    _run_tasks(flat.shape[0], h, w, work)
    return out.reshape(x.shape)


def ycbcr_to_rgb(x: Any) -> Any:
    """JPEG's YCbCr -> RGB (libjpeg's fixed point, clipped to 0..255); layouts as :func:`rgb_to_ycbcr`."""
    h, w = _check_uint8(x, 3, "YCbCr images")
    if is_torch(x):
        import torch

        flat = x.reshape(-1, 3, h, w)
        out = torch.empty_like(flat)
        for s in _torch_steps(flat.shape[0], h * w):
            out[s] = _rgb_torch(flat[s, 0], flat[s, 1], flat[s, 2], subsampled=False)
        return out.reshape(x.shape)
    flat = np.ascontiguousarray(x).reshape(-1, h, w, 3)
    out = np.empty_like(flat)

    def work(si: slice, sr: slice) -> None:
        chunk = flat[si, sr]
        _rgb_numpy(chunk[..., 0], chunk[..., 1], chunk[..., 2], out[si, sr], subsampled=False)

    _run_tasks(flat.shape[0], h, w, work)
    return out.reshape(x.shape)


def downsample_chroma(c: Any) -> Any:
    """4:2:0 downsampling: the mean of every 2x2 cell, rounded half up, ``(a + b + c + d + 2) >> 2``.

    Args:
        c: uint8 numpy ``(..., H, W, C)`` or torch ``(..., C, H, W)`` (any C, e.g. Cb and Cr); H and W even.

    Returns:
        uint8 numpy ``(..., H/2, W/2, C)`` or torch ``(..., C, H/2, W/2)``.
    """
    torch_input = is_torch(c)
    if c.ndim < 3 or str(c.dtype) not in ("uint8", "torch.uint8"):
        raise ValueError(f"expected uint8 chroma with 3 or more dimensions, got {c.dtype} {tuple(c.shape)}")
    h, w = c.shape[-2:] if torch_input else c.shape[-3:-1]
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 downsampling needs even sides, got {h}x{w}")
    if torch_input:
        import torch

        return _pool2(c.to(torch.int16)).to(torch.uint8)
    planes = np.moveaxis(c, -1, -3).astype(np.int16)  # (..., C, H, W)
    return np.ascontiguousarray(np.moveaxis(_pool2(planes).astype(np.uint8), -3, -1))


def upsample_chroma(c: Any) -> Any:
    """Nearest-neighbour 2x upsampling, each value over its 2x2 cell; layouts as :func:`downsample_chroma`."""
    if c.ndim < 3:
        raise ValueError(f"expected chroma with 3 or more dimensions, got shape {tuple(c.shape)}")
    if is_torch(c):
        return _rep2(c)
    return np.ascontiguousarray(np.moveaxis(_rep2(np.moveaxis(c, -1, -3)), -3, -1))


def to_plane(x: Any, chroma: Chroma) -> Any:
    """RGB images -> their single-channel YCbCr planes (layout in the module docstring).

    The same as :func:`rgb_to_ycbcr`, then :func:`downsample_chroma` of Cb and Cr for ``"420"``, then the planes put
    side by side; computed in one pass per task.

    Args:
        x: uint8 numpy ``(..., H, W, 3)`` or torch ``(..., 3, H, W)``; even H and W for ``"420"``.
        chroma: ``"420"`` or ``"444"``.

    Returns:
        uint8 numpy ``(..., Hp, Wp, 1)`` or torch ``(..., 1, Hp, Wp)``, ``(Hp, Wp) = plane_shape(H, W, chroma)``.
    """
    h, w = _check_uint8(x, 3, "RGB images")
    rows, cols = plane_shape(h, w, chroma)
    lead = tuple(x.shape[:-3])
    sub = chroma == "420"
    if is_torch(x):
        import torch

        flat = x.reshape(-1, 3, h, w)
        out = torch.empty((flat.shape[0], rows, cols), dtype=torch.uint8, device=x.device)
        for s in _torch_steps(flat.shape[0], h * w):
            y, cb, cr = _ycc_torch(flat[s, 0], flat[s, 1], flat[s, 2])
            out[s, :h, :w] = y
            if sub:
                out[s, h:, : w // 2], out[s, h:, w // 2:] = _pool2(cb), _pool2(cr)
            else:
                out[s, :, w: 2 * w], out[s, :, 2 * w:] = cb, cr
        return out.reshape(*lead, 1, rows, cols)
    flat = np.ascontiguousarray(x).reshape(-1, h, w, 3)
    out = np.empty((flat.shape[0], rows, cols), dtype=np.uint8)

    def work(si: slice, sr: slice) -> None:
        y, cb, cr = _ycc_numpy(flat[si, sr])
        out[si, sr, :w] = y
        if sub:
            cr_rows = slice(h + sr.start // 2, h + sr.stop // 2)
            out[si, cr_rows, : w // 2] = _pool2_numpy(cb)
            out[si, cr_rows, w // 2:] = _pool2_numpy(cr)
        else:
            out[si, sr, w: 2 * w] = cb
            out[si, sr, 2 * w:] = cr

    _run_tasks(flat.shape[0], h, w, work)
    return out.reshape(*lead, rows, cols, 1)


def from_plane(p: Any, chroma: Chroma) -> Any:
    """Single-channel YCbCr planes -> RGB images: split the planes, upsample the chroma, JPEG's YCbCr -> RGB.

    The same as :func:`ycbcr_to_rgb` of Y with :func:`upsample_chroma` of Cb and Cr (``"420"``), or with Cb and Cr
    as they are (``"444"``).

    Args:
        p: uint8 numpy ``(..., Hp, Wp, 1)`` or torch ``(..., 1, Hp, Wp)`` planes (see :func:`to_plane`).
        chroma: ``"420"`` or ``"444"``.

    Returns:
        uint8 RGB, numpy ``(..., H, W, 3)`` or torch ``(..., 3, H, W)``.
    """
    rows, cols = _check_uint8(p, 1, "grayscale planes")
    h, w = image_shape(rows, cols, chroma)
    lead = tuple(p.shape[:-3])
    sub = chroma == "420"
    if is_torch(p):
        import torch

        flat = p.reshape(-1, rows, cols)
        out = torch.empty((flat.shape[0], 3, h, w), dtype=torch.uint8, device=p.device)
        for s in _torch_steps(flat.shape[0], h * w):
            if sub:
                y, cb, cr = flat[s, :h], flat[s, h:, : w // 2], flat[s, h:, w // 2:]
            else:
                y, cb, cr = flat[s, :, :w], flat[s, :, w: 2 * w], flat[s, :, 2 * w:]
            out[s] = _rgb_torch(y, cb, cr, subsampled=sub)
        return out.reshape(*lead, 3, h, w)
    flat = np.ascontiguousarray(p).reshape(-1, rows, cols)
    out = np.empty((flat.shape[0], h, w, 3), dtype=np.uint8)

    def work(si: slice, sr: slice) -> None:
        if sub:
            c_rows = slice(h + sr.start // 2, h + sr.stop // 2)
            y, cb, cr = flat[si, sr], flat[si, c_rows, : w // 2], flat[si, c_rows, w // 2:]
        else:
            y, cb, cr = flat[si, sr, :w], flat[si, sr, w: 2 * w], flat[si, sr, 2 * w:]
        _rgb_numpy(y, cb, cr, out[si, sr], subsampled=sub)

    _run_tasks(flat.shape[0], h, w, work)
    return out.reshape(*lead, h, w, 3)
