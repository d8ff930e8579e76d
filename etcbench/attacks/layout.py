"""Layout scores of the jigsaw-puzzle literature, vectorised over images.

Cho, Avidan & Freeman, "A probabilistic image jigsaw puzzle solver", CVPR 2010, introduced the *direct* and
*neighbour* comparisons; Pomeranz, Shemesh & Ben-Shahar (CVPR 2011) and Gallagher (CVPR 2012) use them as well;
Chuman, Kurihara & Kiya (ICASSP 2017; IEICE Trans. 2018) score jigsaw attacks on block-scrambled EtC images
with them (``docs/paper.md`` of the suite, section 10).

A layout is given as ``positions`` of shape ``(N, n)``: piece ``j`` of image ``i`` (encrypted block ``j``) was
placed at grid position ``positions[i, j]`` (row-major on an ``R x C`` grid, ``n = R * C``). The truth is
``true_positions`` of the same shape: the plain-image position encrypted block ``j`` came from. For block
scrambling with key array ``block_perm`` (output block ``j`` is input block ``block_perm[j]``) the truth is
``true_positions[i] = block_perm``.

* direct comparison: the share of pieces placed at their true position;
* neighbour comparison: the share of the true adjacent pairs (the right neighbour and the neighbour below, in
  the plain image) that are adjacent in the same relation in the solution;
* largest component (Gallagher, "Jigsaw puzzles with pieces of unknown orientation", CVPR 2012; Paikin & Tal,
  CVPR 2015): the share of pieces in the largest correctly assembled component. Pieces are nodes; two pieces are
  joined when they are adjacent in the same relation (left-right or above-below, same direction) in the solution
  and in the truth. A correct sub-assembly scores its size wherever it was placed (a solution correct up to a
  translation scores 1).

All three ignore the pieces' variants (rotation/flip, negative-positive, colour permutation): they score positions
only. A solver that sees only the encrypted image cannot tell a layout from the same layout rotated or flipped
as a whole; with ``up_to_symmetry=True`` a score is the best over the global symmetries of the grid that keep
its shape (8 for a square grid, 4 for a rectangular one: identity, half turn, left-right and up-down flips, or
only the identity when ``rotations=False``), otherwise the layout is compared as is.

Choices the literature leaves open, fixed here:
    * a grid of one piece has no adjacent pairs; its neighbour comparison is 1.0 (nothing is wrong);
    * symmetry codes are those of :func:`etcbench.ciphers.etc.dihedral_maps` applied to the grid as an image;
    * largest component: the edges are exactly the true pairs the neighbour comparison counts as kept, so the
      components live on the truth's grid graph; along any path of such edges the solution offset equals the true
      offset, so every component is consistent (all its pieces are shifted by one common translation) and needs no
      further check. Pieces are counted, not edges; a grid of one piece scores 1.0. Components are found for all
      images (and symmetries) at once by ``scipy.sparse.csgraph.connected_components`` on the block-diagonal
      graph; with ``up_to_symmetry`` the best symmetry is taken per image, as for the other scores.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "direct_comparison",
    "grid_symmetry_map",
    "largest_component",
    "neighbour_comparison",
    "shape_preserving_codes",
]


def grid_symmetry_map(rows: int, cols: int, code: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Where each grid position goes when the whole ``rows x cols`` grid undergoes dihedral ``code``.

    Returns ``(new_position, (rows', cols'))``: position ``p`` moves to ``new_position[p]`` on the transformed
    grid (``rows' x cols'``; rows and columns swap for the odd quarter turns). Code ``c`` is ``np.rot90`` by
    ``c % 4`` quarter turns, then a left-right flip when ``c >= 4``, as in ``dihedral_maps``.
    """
    grid = np.rot90(np.arange(rows * cols).reshape(rows, cols), k=code % 4)
    if code >= 4:
        grid = np.fliplr(grid)
    new_position = np.empty(rows * cols, dtype=np.int64)
    new_position[grid.ravel()] = np.arange(rows * cols)
    return new_position, (grid.shape[0], grid.shape[1])


def shape_preserving_codes(rows: int, cols: int, rotations: bool = True) -> list[int]:
    """The dihedral codes that map a ``rows x cols`` grid onto itself (all 8 when square)."""
    if not rotations:
        return [0]
    return list(range(8)) if rows == cols else [0, 2, 4, 6]


