"""Which augmentations of ciphertexts are block-safe for which scheme: the names and the static check, without
torch, so that a config's grid is checked before any job starts (:func:`etcbench.grid.check_grid`). The
augmentations themselves, and why each is safe where it is, are in :mod:`etcbench.data.ciphertext_augment`."""

from __future__ import annotations

from typing import Any

__all__ = ["AUGMENTS", "block_safe_reason", "check_augment"]

AUGMENTS = ("none", "mixup", "block_cutmix")


def check_augment(augment: str) -> str:
    """``augment`` if it is one of :data:`AUGMENTS`; else one ``ValueError`` line naming them."""
    if augment not in AUGMENTS:
        raise ValueError(f"unknown ciphertext augmentation {augment!r}; block-safe ones: {', '.join(AUGMENTS)}")
    return augment



def block_safe_reason(augment: str, scheme: Any, block_size: int | None = None) -> str | None:
    """None if ``augment`` of ciphertexts commutes with ``scheme``'s encryption; else a one-line reason.

    Args:
        augment: one of :data:`AUGMENTS` (an unknown name is a ``ValueError``).
        scheme: a scheme class (or instance) with the class attributes ``affine``, ``per_image_keys``,
            ``block_local`` and ``blockwise`` of :class:`etcbench.ciphers.Scheme`; missing ones count as unsafe.
        block_size: the augmentation's block size; with a scheme *instance* of a block-wise scheme it must be a
            multiple of the scheme's block size for ``block_cutmix``.
    """
    check_augment(augment)
    cls = scheme if isinstance(scheme, type) else type(scheme)
    name = getattr(cls, "name", "") or cls.__name__
    if augment == "none":
        return None
    if augment == "mixup":
        if not getattr(cls, "affine", False):
            return (f"mixup is not block-safe for scheme {name!r}: its encryption is not exactly v or 1 - v of one "
                    f"input value, so a mix of ciphertexts is not the ciphertext of the mixed images")
        if getattr(cls, "per_image_keys", True):
            return (f"mixup is not block-safe for scheme {name!r}: it encrypts every image with its own key, so a "
                    f"mix of two ciphertexts mixes two keys")
        return None
    if not getattr(cls, "block_local", False):
        return (f"block_cutmix is not block-safe for scheme {name!r}: a ciphertext block is not computed from one "
                f"block of the plain image, so pasted ciphertext blocks are no pasted plain blocks")
    scheme_block = getattr(scheme, "block_size", None) if not isinstance(scheme, type) else None
    if (block_size is not None and scheme_block is not None and getattr(cls, "blockwise", True)
            and block_size % scheme_block):
        return (f"block_cutmix with block size {block_size} is not block-safe for scheme {name!r} with block size "
                f"{scheme_block}: the pasted rectangle must be made of whole cipher blocks (a multiple of "
                f"{scheme_block})")
    return None
