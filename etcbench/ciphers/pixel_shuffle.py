"""Block scrambling + pixel shuffling for ViT, with the model transformation that absorbs it.

Qi, MaungMaung, Kinoshita, Kiya, "Privacy-Preserving Image Classification Using Vision Transformer",
EUSIPCO 2022; Kiya et al., "Image and Model Transformation with Secret Key for Vision Transformer", 2022-2023.
See ``docs/paper.md`` of the suite, section 3.6.

Steps (M is the ViT patch size):

1. cut the image into M x M blocks (row-major numbering, the order of ViT's patch tokens);
2. block scrambling (global): output block ``j`` is input block ``block_perm[j]``;
3. pixel shuffling (shared-block): every block is flattened into a vector of ``3*M*M`` values and permuted by
   one permutation, the same for every block: output entry ``k`` is input entry ``pixel_perm[k]``;
4. negative-positive (optional, shared-block): output entries ``k`` with ``negpos[k]`` become ``255 - v``.

Everything compiles into one gather plus one mask per key (:mod:`.plan`).

Choices the literature leaves open, fixed here:
    * the block vector is flattened in timm's patch-embedding order (channel, row, column): entry ``k`` is the
      value at ``(c, r, col) = np.unravel_index(k, (3, M, M))`` of the block, so ``pixel_perm`` indexes the
      columns of the flattened ``[D, 3, M, M]`` embedding weight directly (the "layout trap" of paper.md 3.6);
      the gather plan's ``(H, W, C)`` indexing is derived from it;
    * NP (``negative_positive=True``) is the variant some later papers add: each of the ``3*M*M`` entries gets
      an independent fair bit, applied after the shuffle (indexed by the output entry), the same in every
      block; it is off by default, as in Qi et al.;
    * scrambling, shuffling and NP are drawn from separate children of the seed, so switching one off leaves
      the others unchanged;
    * never JPEG-aligned when shuffling or NP is on: both change single values inside a block, which breaks
      the correlation the DCT relies on; scrambling alone follows the block-size rule of :class:`.Scheme`.

Model transformation (exact for ViTs whose token mixing is permutation-equivariant, e.g. timm's
``VisionTransformer`` with absolute position embeddings): :func:`transform_patch_embedding` permutes the
columns of the patch-embedding weight (absorbing the pixel shuffle) and :func:`transform_position_embedding`
permutes the patch rows of the position embedding (absorbing the block scrambling; prefix tokens stay).
:func:`transform_patch_embedding_affine` also absorbs NP through the bias.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .base import GatherScheme, Subsampling
from .blocks import num_blocks
from .keys import Key
from .plan import GatherPlan, block_plan
from .registry import register_scheme

if TYPE_CHECKING:
    import torch

__all__ = [
    "PixelShuffle",
    "transform_patch_embedding",
    "transform_patch_embedding_affine",
    "transform_position_embedding",
]


@register_scheme("pixel-shuffle")
class PixelShuffle(GatherScheme):
    """Block scrambling + shared-block pixel shuffling (+ optional shared-block NP) for ViT.

    Args:
        block_size: block size M; must equal the ViT's patch size for the model transformation to apply.
        scramble: permute block positions (one global permutation).
        shuffle: permute the ``3*M*M`` values of every block with one shared permutation.
        negative_positive: invert key-selected entries of the block vector, the same entries in every block.

    Key arrays: ``block_perm`` ``(n,)``, ``pixel_perm`` ``(3*M*M,)`` and ``negpos`` ``(3*M*M,)`` bool, the last two
    in (channel, row, column) order.

    Examples:
        >>> import numpy as np
        >>> from etcbench import ciphers
        >>> import etcbench.ciphers.pixel_shuffle
        >>> scheme = ciphers.create("pixel-shuffle", block_size=8)
        >>> key = scheme.generate_key(seed=1234, image_size=(32, 32))
        >>> x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        >>> bool((scheme.decrypt(scheme.encrypt(x, key), key) == x).all())
        True
    """

    block_local = True  # block scrambling moves whole blocks; the shuffle and NP stay inside a block

    def __init__(
            self,
            block_size: int,
            scramble: bool = True,
            shuffle: bool = True,
            negative_positive: bool = False,
    ) -> None:
        super().__init__(block_size)
        self.scramble = bool(scramble)
        self.shuffle = bool(shuffle)
        self.negative_positive = bool(negative_positive)

    transforms_models = True

    def jpeg_aligned(self, subsampling: Subsampling) -> bool:
        if self.shuffle or self.negative_positive:
            return False
        return super().jpeg_aligned(subsampling)

    def _draw(self, seed_seq: np.random.SeedSequence, height: int, width: int) -> dict[str, np.ndarray]:
        n = num_blocks(height, width, self.block_size)
        size = 3 * self.block_size * self.block_size
        rng_block, rng_pixel, rng_np = (np.random.default_rng(s) for s in seed_seq.spawn(3))
        return {
            "block_perm": rng_block.permutation(n) if self.scramble else np.arange(n),
            "pixel_perm": rng_pixel.permutation(size) if self.shuffle else np.arange(size),
            "negpos": rng_np.random(size) < 0.5 if self.negative_positive else np.zeros(size, dtype=bool),
        }

    def build_plan(self, key: Key) -> GatherPlan:
        h, w = key.image_size
        m = self.block_size
        a = key.arrays

        def edit(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            n = blocks.shape[0]
            vectors = blocks[a["block_perm"]].transpose(0, 3, 1, 2).reshape(n, 3 * m * m)  # timm order (c, row, col)
            blocks = vectors[:, a["pixel_perm"]].reshape(n, 3, m, m).transpose(0, 2, 3, 1)  # back to (n, M, M, 3)
            return blocks, a["negpos"].astype(bool).reshape(3, m, m).transpose(1, 2, 0)

        return block_plan(h, w, m, edit)

    def transform_model(self, model: torch.nn.Module, key: Key, mean: float = 0.5, std: float = 0.5) -> torch.nn.Module:
        """A copy of a timm ``VisionTransformer`` (patch size = block size, absolute position embeddings) whose
        patch embedding reads the key's pixel shuffle and NP and whose position embedding follows its block
        scrambling (:func:`transform_patch_embedding_affine`, :func:`transform_position_embedding`).

        NP is absorbed for the model's input normalisation ``(v / 255 - mean) / std``, one ``mean`` and ``std`` for
        every channel (the suite's: 0.5 and 0.5, :mod:`etcbench.data.transforms`), where it maps a normalised value
        ``n`` to ``(1 - 2 mean) / std - n``.

        Raises:
            ValueError: one line naming what does not fit: another scheme's key, a model without a patch
                embedding and absolute position embedding, a patch size other than the key's block size, or a
                token grid other than the key's block grid.
        """
        import copy

        import torch

        self.check_key(key, *key.image_size)
        proj = getattr(getattr(model, "patch_embed", None), "proj", None)
        pos = getattr(model, "pos_embed", None)
        if not isinstance(proj, torch.nn.Conv2d) or not isinstance(pos, torch.nn.Parameter):
            raise ValueError(f"{type(model).__name__} is not a ViT with a convolutional patch embedding and absolute "
                             "position embeddings (timm's VisionTransformer); pixel shuffling cannot be absorbed")
        m = key.block_size
        if tuple(proj.kernel_size) != (m, m) or tuple(proj.stride) != (m, m):
            raise ValueError(f"the model's patches are {tuple(proj.kernel_size)} pixels; the key's blocks are "
                             f"{m}x{m} (the patch size must equal the block size)")
        grid = tuple(getattr(model.patch_embed, "grid_size", ()))
        blocks = (key.image_size[0] // m, key.image_size[1] // m)
        if grid != blocks:
            raise ValueError(f"the model reads a {grid} token grid; the key's {key.image_size[0]}x{key.image_size[1]} "
                             f"images have a {blocks} block grid")
        prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
        out = copy.deepcopy(model)
        offset = (1 - 2 * mean) / std
        if proj.bias is None and offset and key.arrays["negpos"].any():
            raise ValueError("the model's patch embedding has no bias to absorb the key's negative-positive step")
        with torch.no_grad():
            weight, bias = transform_patch_embedding_affine(proj.weight, proj.bias, key, offset)
            out.patch_embed.proj.weight.copy_(weight)
            if out.patch_embed.proj.bias is not None:
                out.patch_embed.proj.bias.copy_(bias)
            out.pos_embed.copy_(transform_position_embedding(pos, key, prefix))
        return out


# model transformation ----------------------------------------------------------------------------------------
def _check_key(key: Key) -> None:
    if key.scheme != "pixel-shuffle":
        raise ValueError(f"model transformation needs a 'pixel-shuffle' key, got a {key.scheme!r} key")


def _flat_weight(weight: torch.Tensor, key: Key) -> torch.Tensor:
    m = key.block_size
    size = 3 * m * m
    if weight.ndim == 4 and tuple(weight.shape[1:]) == (3, m, m):
        return weight.reshape(weight.shape[0], size)
    if weight.ndim == 2 and weight.shape[1] == size:
        return weight
    raise ValueError(
        f"expected a patch-embedding weight of shape [D, 3, {m}, {m}] or [D, {size}] for block size {m}, "
        f"got {tuple(weight.shape)}; the key's block size must equal the model's patch size"
    )


def transform_patch_embedding(weight: torch.Tensor, key: Key) -> torch.Tensor:
    """Permute the columns of a patch-embedding weight so that it reads pixel-shuffled patches.

    With ``v`` a plain patch flattened in (channel, row, column) order and ``v'[k] = v[pixel_perm[k]]`` the
    encrypted one, the returned weight ``W'`` satisfies ``W' v' = W v``: ``W'[:, k] = W[:, pixel_perm[k]]``.

    Args:
        weight: timm's ``patch_embed.proj.weight``, ``[D, 3, M, M]``, or its flattened form ``[D, 3*M*M]``.
        key: a ``pixel-shuffle`` key with block size M and NP off.

    Returns:
        A new tensor of the same shape, dtype and device (the input is not modified).

    Raises:
        ValueError: for another scheme's key, a shape that does not match the key's block size, or a key with NP
            (use :func:`transform_patch_embedding_affine`, which absorbs NP through the bias).
    """
    import torch

    _check_key(key)
    if key.arrays["negpos"].any():
        raise ValueError(
            "this key inverts some values (negative_positive=True), which a weight permutation cannot absorb: "
            "use transform_patch_embedding_affine, which also corrects the bias"
        )
    flat = _flat_weight(weight, key)
    perm = torch.as_tensor(key.arrays["pixel_perm"], dtype=torch.long, device=weight.device)
    return flat[:, perm].reshape(weight.shape).clone()


def transform_patch_embedding_affine(
        weight: torch.Tensor, bias: torch.Tensor | None, key: Key, np_offset: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`transform_patch_embedding`, and also absorb the key's NP by flipping signs and moving the bias.

    NP maps a value ``v`` the patch embedding sees to ``np_offset - v``: 1.0 for images in [0, 1], 255.0 for
    uint8 values cast to float, and ``(1 - 2 * mean) / std`` after a per-channel-uniform normalisation (0.0 for
    the suite's mean = std = 0.5). A per-channel normalisation with different means or stds per channel cannot
    be absorbed once pixel shuffling mixes channels; normalise with one mean and std for all channels.

    Args:
        weight: ``[D, 3, M, M]`` or ``[D, 3*M*M]``.
        bias: ``[D]`` or ``None`` (treated as zeros).
        key: a ``pixel-shuffle`` key with block size M.
        np_offset: the constant ``c`` of the NP map ``v -> c - v`` in the embedding's input domain.

    Returns:
        ``(weight', bias')``: ``weight'[:, k] = ±weight[:, pixel_perm[k]]`` (minus where ``negpos[k]``) and
        ``bias' = bias + np_offset * sum_{k: negpos[k]} weight[:, pixel_perm[k]]``.
    """
    import torch

    _check_key(key)
    flat = _flat_weight(weight, key)
    perm = torch.as_tensor(key.arrays["pixel_perm"], dtype=torch.long, device=weight.device)
    negpos = torch.as_tensor(key.arrays["negpos"].astype(bool), device=weight.device)
    gathered = flat[:, perm]
    new_weight = torch.where(negpos, -gathered, gathered)
    if bias is None:
        bias = torch.zeros(flat.shape[0], dtype=weight.dtype, device=weight.device)
    new_bias = bias + np_offset * gathered[:, negpos].sum(dim=1)
    return new_weight.reshape(weight.shape).clone(), new_bias


def transform_position_embedding(pos_embed: torch.Tensor, key: Key, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Permute the patch rows of a position embedding so that it follows the scrambled blocks.

    Encrypted token ``j`` carries plain patch ``block_perm[j]``, so it gets that patch's position:
    ``pos'[P + j] = pos[P + block_perm[j]]`` with ``P = num_prefix_tokens``; prefix rows (class token, register
    tokens) are kept. Since the ViT encoder is permutation-equivariant over tokens and pools the class token
    (or averages), the transformed model's outputs on encrypted images equal the plain model's on plain images.

    Args:
        pos_embed: timm's ``pos_embed``, ``[1, P + n, D]`` or ``[P + n, D]`` (tokens on the second-last axis).
        key: a ``pixel-shuffle`` key for the model's image size, with block size = patch size.
        num_prefix_tokens: prefix tokens that carry a position embedding (1 for timm's default ViT; 0 when the
            model has ``no_embed_class=True`` or no class token).

    Returns:
        A new tensor of the same shape.
    """
    import torch

    _check_key(key)
    n = key.arrays["block_perm"].size
    if pos_embed.ndim not in (2, 3) or pos_embed.shape[-2] != num_prefix_tokens + n:
        h, w = key.image_size
        raise ValueError(
            f"expected a position embedding with {num_prefix_tokens + n} rows ({num_prefix_tokens} prefix + {n} "
            f"patches of a {h}x{w} image in {key.block_size}-pixel patches) on the second-last axis, "
            f"got shape {tuple(pos_embed.shape)}"
        )
    order = np.concatenate([np.arange(num_prefix_tokens), num_prefix_tokens + key.arrays["block_perm"]])
    return pos_embed[..., torch.as_tensor(order, dtype=torch.long, device=pos_embed.device), :].clone()
