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

Two registered variants:
    * ``pe`` (the published scheme, "without key management"): a **fresh key per image**, in training and test.
      Its :class:`~etcbench.ciphers.keys.Key` holds only a 256-bit secret; image ``i`` of a set is encrypted with
      the per-pixel key drawn from that secret's stream at position ``i`` (``first_index + j`` for image ``j`` of a
      call), so a stored set can be decrypted for scoring. Training draws throw-away keys on the device
      (:meth:`PE.encrypt_fresh`), a new one every time an image is drawn;
    * ``pe-fixed`` (a variant): one key, per-pixel arrays for the whole ``H x W`` image, shared by every image,
      compiled into one gather plus one mask (:mod:`.plan`).

Choices the literature leaves open, fixed here:
    * NP bits index the channels *before* the colour shuffle (the written order NP, then shuffle); each of the
      ``3 * H * W`` bits is an independent fair bit;
    * colour permutation code ``c`` selects ``itertools.permutations((0, 1, 2))[c]``, drawn uniformly per pixel,
      read from an unmodified copy (a true permutation, as in :mod:`.etc`);
    * per-image keys (``pe``): pixel ``p`` of image ``i`` takes one 64-bit word of a PCG64 stream seeded by the
      secret, word ``i * H * W + p`` (so any image's key is reached by ``advance``, without drawing the others'):
      its three low bits are the NP bits of R, G, B and the rest modulo 6 the colour code (bias below 2**-58);
    * ``color_shuffle=False`` gives the simplified PE of the lab's attack code (random element-wise inversion
      only): ``y = where(negpos, 255 - x, x)``;
    * ``pe-fixed``: NP bits and colour permutations come from separate children of the seed, so switching the
      colour shuffle off leaves the NP bits unchanged;
    * ``block_size`` is accepted (every scheme has one) and stored in the key, but PE has no blocks: it does not
      constrain the image size and does not affect encryption;
    * never JPEG-aligned: per-pixel NP and colour shuffling destroy the local correlation JPEG relies on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import GatherScheme, Scheme, Subsampling, image_hw
from .etc import CHANNEL_PERMS
from .keys import Key
from .plan import GatherPlan, is_torch, thread_pool
from .registry import register_scheme

__all__ = ["PE", "PEFixed", "apply_pixel_keys", "apply_pixel_states"]

_INVERSE_PERMS = np.argsort(CHANNEL_PERMS, axis=1)  # code -> inverse permutation
_CHUNK = 256  # on a GPU: images whose per-image keys are drawn at once (bounds the key memory: 8 bytes per pixel)
_HOST_CHUNK = 16  # on the CPU (numpy or torch): images per thread-pool task, whose temporaries stay in cache