def _check(positions: np.ndarray, true_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positions = np.asarray(positions)
    true_positions = np.asarray(true_positions)
    if positions.ndim != 2 or positions.shape != true_positions.shape:
        raise ValueError(
            "positions and true_positions must both have shape (N, n), "
            f"got {positions.shape} and {true_positions.shape}"
        )
    n = positions.shape[1]
    for name, a in (("positions", positions), ("true_positions", true_positions)):
        if not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= n):
            raise ValueError(f"{name} must lie in [0, {n}), got values in [{a.min()}, {a.max()}]")
    return positions.astype(np.int64), true_positions.astype(np.int64)


def _grid(grid: tuple[int, int] | None, n: int) -> tuple[int, int]:
    if grid is None:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"{n} pieces do not form a square grid: pass grid=(rows, cols)")
        return side, side
    rows, cols = (int(g) for g in grid)
    if rows < 1 or cols < 1 or rows * cols != n:
        raise ValueError(f"grid {rows}x{cols} does not hold {n} pieces")
    return rows, cols


def _symmetric(positions: np.ndarray, rows: int, cols: int, up_to_symmetry: bool, rotations: bool) -> np.ndarray:
    """``(S, N, n)``: the layout under each global symmetry considered (just the identity unless asked)."""
    codes = shape_preserving_codes(rows, cols, rotations) if up_to_symmetry else [0]
    return np.stack([grid_symmetry_map(rows, cols, c)[0][positions] for c in codes])


def direct_comparison(positions: np.ndarray, true_positions: np.ndarray, *, grid: tuple[int, int] | None = None,
                      up_to_symmetry: bool = False, rotations: bool = True) -> np.ndarray:
    """``(N,)`` share of pieces placed at their true position (variants ignored).

    Args:
        positions: ``(N, n)`` int, where each piece was placed.
        true_positions: ``(N, n)`` int, where each piece belongs.
        grid: ``(rows, cols)``; needed only with ``up_to_symmetry`` (a square grid is assumed when omitted).
        up_to_symmetry: score the best of the layout's global shape-preserving symmetries.
        rotations: with ``up_to_symmetry``, whether rotations/flips of the grid count as symmetries.
    """
    positions, true_positions = _check(positions, true_positions)
    if positions.shape[1] == 0:
        return np.ones(positions.shape[0])
    if not up_to_symmetry:
        return (positions == true_positions).mean(axis=1)
    rows, cols = _grid(grid, positions.shape[1])
    layouts = _symmetric(positions, rows, cols, up_to_symmetry, rotations)
    return (layouts == true_positions[None]).mean(axis=2).max(axis=0)


