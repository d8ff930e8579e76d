"""What the learning-based attacks (:mod:`.itn`, :mod:`.gan`) share: data scaling, batching, the training loop
with validation and best-checkpoint selection, and batched reconstruction.

Protocol of the lab's robustness code (``docs/paper.md`` of the suite, section 10): images scaled to ``[-1, 1]``
(``uint8 -> x / 127.5 - 1``, the suite's mean = std = 0.5 normalisation, :func:`etcbench.data.transforms.normalize`);
the network maps an encrypted image to its plain image; 10% of the attacker's pairs are held out for validation
and the weights of the epoch with the lowest validation MSE are kept. Subclasses build their networks and
optimisers (:meth:`InverseNetworkAttack._setup`) and define one training step (:meth:`InverseNetworkAttack._step`);
:meth:`InverseNetworkAttack.fit` runs the epochs and :meth:`InverseNetworkAttack.reconstruct` the trained network.

Choices the literature leaves open, fixed here:
    * the validation pairs are a seeded random ``round(val_fraction * N)`` of the attacker's pairs (at least one
      when ``val_fraction > 0``, and at least one pair is left for training); ``val_fraction=0`` keeps the last
      epoch's weights;
    * training batches are a fresh seeded permutation of the training pairs each epoch; a trailing batch of a
      single image is skipped (BatchNorm cannot normalise one value per channel), other partial batches are used;
    * validation loss is the MSE in the ``[-1, 1]`` domain over all validation pixels, with the networks in eval
      mode (BatchNorm running statistics); ties keep the earlier epoch;
    * seeding: network initialisation draws from torch's CPU generator seeded with ``seed`` inside a forked RNG
      state (the caller's global RNG state is left unchanged); the split and the batch order come from their own
      ``torch.Generator`` seeded with ``seed``. On CPU a fixed seed gives identical weights and reconstructions;
    * reconstructions are ``round((y + 1) * 127.5)`` clipped to ``0..255``, computed in batches of
      ``eval_batch_size`` on the device given to ``fit``;
    * timing (``seconds``, ``images_per_s``) counts the training steps only, not validation;
    * unpaired attacks (``paired = False``, the lab's GAN-Attack) get a plain set and an encrypted set of other
      images, possibly of different lengths; each epoch draws both in independent seeded orders and pairs them
      batch by batch up to the shorter length; they have no validation (``val_fraction`` must be 0: the attacker
      holds no pairs to validate on), so the last epoch's weights are kept;
    * ``train_crop`` (default ``None``: whole images) cuts every training batch to one seeded random
      ``train_crop x train_crop`` window, at offsets on the block grid for the block network and on the grid of
      ``side_multiple`` (8 for the GAN's discriminator). Both inverse networks are local (the block network maps
      each block on its own, the pixel network each pixel), so a crop keeps every training signal they can use
      and costs ``(train_crop / side)**2`` of the compute; validation and reconstruction use whole images.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from .base import Attack, Reconstruction

if TYPE_CHECKING:  # torch is imported where a network is built or run, so that the registry loads without it
    import torch
    from torch import nn

__all__ = ["ARCHS", "InverseNetworkAttack", "check_images", "code_width_for", "from_unit", "split_indices",
           "to_unit"]

ARCHS = ("block", "pixel")  # the inverse networks of :mod:`.networks`


def code_width_for(channels: int, block_size: int, code_width: int | None = None) -> int:
    """The block network's code width: ``code_width``, or ``C*M*M`` (one code channel per value of a block)."""
    if code_width is None:
        return channels * block_size * block_size
    if isinstance(code_width, bool) or not isinstance(code_width, int) or code_width < 1:
        raise ValueError(f"code_width must be a positive integer or null (C*M*M), got {code_width!r}")
    return code_width


