"""Jigsaw-puzzle-solver attack on block scrambling (with rotated, flipped, inverted and colour-shuffled pieces).

Literature: Chuman, Kurihara & Kiya, "On the security of block scrambling-based ETC systems against jigsaw
puzzle solver attacks", ICASSP 2017, and "Security evaluation for block scrambling-based ETC systems against
extended jigsaw puzzle solver attacks", IEICE Trans. 2018 (``docs/paper.md`` of the suite, section 10) extend a
greedy jigsaw solver to pieces that the cipher may have rotated/flipped, negative-positive transformed and
colour-permuted. The solver here is the greedy placer of Pomeranz, Shemesh & Ben-Shahar, "A fully automated
greedy square jigsaw puzzle solver", CVPR 2011, with the confidence-driven placement order of Paikin & Tal,
"Solving multiple square jigsaw puzzles with missing pieces", CVPR 2015.

Algorithm, per image (all images of a batch are solved side by side, one placement step at a time):

1. cut the encrypted image into its ``n`` M x M pieces (row-major, :func:`etcbench.ciphers.blocks.to_blocks`);
2. dissimilarity of piece ``a`` placed left of piece ``b`` (prediction-based, symmetric; values centred at
   127.5 so that negative-positive is a sign flip)::

       D(a, b) = || (2 a[:, -1] - a[:, -2]) - b[:, 0] || + || (2 b[:, 0] - b[:, 1]) - a[:, -1] ||

   It is unchanged when the same negative-positive / colour permutation is applied to both pieces, so it is
   tabulated as ``R[a, g_a, b, g_b, q]`` for all ordered piece pairs, both pieces' rotation/flip and the
   *relative* negative-positive/colour variant ``q`` of ``b`` -- one batched matrix product per term over all
   pairs, expanding ``||x - s P y||^2 = |x|^2 + |y|^2 - 2 s x.(P y)`` through the 3 x 3 channel cross-products.
   "Below" relations are "right" relations of the pair turned a quarter turn;
3. confidence: a dissimilarity is divided by the geometric mean of the second-smallest dissimilarities of the
   two facing sides over all other pieces (Paikin & Tal's ratio test, made symmetric), so distinctive, mutual
   matches come first;
4. greedy placement on a canvas: the start piece is the one with the most confident side; it is placed with the
   identity variant. Each step places the (empty slot, unplaced piece, variant) with the smallest mean
   normalised dissimilarity to its already placed neighbours, among slots that keep the bounding box within
   the known ``H/M x W/M`` grid (or its transpose, when rotations are on). Each new piece's variant is absolute
   (composed with its neighbours' through the relative-variant table). After ``n - 1`` steps the bounding box
   is exactly the grid;
5. global rule: edges cannot tell a layout from the same layout rotated/flipped, inverted or colour-permuted as a
   whole. A layout solved in the transposed orientation is turned a quarter turn; then, among the global
   symmetries that keep the grid's shape (all 8 rotations/flips of a square grid, 4 of a rectangular one, only
   the identity with ``rotate_flip=False``) times the enabled negative-positive/colour variants, the one that
   leaves the *most pieces with the identity variant* is applied (ties: the lowest variant code). Unencrypted or
   scramble-only input therefore comes back as is; for fully encrypted input the rule is arbitrary (an
   attacker would pick among the few global candidates by eye), so score layouts and images both as is and up
   to this symmetry (:mod:`.layout`, ``up_to_symmetry=True``); :func:`global_candidates` lists the global
   versions of solved images, for an image score of the best candidate (an upper bound).

Variant encoding: ``variant = g + 8 * np_bit + 16 * colour_code``, the transform applied to the *encrypted*
piece before it is placed: dihedral code ``g`` in 0..7 as in :func:`etcbench.ciphers.etc.dihedral_maps`
(``np.rot90`` by ``g % 4`` quarter turns, then a left-right flip when ``g >= 4``), ``np_bit`` = ``v -> 255 - v``,
colour code in 0..5 selects ``CHANNEL_PERMS[code]`` (output channel ``k`` is input channel ``perm[k]``). The
three commute, so their order does not matter. A 1-channel plane has colour code 0.

Choices the literature leaves open, fixed here:
    * dissimilarity: L2 norm (not squared; it measured better than squared on natural tiles) of the linear
      prediction from the two outermost rows, summed over both one-sided predictions (Pomeranz's
      prediction-based measure with p = 2, q = 1/2; MGC would need per-edge covariances that do not tabulate
      over relative colour variants); for M = 1 the prediction is the outermost row itself;
    * confidence divisor: sqrt(second-best of the placed side x second-best of the candidate's facing side),
      each the second-best over *other pieces* (each at its best variant), plus 1.0 against flat edges (the
      placed side alone, or the minimum of both, measured worse on full EtC);
    * start piece and ties: lowest index; the candidate score is the mean over placed neighbours (no bonus for
      slots with more neighbours);
    * no post-optimisation (Pomeranz's segmentation/shift step is not applied);
    * global candidates come in increasing variant code (the identity first) and are labelled by their parts
      joined with ``+``: the geometry name (``rot90``, ``rot180``, ``rot270`` counter-clockwise, ``flip-lr``,
      ``anti-transpose`` = rot90 then flip-lr, ``flip-ud``, ``transpose``), ``np``, and the channel order
      (``rbg``, ``grb``, ``gbr``, ``brg``, ``bgr``); parts that are the identity are left out, the identity
      itself is ``id``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ciphers.blocks import check_block_grid, from_blocks, to_blocks
from ..ciphers.etc import CHANNEL_PERMS, dihedral_maps
from .base import Attack, Reconstruction, register_attack
from .layout import direct_comparison, grid_symmetry_map, neighbour_comparison, shape_preserving_codes

__all__ = [
    "Jigsaw",
    "apply_variants",
    "assemble",
    "compose_variants",
    "decode_variant",
    "direct_comparison",
    "encode_variant",
    "global_candidates",
    "invert_variant",
    "neighbour_comparison",
]

_BIG = 1e30  # dissimilarity of a piece with itself (never chosen)
_EPS = 1.0  # added to the confidence divisor
_QUARTER = 1  # dihedral code of one counter-clockwise quarter turn


# ----------------------------------------------------------------------------------------------------- variants

def _geometry_tables() -> tuple[np.ndarray, np.ndarray]:
    """``compose[g1, g2]`` (apply ``g1``, then ``g2``) and ``inverse[g]`` of the 8 dihedral codes."""
    maps = dihedral_maps(3)
    compose = np.array([[int(np.flatnonzero((maps == maps[g1][maps[g2]]).all(1))[0]) for g2 in range(8)]
                        for g1 in range(8)], dtype=np.int64)
    inverse = np.argmax(compose == 0, axis=1)
    return compose, inverse


_GEO_COMPOSE, _GEO_INVERSE = _geometry_tables()
_COLOUR_COMPOSE = np.array([[int(np.flatnonzero((CHANNEL_PERMS[c1][CHANNEL_PERMS[c2]] == CHANNEL_PERMS).all(1))[0])
                             for c2 in range(6)] for c1 in range(6)], dtype=np.int64)
_COLOUR_INVERSE = np.argmax(_COLOUR_COMPOSE == 0, axis=1)


def encode_variant(geometry: Any, negpos: Any, colour: Any) -> np.ndarray:
    """``g + 8 * np_bit + 16 * colour_code`` (see the module docstring)."""
    geometry, negpos, colour = (np.asarray(v, dtype=np.int64) for v in (geometry, negpos, colour))
    return geometry + 8 * negpos + 16 * colour


def decode_variant(variant: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_variant`: ``(geometry, np_bit, colour_code)``."""
    v = np.asarray(variant, dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= 96):
        raise ValueError(f"variant codes lie in [0, 96), got values in [{v.min()}, {v.max()}]")
    return v % 8, (v // 8) % 2, v // 16


def compose_variants(first: Any, then: Any) -> np.ndarray:
    """The variant of applying ``first``, then ``then`` (elementwise, broadcasting)."""
    g1, n1, c1 = decode_variant(first)
    g2, n2, c2 = decode_variant(then)
    return encode_variant(_GEO_COMPOSE[g1, g2], n1 ^ n2, _COLOUR_COMPOSE[c1, c2])


def invert_variant(variant: Any) -> np.ndarray:
    """The variant that undoes ``variant``."""
    g, n, c = decode_variant(variant)
    return encode_variant(_GEO_INVERSE[g], n, _COLOUR_INVERSE[c])


def apply_variants(pieces: np.ndarray, variants: np.ndarray) -> np.ndarray:
    """Transform pieces ``(N, n, M, M, C)`` uint8 by ``variants`` ``(N, n)`` (colour codes need C = 3)."""
    num, n, m, _, c = pieces.shape
    g, neg, col = decode_variant(variants)
    if c != 3 and (col != 0).any():
        raise ValueError(f"colour permutation codes need 3 channels, got {c}")
    flat = pieces.reshape(num, n, m * m, c)
    flat = np.take_along_axis(flat, dihedral_maps(m)[g][..., None], axis=2)
    if c == 3:
        flat = np.take_along_axis(flat, CHANNEL_PERMS[col][:, :, None, :], axis=3)
    flat = np.where(neg.astype(bool)[:, :, None, None], 255 - flat, flat)
    return flat.reshape(num, n, m, m, c).astype(pieces.dtype)


def assemble(pieces: np.ndarray, positions: np.ndarray, variants: np.ndarray, height: int, width: int) -> np.ndarray:
    """Put transformed piece ``j`` at grid position ``positions[:, j]``: ``(N, height, width, C)``."""
    moved = apply_variants(pieces, variants)
    out = np.empty_like(moved)
    np.put_along_axis(out, positions[:, :, None, None, None].astype(np.int64), moved, axis=1)
    return from_blocks(out, height, width)


# ------------------------------------------------------------------------------------------- global candidates

_GEOMETRY_NAMES = ("", "rot90", "rot180", "rot270", "flip-lr", "anti-transpose", "flip-ud", "transpose")
_COLOUR_NAMES = tuple("".join("rgb"[k] for k in perm) for perm in CHANNEL_PERMS)


def _candidate_label(geometry: int, negpos: int, colour: int) -> str:
    parts = [_GEOMETRY_NAMES[geometry], "np" if negpos else "", _COLOUR_NAMES[colour] if colour else ""]
    return "+".join(part for part in parts if part) or "id"


def global_candidates(images: np.ndarray, *, rotate_flip: bool = True, negative_positive: bool = True,
                      color_permutation: bool = True) -> tuple[np.ndarray, list[str]]:
    """All global versions of solved images that edges cannot tell apart.

    A jigsaw solution is determined only up to a whole-image rotation/flip that keeps the image's shape (8 for a
    square image, 4 for a rectangular one: identity, half turn, left-right and up-down flips), negative-positive
    ``v -> 255 - v`` and a permutation of the 3 colour channels. Scoring every candidate against the plain image
    and keeping the best gives an upper bound of what an attacker who picks the right one by eye would get.

    Candidate ``k`` is the whole image under the ``k``-th enabled variant code in increasing order (the encoding
    of the module docstring, applied to the image as one piece: ``np.rot90`` by ``g % 4`` counter-clockwise
    quarter turns, then a left-right flip when ``g >= 4``; then inversion and ``CHANNEL_PERMS[colour]``), so
    candidate 0 is the input itself. The candidates form a group: whichever of them was applied to an image, one
    candidate of the result is the image again.

    Args:
        images: ``(N, H, W, C)`` uint8, C = 1 or 3.
        rotate_flip: include the shape-preserving whole-image rotations/flips (off: the identity only).
        negative_positive: include the inverted versions.
        color_permutation: include the 6 channel orders (ignored for C = 1).

    Returns:
        ``(candidates, labels)``: ``(K, N, H, W, C)`` uint8 with ``K = G * P * Q`` (G = 8 square, 4 rectangular or
        1; P = 2 or 1; Q = 6 or 1), and ``K`` distinct labels such as ``"id"``, ``"rot90"``, ``"np"``,
        ``"flip-lr+np+gbr"`` (see the module docstring; ``"gbr"``: output channels are input G, B, R).

    Examples:
        >>> import numpy as np
        >>> x = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
        >>> cands, labels = global_candidates(x)
        >>> cands.shape, labels[:3], labels[-1]
        ((96, 2, 4, 4, 3), ['id', 'rot90', 'rot180'], 'transpose+np+bgr')
        >>> bool((cands[0] == x).all()), bool((cands[labels.index("flip-lr")] == x[:, :, ::-1]).all())
        (True, True)
    """
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] not in (1, 3):
        shape = getattr(images, "shape", None)
        raise ValueError(f"images must be a numpy array of shape (N, H, W, C) with C = 1 or 3, got {shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {images.dtype}")
    h, w, c = images.shape[1:]
    geos = shape_preserving_codes(h, w, rotate_flip)
    negs = (0, 1) if negative_positive else (0,)
    colours = range(6) if color_permutation and c == 3 else (0,)
    oriented = []
    for g in geos:  # whole-image dihedral code g, as dihedral_maps does it within a block
        turned = np.rot90(images, k=g % 4, axes=(1, 2))
        oriented.append(turned[:, :, ::-1] if g >= 4 else turned)
    geo_stack = np.stack(oriented)  # (G, N, H, W, C)
    # increasing variant code g + 8 * np + 16 * colour: colour outermost, geometry innermost
    out = np.stack([255 - geo_stack if neg else geo_stack for neg in negs])  # (P, G, N, H, W, C)
    # (Q, P, G, N, H, W, C)
    out = np.stack([out[..., CHANNEL_PERMS[col]] for col in colours]) if c == 3 else out[None]
    labels = [_candidate_label(g, neg, col) for col in colours for neg in negs for g in geos]
    return np.ascontiguousarray(out.reshape(-1, *images.shape)), labels