def _kept_pairs(positions: np.ndarray, true_positions: np.ndarray, rows: int, cols: int, up_to_symmetry: bool,
                rotations: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The true right/below neighbour pairs and which of them each (symmetric) layout keeps.

    Returns ``(pairs_right, pairs_below, right_ok, below_ok)``: ``pairs_right`` ``(R, 2)`` and ``pairs_below``
    ``(B, 2)`` are true position pairs ``(p, p + 1)`` and ``(p, p + cols)``; ``right_ok`` ``(S, N, R)`` and
    ``below_ok`` ``(S, N, B)`` say whether the pieces truly at those positions were placed in the same relation,
    for each global symmetry considered (``S = 1`` unless ``up_to_symmetry``).
    """
    num, n = positions.shape
    p = np.arange(n, dtype=np.int64)
    left = p[p % cols != cols - 1]
    pairs_right = np.stack([left, left + 1], axis=1)
    top = p[: n - cols]
    pairs_below = np.stack([top, top + cols], axis=1)
    # piece_at[i, p]: the piece whose true position is p
    piece_at = np.empty_like(true_positions)
    np.put_along_axis(piece_at, true_positions, np.broadcast_to(np.arange(n), (num, n)), axis=1)
    if not np.array_equal(np.sort(true_positions, axis=1), np.broadcast_to(np.arange(n), (num, n))):
        raise ValueError("true_positions must be a permutation of the grid positions in every row")
    layouts = _symmetric(positions, rows, cols, up_to_symmetry, rotations)  # (S, N, n)
    placed = np.take_along_axis(layouts, piece_at[None].repeat(len(layouts), 0), axis=2)  # (S, N, n) by true pos
    a, b = placed[..., pairs_right[:, 0]], placed[..., pairs_right[:, 1]]
    right_ok = (b == a + 1) & (a % cols != cols - 1)
    a, b = placed[..., pairs_below[:, 0]], placed[..., pairs_below[:, 1]]
    below_ok = b == a + cols
    return pairs_right, pairs_below, right_ok, below_ok


def neighbour_comparison(positions: np.ndarray, true_positions: np.ndarray, grid: tuple[int, int] | None = None, *,
                         up_to_symmetry: bool = False, rotations: bool = True) -> np.ndarray:
    """``(N,)`` share of the true right/below neighbour pairs that keep their relation in the solution.

    A true pair is piece ``a`` at plain position ``p`` and piece ``b`` at ``p + 1`` (same row) or ``p + cols``;
    it counts when ``b`` was placed right of (respectively below) ``a``. Variants are ignored.

    Args:
        positions, true_positions: ``(N, n)`` int layouts (see the module docstring).
        grid: ``(rows, cols)`` of the grid; a square grid when omitted.
        up_to_symmetry, rotations: as in :func:`direct_comparison`.
    """
    positions, true_positions = _check(positions, true_positions)
    num, n = positions.shape
    rows, cols = _grid(grid, n)
    total = (n - rows) + (n - cols)  # right pairs + below pairs
    if total == 0:
        return np.ones(num)
    _, _, right_ok, below_ok = _kept_pairs(positions, true_positions, rows, cols, up_to_symmetry, rotations)
    score = (right_ok.sum(axis=2) + below_ok.sum(axis=2)) / total
    return score.max(axis=0)


def largest_component(positions: np.ndarray, true_positions: np.ndarray, grid: tuple[int, int] | None = None, *,
                      up_to_symmetry: bool = False, rotations: bool = True) -> np.ndarray:
    """``(N,)`` share of pieces in the largest correctly assembled component (Gallagher 2012; Paikin & Tal 2015).

    Pieces are nodes; two pieces are joined when they are 4-adjacent in the solution in the same relation (``b``
    right of ``a``, or ``b`` below ``a``) as in the truth. The score is the size of the largest connected
    component over ``n``. A correct sub-assembly counts wherever it was placed; every component is consistent
    (its pieces share one translation from their true positions). Variants are ignored.

    Args:
        positions: ``(N, n)`` int, where each piece was placed.
        true_positions: ``(N, n)`` int, where each piece belongs (a permutation in every row).
        grid: ``(rows, cols)`` of the grid; a square grid when omitted.
        up_to_symmetry: score the best of the layout's global shape-preserving symmetries.
        rotations: with ``up_to_symmetry``, whether rotations/flips of the grid count as symmetries.

    Returns:
        ``(N,)`` float in ``[1/n, 1]`` (1.0 when ``n <= 1``).

    Examples:
        >>> import numpy as np
        >>> truth = np.arange(9)[None]  # 3 x 3 grid
        >>> float(largest_component(truth, truth)[0])
        1.0
        >>> swapped = np.array([[8, 1, 2, 3, 4, 5, 6, 7, 0]])  # the two opposite corners swapped
        >>> float(largest_component(swapped, truth)[0])  # the other 7 pieces still hold together
        0.7777777777777778
    """
    from scipy.sparse import coo_matrix  # here, not at the top: the attack registry loads without scipy
    from scipy.sparse.csgraph import connected_components

    positions, true_positions = _check(positions, true_positions)
    num, n = positions.shape
    if n == 0:
        return np.ones(num)
    rows, cols = _grid(grid, n)
    if n == 1:
        return np.ones(num)
    pairs_right, pairs_below, right_ok, below_ok = _kept_pairs(positions, true_positions, rows, cols,
                                                               up_to_symmetry, rotations)
    # one graph over all (symmetry, image) layouts: node (layout k, true position p) is k * n + p
    layouts = right_ok.shape[0] * num
    offset = np.arange(layouts, dtype=np.int64) * n
    pairs = np.concatenate([pairs_right, pairs_below])  # (E, 2)
    kept = np.concatenate([right_ok, below_ok], axis=2).reshape(layouts, -1)  # (S * N, E)
    k, e = np.nonzero(kept)
    src, dst = offset[k] + pairs[e, 0], offset[k] + pairs[e, 1]
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(layouts * n, layouts * n))
    _, labels = connected_components(graph, directed=False)
    size = np.bincount(labels)[labels].reshape(-1, num, n)  # (S, N, n): each node's component size
    return size.max(axis=2).max(axis=0) / n