def _check_size(image_size: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(s) for s in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    return h, w


def apply_pixel_keys(x: Any, negpos: Any, codes: Any, inverse: bool) -> Any:
    """Encrypt (or decrypt) images with per-image, per-pixel keys, vectorised over the whole batch.

    Args:
        x: numpy ``(N, H, W, 3)`` or torch ``(N, 3, H, W)``, uint8 or float in [0, 1].
        negpos: NP bits of the *input* channels, numpy ``(N, H, W, 3)`` / torch ``(N, 3, H, W)`` bool.
        codes: colour permutation codes 0..5, ``(N, H, W)`` int64 of the same library.
        inverse: decrypt instead.

    Encryption: ``y[..., k] = np(x)[..., perm[k]]`` with ``np(v) = 255 - v`` (``1 - v``) where the bit is set;
    decryption undoes the permutation first, then NP.
    """
    if is_torch(x):
        import torch

        perms = torch.as_tensor(_INVERSE_PERMS if inverse else CHANNEL_PERMS, device=x.device)[codes]
        perms = perms.permute(0, 3, 1, 2)  # (N, 3, H, W): output channel k <- input channel perms[:, k]
        flip = (lambda v: torch.where(negpos, 255 - v, v)) if x.dtype == torch.uint8 else (
            lambda v: torch.where(negpos, 1 - v, v))
        return flip(torch.gather(x, 1, perms)) if inverse else torch.gather(flip(x), 1, perms)
    perms = (_INVERSE_PERMS if inverse else CHANNEL_PERMS)[codes]  # (N, H, W, 3)
    top = np.uint8(255) if x.dtype == np.uint8 else x.dtype.type(1)

    def flip(v: np.ndarray) -> np.ndarray:
        return np.where(negpos, top - v, v)

    return flip(np.take_along_axis(x, perms, axis=-1)) if inverse else np.take_along_axis(flip(x), perms, axis=-1)


def _where(cond: Any, a: Any, b: Any) -> Any:
    """``where(cond, a, b)``; on integer arrays by bit masks (``b ^ ((a ^ b) & -cond)``: numpy's and torch's
    ``where`` on uint8 arrays are several times slower)."""
    if is_torch(cond):
        import torch

        if a.dtype.is_floating_point or b.dtype.is_floating_point:
            return torch.where(cond, a, b)
        return b ^ ((a ^ b) & (0 - cond.view(torch.uint8)).to(b.dtype))
    if a.dtype.kind in "ui" and b.dtype.kind in "ui":
        return b ^ ((a ^ b) & (0 - cond.view(np.uint8)).astype(b.dtype, copy=False))
    return np.where(cond, a, b)


def _u8(flags: Any) -> Any:
    """A boolean array as uint8 0/1, without a copy where the library allows."""
    if is_torch(flags):
        import torch

        return flags.to(torch.uint8)
    return flags.view(np.uint8)


def apply_pixel_states(x: Any, bits: Any, codes: Any, inverse: bool) -> Any:
    """:func:`apply_pixel_keys` from the keys in their compact form: elementwise uint8 operations only.

    Args:
        x: numpy ``(N, H, W, 3)`` or torch ``(N, 3, H, W)``, uint8 or float in [0, 1].
        bits: uint8 ``(N, H, W)`` of the same library; bit ``c`` is the NP bit of input channel ``c``.
        codes: uint8 ``(N, H, W)`` colour permutation codes 0..5.
        inverse: decrypt instead.

    The same result as :func:`apply_pixel_keys` (a test checks it), without its ``(N, H, W, 3)`` int64 index
    arrays. ``CHANNEL_PERMS`` lists the permutations of (0, 1, 2) in lexicographic order, so code ``c`` takes
    its first channel from ``c // 2`` and the other two in increasing order when ``c`` is even, swapped when odd;
    the inverse of code 3 is code 4 and vice versa, the others are their own inverses. Encryption:
    ``y_k = x_{src_k}``, inverted where bit ``src_k`` is set; decryption, with the inverse code:
    ``x_k = y_{src_k}``, inverted where bit ``k`` is set.
    """
    torch_layout = is_torch(x)
    if inverse:
        codes = codes + _u8(codes == 3) - _u8(codes == 4)
    first = codes >> 1
    odd = (codes & 1) == 1
    low, high = _u8(first == 0), 2 - _u8(first == 2)
    sources = (first, _where(odd, high, low), _where(odd, low, high))
    if torch_layout:
        planes = [x[:, c] for c in range(3)]
        out = x.new_empty(x.shape)
    else:
        planes = [np.ascontiguousarray(x[..., c]) for c in range(3)]
        out = np.empty_like(x)
    integer = x.dtype == np.uint8 if not torch_layout else not x.dtype.is_floating_point
    for k, src in enumerate(sources):
        value = _where(src == 0, planes[0], _where(src == 1, planes[1], planes[2]))
        flip = (bits >> (k if inverse else src)) & 1
        # inverted where the bit is set: on uint8, 255 - v is v XOR 255, and 0 - 1 is 255
        value = value ^ (0 - flip) if integer else _where(flip == 1, 1 - value, value)
        if torch_layout:
            out[:, k] = value
        else:
            out[..., k] = value
    return out


class _Pixelwise:
    """What both PE variants share: the colour-shuffle option, no blocks, never JPEG-aligned."""

    blockwise = False
    # each value is v or 255 - v of a value of the same pixel: affine, and no pixel moves. PE's per-pixel keys are
    # independent fair draws, so a key pieced together from two images' keys is again a key it could draw
    affine = True
    block_local = True

    def __init__(self, block_size: int, color_shuffle: bool = True) -> None:
        super().__init__(block_size)  # type: ignore[call-arg]
        self.color_shuffle = bool(color_shuffle)

    def jpeg_aligned(self, subsampling: Subsampling) -> bool:
        return False


@register_scheme("pe")
class PE(_Pixelwise, Scheme):
    """Pixel-based encryption with a fresh key per image (the published scheme, "without key management").

    Args:
        block_size: stored in the key for uniformity, otherwise unused (any image size is accepted).
        color_shuffle: permute the three colour values of every pixel; ``False`` leaves NP only.

    Key arrays: ``secret``, 8 uint32 words seeding the stream of per-image keys.

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> scheme = ciphers.create("pe", block_size=16)
        >>> key = scheme.generate_key(seed=1234, image_size=(30, 20))
        >>> x = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 30, 20, 3), dtype=np.uint8), 2, axis=0)
        >>> y = scheme.encrypt(x, key)
        >>> bool((y[0] != y[1]).any()), bool((scheme.decrypt(y, key) == x).all())
        (True, True)
    """

    per_image_keys = True

    def generate_key(self, seed: int, image_size: tuple[int, int]) -> Key:
        """Draw the secret of a stream of per-image keys for ``image_size`` images (any positive size)."""
        h, w = _check_size(image_size)
        secret = np.random.default_rng(np.random.SeedSequence(int(seed))).integers(0, 2**32, 8, dtype=np.uint32)
        return Key(self.name, self.block_size, (h, w), dict(self.options), {"secret": secret})

    def image_keys(self, key: Key, first_index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """NP bits ``(count, H, W, 3)`` and colour codes ``(count, H, W)`` of images ``first_index ..`` of ``key``
        (bool and int64: the form :func:`apply_pixel_keys` takes)."""
        bits, codes = self.image_states(key, first_index, count)
        return ((bits[..., None] >> np.arange(3, dtype=np.uint8)) & 1).astype(bool), codes.astype(np.int64)

    def image_states(self, key: Key, first_index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The keys of images ``first_index ..`` of ``key`` in compact form: uint8 ``(count, H, W)`` NP bits (bit
        ``c`` for channel ``c``) and uint8 ``(count, H, W)`` colour codes. Pixel ``p`` of image ``i`` takes word
        ``i * H * W + p`` of the key's PCG64 stream: its three low bits, and the rest modulo 6."""
        if first_index < 0:
            raise ValueError(f"first_index must be non-negative, got {first_index}")
        h, w = key.image_size
        stream = np.random.PCG64(np.random.SeedSequence(key.arrays["secret"].astype(np.uint64).tolist()))
        stream.advance(first_index * h * w)
        words = stream.random_raw(count * h * w).reshape(count, h, w)
        bits = (words & np.uint64(7)).astype(np.uint8)
        codes = ((words >> np.uint64(3)) % np.uint64(6)).astype(np.uint8) if self.color_shuffle else (
            np.zeros(words.shape, dtype=np.uint8))
        return bits, codes

    def _run(self, x: Any, key: Key, first_index: int, inverse: bool) -> Any:
        h, w, batched = image_hw(x)
        self.check_key(key, h, w)
        x = x if batched else x[None]
        y = x.new_empty(x.shape) if is_torch(x) else np.empty_like(x)
        on_host = not is_torch(x) or x.device.type == "cpu"
        chunk = _HOST_CHUNK if on_host else _CHUNK

        def run(start: int) -> None:  # a chunk's keys drawn, then applied, each vectorised over the chunk
            part = x[start:start + chunk]
            bits, codes = self.image_states(key, first_index + start, part.shape[0])
            if is_torch(part):
                import torch

                bits, codes = torch.from_numpy(bits).to(part.device), torch.from_numpy(codes).to(part.device)
            y[start:start + chunk] = apply_pixel_states(part, bits, codes, inverse)

        starts = range(0, x.shape[0], chunk)
        if not on_host or len(starts) == 1:  # a device runs each operation over the whole chunk itself
            for start in starts:
                run(start)
        else:  # numpy and torch release the GIL in every step: cache-sized chunks on the thread pool
            list(thread_pool().map(run, starts))
        return y if batched else y[0]

    def encrypt(self, x: Any, key: Key, first_index: int = 0) -> Any:
        """Encrypt image ``j`` of ``x`` with the key of image ``first_index + j`` of ``key``'s stream."""
        return self._run(x, key, first_index, inverse=False)

    def decrypt(self, x: Any, key: Key, first_index: int = 0) -> Any:
        """Undo :meth:`encrypt` with the same ``first_index``."""
        return self._run(x, key, first_index, inverse=True)

    def encrypt_fresh(self, x: Any, generator: Any) -> Any:
        """Encrypt a torch ``(N, 3, H, W)`` batch with throw-away keys drawn from ``generator`` (one per image).

        What training uses: every image gets a new key each time it is drawn, and no key is kept.
        """
        import torch

        image_hw(x)
        n, _, h, w = x.shape
        gen_device = generator.device
        negpos = torch.randint(0, 2, (n, 3, h, w), generator=generator, device=gen_device).to(x.device, torch.uint8)
        codes = (torch.randint(0, 6, (n, h, w), generator=generator, device=gen_device) if self.color_shuffle else
                 torch.zeros(n, h, w, dtype=torch.int64, device=gen_device)).to(x.device, torch.uint8)
        bits = negpos[:, 0] | (negpos[:, 1] << 1) | (negpos[:, 2] << 2)
        return apply_pixel_states(x, bits, codes, inverse=False)


@register_scheme("pe-fixed")
class PEFixed(_Pixelwise, GatherScheme):
    """Pixel-based encryption with ONE key for every image: per-pixel NP bits and colour permutation (a variant).

    Args:
        block_size: stored in the key for uniformity, otherwise unused (any image size is accepted).
        color_shuffle: permute the three colour values of every pixel; ``False`` leaves NP only.

    Key arrays: ``negpos`` ``(H, W, 3)`` bool and ``channel_perm`` ``(H, W)`` codes in 0..5.

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> scheme = ciphers.create("pe-fixed", block_size=16)
        >>> key = scheme.generate_key(seed=1234, image_size=(30, 20))
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 30, 20, 3), dtype=np.uint8)
        >>> bool((scheme.decrypt(scheme.encrypt(x, key), key) == x).all())
        True
    """

    def generate_key(self, seed: int, image_size: tuple[int, int]) -> Key:
        """Draw one key for ``image_size`` images; unlike block schemes, any positive size is accepted."""
        h, w = _check_size(image_size)
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
