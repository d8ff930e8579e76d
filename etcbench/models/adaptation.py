"""Adaptation-network baselines: a block-wise adaptation network in front of a timm ResNet-18 (paper.md §9).

* :class:`TanakaAdaptation` (for LE, §3.3), as in Madono's PyTorch re-implementation of Tanaka (ICCE-TW 2018):
  one sub-network shared by all blocks, i.e. a conv with kernel = stride = M from 3 to ``16*M*M`` features,
  BatchNorm, LeakyReLU(0.1), then ``PixelShuffle(M)`` giving a ``16 x H x W`` map.
* :class:`MadonoAdaptation` (for ELE/EtC, §3.4, "ELE-AdaptNet"): every block *position* has its own
  spectral-normalised ``3*M*M -> 16*M*M`` map, BatchNorm and LeakyReLU(0.2); the ``n`` feature vectors are then
  mixed by a learnable ``n x n`` pseudo-permutation matrix ``U`` (which can learn to undo block scrambling) and
  ``PixelShuffle(M)`` gives a ``16 x H x W`` map. Its training loss adds ``w_u * L_U + w_s * L_s``
  (:meth:`MadonoAdaptation.penalty_u`, :func:`madono_smoothness`; weights 0.001 and 0.1) at the scale of the
  original code (MADONOKOUKI/Block-wise-Scrambled-Image-Recognition, ``proposed_cifar10_ELE.py`` and
  ``util_norm.py``): ``L_U`` is the L1-minus-L2 penalty over U's rows and columns divided by ``n**2``, and ``L_s``
  the squared differences of vertical and horizontal neighbours over the first 3 channels of the adapted map,
  summed, divided by ``(H-1) * W * channels`` (31 * 32 * 16 in the original) and by the batch size. ``U`` starts
  as the original's ``kaiming_uniform_(a=sqrt(5))`` draw, uniform in ``±1/sqrt(n)`` (``u_init="identity"``: the
  identity plus Gaussian noise of ``u_noise``).
* :class:`AdaptedClassifier`: adaptation network + ResNet-18 (:mod:`.cnn`, with the CIFAR stem up to 64 px) whose
  stem takes the 16-channel map at full resolution (Madono's PyramidNet-110 classifier is replaced by ResNet-18,
  the suite's CNN baseline); :func:`build_adapted` builds it.

Per-position weights are one ``(n, 3*M*M, 16*M*M)`` tensor applied with a batched matmul (``torch.bmm``, much
faster than the equivalent ``einsum`` on CPU) to the image's blocks, so a forward pass has no Python loop over
blocks. ``torch.nn.utils.parametrizations.spectral_norm`` does not apply: it would normalise the whole tensor by
one singular value, not each position's matrix by its own, so :class:`BatchedSpectralNorm` runs torch's power
iteration batched over positions. Madono's network has ``48 * M**2 * H * W`` such weights (0.79 M at 32 px /
M = 4, but 617 M at 224 px / M = 16): it is meant for the small baselines of §7.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..ciphers.blocks import check_block_grid
from .cnn import build_resnet18

__all__ = ["ADAPTATIONS", "AdaptedClassifier", "BatchedSpectralNorm", "MadonoAdaptation", "TanakaAdaptation",
           "build_adapted", "madono_smoothness"]

ADAPTATIONS = ("tanaka", "madono")
_EPS = 1e-12


def madono_smoothness(x: torch.Tensor) -> torch.Tensor:
    """Madono's smoothness term ``L_s`` of an adapted ``(N, C, H, W)`` map (``total_variation_norm``, beta = 2).

    Over the first 3 channels and the ``(H-1) x (W-1)`` top-left region: the sum of ``(x[i,j] - x[i+1,j])**2 +
    (x[i,j] - x[i,j+1])**2``, divided by ``(H-1) * W * C`` (the original's constant 31 * 32 * 16 for its 16 x 32 x 32
    map) and by the batch size ``N``. Zero exactly for a map that is constant along both spatial axes there.
    """
    n, c, h, w = x.shape
    v = x[:, :3].float()
    corner = v[..., :-1, :-1]
    total = ((corner - v[..., 1:, :-1]) ** 2 + (corner - v[..., :-1, 1:]) ** 2).sum()
    return total / ((h - 1) * w * c) / n


class BatchedSpectralNorm(nn.Module):
    """Spectral normalisation of a batch of matrices, each by its own largest singular value.

    The batched counterpart of ``torch.nn.utils.parametrizations.spectral_norm`` (Miyato et al., ICLR 2018): per
    matrix it keeps unit vectors ``u``, ``v`` as buffers; in training mode every call first refines them by
    ``power_iterations`` steps of power iteration (without gradient), and it returns ``W / sigma`` with
    ``sigma = u^T W v``, an estimate of the largest singular value from below (so the normalised matrices have
    spectral norm >= 1, converging to 1 as iterations accumulate over training). In eval mode ``u``, ``v`` stay
    fixed. As in torch, 15 iterations are run at construction.

    Args:
        weight: the initial ``(n, rows, cols)`` weight, used to shape and warm up ``u`` and ``v``.
        power_iterations: iterations per training-mode call.
    """

    def __init__(self, weight: torch.Tensor, power_iterations: int = 1) -> None:
        super().__init__()
        if weight.ndim != 3:
            raise ValueError(f"expected a (n, rows, cols) weight, got shape {tuple(weight.shape)}")
        if power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}")
        self.power_iterations = power_iterations
        n, rows, cols = weight.shape
        self.register_buffer("u", F.normalize(weight.new_empty(n, rows).normal_(), dim=1, eps=_EPS))
        self.register_buffer("v", F.normalize(weight.new_empty(n, cols).normal_(), dim=1, eps=_EPS))
        self.power_iteration(weight.detach(), 15)

    @torch.no_grad()
    def power_iteration(self, weight: torch.Tensor, iterations: int) -> None:
        """Refine ``u`` and ``v`` in place by ``iterations`` steps for the ``(n, rows, cols)`` ``weight``."""
        for _ in range(iterations):  # iterations, not blocks: each step is batched over all n matrices
            self.v.copy_(F.normalize(torch.bmm(self.u.unsqueeze(1), weight).squeeze(1), dim=1, eps=_EPS))
            self.u.copy_(F.normalize(torch.bmm(weight, self.v.unsqueeze(2)).squeeze(2), dim=1, eps=_EPS))

    def sigma(self, weight: torch.Tensor) -> torch.Tensor:
        """The current estimate ``u^T W v`` of each matrix's largest singular value, shape ``(n,)``."""
        u = self.u.clone(memory_format=torch.contiguous_format)
        v = self.v.clone(memory_format=torch.contiguous_format)
        return (torch.bmm(weight, v.unsqueeze(2)).squeeze(2) * u).sum(1)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """Return ``weight`` with each of its ``n`` matrices divided by its estimated largest singular value."""
        if self.training:
            self.power_iteration(weight.detach(), self.power_iterations)
        return weight / self.sigma(weight).clamp_min(_EPS)[:, None, None]


