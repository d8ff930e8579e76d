"""Shared-key attack: ciphertext-only estimation of an in-block key that every block shares (pixel shuffling, LE).

Literature (``docs/paper.md`` of the suite, sections 3.3, 3.6 and 10). Pixel shuffling for ViT (Qi et al. 2022;
Kiya et al. 2022-2023) and Tanaka's learnable encryption (LE, 2018) apply *one* in-block key to every block of
every image. Chuman & Kiya (2022) restore most images encrypted with block scrambling and pixel shuffling; the same
group's later ViT-era study finds that the correlation between blocks survives pixel shuffling; a variant of Chang
et al.'s feature-reconstruction attack recovers LE's in-block permutation with the help of auxiliary images. The
attack here needs neither auxiliary images nor training: since the key is shared, every block of every target
ciphertext is one sample of the same permuted vector, so the statistics of natural images (neighbouring values
correlate) are pooled over all ``N x n`` blocks of the target images, and the key is read off them.

Algorithm (:meth:`SharedKey.reconstruct`, on the ``N`` target-key ciphertexts; vectorised over images and blocks):

1. cut the images into blocks and flatten each in the key's position order: pixel shuffling's ``3 M^2`` bytes in
   (channel, row, column) order; LE's ``6 M^2`` four-bit halves in Tanaka's key order
   (:func:`etcbench.ciphers.nibbles.tanaka_positions`). Pearson correlation of all positions over all blocks;
2. LE only: the upper halves carry the image, the lower halves are close to noise; the ``3 M^2`` positions with
   the largest summed absolute correlation are taken as upper halves (steps 3-6 use only those);
3. inversions (pixel shuffling's negative-positive ``v -> 255 - v``, LE's reversal ``v -> 15 - v``): natural
   values correlate positively, so a position inverted relative to the others correlates negatively with them.
   The signs of the leading eigenvector of the correlation matrix give the relative inversions;
4. colour channels: classical multidimensional scaling (MDS) of the distances ``-log(correlation)`` in 3-D. A
   pixel correlates less with itself in another channel than with its near neighbours in its own channel, so the
   positions lie in three layers; the direction (over a lattice of a half sphere) along which the sorted
   projections split into three equal groups with the least within-group variance separates them. The groups are
   then refined: each position goes to the group whose members it correlates with most (mean of its
   ``neighbours`` largest correlations there), an exact assignment with equal group sizes, until stable;
5. layout of each channel (Isomap): ``-log(correlation)`` grows about as ``distance ** beta`` (beta about 2 for
   smooth, upsampled images, less for raw ones); beta is read off the ratio of each position's 5th-8th to its
   1st-4th smallest distances (diagonal vs axial neighbours, sqrt(2) apart) and the distances are taken to the
   power ``1 / beta``, so that they add up along paths. Geodesic distances on the graph of each position's
   ``neighbours`` nearest positions (completed by a minimum spanning tree when it is disconnected), classical MDS
   in 2-D, whitened, turned to the grid axes by the fourth circular moment (that of a square grid is a negative
   real number when the grid is aligned with the axes), and snapped to the ``M x M`` cells by an exact assignment
   (``scipy.optimize.linear_sum_assignment`` on squared distances); then unwarped: a cubic polynomial map from the
   embedding to the assigned cells is fitted and the cells re-assigned, until the assignment is stable;
6. the second and third channel grids are aligned to the first by the block symmetry (8 candidates) with the
   largest summed same-pixel correlation, and the channels are named: green correlates most with the other two,
   blue is the darker of the remaining two;
7. LE only, lower halves: the slot and orientation of each lower position is an exact assignment that minimises
   the squared difference, over all blocks, to the lower half that would make the byte equal to the mean of its
   in-block 4-neighbours (16 x their upper halves + their lower halves, 7.5 while unplaced); repeated with the
   placed lower halves until the assignment no longer changes (at most 8 rounds);
8. undo the estimated permutation and inversions in every block;
9. orientation. The layout is only identifiable up to the 8 symmetries of the block. Without block scrambling
   (LE; pixel shuffling with ``scramble=False``) the symmetry whose blocks join most smoothly across block borders
   (least mean squared difference) is taken, which is exact on natural images. With block scrambling the
   orientation inside the blocks and the arrangement of the blocks turn together, so natural-image priors decide:
   rows differ more from each other than columns (else the blocks are transposed); the blocks go to the
   :class:`~.jigsaw.Jigsaw` solver (positions only: pixel shuffling has no per-block variants); the top half of
   the reassembled images is brighter on average than the bottom half (sky; else they are flipped up-down). The
   left-right mirror is *not* identifiable (natural images are mirror-symmetric in distribution): it stays as the
   layout estimate gives it, so about half of the keys come out mirrored;
10. LE with Tanaka's flags (``flags = nibble_perm > L/2``, the scheme's default): the reversal pattern is a
    function of the permutation (``flags[k] ^ flags[nibble_perm[k]]``), so among the 8 block symmetries x red and
    blue named either way x the two global reversals the candidate that agrees with that rule at the most positions
    is taken (exact whenever the layout is; it overrides the priors of steps 3, 6 and 9 for LE).

Estimates (``Reconstruction.extra``), in the conventions of the key arrays (compare with
:func:`permutation_recovery_share`):

* ``pixel_perm_estimate`` ``(P,)`` int64: the estimated source of every output position. Pixel shuffling:
  ``P = 3 M^2``, compare with ``key.arrays["pixel_perm"]`` (output entry ``k`` is input entry ``pixel_perm[k]``,
  (channel, row, column) order). LE: ``P = 6 M^2``, compare with ``key.arrays["nibble_perm"]`` (output position
  ``k`` takes input position ``nibble_perm[k]``, Tanaka's key order);
* pixel shuffling: ``negpos_estimate`` ``(3 M^2,)`` bool, as ``key.arrays["negpos"]`` (output entry ``k`` inverted);
  LE: ``reversal_estimate`` ``(6 M^2,)`` bool, compare with ``flags ^ flags[nibble_perm]`` (output position ``k``
  ends up reversed; the flags themselves are only defined up to equivalent keys);
* with block scrambling: ``positions`` ``(N, n)`` as the jigsaw solver returns it (encrypted block ``j`` of image
  ``i`` placed at grid position ``positions[i, j]``), after the final up-down flip.

Choices the literature leaves open, fixed here:
    * statistics from exactly the target ciphertexts handed to ``reconstruct`` (no auxiliary or training images);
    * global inversion (pixel shuffling with negative-positive; LE with ``independent_flags=True``): when all
      estimated inversions agree, nothing is inverted; otherwise the orientation whose mean is below mid-gray
      (127.5; 7.5 for upper halves) is taken, since natural images are darker than mid-gray on average (CIFAR-10:
      116-126 over subsets of 100 images; crops that are mostly sky fail this rule);
    * blue is the darker channel and green the middle one (sRGB photographs; CIFAR-10 means 125, 123, 114);
    * distances ``-log(max(correlation, 1e-6))``; beta clipped to [0.5, 3] (1 for M <= 2); Isomap and the group
      refinement on the 8 nearest positions (option ``neighbours``); 2000 directions for the channel split;
      cubic unwarping for M >= 4; no other local refinement of the layout;
    * orientation priors (scrambled blocks) are decided once over all target images (one key, one orientation);
      left-right is not decided;
    * the attack runs with one BLAS thread (small dense problems, where threads only contend).

Measured on CIFAR-10 test images (100 target images, key seeds 0 and 1; M = 4 on 32 x 32, M = 16 on bicubic
64 x 64): the shared permutation is recovered completely (share 1.0 up to the block's symmetries, inversions
exact) for both schemes and flag variants. End SSIM: LE and unscrambled pixel shuffling 1.0 (exact); scrambled
pixel shuffling at M = 16 0.98 (``none``: 0.04-0.05), 0.23 for keys whose left-right mirror comes out wrong; at
M = 4 on 32 x 32 0.14 (mirrored 0.08; ``none``: 0.03), the jigsaw solver's own score on scramble-only images of
that size. Also exact on 32 x 64 images and for M = 2 and 8 (M = 1: LE's lower halves have no in-block neighbours
and are not placed). Fewer images: exact from 25 images on at M = 4 and M = 16 (and with 10), but the channel
split fails with 15-20 of these images at M = 16 (share 0.4-0.9); with 5 images it fails.

    >>> import numpy as np
    >>> from etcbench import ciphers
    >>> from etcbench.attacks.shared_key import SharedKey, permutation_recovery_share
    >>> from skimage import data
    >>> plain = data.astronaut()[:256, :256].reshape(4, 64, 4, 64, 3).transpose(0, 2, 1, 3, 4).reshape(16, 64, 64, 3)
    >>> scheme = ciphers.create("le", block_size=4)
    >>> key = scheme.generate_key(seed=3, image_size=(64, 64))
    >>> out = SharedKey(4, scheme="le").reconstruct(scheme.encrypt(plain, key))
    >>> permutation_recovery_share(out.extra["pixel_perm_estimate"], key.arrays["nibble_perm"], 4, channels=6)
    1.0
    >>> bool((out.images == plain).all())
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ciphers.blocks import check_block_grid, from_blocks, to_blocks
from ..ciphers.etc import dihedral_maps
from ..ciphers.nibbles import merge_nibbles, split_nibbles, tanaka_positions
from .base import Attack, Reconstruction, register_attack
from .jigsaw import Jigsaw
from .layout import grid_symmetry_map

__all__ = ["SCHEMES", "SharedKey", "estimate_layout", "permutation_recovery_share", "slot_symmetry_maps"]

SCHEMES: tuple[str, ...] = ("pixel-shuffle", "le")
_DIRECTIONS = 2000  # unit directions searched for the channel axis (half sphere)
_MIN_CORR = 1e-6  # correlations are clipped to [_MIN_CORR, 1] before the log distance
_VFLIP = 6  # dihedral code of an up-down flip (a half turn, then a left-right flip)
_TRANSPOSE = 7  # dihedral code of the transposition (three quarter turns, then a left-right flip)
_LOWER_ROUNDS = 8  # at most this many rounds of the lower-half assignment (LE)
_UNWARP_ROUNDS = 10  # at most this many rounds of the cubic unwarping of a channel layout
_GROUP_ROUNDS = 10  # at most this many rounds of the channel-group refinement


# ------------------------------------------------------------------------------------------------ slots and scores

def slot_symmetry_maps(block_size: int, channels: int, order: str = "chw") -> np.ndarray:
    """Where each in-block slot goes under the 8 dihedral symmetries of the block.

    Args:
        block_size: M.
        channels: channels per pixel (3 for bytes; 6 for LE's four-bit halves).
        order: slot numbering: ``"chw"`` (channel, row, column), pixel shuffling's key order, or ``"tanaka"``
            (LE's key order: ``half * 3 M^2 + (row * M + column) * 3 + channel``, :func:`.tanaka_positions`).

    Returns:
        ``(8, channels * M * M)`` int64: row ``g`` maps slot ``s`` to the slot ``maps[g, s]`` its value occupies
        after symmetry code ``g`` of :func:`etcbench.ciphers.etc.dihedral_maps` (``np.rot90`` by ``g % 4``
        quarter turns, then a left-right flip when ``g >= 4``); channels stay. Row 0 is the identity.
    """
    m2 = block_size * block_size
    new_pixel = np.argsort(dihedral_maps(block_size), axis=1)  # (8, M*M): old pixel -> new pixel
    if order == "chw":
        c, p = np.divmod(np.arange(channels * m2), m2)
        return c * m2 + new_pixel[:, p]
    if order == "tanaka":
        if channels % 3:
            raise ValueError(f"Tanaka's order needs a multiple of 3 channels, got {channels}")
        half, rest = np.divmod(np.arange(channels * m2), 3 * m2)
        p, c = np.divmod(rest, 3)
        return half * 3 * m2 + new_pixel[:, p] * 3 + c
    raise ValueError(f"slot order must be 'chw' or 'tanaka', got {order!r}")


def permutation_recovery_share(estimate: Any, true_perm: Any, block_size: int, channels: int,
                               up_to_symmetry: bool = True) -> float:
    """Share of the in-block positions whose estimated source equals the true one.

    Both arrays follow the key's convention: output position ``k`` takes input position ``perm[k]``.

    * Pixel shuffling: ``channels=3``, ``true_perm = key.arrays["pixel_perm"]`` (``3 M^2`` entries in
      (channel, row, column) order); ``estimate = extra["pixel_perm_estimate"]``.
    * LE: ``channels=6``, ``true_perm = key.arrays["nibble_perm"]`` (``6 M^2`` four-bit positions in Tanaka's key
      order); ``estimate = extra["pixel_perm_estimate"]``.

    A ciphertext-only attacker cannot tell a layout from the same layout turned or flipped inside the block (the
    statistics are the same), so with ``up_to_symmetry`` the share is the best over the block's 8 dihedral
    symmetries applied to the estimated sources (:func:`slot_symmetry_maps`); otherwise it is compared as is.

    Args:
        estimate, true_perm: int arrays of shape ``(channels * M * M,)``.
        block_size: M.
        channels: 3 (pixel shuffling) or 6 (LE).
        up_to_symmetry: best over the 8 symmetries of the block.

    Returns:
        The share in [0, 1]: 1.0 for the truth and (with ``up_to_symmetry``) for any symmetry of it; about
        ``8 / (channels * M^2)`` at most for an unrelated permutation.

    Raises:
        ValueError: shapes that do not match ``channels * M * M``, or ``channels`` other than 3 and 6.

    Examples:
        >>> import numpy as np
        >>> truth = np.random.default_rng(0).permutation(48)
        >>> turned = slot_symmetry_maps(4, 3)[1][truth]  # every source turned a quarter turn inside the block
        >>> permutation_recovery_share(turned, truth, 4, 3), permutation_recovery_share(turned, truth, 4, 3, False)
        (1.0, 0.0)
    """
    if channels not in (3, 6):
        raise ValueError(f"channels must be 3 (pixel shuffling) or 6 (LE's four-bit halves), got {channels}")
    est = np.asarray(estimate, dtype=np.int64)
    true = np.asarray(true_perm, dtype=np.int64)
    length = channels * block_size * block_size
    if est.shape != (length,) or true.shape != (length,):
        raise ValueError(f"expected two arrays of {length} in-block positions ({channels} x {block_size} x "
                         f"{block_size}), got shapes {est.shape} and {true.shape}")
    maps = slot_symmetry_maps(block_size, channels, "chw" if channels == 3 else "tanaka")
    if not up_to_symmetry:
        maps = maps[:1]
    valid = (est >= 0) & (est < length)
    hits = (maps[:, np.where(valid, est, 0)] == true) & valid
    return float(hits.mean(axis=1).max())


# ------------------------------------------------------------------------------------------------ statistics

def _correlation(x: np.ndarray) -> np.ndarray:
    """``(P, P)`` Pearson correlation of the columns of ``(B, P)``; a constant column correlates 0 with the others."""
    xc = x - x.mean(axis=0)
    sd = np.sqrt(np.square(xc).mean(axis=0))
    z = xc / np.where(sd > 0, sd, np.inf)
    corr = np.clip(z.T @ z / max(len(x), 1), -1.0, 1.0)
    np.fill_diagonal(corr, 1.0)
    return corr


def _signs(corr: np.ndarray) -> np.ndarray:
    """``(P,)`` bool: positions inverted relative to the others, by the signs of the leading eigenvector of
    ``corr``; all False when every sign agrees."""
    from scipy.linalg import eigh

    _, vec = eigh(corr, subset_by_index=[len(corr) - 1, len(corr) - 1])
    negative = vec[:, 0] < 0
    return np.zeros_like(negative) if negative.all() or not negative.any() else negative


def _mds(dist: np.ndarray, dim: int) -> np.ndarray:
    """Classical multidimensional scaling: ``(n, dim)`` coordinates whose distances approximate ``dist``."""
    from scipy.linalg import eigh

    n = len(dist)
    sq = np.square(dist)
    gram = -0.5 * (sq - sq.mean(axis=0) - sq.mean(axis=1)[:, None] + sq.mean())
    dim = min(dim, n)
    val, vec = eigh(gram, subset_by_index=[n - dim, n - 1])
    return vec[:, ::-1] * np.sqrt(np.maximum(val[::-1], 0))


def _log_distance(corr: np.ndarray) -> np.ndarray:
    dist = -np.log(np.clip(corr, _MIN_CORR, 1.0))
    np.fill_diagonal(dist, 0.0)
    return dist


def _half_sphere(count: int) -> np.ndarray:
    """``(count, 3)`` unit vectors spread evenly over a half sphere (a Fibonacci lattice)."""
    i = np.arange(count) + 0.5
    polar = np.arccos(1 - i / count)
    azimuth = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def _channel_groups(corr: np.ndarray, groups: int = 3) -> np.ndarray:
    """``(P,)`` group of every position: the direction of the 3-D MDS embedding along which the positions split
    into ``groups`` equal layers of the least within-layer variance (the colour channels)."""
    p = len(corr)
    size = p // groups
    if size == 1:
        return np.arange(p)
    z = _mds(_log_distance(corr), 3)
    proj = z @ _half_sphere(_DIRECTIONS).T  # (P, D)
    layers = np.sort(proj, axis=0).reshape(groups, size, -1)
    within = layers.var(axis=1).sum(axis=0) / np.maximum(proj.var(axis=0), 1e-30)
    labels = np.empty(p, dtype=np.int64)
    labels[np.argsort(proj[:, within.argmin()], kind="stable")] = np.arange(p) // size
    return labels


def _refine_groups(corr: np.ndarray, labels: np.ndarray, neighbours: int) -> np.ndarray:
    """Re-assign the positions to equal groups by their affinity to each group: the mean of their ``neighbours``
    largest correlations with its members (own channel: the near pixels; another channel: weaker), an exact
    assignment with ``P / groups`` places per group, repeated until it no longer changes."""
    from scipy.optimize import linear_sum_assignment

    p = len(corr)
    groups = int(labels.max()) + 1
    size = p // groups
    k = min(neighbours, size - 1)
    if k < 1:
        return labels
    others = corr - np.diag(np.full(p, np.inf))
    for _ in range(_GROUP_ROUNDS):
        affinity = np.stack([-np.partition(-np.where(labels == g, others, -np.inf), k - 1, axis=1)[:, :k].mean(axis=1)
                             for g in range(groups)], axis=1)  # (P, groups)
        _, place = linear_sum_assignment(-np.repeat(affinity, size, axis=1))
        new = place // size
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _poly3(pts: np.ndarray) -> np.ndarray:
    """``(n, 10)``: the monomials of degree <= 3 of 2-D points."""
    x, y = pts[:, 0], pts[:, 1]
    return np.stack([x**i * y**j for i in range(4) for j in range(4 - i)], axis=1)


def _grid_layout(corr: np.ndarray, m: int, neighbours: int) -> np.ndarray:
    """``(M*M,)``: the grid cell (row-major) of each of the ``M*M`` positions of one channel, up to the block's
    symmetries (Isomap, then an exact assignment to the cells; module docstring, step 5)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse.csgraph import connected_components, minimum_spanning_tree, shortest_path

    n = m * m
    if n == 1:
        return np.zeros(1, dtype=np.int64)
    dist = _log_distance(corr) + 1e-9 * (1 - np.eye(n))  # a zero weight would read as a missing edge
    ranked = np.sort(dist + np.diag(np.full(n, np.inf)), axis=1)
    beta = 1.0
    if n >= 9:  # -log(correlation) ~ distance^beta: 4 axial, then 4 diagonal neighbours (sqrt(2) farther)
        beta = float(np.clip(2 * np.log2(np.median(ranked[:, 4:8]) / np.median(ranked[:, :4])), 0.5, 3.0))
    dist = dist ** (1 / beta)  # about linear in the distance, so that geodesics add up
    k = min(neighbours, n - 1)
    nearest = np.argpartition(dist + np.diag(np.full(n, np.inf)), k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n), k)
    graph = np.zeros((n, n))
    graph[rows, nearest.ravel()] = dist[rows, nearest.ravel()]
    graph = np.maximum(graph, graph.T)
    if connected_components(graph, directed=False)[0] > 1:
        tree = minimum_spanning_tree(dist).toarray()
        graph = np.maximum(graph, np.maximum(tree, tree.T))
    z = _mds(shortest_path(graph, directed=False), 2)  # principal axes, centred
    z = z / np.maximum(z.std(axis=0), 1e-30)  # whitened: a grid stretched along one axis becomes square again
    zc = z[:, 0] + 1j * z[:, 1]
    zc = zc * np.exp(-1j * (np.angle(np.sum(zc**4)) - np.pi) / 4)  # align the fourth circular moment
    pts = np.stack([zc.real, zc.imag], axis=1)
    cells = np.stack(np.divmod(np.arange(n), m), axis=1).astype(np.float64)
    cells -= cells.mean(axis=0)
    pts = pts / np.maximum(pts.std(axis=0), 1e-30)
    _, cell = linear_sum_assignment(np.square(pts[:, None, :] * cells.std(axis=0) - cells[None]).sum(axis=2))
    if n >= 16:  # unwarp: a cubic map from the embedding to the assigned cells, re-assigned until it is stable
        basis = _poly3(pts)
        for _ in range(_UNWARP_ROUNDS):
            mapped = basis @ np.linalg.lstsq(basis, cells[cell], rcond=None)[0]
            _, new = linear_sum_assignment(np.square(mapped[:, None, :] - cells[None]).sum(axis=2))
            if np.array_equal(new, cell):
                break
            cell = new
    return cell.astype(np.int64)


def estimate_layout(values: np.ndarray, block_size: int, neighbours: int = 8) -> np.ndarray:
    """Estimate where in the block each position of shared-key-shuffled RGB block vectors came from.

    Args:
        values: ``(B, 3 M^2)`` float, one row per block (of all images), positions already corrected for
            inversions; the columns are the shuffled positions.
        block_size: M.
        neighbours: nearest neighbours of the Isomap graph.

    Returns:
        ``(3 M^2,)`` int64: the estimated slot of every column in (channel, row, column) order, a permutation;
        correct up to one dihedral symmetry of the block (module docstring, steps 4-6).
    """
    m = block_size
    m2 = m * m
    corr = _correlation(values)
    labels = _refine_groups(corr, _channel_groups(corr, 3), neighbours)
    at = []  # at[g][p]: the column of group g placed at pixel p
    for g in range(3):
        idx = np.flatnonzero(labels == g)
        order = np.empty(m2, dtype=np.int64)
        order[_grid_layout(corr[np.ix_(idx, idx)], m, neighbours)] = idx
        at.append(order)
    maps = dihedral_maps(m)  # (8, M*M): new pixel q takes old pixel maps[g, q]
    for g in (1, 2):
        at[g] = at[g][maps[corr[at[0][None, :], at[g][maps]].sum(axis=1).argmax()]]
    cross = np.array([[corr[at[a], at[b]].sum() if a != b else 0.0 for b in range(3)] for a in range(3)])
    green = int(cross.sum(axis=1).argmax())
    red, blue = (g for g in range(3) if g != green)
    if values[:, at[red]].mean() < values[:, at[blue]].mean():
        red, blue = blue, red
    slots = np.empty(3 * m2, dtype=np.int64)
    for channel, g in enumerate((red, green, blue)):
        slots[at[g]] = channel * m2 + np.arange(m2)
    return slots


# ------------------------------------------------------------------------------------------------ LE lower halves

def _neighbour_mean(planes: np.ndarray) -> np.ndarray:
    """Mean of each value's in-block 4-neighbours: ``(B, C, M, M)`` -> the same shape."""
    total = np.zeros_like(planes)
    count = np.zeros(planes.shape[-2:])
    for src, dst in (((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
                     ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
                     ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                     ((slice(None), slice(1, None)), (slice(None), slice(None, -1)))):
        total[(..., *dst)] += planes[(..., *src)]
        count[dst] += 1
    return total / np.maximum(count, 1)


def _assign_lower(upper: np.ndarray, lower: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Place LE's lower halves (module docstring, step 7).

    Args:
        upper: ``(B, 3 M^2)`` upper halves, oriented, in slot order (channel, row, column).
        lower: ``(B, 3 M^2)`` the lower-half columns as encrypted.
        m: M.

    Returns:
        ``(slot, reversed)``: ``(3 M^2,)`` the slot of every lower column and whether it is reversed.
    """
    from scipy.optimize import linear_sum_assignment

    b, q = lower.shape
    up = 16 * upper.reshape(b, 3, m, m)
    guess = np.full_like(up, 7.5)
    both = np.stack([lower, 15 - lower])  # (2, B, Q): as is, reversed
    power = np.square(both).mean(axis=1)[:, :, None]  # (2, Q, 1)
    slot = reverse = np.zeros(0, dtype=np.int64)
    for _ in range(_LOWER_ROUNDS):
        target = np.clip(_neighbour_mean(up + guess) - up, 0, 15).reshape(b, q)
        cost = power - 2 * np.einsum("obk,bs->oks", both, target, optimize=True) / b  # (2, Q, Q), + const per slot
        _, new_slot = linear_sum_assignment(cost.min(axis=0))
        new_reverse = cost.argmin(axis=0)[np.arange(q), new_slot].astype(bool)
        if np.array_equal(new_slot, slot) and np.array_equal(new_reverse, reverse):
            break
        slot, reverse = new_slot, new_reverse
        placed = np.empty((b, q))
        placed[:, slot] = np.where(reverse, 15 - lower, lower)
        guess = placed.reshape(b, 3, m, m)
    return slot.astype(np.int64), reverse.astype(bool)


# ------------------------------------------------------------------------------------------------ orientation

_Build = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (estimate, inverted) -> decrypted images


def _tanaka_choice(est: np.ndarray, reversed_: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LE with Tanaka's flags (``flags = nibble_perm > L/2``): the reversal pattern is a function of the
    permutation, ``flags[k] ^ flags[perm[k]]``. Among the 8 block symmetries x red/blue named either way x the two
    global reversals, return the ``(estimate, reversed)`` that agrees with that rule at the most positions (the
    given one on ties)."""
    length = est.size
    swap = np.arange(length) + 2 - 2 * (np.arange(length) % 3)  # channel 0 <-> 2 in Tanaka's order
    cands = np.concatenate([maps[:, est], maps[:, swap[est]]])  # (16, L)
    flag = cands > length / 2
    rule = flag ^ np.take_along_axis(flag, cands, axis=1)
    agree = (rule == reversed_).mean(axis=1)
    score = np.stack([agree, 1 - agree], axis=1).ravel()  # (32,): as estimated, globally reversed
    best = int(np.argmax(score))
    return cands[best // 2], reversed_ ^ bool(best % 2)


def _border_cost(images: np.ndarray, m: int) -> float:
    """Mean squared difference across the block borders of ``(N, H, W, C)`` images."""
    x = images.astype(np.float32)
    total, count = 0.0, 0
    for d in (x[:, m::m] - x[:, m - 1:-1:m], x[:, :, m::m] - x[:, :, m - 1:-1:m]):
        total, count = total + float(np.square(d).sum()), count + d.size
    return total / max(count, 1)


# ------------------------------------------------------------------------------------------------ the attack

@register_attack("shared-key")
class SharedKey(Attack):
    """Ciphertext-only estimation of the in-block key that every block shares (pixel shuffling, LE), then
    decryption with it and, for scrambled blocks, the jigsaw solver (module docstring).

    Args:
        block_size: the scheme's block size M.
        scheme: the attacked scheme, ``"pixel-shuffle"`` or ``"le"`` (required: it fixes the key's structure).
        scramble: whether the scheme also scrambles the block positions (then the blocks go to the jigsaw
            solver); ``None``: the scheme's default (pixel shuffling scrambles, LE does not).
        independent_flags: LE only, as the scheme's option: the reversal flags are independent bits, not Tanaka's
            ``nibble_perm > L/2`` (then the global reversal, the red/blue naming and the orientation come from the
            natural-image priors alone).
        neighbours: nearest neighbours of the Isomap graph and of the channel-group refinement (at least 2).

    Raises:
        ValueError: another scheme, ``scramble=True`` for LE, ``independent_flags`` for pixel shuffling, or a bad
            ``neighbours``.

    ``reconstruct(encrypted)`` takes the ``(N, H, W, 3)`` uint8 target ciphertexts (N of the order of 100; the
    estimate pools all of their blocks) and returns the decrypted estimates in the same layout, with the key
    estimates in ``extra`` (module docstring).
    """

    needs_training = False

    @classmethod
    def not_applicable(cls, scheme: str) -> str | None:
        return None if scheme in SCHEMES else f"shared-key applies to {' and '.join(SCHEMES)}, not {scheme}"

    @classmethod
    def algorithm_options(cls, scheme: str, key_options: dict[str, Any]) -> dict[str, Any]:
        """Whether the scheme scrambles blocks (pixel shuffling) or draws LE's flags independently."""
        public = {"pixel-shuffle": ("scramble",), "le": ("independent_flags",)}.get(scheme, ())
        return {k: bool(key_options[k]) for k in public if k in key_options}

    def __init__(self, block_size: int, scheme: str | None = None, scramble: bool | None = None,
                 independent_flags: bool = False, neighbours: int = 8) -> None:
        super().__init__(block_size)
        if scheme not in SCHEMES:
            raise ValueError(f"shared-key applies to {' and '.join(SCHEMES)}, not {scheme}"
                             + (" (give the attacked scheme as the option scheme=...)" if scheme is None else ""))
        if scramble is None:
            scramble = scheme == "pixel-shuffle"
        if scramble and scheme == "le":
            raise ValueError("shared-key: scramble=True does not apply to le, which keeps the block positions")
        if independent_flags and scheme != "le":
            raise ValueError(f"shared-key: independent_flags applies to le only, not {scheme}")
        if isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)) or neighbours < 2:
            raise ValueError(f"shared-key: neighbours must be an integer >= 2, got {neighbours!r}")
        self.scheme = scheme
        self.scramble = bool(scramble)
        self.independent_flags = bool(independent_flags)
        self.neighbours = int(neighbours)

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        from threadpoolctl import threadpool_limits

        x = self._check_input(encrypted)
        with threadpool_limits(limits=1, user_api="blas"):  # small dense problems: threads only contend
            if self.scheme == "pixel-shuffle":
                est, inverted, build = self._pixel_shuffle(x)
                maps, name = slot_symmetry_maps(self.block_size, 3, "chw"), "negpos_estimate"
            else:
                est, inverted, build = self._le(x)
                maps, name = slot_symmetry_maps(self.block_size, 6, "tanaka"), "reversal_estimate"
            est, images, positions = self._orient(build, est, inverted, maps, x.shape[1], x.shape[2])
            if self.scheme == "le" and not self.independent_flags:
                est, inverted = _tanaka_choice(est, inverted, maps)
                images = build(est, inverted)
        extra = {"pixel_perm_estimate": est, name: inverted}
        if positions is not None:
            extra["positions"] = positions
        return Reconstruction(images=images, extra=extra)

    def _check_input(self, encrypted: Any) -> np.ndarray:
        array = isinstance(encrypted, np.ndarray)
        if not array or encrypted.ndim != 4 or encrypted.shape[-1] != 3 or encrypted.shape[0] < 1:
            got = f"shape {encrypted.shape}" if array else f"a {type(encrypted).__name__}"
            raise ValueError(f"the shared-key attack takes a numpy array of shape (N, H, W, 3) with N >= 1, got {got}")
        if encrypted.dtype != np.uint8:
            raise ValueError(f"encrypted images must be uint8, got dtype {encrypted.dtype}")
        check_block_grid(encrypted.shape[1], encrypted.shape[2], self.block_size)
        return np.ascontiguousarray(encrypted)

    # ------------------------------------------------------------------------------------------ the two schemes

    def _pixel_shuffle(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Build]:
        """``(slots, inverted, build)``: the layout estimate (up to symmetry), the inverted entries and a function
        that decrypts ``x`` with a layout and inverted entries."""
        num, h, w, _ = x.shape
        m = self.block_size
        blocks = to_blocks(x, m)
        n = blocks.shape[1]
        vectors = blocks.transpose(0, 1, 4, 2, 3).reshape(num * n, 3 * m * m)  # (channel, row, column) order
        values = vectors.astype(np.float64)
        inverted = _signs(_correlation(values))
        values = np.where(inverted, 255 - values, values)
        if inverted.any() and values.mean() > 127.5:  # natural images are darker than mid-gray on average
            inverted, values = ~inverted, 255 - values
        slots = estimate_layout(values, m, self.neighbours)

        def build(sl: np.ndarray, inv: np.ndarray) -> np.ndarray:
            out = np.empty_like(vectors)
            out[:, sl] = np.where(inv, 255 - vectors, vectors)
            return from_blocks(out.reshape(num, n, 3, m, m).transpose(0, 1, 3, 4, 2), h, w)

        return slots, inverted, build

    def _le(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, _Build]:
        """As :meth:`_pixel_shuffle`, for LE's four-bit halves in Tanaka's key order."""
        num, h, w, _ = x.shape
        m = self.block_size
        m2, q = m * m, 3 * m * m
        to_image = tanaka_positions(m)
        nibbles = to_blocks(split_nibbles(x), m)  # (N, n, M, M, 6)
        n = nibbles.shape[1]
        z = nibbles.reshape(num * n, 2 * q)[:, to_image]  # Tanaka's key order
        values = z.astype(np.float64)
        corr = _correlation(values)
        upper = np.sort(np.argsort(-np.abs(corr).sum(axis=1), kind="stable")[:q])
        lower = np.setdiff1d(np.arange(2 * q), upper)
        up_rev = _signs(corr[np.ix_(upper, upper)])
        up = np.where(up_rev, 15 - values[:, upper], values[:, upper])
        if up_rev.any() and up.mean() > 7.5:
            up_rev, up = ~up_rev, 15 - up
        up_slot = estimate_layout(up, m, self.neighbours)
        up_placed = np.empty_like(up)
        up_placed[:, up_slot] = up
        lo_slot, lo_rev = _assign_lower(up_placed, values[:, lower], m)
        est = np.empty(2 * q, dtype=np.int64)
        for cols, slot, half in ((upper, up_slot, 1), (lower, lo_slot, 0)):
            channel, pixel = np.divmod(slot, m2)
            est[cols] = half * q + pixel * 3 + channel  # (channel, row, column) slot -> Tanaka position
        reversed_ = np.empty(2 * q, dtype=bool)
        reversed_[upper], reversed_[lower] = up_rev, lo_rev

        def build(e: np.ndarray, rev: np.ndarray) -> np.ndarray:
            plain = np.empty_like(z)
            plain[:, e] = np.where(rev, 15 - z, z)
            image = np.empty_like(plain)
            image[:, to_image] = plain
            return merge_nibbles(from_blocks(image.reshape(num, n, m, m, 6), h, w))

        return est, reversed_, build

    # ------------------------------------------------------------------------------------------- orientation

    def _orient(self, build: _Build, est: np.ndarray, inverted: np.ndarray, maps: np.ndarray, h: int,
                w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Pick the block symmetry (module docstring, step 9); returns ``(estimate, images, positions or None)``."""
        m = self.block_size
        rows, cols = h // m, w // m
        if not self.scramble and rows * cols > 1:
            costs = [_border_cost(build(maps[g, est], inverted), m) for g in range(len(maps))]
            est = maps[int(np.argmin(costs)), est]
            return est, build(est, inverted), None
        images = build(est, inverted)
        if m > 1:
            blocks = to_blocks(images, m).astype(np.int16)
            if np.abs(np.diff(blocks, axis=3)).mean() > np.abs(np.diff(blocks, axis=2)).mean():
                est = maps[_TRANSPOSE, est]  # rows differ more from each other than columns
                images = build(est, inverted)
        positions = None
        if self.scramble:
            solved = Jigsaw(m, rotate_flip=False, negative_positive=False, color_permutation=False).reconstruct(images)
            images, positions = solved.images, solved.extra["positions"]
        if h > 1 and images[:, : h // 2].mean() < images[:, h - h // 2:].mean():  # the top is brighter (sky)
            est = maps[_VFLIP, est]
            images = np.ascontiguousarray(images[:, ::-1])
            if positions is not None:
                positions = grid_symmetry_map(rows, cols, _VFLIP)[0][positions]
        return est, images, positions