def to_unit(x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(N, H, W, C)`` uint8 numpy -> ``(N, C, H, W)`` float32 in ``[-1, 1]`` on ``device``."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2)
    return t.float().div_(127.5).sub_(1.0).contiguous()


def from_unit(y: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` float in ``[-1, 1]`` -> ``(N, H, W, C)`` uint8 numpy (rounded, clipped)."""
    import torch

    u = (y.detach().float() + 1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
    return u.permute(0, 2, 3, 1).cpu().numpy()


def check_images(x: Any, block_size: int, what: str, needs_blocks: bool = True, multiple: int = 1) -> np.ndarray:
    """Validate an attack input: ``(N, H, W, C)`` uint8 with ``C`` in (1, 3), sides multiples of the block size
    (when ``needs_blocks``) and of ``multiple``; returns it as a numpy array."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(x).__name__}")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"{what} must be (N, H, W, C) uint8 images with C = 1 or 3, got {x.dtype} of shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{what} holds no images")
    step = np.lcm(block_size, multiple) if needs_blocks else multiple
    if x.shape[1] % step or x.shape[2] % step:
        raise ValueError(f"{what}: height and width {x.shape[1:3]} must be multiples of {step}"
                         + (f" (block size {block_size})" if needs_blocks else ""))
    return x


def split_indices(n: int, val_fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random split of ``range(n)`` into (train, validation) index tensors."""
    import torch

    n_val = int(round(val_fraction * n))
    if val_fraction > 0:
        n_val = min(max(n_val, 1), n - 1)
    perm = torch.randperm(n, generator=generator)
    return perm[n_val:], perm[:n_val]


class InverseNetworkAttack(Attack):
    """Base of the attacks that learn an encrypted -> plain network from the attacker's own pairs.

    Args:
        block_size: the scheme's block size ``M``.
        arch: ``"block"`` or ``"pixel"`` inverse network (:func:`.networks.inverse_network`).
        epochs: training epochs.
        batch_size: training batch size.
        val_fraction: share of the attacker's pairs held out to pick the best epoch (0 keeps the last epoch).
        eval_batch_size: batch size of validation and :meth:`reconstruct`.
        train_crop: side of the random window each training batch is cut to (``None``: whole images); a
            multiple of the block size (block network) and of ``side_multiple``.
        code_width: code channels of the block network (``None``: ``C*M*M``, full rank; the lab's 48 is that at
            ``M = 4``); the width used is recorded in the fit statistics.
    """

    needs_training = True
    side_multiple = 1  # extra constraint on H and W (the GAN's discriminator needs multiples of 8)
    paired = True  # False: fit gets unpaired sets (plain, encrypted) drawn in independent orders, no validation

    def __init__(self, block_size: int, arch: str = "block", epochs: int = 5, batch_size: int = 128,
                 val_fraction: float = 0.1, eval_batch_size: int = 256, train_crop: int | None = None,
                 code_width: int | None = None) -> None:
        super().__init__(block_size)
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        if not self.paired and val_fraction:
            raise ValueError(f"{type(self).__name__} trains on unpaired images, so it has no pairs to validate on: "
                             f"val_fraction must be 0, got {val_fraction!r}")
        self.arch = arch
        code_width_for(3, self.block_size, code_width)  # checks the value
        self.code_width = code_width
        if train_crop is not None:
            step = self._crop_step()
            if not isinstance(train_crop, (int, np.integer)) or train_crop < 1 or train_crop % step:
                raise ValueError(f"train_crop must be a positive multiple of {step} for the {arch} network of "
                                 f"{type(self).__name__} (block size {block_size}), got {train_crop!r}")
        self.train_crop = None if train_crop is None else int(train_crop)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.val_fraction = float(val_fraction)
        self.eval_batch_size = int(eval_batch_size)
        self.network: nn.Module | None = None
        self.device: torch.device | str = "cpu"  # the fit's device (a torch.device once fit)
        self.channels: int | None = None

    def _crop_step(self) -> int:
        """The grid a training crop's side and offsets lie on."""
        return int(np.lcm(self.block_size, self.side_multiple) if self.arch == "block" else self.side_multiple)

    # -- subclass hooks -----------------------------------------------------------------------------------------
    def _setup(self, channels: int) -> None:
        """Build ``self.network`` (the encrypted -> plain network) and whatever else training needs, on
        ``self.device``; called with torch's CPU generator already seeded."""
        raise NotImplementedError

    def _step(self, encrypted: torch.Tensor, plain: torch.Tensor) -> dict[str, float]:
        """One training step on a batch in ``[-1, 1]``; returns the batch's losses (``"loss"``: the MSE)."""
        raise NotImplementedError

    def _end_epoch(self) -> None:
        """Called after each epoch's training steps (learning-rate schedules)."""

    def _train_mode(self, training: bool) -> None:
        """Switch every trained module between train and eval mode."""
        assert self.network is not None
        self.network.train(training)

    # -- shared driver ------------------------------------------------------------------------------------------
    def _check(self, x: Any, what: str, training: bool = False) -> np.ndarray:
        return check_images(x, self.block_size, what, needs_blocks=self.arch == "block",
                            multiple=self.side_multiple if training else 1)

    def _val_loss(self, encrypted: np.ndarray, plain: np.ndarray) -> float:
        import torch

        assert self.network is not None
        self.network.eval()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(encrypted), self.eval_batch_size):
                y = self.network(to_unit(encrypted[i:i + self.eval_batch_size], self.device))
                total += float(torch.sum((y - to_unit(plain[i:i + self.eval_batch_size], self.device)) ** 2))
        return total / plain.size

    def fit(self, plain: np.ndarray, encrypted: np.ndarray, *, seed: int = 0, device: Any = "cpu",
            progress: bool = False) -> dict[str, Any]:
        """Train on the attacker's pairs (``plain[i]`` encrypted with one of the attacker's keys is
        ``encrypted[i]``), keep the best-validation weights; returns per-epoch losses and timings."""
        import torch

        plain = self._check(plain, "plain images", training=True)
        encrypted = self._check(encrypted, "encrypted images", training=True)
        if plain.shape[1:] != encrypted.shape[1:] or (self.paired and len(plain) != len(encrypted)):
            raise ValueError(f"plain and encrypted images must have the same shape, got {plain.shape} and "
                             f"{encrypted.shape}")
        if min(len(plain), len(encrypted)) < 2:
            raise ValueError(f"training needs at least 2 image pairs, got {min(len(plain), len(encrypted))}")
        if self.train_crop is not None and self.train_crop > min(plain.shape[1:3]):
            raise ValueError(f"train_crop {self.train_crop} exceeds the training images' sides {plain.shape[1:3]}")
        self.device = torch.device(device)
        self.channels = plain.shape[-1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._setup(self.channels)
        assert self.network is not None
        order = torch.Generator().manual_seed(seed)
        train_idx, val_idx = split_indices(len(plain), self.val_fraction, order)
        val_plain, val_enc = plain[val_idx.numpy()], encrypted[val_idx.numpy()]
        enc_idx = torch.arange(len(encrypted)) if not self.paired else None

        history: list[dict[str, Any]] = []
        best_state, best_loss, best_epoch = None, float("inf"), self.epochs
        train_images, train_seconds = 0, 0.0
        for epoch in range(self.epochs):
            self._train_mode(True)
            perm = train_idx[torch.randperm(len(train_idx), generator=order)]
            if enc_idx is None:  # pairs: the encrypted image of each plain one
                batches = [(b, b) for b in perm.split(self.batch_size) if len(b) > 1]
            else:  # unpaired: the encrypted set in an order of its own, as long as the shorter set allows
                other = enc_idx[torch.randperm(len(enc_idx), generator=order)]
                size = min(len(perm), len(other))
                batches = [(p, e) for p, e in zip(perm[:size].split(self.batch_size),
                                                   other[:size].split(self.batch_size)) if len(p) > 1]
            sums: dict[str, float] = {}
            seen, t0 = 0, time.perf_counter()
            bar = tqdm(batches, desc=f"{self.name} epoch {epoch + 1}/{self.epochs}", disable=not progress,
                       mininterval=10, unit="batch")
            for plain_rows, enc_rows in bar:
                rows, erows = plain_rows.numpy(), enc_rows.numpy()
                ys, xs = self._window(plain.shape[1:3], order)  # one copy: the batch's window only
                losses = self._step(to_unit(encrypted[erows, ys, xs], self.device),
                                    to_unit(plain[rows, ys, xs], self.device))
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v * len(rows)
                seen += len(rows)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            seconds = time.perf_counter() - t0
            self._end_epoch()
            train_images += seen
            train_seconds += seconds
            record: dict[str, Any] = {"epoch": epoch + 1}
            record.update({("train_loss" if k == "loss" else f"train_{k}"): v / max(seen, 1) for k, v in sums.items()})
            if len(val_idx):
                val_loss = self._val_loss(val_enc, val_plain)
                record["val_loss"] = val_loss
                if val_loss < best_loss:
                    best_loss, best_epoch = val_loss, epoch + 1
                    best_state = copy.deepcopy(self.network.state_dict())
            record.update({"seconds": seconds, "images_per_s": seen / seconds if seconds > 0 else float("nan")})
            history.append(record)
            if progress:
                tqdm.write(f"{self.name} epoch {epoch + 1}: " + ", ".join(
                    f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
        if best_state is not None:
            self.network.load_state_dict(best_state)
        self.network.eval()
        return {"history": history, "best_epoch": best_epoch,
                "best_val_loss": best_loss if len(val_idx) else None,
                "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "train_images": train_images,
                "paired": self.paired, "n_encrypted": int(len(encrypted)),
                "train_seconds": train_seconds,
                "images_per_s": train_images / train_seconds if train_seconds > 0 else float("nan"),
                "device": str(self.device), "parameters": sum(p.numel() for p in self.network.parameters()),
                "code_width": (code_width_for(self.channels, self.block_size, self.code_width)
                               if self.arch == "block" else None)}

    def _window(self, sides: tuple[int, int], generator: torch.Generator) -> tuple[slice, slice]:
        """The training window of one batch: whole images, or a random ``train_crop`` square on the crop grid."""
        import torch

        if self.train_crop is None:
            return slice(None), slice(None)
        step, crop = self._crop_step(), self.train_crop
        top, left = (int(torch.randint((side - crop) // step + 1, (1,), generator=generator)) * step
                     for side in sides)
        return slice(top, top + crop), slice(left, left + crop)

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        """Run the trained network in batches on the fit device; ``(N, H, W, C)`` uint8 in and out."""
        import torch

        if self.network is None:
            raise RuntimeError(f"{type(self).__name__}.reconstruct needs a trained network: call fit first")
        encrypted = self._check(encrypted, "encrypted images")
        if encrypted.shape[-1] != self.channels:
            raise ValueError(f"the attack was trained on {self.channels}-channel images, got {encrypted.shape[-1]}")
        self.network.eval()
        out = np.empty_like(encrypted)
        with torch.no_grad():
            for i in range(0, len(encrypted), self.eval_batch_size):
                out[i:i + self.eval_batch_size] = from_unit(
                    self.network(to_unit(encrypted[i:i + self.eval_batch_size], self.device)))
        return Reconstruction(images=out)