class TanakaAdaptation(nn.Module):
    """Tanaka's adaptation network for LE: one sub-network shared by all blocks.

    Args:
        block_size: block size M; kernel and stride of the block-wise conv, and the PixelShuffle factor.
        channels: channels of the adapted map (16); the conv has ``channels * M * M`` outputs.
        negative_slope: LeakyReLU slope (0.1 in Madono's re-implementation).

    Shape:
        input ``(N, 3, H, W)`` with H and W multiples of M; output ``(N, channels, H, W)``.
    """

    def __init__(self, block_size: int, channels: int = 16, negative_slope: float = 0.1) -> None:
        super().__init__()
        check_block_grid(block_size, block_size, block_size)
        self.block_size, self.channels = block_size, channels
        features = channels * block_size * block_size
        # no conv bias: the BatchNorm that follows absorbs it
        self.conv = nn.Conv2d(3, features, kernel_size=block_size, stride=block_size, bias=False)
        self.norm = nn.BatchNorm2d(features)
        self.act = nn.LeakyReLU(negative_slope)
        self.shuffle = nn.PixelShuffle(block_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_block_grid(x.shape[-2], x.shape[-1], self.block_size)
        return self.shuffle(self.act(self.norm(self.conv(x))))


class MadonoAdaptation(nn.Module):
    """Madono's adaptation network for ELE/EtC: per-position sub-networks, then block mixing by ``U``.

    Per block position ``p`` (row-major, as :func:`etcbench.ciphers.blocks.to_blocks`): the block, flattened in
    (channel, row, column) order like a conv kernel, is multiplied by the spectral-normalised ``(3*M*M, F)``
    matrix ``weight[p]`` (``F = channels*M*M``), batch-normalised with position ``p``'s own statistics and passed
    through LeakyReLU. Then ``z_i = sum_j U[i, j] * y_j`` mixes the n feature vectors, and ``PixelShuffle(M)``
    turns each ``z_i`` back into an ``M x M`` block of ``channels`` channels at position ``i``. With ``U`` the
    permutation matrix of ``sigma`` (``U[i, sigma(i)] = 1``) and identical sub-networks, an input whose blocks
    were scrambled by ``sigma^-1`` gives the same map as the unscrambled input with ``U = I``.

    Args:
        image_size: square input size in pixels (a multiple of ``block_size``).
        block_size: block size M.
        channels: channels of the adapted map (16).
        negative_slope: LeakyReLU slope (0.2).
        u_init: ``"kaiming"`` (the original's ``kaiming_uniform_(a=sqrt(5))``: uniform in ``±1/sqrt(n)``) or
            ``"identity"`` (the identity plus Gaussian noise of standard deviation ``u_noise``).
        u_noise: see ``u_init``.
        power_iterations: spectral-norm power iterations per training step.

    Shape:
        input ``(N, 3, image_size, image_size)``; output ``(N, channels, image_size, image_size)``.
    """

    def __init__(self, image_size: int, block_size: int, channels: int = 16, negative_slope: float = 0.2,
                 u_init: Literal["kaiming", "identity"] = "kaiming", u_noise: float = 0.01,
                 power_iterations: int = 1) -> None:
        super().__init__()
        check_block_grid(image_size, image_size, block_size)
        m = block_size
        self.image_size, self.block_size, self.channels = image_size, m, channels
        self.grid = image_size // m
        self.num_blocks = self.grid * self.grid
        in_features, self.features = 3 * m * m, channels * m * m
        bound = 1 / math.sqrt(in_features)  # nn.Conv2d's default (kaiming-uniform, a = sqrt(5)) range
        self.weight = nn.Parameter(torch.empty(self.num_blocks, in_features, self.features).uniform_(-bound, bound))
        self.spectral = BatchedSpectralNorm(self.weight.detach(), power_iterations)
        self.norm = nn.BatchNorm1d(self.num_blocks * self.features)  # one BatchNorm per position
        self.act = nn.LeakyReLU(negative_slope)
        n = self.num_blocks
        if u_init == "kaiming":
            self.u = nn.Parameter(torch.empty(n, n).uniform_(-1 / math.sqrt(n), 1 / math.sqrt(n)))
        elif u_init == "identity":
            self.u = nn.Parameter(torch.eye(n) + u_noise * torch.randn(n, n))
        else:
            raise ValueError(f"unknown u_init {u_init!r}; use kaiming or identity")
        self.shuffle = nn.PixelShuffle(m)

    def block_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-position sub-networks: ``(N, 3, H, W)`` -> ``(N, n, F)`` features, before mixing by ``U``."""
        if tuple(x.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"expected (N, 3, {self.image_size}, {self.image_size}) input, got {tuple(x.shape)}")
        b, g, m = x.shape[0], self.grid, self.block_size
        patches = x.reshape(b, 3, g, m, g, m).permute(0, 2, 4, 1, 3, 5).reshape(b, self.num_blocks, 3 * m * m)
        y = torch.bmm(patches.transpose(0, 1), self.spectral(self.weight)).transpose(0, 1)  # (N, n, F)
        return self.act(self.norm(y.reshape(b, -1))).reshape(b, self.num_blocks, self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, g = x.shape[0], self.grid
        z = torch.matmul(self.u, self.block_features(x))  # z[b, i] = sum_j U[i, j] y[b, j]
        return self.shuffle(z.reshape(b, g, g, self.features).permute(0, 3, 1, 2))

    def penalty_u(self) -> torch.Tensor:
        """``L_U``: ``sum_i (|u_i|_1 - |u_i|_2)`` over the rows plus the same over the columns of ``U``, over ``n**2``.

        Non-negative, and zero exactly when every row and column has at most one non-zero entry (a signed,
        scaled permutation matrix, or zero rows), so it pushes ``U`` towards a permutation.
        """
        rows = self.u.abs().sum(1) - torch.linalg.vector_norm(self.u, dim=1)
        cols = self.u.abs().sum(0) - torch.linalg.vector_norm(self.u, dim=0)
        return (rows.sum() + cols.sum()) / self.num_blocks ** 2

    @staticmethod
    def smoothness(x: torch.Tensor) -> torch.Tensor:
        """``L_s`` of an adapted ``(N, C, H, W)`` map (:func:`madono_smoothness`)."""
        return madono_smoothness(x)


class AdaptedClassifier(nn.Module):
    """An adaptation network followed by a classifier that takes its ``channels``-channel map.

    ``forward`` caches the last adapted map (with its graph, in training) for :meth:`regularization_loss`.

    Args:
        adaptation: a :class:`TanakaAdaptation` or :class:`MadonoAdaptation`.
        classifier: a network taking ``(N, adaptation.channels, H, W)``.
        w_u: weight of ``penalty_u`` (0.001).
        w_s: weight of the smoothness term (0.1).
    """

    def __init__(self, adaptation: nn.Module, classifier: nn.Module, w_u: float = 1e-3, w_s: float = 0.1) -> None:
        super().__init__()
        self.adaptation, self.classifier = adaptation, classifier
        self.w_u, self.w_s = float(w_u), float(w_s)
        self.last_adapted: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        adapted = self.adaptation(x)
        self.last_adapted = adapted
        return self.classifier(adapted)

    def regularization_loss(self) -> torch.Tensor:
        """``w_u * penalty_u + w_s * smoothness(last adapted map)`` for Madono's network; zero for Tanaka's.

        Before the first forward pass only the ``U`` term is returned.
        """
        ref = next(self.parameters())
        loss = torch.zeros((), device=ref.device, dtype=ref.dtype)
        if not isinstance(self.adaptation, MadonoAdaptation):
            return loss
        loss = loss + self.w_u * self.adaptation.penalty_u()
        if self.last_adapted is not None:
            loss = loss + self.w_s * self.adaptation.smoothness(self.last_adapted)
        return loss


_ADAPTATION_OPTIONS = {
    "tanaka": {"channels", "negative_slope"},
    "madono": {"channels", "negative_slope", "u_init", "u_noise", "power_iterations"},
}
_COMMON_OPTIONS = {"w_u", "w_s", "arch", "stem", "classifier_options"}


def build_adapted(kind: Literal["tanaka", "madono"], num_classes: int, image_size: int, block_size: int,
                  **options: Any) -> AdaptedClassifier:
    """Build an adaptation network + timm classifier (ResNet-18 by default) for square ``image_size`` inputs.

    Args:
        kind: ``"tanaka"`` (LE) or ``"madono"`` (ELE/EtC).
        num_classes: classifier outputs.
        image_size: square input size in pixels; must be a multiple of ``block_size``.
        block_size: the cipher's block size M.
        **options: ``w_u`` (0.001), ``w_s`` (0.1), ``arch`` (the classifier, ``"resnet18"``), ``stem`` (its stem,
            :func:`etcbench.models.cnn.resnet_stem`; ``auto``), ``classifier_options`` (extra timm keyword
            arguments), ``channels`` (16), ``negative_slope`` (0.1 Tanaka, 0.2 Madono) and, for Madono, ``u_init``
            (``"kaiming"``), ``u_noise`` (0.01) and ``power_iterations`` (1). ``w_u``/``w_s`` are stored but
            unused by Tanaka's network, which has no regularisation.

    Raises:
        ValueError: unknown ``kind`` or option, or ``image_size`` not a multiple of ``block_size``.
    """
    if kind not in _ADAPTATION_OPTIONS:
        raise ValueError(f"unknown adaptation network {kind!r}; available: {', '.join(ADAPTATIONS)}")
    if block_size < 1 or image_size < 1 or image_size % block_size:
        raise ValueError(f"image_size {image_size} is not a multiple of block_size {block_size}: the adaptation "
                         f"network works on whole blocks")
    allowed = _ADAPTATION_OPTIONS[kind] | _COMMON_OPTIONS
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for the {kind!r} adaptation network; "
                         f"valid: {', '.join(sorted(allowed))}")
    adapt_kwargs = {k: v for k, v in options.items() if k in _ADAPTATION_OPTIONS[kind]}
    if kind == "tanaka":
        adaptation: nn.Module = TanakaAdaptation(block_size, **adapt_kwargs)
    else:
        adaptation = MadonoAdaptation(image_size, block_size, **adapt_kwargs)
    classifier = build_resnet18(num_classes, adaptation.channels, image_size, stem=options.get("stem", "auto"),
                                arch=options.get("arch", "resnet18"), **dict(options.get("classifier_options") or {}))
    return AdaptedClassifier(adaptation, classifier, w_u=options.get("w_u", 1e-3), w_s=options.get("w_s", 0.1))
