"""The scheme interface shared by every cipher, and the gather-based base class.

Key *generation* (:meth:`Scheme.generate_key`) is the only random step; :meth:`Scheme.encrypt` and
:meth:`Scheme.decrypt` are pure, deterministic functions of the images and the key.

Accepted images (the same rule for every scheme):
    * numpy ``(N, H, W, 3)`` or ``(H, W, 3)``, channels last;
    * torch ``(N, 3, H, W)`` or ``(3, H, W)``, channels first, on any device;
    * dtype uint8, or floating point in [0, 1] (float results equal the uint8 result / 255, up to rounding).

Encrypted images have the shape of the input, except for grayscale-plane schemes (``plane_subsampling`` set), which
encrypt to one-channel planes of :meth:`Scheme.encrypted_shape` and decrypt those back to RGB.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from ..registry import Configurable
from .blocks import check_block_grid, check_block_size
from .keys import Key
from .plan import GatherPlan, is_torch

__all__ = ["Scheme", "GatherScheme", "check_dtype", "image_hw"]

Subsampling = Literal["444", "420", "gray"]


def image_hw(x: Any) -> tuple[int, int, bool]:
    """Return ``(H, W, batched)`` of an image batch after checking its layout and dtype."""
    torch_input = is_torch(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"expected an image batch with 3 or 4 dimensions, got shape {tuple(x.shape)}")
    batched = x.ndim == 4
    shape = tuple(x.shape[1:] if batched else x.shape)
    channels, h, w = (shape[0], shape[1], shape[2]) if torch_input else (shape[2], shape[0], shape[1])
    if channels != 3:
        layout = "(N, 3, H, W) torch" if torch_input else "(N, H, W, 3) numpy"
        raise ValueError(f"expected {layout} images with 3 colour channels, got shape {tuple(x.shape)}")
    check_dtype(x, "images")
    return h, w, batched


def check_dtype(x: Any, what: str) -> None:
    """``ValueError`` unless ``x`` (numpy or torch) is uint8 or floating point."""
    if is_torch(x):
        import torch

        ok = x.dtype == torch.uint8 or x.is_floating_point()
    else:
        ok = x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)
    if not ok:
        raise ValueError(f"expected uint8 or floating-point {what} in [0, 1], got dtype {x.dtype}")


class Scheme(Configurable):
    """Base class: a named block-wise image cipher with options fixed at construction."""

    name: ClassVar[str] = ""
    invertible: ClassVar[bool] = True
    # grayscale-plane schemes: the chroma subsampling built into their one-channel plane ("420" or "444"); a JPEG of
    # the plane is a grayscale JPEG. None for schemes whose encrypted images are RGB.
    plane_subsampling: ClassVar[str | None] = None
    # schemes that encrypt every image with its own key (PE as published): ``encrypt(x, key, first_index)`` keys
    # image j of a call as image first_index + j of the key's stream, and ``encrypt_fresh`` draws throw-away keys
    per_image_keys: ClassVar[bool] = False
    # whether the scheme works on blocks of block_size (PE works pixel by pixel: any image size, no block layout)
    blockwise: ClassVar[bool] = True
    # whether a model trained on plain images can be transformed with a key to read images encrypted with it
    # (:meth:`transform_model`; the workflow's model-transformation arm, ``transform`` in a grid setting)
    transforms_models: ClassVar[bool] = False
    # What augmentation of ciphertexts may assume (etcbench.data.ciphertext_augment; False is always safe to declare):
    # affine: with one key, every encrypted value of a float image is v or 1 - v (255 - v on the 0..255 scale) of
    # one input value, exactly, so a weighted mean of ciphertexts under one key is the ciphertext of the weighted
    # mean of the images (mixup);
    affine: ClassVar[bool] = False
    # block_local: every block_size block of a ciphertext (any rectangle for pixel-wise schemes, blockwise False)
    # is computed from one block of the plain image, always the same one, and the key's part for it only (for
    # per-image keys: a key assembled block by block from two keys is one the scheme could draw), so pasting whole
    # blocks from one ciphertext into another gives the ciphertext of the plain images pasted block by block
    block_local: ClassVar[bool] = False

    def __init__(self, block_size: int) -> None:
        self.block_size = check_block_size(block_size)

    def generate_key(self, seed: int, image_size: tuple[int, int]) -> Key:
        h, w = (int(s) for s in image_size)
        check_block_grid(h, w, self.block_size)
        ss = np.random.SeedSequence(int(seed))
        return Key(self.name, self.block_size, (h, w), dict(self.options), self._draw(ss, h, w))

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def encrypt(self, x: Any, key: Key) -> Any:
        raise NotImplementedError

    def decrypt(self, x: Any, key: Key) -> Any:
        raise NotImplementedError

    def encrypted_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """``(channels, rows, cols)`` of one encrypted ``height x width`` image (RGB schemes keep the shape)."""
        return 3, height, width

    def public_layout(self, x: np.ndarray) -> np.ndarray:
        """The key-free part of encryption: ``(N, H, W, 3)`` uint8 images in the encrypted layout, unencrypted.

        Identity for RGB schemes; the unencrypted YCbCr plane for grayscale-plane schemes. Attackers know it (it
        is part of the public algorithm): their reconstructions are estimates of it.
        """
        return np.asarray(x)

    def from_public_layout(self, y: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`public_layout`: images in the encrypted layout -> ``(N, H, W, 3)`` uint8 RGB."""
        return np.asarray(y)

    def jpeg_aligned(self, subsampling: Subsampling) -> bool:
        """Whether every block is a union of whole JPEG coding units for this chroma subsampling."""
        unit = 16 if subsampling == "420" else 8
        return self.block_size % unit == 0

    def transform_model(self, model: Any, key: Key, mean: float = 0.5, std: float = 0.5) -> Any:
        """A copy of ``model`` (trained on plain images normalised as ``(v / 255 - mean) / std``) that gives on
        images encrypted with ``key`` the outputs ``model`` gives on the plain images, up to float rounding.

        Only schemes with ``transforms_models`` implement it; ``model`` is left unchanged.
        """
        raise NotImplementedError(f"scheme {self.name!r} has no model transformation")

    def check_key(self, key: Key, height: int, width: int) -> None:
        if key.scheme != self.name or key.block_size != self.block_size or dict(key.options) != self.options:
            raise ValueError(
                f"key {key.key_id} was made for scheme {key.scheme!r} (block {key.block_size}, {key.options}), "
                f"not for {self.name!r} (block {self.block_size}, {self.options})"
            )
        if (height, width) != tuple(key.image_size):
            kh, kw = key.image_size
            raise ValueError(f"images are {height}x{width} but key {key.key_id} was generated for {kh}x{kw}")

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"block_size={self.block_size}" + (f", {opts}" if opts else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class GatherScheme(Scheme):
    """A scheme whose encryption is a fixed gather plus negative-positive mask (see :mod:`.plan`).

    ``affine`` holds for every such plan with ``mask_value`` 255 (``v`` or ``255 - v`` of one input value);
    subclasses that do more (nibble splitting, colour conversion) set it back to False. ``block_local`` depends on
    the gather and is declared by each subclass.
    """

    affine: ClassVar[bool] = True

    def __init__(self, block_size: int) -> None:
        super().__init__(block_size)
        self._plans: dict[str, GatherPlan] = {}

    def build_plan(self, key: Key) -> GatherPlan:
        raise NotImplementedError

    def plan(self, key: Key) -> GatherPlan:
        fp = key.fingerprint
        if fp not in self._plans:
            if len(self._plans) > 8:
                self._plans.clear()
            self._plans[fp] = self.build_plan(key)
        return self._plans[fp]

    def _run(self, x: Any, key: Key, inverse: bool) -> Any:
        h, w, batched = image_hw(x)
        self.check_key(key, h, w)
        plan = self.plan(key)
        plan = plan.inverse() if inverse else plan
        y = plan.apply(x if batched else x[None])
        return y if batched else y[0]

    def encrypt(self, x: Any, key: Key) -> Any:
        return self._run(x, key, inverse=False)

    def decrypt(self, x: Any, key: Key) -> Any:
        return self._run(x, key, inverse=True)