# ------------------------------------------------------------------------------------------------------ solver

@register_attack("jigsaw")
class Jigsaw(Attack):
    """Greedy jigsaw-puzzle solver for block-scrambled images whose pieces may also be rotated/flipped,
    negative-positive transformed and colour-permuted (Chuman, Kurihara & Kiya 2017/2018).

    Args:
        block_size: piece size M (the cipher's block size).
        rotate_flip: pieces may be rotated/flipped (8 variants); off = the solver keeps every piece's orientation.
        negative_positive: pieces may be inverted ``v -> 255 - v``.
        color_permutation: pieces' colour channels may be permuted (6 variants; ignored for 1-channel planes).
        batch_size: images solved side by side (memory grows with it); ``None`` picks it from the piece count.

    ``reconstruct`` returns the assembled images and ``extra["positions"]``, ``extra["variants"]`` (``(N, n)``
    int64, see the module docstring for the encoding).

    Examples:
        >>> import numpy as np
        >>> from etcbench.attacks.jigsaw import Jigsaw
        >>> from skimage import data
        >>> plain = data.astronaut()[None, 192:256, 192:256]
        >>> perm = np.random.default_rng(0).permutation(16)
        >>> from etcbench.ciphers import to_blocks, from_blocks
        >>> scrambled = from_blocks(to_blocks(plain, 16)[:, perm], 64, 64)
        >>> out = Jigsaw(16, rotate_flip=False, negative_positive=False, color_permutation=False).reconstruct(scrambled)
        >>> bool((out.images == plain).all()), bool((out.extra["positions"][0] == perm).all())
        (True, True)
    """

    needs_training = False

    def __init__(self, block_size: int, rotate_flip: bool = True, negative_positive: bool = True,
                 color_permutation: bool = True, batch_size: int | None = None) -> None:
        super().__init__(block_size)
        if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.rotate_flip = bool(rotate_flip)
        self.negative_positive = bool(negative_positive)
        self.color_permutation = bool(color_permutation)
        self.batch_size = None if batch_size is None else int(batch_size)

    # ------------------------------------------------------------------------------------------------- API

    def reconstruct(self, encrypted: np.ndarray) -> Reconstruction:
        x = self._check_input(encrypted)
        num, h, w, c = x.shape
        m = self.block_size
        rows, cols = h // m, w // m
        n = rows * cols
        pieces = to_blocks(x, m)  # (N, n, M, M, C)
        geos = list(range(8)) if self.rotate_flip else [0]
        qs = [(b, col) for col in (range(6) if self.color_permutation and c == 3 else [0])
              for b in ((0, 1) if self.negative_positive else (0,))]
        positions = np.empty((num, n), dtype=np.int64)
        variants = np.empty((num, n), dtype=np.int64)
        if n == 1:
            positions[:] = 0
            variants[:] = 0
        else:
            per_image = n * n * 8 * 8 * len(qs) * 4 * 4  # bytes of the tables, roughly
            batch = self.batch_size or max(1, min(num, (256 << 20) // per_image))
            for start in range(0, num, batch):
                sl = slice(start, start + batch)
                positions[sl], variants[sl] = self._solve(pieces[sl], rows, cols, geos, qs)
        positions, variants = self._global_rule(positions, variants, rows, cols)
        images = assemble(pieces, positions, variants, h, w)
        return Reconstruction(images=images, extra={"positions": positions, "variants": variants})

    # ---------------------------------------------------------------------------------------------- checks

    def _check_input(self, encrypted: Any) -> np.ndarray:
        if not isinstance(encrypted, np.ndarray):
            raise ValueError(f"the jigsaw attack takes a numpy array, got {type(encrypted).__name__}")
        if encrypted.ndim != 4 or encrypted.shape[-1] not in (1, 3):
            raise ValueError(f"encrypted images must have shape (N, H, W, C) with C = 1 or 3, got {encrypted.shape}")
        if encrypted.dtype != np.uint8:
            raise ValueError(f"encrypted images must be uint8, got dtype {encrypted.dtype}")
        check_block_grid(encrypted.shape[1], encrypted.shape[2], self.block_size)
        return np.ascontiguousarray(encrypted)

    # --------------------------------------------------------------------------------------------- tables

    @staticmethod
    def _tables(pieces: np.ndarray, lgeos: list[int], qs: list[tuple[int, int]]) -> np.ndarray:
        """``R[i, a, la, b, lb, q]``: dissimilarity of piece ``a`` (geometry ``lgeos[la]``) left of piece ``b``
        (geometry ``lgeos[lb]``, relative negative-positive/colour variant ``qs[q]``), float32."""
        bsz, n, m, _, c = pieces.shape
        nl = len(lgeos)
        x = pieces.reshape(bsz, n, 1, m * m, c).astype(np.float64) - 127.5
        t = x[:, :, :, dihedral_maps(m)[lgeos]][:, :, 0].reshape(bsz, n, nl, m, m, c)  # (B, n, L, M, M, C)
        last, first = t[..., :, m - 1, :], t[..., :, 0, :]
        prev, second = (t[..., :, m - 2, :], t[..., :, 1, :]) if m > 1 else (last, first)
        colours = sorted({col for _, col in qs})
        perms = CHANNEL_PERMS[colours] if c == 3 else np.zeros((1, 1), dtype=np.int64)
        sign = np.array([-1.0 if b else 1.0 for b, _ in qs])
        col_idx = np.array([colours.index(col) for _, col in qs])
        d = np.zeros((bsz, n * nl, n * nl, len(qs)))
        # the two one-sided terms: a's prediction vs b's edge, b's prediction vs a's edge
        for fa, fb in ((2 * last - prev, first), (last, 2 * first - second)):
            fa, fb = fa.reshape(bsz, n * nl, m, c), fb.reshape(bsz, n * nl, m, c)
            cross = np.einsum("ixmk,iyml->ixykl", fa, fb, optimize=True)  # (B, x, y, C, C)
            dots = cross[..., np.arange(c)[None, :], perms].sum(-1)  # (B, x, y, colours)
            term = (np.square(fa).sum((2, 3))[:, :, None, None] + np.square(fb).sum((2, 3))[:, None, :, None]
                    - 2 * sign * dots[..., col_idx])
            d += np.sqrt(np.maximum(term, 0))
        d = d.astype(np.float32).reshape(bsz, n, nl, n, nl, len(qs))
        d[:, np.arange(n), :, np.arange(n)] = _BIG
        return d

    # ---------------------------------------------------------------------------------------------- solve

    def _solve(self, pieces: np.ndarray, rows: int, cols: int, geos: list[int],
               qs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        bsz, n = pieces.shape[:2]
        lgeos = sorted(set(geos) | {int(_GEO_COMPOSE[g, _QUARTER]) for g in geos})
        l_right = np.array([lgeos.index(g) for g in geos])
        l_below = np.array([lgeos.index(int(_GEO_COMPOSE[g, _QUARTER])) for g in geos])
        ng, nq = len(geos), len(qs)
        # relative variant tables over the enabled negative-positive/colour set
        qidx = {q: i for i, q in enumerate(qs)}
        q_inv = np.array([qidx[(b, int(_COLOUR_INVERSE[col]))] for b, col in qs])
        # rel[qa, qb] = apply qb, then qa^-1 (b's variant relative to a's)
        rel = np.array([[qidx[(qb[0] ^ qa[0], int(_COLOUR_COMPOSE[qb[1], _COLOUR_INVERSE[qa[1]]]))] for qb in qs]
                        for qa in qs])

        tab = self._tables(pieces, lgeos, qs)  # (B, n, L, n, L, Q)

        # confidence divisors: per placed piece a, its geometry and the direction it faces (right, below, left,
        # above), the second-best dissimilarity over the other pieces (each at its best variant)
        best_two = np.empty((bsz, n, 4, ng, 2), dtype=np.float32)
        for d in range(4):
            lsel = l_right if d in (0, 2) else l_below
            sub = tab[:, :, lsel][:, :, :, :, lsel]  # (B, a, Ga, b, Gb, Q), a left of / above b
            # -> (B, placed, G, other): the placed piece is a (right, below) or b (left, above)
            sub = sub.min(axis=(4, 5)) if d < 2 else sub.min(axis=(2, 5)).transpose(0, 2, 3, 1)
            best_two[:, :, d] = np.partition(sub, 1, axis=3)[..., :2]
        divisor = best_two[..., 1] + _EPS  # (B, n, 4, G)
        g0 = geos.index(0)
        start = (best_two[:, :, :, g0, 0] / divisor[:, :, :, g0]).min(axis=2).argmin(axis=1)  # (B,)

        # canvas large enough for the grid in either orientation, start at its centre
        transposable = self.rotate_flip and rows != cols
        span_r, span_c = (max(rows, cols),) * 2 if transposable else (rows, cols)
        hc, wc = 2 * span_r - 1, 2 * span_c - 1
        p = hc * wc
        slot_r, slot_c = np.arange(p) // wc, np.arange(p) % wc
        steps = ((0, 1), (1, 0), (0, -1), (-1, 0))  # right, below, left, above
        nb = np.full((p, 4), -1, dtype=np.int64)
        for d, (dr, dc) in enumerate(steps):
            rr, cc = slot_r + dr, slot_c + dc
            nb[:, d] = np.where((rr >= 0) & (rr < hc) & (cc >= 0) & (cc < wc), rr * wc + cc, -1)

        ar = np.arange(bsz)
        acc = np.zeros((bsz, p, n, ng * nq), dtype=np.float32)
        cnt = np.zeros((bsz, p), dtype=np.float32)
        acc_min = np.zeros((bsz, p, n), dtype=np.float32)
        acc_arg = np.zeros((bsz, p, n), dtype=np.int64)
        occupied = np.zeros((bsz, p), dtype=bool)
        placed = np.zeros((bsz, n), dtype=bool)
        slot_of, geo_of, q_of = (np.zeros((bsz, n), dtype=np.int64) for _ in range(3))
        bbox = np.empty((4, bsz), dtype=np.int64)  # rmin, rmax, cmin, cmax
        bbox[:2], bbox[2:] = span_r - 1, span_c - 1

        def place(slot: np.ndarray, piece: np.ndarray, gi: np.ndarray, qi: np.ndarray) -> None:
            occupied[ar, slot] = True
            placed[ar, piece] = True
            slot_of[ar, piece], geo_of[ar, piece], q_of[ar, piece] = slot, gi, qi
            r, c = slot_r[slot], slot_c[slot]
            bbox[0], bbox[1] = np.minimum(bbox[0], r), np.maximum(bbox[1], r)
            bbox[2], bbox[3] = np.minimum(bbox[2], c), np.maximum(bbox[3], c)
            for d in range(4):
                target = nb[slot, d]
                keep = (target >= 0) & ~occupied[ar, np.maximum(target, 0)]
                if not keep.any():
                    continue
                i, tgt, a, g, q = ar[keep], target[keep], piece[keep], gi[keep], qi[keep]
                lsel = l_right if d in (0, 2) else l_below
                if d < 2:  # candidate right of / below a: tab[a, la, b, lb, rel(qa, qb)]
                    block = tab[i, a, lsel[g]]  # (k, n, L, Q)
                    qmap = rel[q]
                else:  # candidate left of / above a: tab[b, lb, a, la, inv(rel(qa, qb))]
                    block = tab[i, :, :, a, lsel[g]]  # (k, n, L, Q)
                    qmap = q_inv[rel[q]]
                block = np.take_along_axis(block[:, :, lsel], qmap[:, None, None, :], axis=3)  # (k, n, G, Q)
                own = divisor[i, a, d, g][:, None, None, None]  # the placed piece's side
                other = divisor[i, :, (d + 2) % 4][:, :, :, None]  # each candidate's facing side, (k, n, G, 1)
                block = block / np.sqrt(own * other)
                acc[i, tgt] += block.reshape(len(i), n, ng * nq)
                cnt[i, tgt] += 1
                acc_arg[i, tgt] = acc[i, tgt].argmin(axis=2)
                acc_min[i, tgt] = np.take_along_axis(acc[i, tgt], acc_arg[i, tgt][..., None], axis=2)[..., 0]

        place(np.full(bsz, (span_r - 1) * wc + span_c - 1), start, np.full(bsz, g0), np.full(bsz, qidx[(0, 0)]))
        for _ in range(n - 1):
            new_h = np.maximum(bbox[1, :, None], slot_r) - np.minimum(bbox[0, :, None], slot_r) + 1  # (B, P)
            new_w = np.maximum(bbox[3, :, None], slot_c) - np.minimum(bbox[2, :, None], slot_c) + 1
            fits = (new_h <= rows) & (new_w <= cols)
            if transposable:
                fits |= (new_h <= cols) & (new_w <= rows)
            ok = fits & ~occupied & (cnt > 0)
            score = acc_min / np.maximum(cnt, 1)[:, :, None]
            score[~(ok[:, :, None] & ~placed[:, None, :])] = np.inf
            best = score.reshape(bsz, -1).argmin(axis=1)
            slot, piece = best // n, best % n
            w = acc_arg[ar, slot, piece]
            place(slot, piece, w // nq, w % nq)

        # grid coordinates; a layout solved transposed is turned a quarter turn (rot90: (r, c) -> (w-1-c, r))
        r = slot_r[slot_of] - bbox[0][:, None]
        c = slot_c[slot_of] - bbox[2][:, None]
        geo_codes = np.asarray(geos)[geo_of]
        turned = (bbox[1] - bbox[0] + 1 != rows)[:, None] if transposable else np.zeros((bsz, 1), dtype=bool)
        width_now = (bbox[3] - bbox[2] + 1)[:, None]
        r, c = np.where(turned, width_now - 1 - c, r), np.where(turned, r, c)
        geo_codes = np.where(turned, _GEO_COMPOSE[geo_codes, _QUARTER], geo_codes)
        qarr = np.asarray(qs, dtype=np.int64)[q_of]
        return (r * cols + c).astype(np.int64), encode_variant(geo_codes, qarr[..., 0], qarr[..., 1])

    # ---------------------------------------------------------------------------------------- global rule

    def _global_rule(self, positions: np.ndarray, variants: np.ndarray, rows: int,
                     cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Apply the shape-preserving global symmetry that leaves the most pieces with the identity variant."""
        allowed_geo = np.zeros(8, dtype=bool)
        allowed_geo[shape_preserving_codes(rows, cols, self.rotate_flip)] = True
        counts = np.stack([np.bincount(v, minlength=96) for v in variants]) if len(variants) else np.zeros((0, 96))
        g, _, _ = decode_variant(np.arange(96))
        counts[:, ~allowed_geo[_GEO_INVERSE[g]]] = -1  # only piece variants whose inverse is a global symmetry
        transform = invert_variant(counts.argmax(axis=1))  # (N,)
        tg = decode_variant(transform)[0]
        maps = np.stack([grid_symmetry_map(rows, cols, code)[0] if allowed_geo[code] else np.arange(rows * cols)
                         for code in range(8)])
        positions = np.take_along_axis(maps[tg], positions, axis=1)
        variants = compose_variants(variants, transform[:, None])
        return positions, variants
