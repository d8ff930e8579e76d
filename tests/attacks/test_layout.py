"""Largest-component layout score (etcbench.attacks.layout.largest_component) against a brute-force reference."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etcbench.attacks.layout import grid_symmetry_map, largest_component, neighbour_comparison, shape_preserving_codes


def _reference(pos: np.ndarray, true: np.ndarray, rows: int, cols: int) -> float:
    """Breadth-first search over the solution grid, one image: share of pieces in the largest component.

    Also checks that each component is consistent (all its pieces moved by one translation).
    """
    n = len(pos)
    piece_at = {int(p): j for j, p in enumerate(pos)}
    adjacent: list[list[int]] = [[] for _ in range(n)]
    for j in range(n):
        r, c = divmod(int(pos[j]), cols)
        for dr, dc in ((0, 1), (1, 0)):
            if r + dr < rows and c + dc < cols:
                k = piece_at[(r + dr) * cols + c + dc]
                (tr, tc), (ur, uc) = divmod(int(true[j]), cols), divmod(int(true[k]), cols)
                if (ur - tr, uc - tc) == (dr, dc):
                    adjacent[j].append(k)
                    adjacent[k].append(j)
    seen = [False] * n
    best = 0
    for s in range(n):
        if seen[s]:
            continue
        seen[s] = True
        queue, members = deque([s]), []
        while queue:
            j = queue.popleft()
            members.append(j)
            for k in adjacent[j]:
                if not seen[k]:
                    seen[k] = True
                    queue.append(k)
        shifts = {(divmod(int(pos[j]), cols)[0] - divmod(int(true[j]), cols)[0],
                   divmod(int(pos[j]), cols)[1] - divmod(int(true[j]), cols)[1]) for j in members}
        assert len(shifts) == 1, "a component must be one translated sub-assembly"
        best = max(best, len(members))
    return best / n


def _reference_batch(sol: np.ndarray, true: np.ndarray, rows: int, cols: int, up_to_symmetry: bool = False,
                     rotations: bool = True) -> np.ndarray:
    codes = shape_preserving_codes(rows, cols, rotations) if up_to_symmetry else [0]
    maps = [grid_symmetry_map(rows, cols, code)[0] for code in codes]
    return np.array([max(_reference(m[s], t, rows, cols) for m in maps) for s, t in zip(sol, true)])


# ----------------------------------------------------------------------------------------------- hand-made

def test_truth_and_no_correct_adjacency():
    for rows, cols in ((1, 1), (1, 5), (3, 1), (2, 3), (4, 4)):
        n = rows * cols
        true = np.stack([np.arange(n), np.random.default_rng(n).permutation(n)])
        assert (largest_component(true, true, (rows, cols)) == 1.0).all()
    # the transpose of a square layout: every right neighbour ends up below and vice versa -> single pieces
    t16 = np.arange(16).reshape(4, 4)
    transposed = t16.T.ravel()[None]
    assert neighbour_comparison(transposed, t16.ravel()[None])[0] == 0.0
    assert largest_component(transposed, t16.ravel()[None])[0] == 1 / 16
    # a rotated 3 x 3 layout: wrong as is, right up to symmetry, not when rotations are off
    rot = grid_symmetry_map(3, 3, 1)[0][None]
    t9 = np.arange(9)[None]
    assert largest_component(rot, t9)[0] == pytest.approx(1 / 9)
    assert largest_component(rot, t9, up_to_symmetry=True)[0] == 1.0
    assert largest_component(rot, t9, up_to_symmetry=True, rotations=False)[0] == pytest.approx(1 / 9)


def test_translated_sub_assembly():
    """The true top-left 2 x 2 block (pieces 0, 1, 4, 5) placed bottom right of a 4 x 4 grid, the other pieces
    in reverse order in the remaining slots: no other kept pair (checked by hand), so 4 of 16 pieces."""
    sol = np.empty(16, dtype=np.int64)
    sol[[0, 1, 4, 5]] = [10, 11, 14, 15]
    rest = [15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 3, 2]
    sol[rest] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13]
    true = np.arange(16)[None]
    assert largest_component(sol[None], true)[0] == 4 / 16
    assert neighbour_comparison(sol[None], true)[0] == 4 / 24  # the sub-assembly's 4 internal pairs only
    assert (sol != true[0]).all()  # no piece at its true position
    # relabelling the pieces (any truth) gives the same score
    relabel = np.random.default_rng(0).permutation(16)
    assert largest_component(sol[relabel][None], true[:, relabel])[0] == 4 / 16


def test_row_wrap_does_not_join():
    # 2 x 2: pieces 3, 0 / 1, 2 placed; 0 right of 3 and 1 after 0 across the row end are not neighbours,
    # only "0 above 2" is kept -> {0, 2} is the largest component
    sol = np.array([[1, 2, 3, 0]])
    assert largest_component(sol, np.arange(4)[None], (2, 2))[0] == 0.5


def test_two_components_the_larger_counts():
    # 2 x 4 grid, true rows 0 1 2 3 / 4 5 6 7; solution: the left 2 x 3 block correct, pieces 3 and 7 swapped
    # (both in the last column: 3 now below 7 -> wrong relation), so the component is {0, 1, 2, 4, 5, 6}
    sol = np.array([[0, 1, 2, 7, 4, 5, 6, 3]])
    assert largest_component(sol, np.arange(8)[None], (2, 4))[0] == 6 / 8


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        largest_component(np.zeros((2, 4), int), np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="grid"):
        largest_component(np.arange(6)[None], np.arange(6)[None])
    with pytest.raises(ValueError, match="grid"):
        largest_component(np.arange(6)[None], np.arange(6)[None], (2, 2))
    with pytest.raises(ValueError, match="permutation"):
        largest_component(np.arange(4)[None], np.zeros((1, 4), int))
    with pytest.raises(ValueError, match="integers"):
        largest_component(np.zeros((1, 4)), np.arange(4)[None])
    assert largest_component(np.zeros((3, 0), int), np.zeros((3, 0), int)).tolist() == [1.0] * 3


# -------------------------------------------------------------------------------------------- properties

grids = st.sampled_from([(1, 1), (1, 4), (4, 1), (2, 2), (2, 3), (3, 3), (4, 4), (3, 5)])


def _layouts(rng: np.random.Generator, true: np.ndarray, rows: int, cols: int, swaps: int) -> np.ndarray:
    """Partly correct layouts: the truth cyclically shifted, then ``swaps`` random piece swaps, then a random
    global symmetry (so components of every size come up), plus a fully random layout."""
    n = true.shape[1]
    out = []
    for t in true:
        r, c = np.divmod(t, cols)
        sol = ((r + rng.integers(rows)) % rows) * cols + (c + rng.integers(cols)) % cols
        for _ in range(swaps):
            a, b = rng.integers(n, size=2)
            sol[[a, b]] = sol[[b, a]]
        code = int(rng.choice(shape_preserving_codes(rows, cols)))
        out.append(grid_symmetry_map(rows, cols, code)[0][sol])
    out.append(rng.permutation(n))
    return np.stack(out)


@given(grids, st.integers(0, 2**31 - 1), st.integers(0, 6))
@settings(max_examples=60, deadline=None)
def test_agrees_with_brute_force(grid, seed, swaps):
    rows, cols = grid
    n = rows * cols
    rng = np.random.default_rng(seed)
    true = np.stack([rng.permutation(n) for _ in range(4)])
    sol = _layouts(rng, true[:3], rows, cols, swaps)
    for up in (False, True):
        for rotations in (True, False):
            got = largest_component(sol, true, grid, up_to_symmetry=up, rotations=rotations)
            np.testing.assert_allclose(got, _reference_batch(sol, true, rows, cols, up, rotations))
    lc = largest_component(sol, true, grid)
    assert ((lc >= 1 / n) & (lc <= 1)).all()
    assert (largest_component(sol, true, grid, up_to_symmetry=True) >= lc).all()
    # no kept pair -> single pieces
    nb = neighbour_comparison(sol, true, grid)
    np.testing.assert_allclose(lc[nb == 0], 1 / n)
    # relabelling the pieces changes nothing
    relabel = rng.permutation(n)
    np.testing.assert_allclose(largest_component(sol[:, relabel], true[:, relabel], grid), lc)


@given(grids, st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_cyclic_shift_and_symmetry(grid, seed):
    """A truth shifted cyclically by (dr, dc) breaks into at most 4 correct blocks: the largest is
    max(rows - dr, dr) x max(cols - dc, dc). The truth under any shape-preserving symmetry is 1 up to symmetry."""
    rows, cols = grid
    n = rows * cols
    rng = np.random.default_rng(seed)
    true = rng.permutation(n)[None]
    dr, dc = int(rng.integers(rows)), int(rng.integers(cols))
    r, c = np.divmod(true, cols)
    shifted = ((r + dr) % rows) * cols + (c + dc) % cols
    expected = max(rows - dr, dr) * max(cols - dc, dc) / n
    assert largest_component(shifted, true, grid)[0] == pytest.approx(expected)
    code = int(rng.choice(shape_preserving_codes(rows, cols)))
    moved = grid_symmetry_map(rows, cols, code)[0][true]
    assert largest_component(moved, true, grid, up_to_symmetry=True)[0] == 1.0
    assert largest_component(true, true, grid)[0] == 1.0
