"""Known-plaintext attack (KPA): recover a scheme's key from plain images and their encryptions under it.

Threat model. Unlike the ciphertext-only attacks of this package (:mod:`.base`, ``docs/paper.md`` of the suite,
section 10), the attacker here holds ``k`` plain images *and the same images encrypted with the target key*
(k = 1, 2, 4, 8 in the benchmark), knows the algorithm, its options and the block size, and wants the key, to
decrypt any other image encrypted with it. Every scheme of the suite only moves values and inverts some of them
(:mod:`etcbench.ciphers.plan`), so the attack is exact matching on uint8 data: no learning, no search over keys.

What ``k`` pairs leak, scheme by scheme (key arrays named as in the key files):

* ``plain``: nothing to recover (an empty key).
* ``etc`` (and ``etc-gray`` / ``etc-gray-444`` on their one-channel YCbCr plane, computed with the scheme's public
  :meth:`~etcbench.ciphers.Scheme.public_layout`): for every encrypted block ``j``, the plain block
  ``block_perm[j]`` it came from and its ``rot_flip``, ``negpos`` and ``channel_perm``: the candidates are the
  plain blocks and the (rotation/flip, NP, colour permutation) transforms that map the plain block stack (the
  block at one position in all ``k`` images) onto the encrypted one exactly. Undetermined: ``block_perm`` of
  blocks whose stack recurs up to a transform elsewhere (flat blocks, repeated texture), ``rot_flip`` of
  symmetric stacks (a flat block is unchanged by every turn), ``channel_perm`` of gray stacks (R = G = B), and
  for the planes the chroma blocks of unsaturated regions (all 128). More pairs break these ties.
* ``le``: the one ``nibble_perm`` shared by every block: output 4-bit position ``q`` takes input position
  ``s`` when the column of position ``q`` over all blocks of all pairs equals column ``s``, up to reversal
  (``v -> 15 - v``, whose presence gives ``flags[q] XOR flags[s]``). Candidates are pruned with what every key
  obeys: the permutation is a bijection and, with Tanaka's flags (``flags = nibble_perm > L/2``, the default), the
  reversal rule; those flags are determined wherever every candidate lies on one side of ``L/2``. Undetermined:
  positions whose columns recur (e.g. lower halves that are constant in every pair). ``independent_flags=True``:
  no flag is ever determined, because flipping the flags of a whole cycle of ``nibble_perm`` gives the same
  cipher (equivalent keys); the recovered flags are one equivalent choice, so decryption is still exact.
* ``ele``: ``block_perm`` by the multiset of a block's nibble columns (up to reversal; blocks with equal
  multisets stay undetermined), then each block's own ``nibble_perm`` / ``flags`` row as for LE, but from columns
  of only ``k`` values (LE's have ``k`` times the block count), so ELE needs many more pairs; blocks whose source
  is one of several keep the union of those sources' candidates (no pruning).
* ``pixel-shuffle``: ``block_perm``, the shared ``pixel_perm`` and shared ``negpos``. Finding a row and a column
  permutation that map one matrix onto another is as hard as graph isomorphism in general, so candidates are
  refined alternately (per-column sorted values and per-block sorted (folded) values first, then each
  determined entry constrains the other side) until nothing changes. Entries are flagged determined only when a
  unique candidate is proven (sound); a few that the pairs do pin down may stay flagged undetermined.
* ``pe-fixed``: pixel by pixel, the colour permutation (undetermined at pixels gray in every pair) and the
  NP bit of every channel.
* ``pe``: a fresh key per image, derived from the key's secret by a PCG64 stream (:meth:`.PE.image_keys`). The
  pairs give each pair's *own* per-image arrays (:attr:`RecoveredKey.image_arrays`), which do not decrypt other
  images: nothing transfers (``transfers=False``); the secret itself is not recovered (not attempted).

``determined``: an entry is determined when exactly one value is left among the candidates that match all ``k``
pairs; determined entries always equal the true key's. Arrays of steps switched off by the scheme's options are
public (determined, identity) and are left out of the shares.

Guesses for undetermined entries (documented and deterministic): every determined entry keeps its value;
permutations are completed to a bijection, pairing indistinguishable blocks or columns in sorted order (EtC
family, ELE) or by a minimum-cost assignment that uses only candidate pairs where it can (pixel shuffling, LE);
per-entry transforms take the first candidate that maps the guessed source onto the encrypted data (else the
identity); LE/ELE flags follow Tanaka's rule from the guessed permutation or, with independent flags, are solved
along its cycles (False at the smallest index of each cycle). For the ``etc`` family and ``pe-fixed`` the recovered
key therefore always reproduces every given pair exactly (else the pairs are refused); for the others
:attr:`RecoveredKey.reproduces_pairs` says whether it does (ELE's sorted-order guess can break Tanaka's rule).

Matching compares 64-bit linear hashes (random odd weights, modulo 2^64) of the stacked uint8 data: equal data
always hashes equal, so the true candidate is never lost; a collision of different data (odds about 2^-57 per
comparison) could only add a candidate. The recovered key is then checked by re-encrypting the pairs with the
scheme's own ``encrypt``. Not used: the count constraint of ``np_fraction="half"`` (exactly half the blocks).

    >>> import numpy as np
    >>> from etcbench import ciphers
    >>> from etcbench.attacks.known_plaintext import key_recovery_share, recover_key
    >>> scheme = ciphers.create("etc", block_size=4)
    >>> key = scheme.generate_key(seed=7, image_size=(16, 16))
    >>> x = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    >>> rec = recover_key(scheme, x, scheme.encrypt(x, key), (16, 16))
    >>> rec.determined_share, key_recovery_share(rec, key), rec.transfers
    (1.0, 1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ciphers import Key, Scheme, create, to_blocks
from ..ciphers.blocks import check_block_grid
from ..ciphers.etc import CHANNEL_PERMS, dihedral_maps
from ..ciphers.nibbles import split_nibbles, tanaka_positions
from ..ciphers.pe import apply_pixel_keys
from ..errors import EtcbenchError

__all__ = ["SUPPORTED", "RecoveredKey", "attack", "key_recovery_share", "recover_key", "secret_arrays"]

SUPPORTED: tuple[str, ...] = ("plain", "etc", "etc-gray", "etc-gray-444", "le", "ele", "pixel-shuffle", "pe-fixed",
                              "pe")
_ETC_FAMILY = ("etc", "etc-gray", "etc-gray-444")
_HASH_SEED = 0x4B5041  # any fixed seed: equal data only needs equal hashes
_Arrays = dict[str, np.ndarray]


# ------------------------------------------------------------------------------------------------ the result

@dataclass(frozen=True, eq=False)
class RecoveredKey:
    """What a known-plaintext attack recovers.

    Attributes:
        key: a :class:`~etcbench.ciphers.Key` of the attacked scheme (name, block size, image size, options) whose
            arrays are the recovered ones, undetermined entries filled by the module's documented guess. For ``pe``
            its ``secret`` is a guess (zeros): per-image keys are in :attr:`image_arrays`.
        determined: bool array per key array, of its shape: which entries the pairs pin down uniquely.
        used: the key arrays the scheme uses with its options (:func:`secret_arrays`); shares are over these.
        pairs: the number of pairs used.
        transfers: whether the recovered key decrypts images other than the pairs (False for ``pe``).
        reproduces_pairs: whether :attr:`key` encrypts every given plain image to its given ciphertext.
        image_arrays: per-image schemes (``pe``): the recovered per-image ``negpos`` ``(k, H, W, 3)`` and
            ``channel_perm`` ``(k, H, W)`` of the pairs, in pair order; empty otherwise.
        image_determined: the determined masks of :attr:`image_arrays`.
    """

    key: Key
    determined: _Arrays
    used: tuple[str, ...]
    pairs: int
    transfers: bool = True
    reproduces_pairs: bool = True
    image_arrays: _Arrays = field(default_factory=dict)
    image_determined: _Arrays = field(default_factory=dict)

    @property
    def scheme(self) -> Scheme:
        """The attacked scheme, rebuilt from the key's name, block size and options."""
        return create(self.key.scheme, self.key.block_size, **self.key.options)

    @property
    def determined_share(self) -> float:
        """Share of the entries of the used key arrays that the pairs determine (1.0 when there are none)."""
        return _share([self.determined[n] for n in self.used])

    @property
    def image_determined_share(self) -> float:
        """Per-image schemes: share of the pairs' per-image key entries determined (1.0 when there are none)."""
        return _share([self.image_determined[n] for n in _image_used(self.key.options)] if self.image_arrays else [])

    def decrypt(self, encrypted: np.ndarray, pair: int | None = None) -> np.ndarray:
        """Decrypt ``(N, ...)`` uint8 images in the scheme's encrypted layout with the recovered key.

        Uses the scheme's own ``decrypt``. For ``pe`` (nothing transfers) an image outside the pairs falls back to
        the guess, the identity per-pixel key (the ciphertext comes back unchanged); ``pair=i`` applies pair
        ``i``'s recovered per-image key to every image instead.
        """
        scheme = self.scheme
        encrypted = np.asarray(encrypted)
        if not scheme.per_image_keys:
            if pair is not None:
                raise EtcbenchError(f"scheme {scheme.name!r} has one key for every image: decrypt without pair=")
            return scheme.decrypt(encrypted, self.key)
        if pair is None:
            negpos = np.zeros(encrypted.shape, dtype=bool)
            codes = np.zeros(encrypted.shape[:-1], dtype=np.int64)
        else:
            if not 0 <= pair < self.pairs:
                raise EtcbenchError(f"pair {pair} does not exist: {self.pairs} pairs were used")
            n = encrypted.shape[0]
            negpos = np.broadcast_to(self.image_arrays["negpos"][pair], encrypted.shape)
            codes = np.broadcast_to(self.image_arrays["channel_perm"][pair], (n, *encrypted.shape[1:-1]))
        return apply_pixel_keys(encrypted, negpos, codes, inverse=True)

    def __repr__(self) -> str:  # never show the arrays
        return (f"RecoveredKey(scheme={self.key.scheme!r}, pairs={self.pairs}, determined={self.determined_share:.3f}, "
                f"transfers={self.transfers}, reproduces_pairs={self.reproduces_pairs})")


def _share(masks: list[np.ndarray]) -> float:
    total = sum(int(m.size) for m in masks)
    return float(sum(int(np.count_nonzero(m)) for m in masks) / total) if total else 1.0


def _image_used(options: dict[str, Any]) -> tuple[str, ...]:
    return ("negpos", "channel_perm") if options.get("color_shuffle", True) else ("negpos",)


def secret_arrays(scheme: Scheme) -> tuple[str, ...]:
    """The key arrays ``scheme`` uses with its options (steps switched off leave public identity arrays)."""
    o = scheme.options
    name = scheme.name
    if name == "plain":
        return ()
    if name in _ETC_FAMILY:
        steps = [("block_perm", o["scramble"]), ("rot_flip", o["rotate_flip"]), ("negpos", o["negative_positive"])]
        if name == "etc":
            steps.append(("channel_perm", o["color_shuffle"]))
        return tuple(n for n, on in steps if on)
    if name == "le":
        return ("nibble_perm", "flags")
    if name == "ele":
        return ("block_perm", "nibble_perm", "flags")
    if name == "pixel-shuffle":
        steps = [("block_perm", o["scramble"]), ("pixel_perm", o["shuffle"]), ("negpos", o["negative_positive"])]
        return tuple(n for n, on in steps if on)
    if name == "pe-fixed":
        return _image_used(o)
    if name == "pe":
        return ("secret",)
    raise EtcbenchError(_unsupported(name))


def _unsupported(name: str) -> str:
    return f"scheme {name!r} has no known-plaintext attack; supported: {', '.join(SUPPORTED)}"


# ------------------------------------------------------------------------------------------------ entry points

def recover_key(scheme: Scheme, plain: np.ndarray, encrypted: np.ndarray, image_size: tuple[int, int], *,
                pairs: int | None = None) -> RecoveredKey:
    """Recover ``scheme``'s key from plain images and their encryptions under that one key.

    Args:
        scheme: the attacked scheme, built with its options (``ciphers.create(name, block_size=M, **options)``).
        plain: ``(k, H, W, 3)`` uint8 plain images (numpy, channels last).
        encrypted: the same images encrypted with the target key, ``(k, ...)`` uint8 in the scheme's encrypted
            layout: ``(k, H, W, 3)``, or ``(k, Hp, Wp, 1)`` planes for grayscale-based EtC.
        image_size: ``(H, W)`` of the key.
        pairs: use only the first ``pairs`` pairs (default: all).

    Returns:
        A :class:`RecoveredKey`.

    Raises:
        EtcbenchError: no pairs, more pairs asked for than given, shapes or dtypes that do not match each other or
            the scheme, a scheme without a known-plaintext attack (or a lossy configuration), or pairs that no one
            key of the scheme explains.
    """
    name = getattr(scheme, "name", type(scheme).__name__)
    if not isinstance(scheme, Scheme) or name not in SUPPORTED:
        raise EtcbenchError(_unsupported(name))
    if not scheme.invertible:
        raise EtcbenchError(f"scheme {name!r} with legacy_channel_bug=True is lossy (it duplicates colour channels), "
                            f"so it has no key to recover by known-plaintext matching")
    plain, encrypted = _check_pairs(scheme, plain, encrypted, image_size, pairs)
    h, w = plain.shape[1:3]
    if name == "plain":
        arrays: _Arrays = {}
        determined: _Arrays = {}
    elif name in _ETC_FAMILY:
        arrays, determined = _recover_block_group(scheme, scheme.public_layout(plain), encrypted)
    elif name == "pixel-shuffle":
        arrays, determined = _recover_pixel_shuffle(scheme, plain, encrypted)
    elif name == "le":
        arrays, determined = _recover_le(scheme, plain, encrypted)
    elif name == "ele":
        arrays, determined = _recover_ele(scheme, plain, encrypted)
    elif name == "pe-fixed":
        codes, negpos, det_codes, det_np = _recover_pixels(plain, encrypted, scheme.color_shuffle, per_image=False)
        arrays = {"negpos": negpos, "channel_perm": codes}
        determined = {"negpos": det_np, "channel_perm": det_codes}
    else:  # pe
        return _recover_pe(scheme, plain, encrypted, (h, w))
    key = Key(name, scheme.block_size, (h, w), dict(scheme.options), arrays)
    reproduces = bool(np.array_equal(scheme.encrypt(plain, key), encrypted))
    if not reproduces and name in (*_ETC_FAMILY, "pe-fixed", "plain"):
        raise _inconsistent(scheme, f"the matched key does not reproduce all {len(plain)} pairs")
    return RecoveredKey(key, determined, secret_arrays(scheme), len(plain), True, reproduces)


def key_recovery_share(recovered: RecoveredKey, true_key: Key, first_index: int | None = None) -> float:
    """Share of the key entries recovered exactly, over the arrays the scheme uses (1.0 when it uses none).

    For ``pe`` the key is its secret, which is never recovered (0.0); with ``first_index`` (the stream position
    of the first pair, as given to ``PE.encrypt``) the pairs' recovered per-image arrays are scored against the true
    per-image keys instead.
    """
    key = recovered.key
    mine = (key.scheme, key.block_size, tuple(key.image_size), dict(key.options))
    theirs = (true_key.scheme, true_key.block_size, tuple(true_key.image_size), dict(true_key.options))
    if mine != theirs:
        raise EtcbenchError(f"the recovered key is for {mine}, the true key for {theirs}: they cannot be compared")
    scheme = recovered.scheme
    if scheme.per_image_keys and first_index is not None:
        negpos, codes = scheme.image_keys(true_key, first_index, recovered.pairs)
        truth = {"negpos": negpos, "channel_perm": codes}
        names = _image_used(key.options)
        hits = [recovered.image_arrays[n] == truth[n] for n in names]
    else:
        hits = [np.asarray(key.arrays[n]) == np.asarray(true_key.arrays[n]) for n in recovered.used]
    return _share(hits)


def attack(scheme: Scheme, pairs_plain: np.ndarray, pairs_encrypted: np.ndarray, targets_encrypted: np.ndarray, *,
           pairs: int | None = None) -> tuple[np.ndarray, RecoveredKey]:
    """Recover the key from known pairs, then decrypt target images encrypted with the same key.

    Args:
        scheme, pairs_plain, pairs_encrypted, pairs: as in :func:`recover_key` (the image size is the pairs').
        targets_encrypted: ``(N, ...)`` uint8 images encrypted with the target key, in the encrypted layout.

    Returns:
        ``(decrypted, recovered)``: ``(N, H, W, 3)`` uint8 images decrypted with the scheme's own ``decrypt`` and
        the recovered key (for ``pe``: the identity fallback, see :meth:`RecoveredKey.decrypt`), and the key.
    """
    shape = np.shape(pairs_plain)
    image_size = (int(shape[1]), int(shape[2])) if len(shape) == 4 else (0, 0)
    recovered = recover_key(scheme, pairs_plain, pairs_encrypted, image_size, pairs=pairs)
    targets = np.asarray(targets_encrypted)
    expected = _encrypted_layout(scheme, *image_size)
    if targets.ndim != 4 or targets.shape[1:] != expected or targets.dtype != np.uint8:
        raise EtcbenchError(f"target images must be (N, {', '.join(map(str, expected))}) uint8 in the encrypted "
                            f"layout of {scheme.name!r}, got {targets.dtype} {targets.shape}")
    return recovered.decrypt(targets), recovered


# ------------------------------------------------------------------------------------------------ checks

def _encrypted_layout(scheme: Scheme, h: int, w: int) -> tuple[int, int, int]:
    c, rows, cols = scheme.encrypted_shape(h, w)
    return rows, cols, c


def _check_pairs(scheme: Scheme, plain: Any, encrypted: Any, image_size: tuple[int, int],
                 pairs: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``pairs`` pairs as C-contiguous uint8 arrays, or one-line ``EtcbenchError``s."""
    if type(plain).__module__.startswith("torch") or type(encrypted).__module__.startswith("torch"):
        raise EtcbenchError("known-plaintext pairs must be numpy arrays, channels last (N, H, W, C)")
    plain, encrypted = np.asarray(plain), np.asarray(encrypted)
    if plain.ndim != 4 or plain.shape[-1] != 3:
        raise EtcbenchError(f"plain images must be (k, H, W, 3), got shape {plain.shape}")
    k = plain.shape[0]
    if k == 0:
        raise EtcbenchError("no known plain/encrypted pairs (k = 0): the attack needs at least one")
    if plain.dtype != np.uint8 or encrypted.dtype != np.uint8:
        raise EtcbenchError(f"known-plaintext matching is exact on uint8 images, got {plain.dtype} plain and "
                            f"{encrypted.dtype} encrypted images")
    if encrypted.shape[:1] != (k,):
        raise EtcbenchError(f"{k} plain images but {encrypted.shape[0] if encrypted.ndim else 0} encrypted ones: "
                            f"pairs must match one to one")
    if pairs is not None:
        if isinstance(pairs, bool) or int(pairs) != pairs or pairs < 1:
            raise EtcbenchError(f"the number of pairs to use must be a positive integer, got {pairs!r}")
        if pairs > k:
            raise EtcbenchError(f"asked for {pairs} pairs but only {k} were given")
        plain, encrypted, k = plain[:pairs], encrypted[:pairs], int(pairs)
    try:
        h, w = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise EtcbenchError(f"image_size must be (H, W), got {image_size!r}") from None
    if plain.shape[1:3] != (h, w):
        raise EtcbenchError(f"plain images are {plain.shape[1]}x{plain.shape[2]} but image_size is {h}x{w}")
    try:
        if scheme.plane_subsampling is not None:
            scheme.check_image_size(h, w)  # type: ignore[attr-defined]
        elif scheme.blockwise:
            check_block_grid(h, w, scheme.block_size)
        expected = _encrypted_layout(scheme, h, w)
    except ValueError as exc:
        raise EtcbenchError(f"{h}x{w} images do not fit scheme {scheme.name!r}: {exc}") from None
    if encrypted.shape[1:] != expected:
        raise EtcbenchError(f"encrypted images have shape {encrypted.shape}, but {scheme.name!r} encrypts {h}x{w} "
                            f"images to (k, {', '.join(map(str, expected))})")
    return np.ascontiguousarray(plain), np.ascontiguousarray(encrypted)


def _inconsistent(scheme: Scheme, what: str) -> EtcbenchError:
    return EtcbenchError(f"the pairs are not encryptions under one {scheme.name!r} key "
                         f"(block size {scheme.block_size}, options {scheme.options}): {what}")


# ------------------------------------------------------------------------------------------------ hashing

def _weights(length: int) -> np.ndarray:
    """``(length,)`` random odd uint64 weights, the same for every call with this length."""
    rng = np.random.default_rng([_HASH_SEED, length])
    return rng.integers(0, np.iinfo(np.uint64).max, length, dtype=np.uint64, endpoint=True) | np.uint64(1)


def _hash(x: np.ndarray) -> np.ndarray:
    """Hash the last axis: ``(..., L)`` integers (0..255 or uint64) -> ``(...,)`` uint64, linear modulo 2^64."""
    flat = np.ascontiguousarray(x).reshape(-1, x.shape[-1]).astype(np.uint64, copy=False)
    return (flat @ _weights(x.shape[-1])).reshape(x.shape[:-1])


def _assign(candidates: np.ndarray) -> np.ndarray:
    """A bijection ``out[j] = i`` that uses candidate pairs ``candidates[j, i]`` wherever a perfect matching can."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(~candidates)
    out = np.empty(len(rows), dtype=np.int64)
    out[rows] = cols
    return out


def _inverse_index(maps: np.ndarray) -> np.ndarray:
    """For gather maps ``(G, L)`` closed under inverse: ``inv[a]``, the map undoing ``a`` (``v[a][b] == v``)."""
    comp = maps[:, maps]  # comp[a, b] = a[b]: gathering with a, then with b
    return (comp == np.arange(maps.shape[1])).all(-1).argmax(1)


# ------------------------------------------------------------------------------------------------ EtC family

def _group_hashes(blocks: np.ndarray, rots: np.ndarray, colours: np.ndarray, negs: int,
                  table: np.ndarray) -> np.ndarray:
    """``(k, n, M, M, C)`` uint8 blocks -> ``(n, R, negs, Cc)`` hashes of each block stack under every transform.

    The hash is linear, so a transform's hash is the data times permuted weights (one matrix product for all
    rotations/flips and colour permutations) and NP's is ``255 * sum(w) - hash``.
    """
    k, n, m, _, c = blocks.shape
    x = blocks.reshape(k, n, m * m, c).transpose(1, 0, 2, 3).reshape(n, -1).astype(np.uint64)
    w = _weights(x.shape[1]).reshape(k, m * m, c)
    inv_maps = np.argsort(dihedral_maps(m)[rots], axis=1)  # (R, M*M): the source of each position
    inv_perms = np.argsort(table[colours], axis=1)  # (Cc, C)
    wt = w[:, inv_maps[:, None, :, None], inv_perms[None, :, None, :]]  # (k, R, Cc, M*M, C)
    wt = wt.transpose(1, 2, 0, 3, 4).reshape(len(rots) * len(colours), -1)
    h = (x @ wt.T).reshape(n, len(rots), 1, len(colours))
    if negs == 1:
        return h
    total = w.reshape(1, -1).sum(axis=1, dtype=np.uint64) * np.uint64(255)  # one-element array: wraps silently
    return np.concatenate([h, total - h], axis=2)


def _recover_block_group(scheme: Scheme, plain: np.ndarray, encrypted: np.ndarray) -> tuple[_Arrays, _Arrays]:
    """EtC and grayscale-based EtC: per-block candidates (source block, rotation/flip, NP, colour permutation)."""
    o = scheme.options
    m = scheme.block_size
    channels = plain.shape[-1]
    table = CHANNEL_PERMS if channels == 3 else np.zeros((1, 1), dtype=np.int64)
    rots = np.arange(8) if o["rotate_flip"] else np.zeros(1, dtype=np.int64)
    colours = np.arange(6) if o.get("color_shuffle", False) else np.zeros(1, dtype=np.int64)
    negs = 2 if o["negative_positive"] else 1
    hp = _group_hashes(to_blocks(plain, m), rots, colours, negs, table)
    he = _group_hashes(to_blocks(encrypted, m), rots, colours, negs, table)
    n, shape = hp.shape[0], hp.shape[1:]
    hp, he = hp.reshape(n, -1), he.reshape(n, -1)
    # index of the inverse of each transform (rotation/flip and colour parts invert separately, NP is an involution)
    r_inv = _inverse_index(dihedral_maps(m)[rots])
    c_inv = _inverse_index(table[colours])
    g = np.arange(hp.shape[1]).reshape(shape)
    inv = g[r_inv[:, None, None], np.arange(negs)[None, :, None], c_inv[None, None, :]].ravel()
    undone = he[:, inv]  # undone[j, t]: hash of T_t^-1 (E_j)
    if o["scramble"]:
        match = np.isin(undone, hp[:, 0])  # some plain block is T_t^-1 (E_j): transform t is a candidate for j
        canon_p, canon_e = hp.min(axis=1), he.min(axis=1)  # one value per orbit: candidate sources are an orbit
        if not np.array_equal(np.sort(canon_p), np.sort(canon_e)):
            raise _inconsistent(scheme, "some encrypted block is no transform of a plain block at any position")
        guess = np.empty(n, dtype=np.int64)
        guess[np.argsort(canon_e, kind="stable")] = np.argsort(canon_p, kind="stable")
        values, counts = np.unique(canon_p, return_counts=True)
        det_perm = counts[np.searchsorted(values, canon_e)] == 1
    else:
        match = undone == hp[:, :1]
        guess = np.arange(n, dtype=np.int64)
        det_perm = np.ones(n, dtype=bool)
    fits = hp[guess] == he[:, :1]  # transforms mapping the guessed source onto E_j
    if not fits.any(axis=1).all():
        raise _inconsistent(scheme, "some encrypted block is no transform of its plain block")
    r, neg, col = np.unravel_index(fits.argmax(axis=1), shape)
    match = match.reshape(n, *shape)
    arrays = {"block_perm": guess, "rot_flip": rots[r], "negpos": neg.astype(bool)}
    determined = {
        "block_perm": det_perm,
        "rot_flip": match.any(axis=(2, 3)).sum(axis=1) == 1,
        "negpos": match.any(axis=(1, 3)).sum(axis=1) == 1,
    }
    if scheme.name == "etc":
        arrays["channel_perm"] = colours[col]
        determined["channel_perm"] = match.any(axis=(1, 2)).sum(axis=1) == 1
    return arrays, determined


# ------------------------------------------------------------------------------------------------ pixel shuffling

def _recover_pixel_shuffle(scheme: Scheme, plain: np.ndarray, encrypted: np.ndarray) -> tuple[_Arrays, _Arrays]:
    """Block scrambling + shared pixel permutation (+ shared NP): alternate refinement of row/column candidates.

    Blocks are vectors of ``Q = 3 M^2`` values in timm's (channel, row, column) order; ``E[:, j, q] =
    P[:, block_perm[j], pixel_perm[q]] ^ 255 negpos[q]``. ``rows[j, i]``: plain block ``i`` is a candidate for
    encrypted block ``j``; ``cols[q, s, o]``: plain entry ``s`` with NP bit ``o`` is a candidate for entry ``q``.
    """
    o = scheme.options
    m = scheme.block_size

    def vectors(x: np.ndarray) -> np.ndarray:
        b = to_blocks(x, m)
        return b.transpose(0, 1, 4, 2, 3).reshape(b.shape[0], b.shape[1], -1)  # (k, n, Q)

    p, e = vectors(plain), vectors(encrypted)
    _, n, q_len = p.shape
    orients = (0, 1) if o["negative_positive"] else (0,)
    po = np.stack([p, 255 - p])[: len(orients)]  # (O, k, n, Q): plain data with each NP bit
    # rows: invariants of a block under any shared column permutation and NP (sorted, folded values)
    if o["scramble"]:
        vp, ve = (np.minimum(v, 255 - v) if o["negative_positive"] else v for v in (p, e))
        if o["shuffle"]:
            vp, ve = np.sort(vp, axis=2), np.sort(ve, axis=2)
        rows = _hash(ve.transpose(1, 0, 2).reshape(n, -1))[:, None] == _hash(vp.transpose(1, 0, 2).reshape(n, -1))
    else:
        rows = np.eye(n, dtype=bool)
    # columns: invariants of an entry under any block permutation (its values in every image, sorted)
    cp, ce = (np.sort(v, axis=-2) if o["scramble"] else v for v in (po, e))
    hp = _hash(np.moveaxis(cp, -1, -3).reshape(len(orients), q_len, -1))  # (O, Q)
    cols = _hash(np.moveaxis(ce, -1, -3).reshape(q_len, -1))[:, None, None] == hp.T[None]  # (Q, Q, O)
    if not o["shuffle"]:
        cols &= np.eye(q_len, dtype=bool)[:, :, None]
    while True:
        before = (rows.sum(), cols.sum())
        det_c = cols.reshape(q_len, -1).sum(axis=1) == 1
        if det_c.any():
            s, b = np.unravel_index(cols[det_c].reshape(int(det_c.sum()), -1).argmax(axis=1), (q_len, len(orients)))
            known = po[b, :, :, s]  # (d, k, n): plain data the determined entries take
            rows &= _hash(e[:, :, det_c].transpose(1, 0, 2).reshape(n, -1))[:, None] == \
                _hash(known.transpose(2, 1, 0).reshape(n, -1))[None]
        det_r = rows.sum(axis=1) == 1
        if det_r.any():
            src = rows[det_r].argmax(axis=1)
            he_c = _hash(e[:, det_r, :].transpose(2, 0, 1).reshape(q_len, -1))  # (Q,)
            hp_c = _hash(po[:, :, src, :].transpose(0, 3, 1, 2).reshape(len(orients), q_len, -1))  # (O, Q)
            cols &= he_c[:, None, None] == hp_c.T[None]
        if (rows.sum(), cols.sum()) == before:
            break
    any_col = cols[..., 0] | cols[..., -1]  # over the NP bit (one or two of them): faster than any(axis=2)
    if not (rows.any(0).all() and rows.any(1).all() and any_col.any(0).all() and any_col.any(1).all()):
        raise _inconsistent(scheme, "some block or block entry matches nothing on the other side")
    block_perm = _assign(rows)
    pixel_perm = _assign(any_col)
    negpos = cols[np.arange(q_len), pixel_perm].argmax(axis=1).astype(bool)
    arrays = {"block_perm": block_perm, "pixel_perm": pixel_perm, "negpos": negpos}
    determined = {
        "block_perm": rows.sum(axis=1) == 1,
        "pixel_perm": any_col.sum(axis=1) == 1,
        "negpos": cols.any(axis=1).sum(axis=1) == 1,
    }
    return arrays, determined


# ------------------------------------------------------------------------------------------------ LE and ELE

def _nibble_blocks(x: np.ndarray, m: int) -> np.ndarray:
    """``(k, H, W, 3)`` uint8 -> ``(k, n, 6 M^2)`` 4-bit values of every block, in Tanaka's key order."""
    z = to_blocks(split_nibbles(x), m)
    return z.reshape(z.shape[0], z.shape[1], -1)[..., tanaka_positions(m)]


def _solve_flags(perm: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Flags with ``flags ^ flags[perm] == mask`` along each cycle of ``perm`` (rows of ``(..., L)``), ``False``
    at the smallest index of every cycle; by pointer doubling, ``log2 L`` vectorised rounds."""
    length = perm.shape[-1]
    rounds = int(np.ceil(np.log2(max(length, 2)))) + 1
    idx = np.broadcast_to(np.arange(length), perm.shape)
    label, step = idx.copy(), perm.copy()
    for _ in range(rounds):  # label: the smallest index of the cycle
        label = np.minimum(label, np.take_along_axis(label, step, axis=-1))
        step = np.take_along_axis(step, step, axis=-1)
    root = label == idx
    nxt, acc = np.where(root, idx, perm), np.where(root, False, mask)
    for _ in range(rounds):  # acc: XOR of the mask along the path to the cycle's root
        acc = acc ^ np.take_along_axis(acc, nxt, axis=-1)
        nxt = np.take_along_axis(nxt, nxt, axis=-1)
    return acc


_PRUNE_BUDGET = 1 << 24  # candidate entries (block x L x L x 2) pruned at once for ELE


def _prune_nibbles(cand: np.ndarray, tanaka: bool) -> np.ndarray:
    """Remove candidates ``cand[..., q, s, o]`` (output position ``q`` is input ``s``, reversed iff ``o``) that no key
    allows, until nothing changes. Rules every key obeys: ``nibble_perm`` is a bijection (a position a determined
    one takes is nobody else's; a position only one output can take is taken by it); with Tanaka's flags
    (``flags = nibble_perm > L/2``) also ``o == flags[q] ^ flags[s]`` where ``flags[q] = s > L/2`` and ``flags[s]``
    is ``nibble_perm[s] > L/2`` for some candidate of ``s``.
    """
    length = cand.shape[-2]
    high = np.arange(length) > length / 2
    c0, c1 = cand[..., 0].copy(), cand[..., 1].copy()  # two arrays: reductions over a size-2 axis are slow
    count = np.count_nonzero(c0) + np.count_nonzero(c1)
    while True:
        src = c0 | c1
        single = src.view(np.uint8).sum(axis=-1, dtype=np.int32) == 1
        taken = (src & single[..., :, None]).any(axis=-2)
        keep = ~(taken[..., None, :] & ~single[..., :, None])
        holder = src & (src.view(np.uint8).sum(axis=-2, dtype=np.int32) == 1)[..., None, :]  # only q can take s
        keep &= ~holder.any(axis=-1)[..., :, None] | holder
        c0 &= keep
        c1 &= keep
        if tanaka:
            src = c0 | c1
            may0, may1 = (src & ~high).any(axis=-1), (src & high).any(axis=-1)  # flag(s) may be 0 / 1
            c0 &= np.where(high, may1, may0)[..., None, :]  # o = 0: flag(s) == high[s]
            c1 &= np.where(high, may0, may1)[..., None, :]  # o = 1: flag(s) != high[s]
        before, count = count, np.count_nonzero(c0) + np.count_nonzero(c1)
        if count == before:
            return np.stack([c0, c1], axis=-1)


def _nibble_determined(src: np.ndarray, tanaka: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Determined ``nibble_perm`` and ``flags`` entries from candidate sources ``src[..., q, s]``, and the flag value
    where it is determined (Tanaka's flags: every candidate ``s`` on the same side of ``L/2``)."""
    length = src.shape[-1]
    high = np.arange(length) > length / 2
    some_high = (src & high).any(axis=-1)
    flags = some_high != (src & ~high).any(axis=-1) if tanaka else np.zeros(src.shape[:-1], bool)
    return src.sum(axis=-1) == 1, flags, some_high


def _recover_le(scheme: Scheme, plain: np.ndarray, encrypted: np.ndarray) -> tuple[_Arrays, _Arrays]:
    """LE: one nibble permutation for every block; columns over all blocks of all pairs, matched up to reversal."""
    p, e = _nibble_blocks(plain, scheme.block_size), _nibble_blocks(encrypted, scheme.block_size)
    length = p.shape[-1]
    hp = _hash(np.stack([p, 15 - p]).transpose(0, 3, 1, 2).reshape(2, length, -1))  # (2, L)
    he = _hash(e.transpose(2, 0, 1).reshape(length, -1))
    tanaka = not scheme.options["independent_flags"]
    cand = _prune_nibbles(he[:, None, None] == hp.T[None], tanaka)  # cand[q, s, o]
    src = cand[..., 0] | cand[..., 1]
    if not (src.any(0).all() and src.any(1).all()):
        raise _inconsistent(scheme, "some 4-bit position matches no position of the plain blocks")
    perm = _assign(src)
    det_perm, det_flags, flag_value = _nibble_determined(src, tanaka)
    if tanaka:
        flags = np.where(det_flags, flag_value, perm > length / 2)
    else:
        flags = _solve_flags(perm, cand[np.arange(length), perm].argmax(axis=1).astype(bool))
    return {"nibble_perm": perm, "flags": flags}, {"nibble_perm": det_perm, "flags": det_flags}


def _recover_ele(scheme: Scheme, plain: np.ndarray, encrypted: np.ndarray) -> tuple[_Arrays, _Arrays]:
    """ELE: blocks matched by their multisets of columns (up to reversal), then columns within the matched blocks.

    A column is one 4-bit position of one block over the ``k`` pairs; its orbit under reversal is named by the
    smaller of its two hashes. Candidates of blocks whose source is unique are pruned with
    :func:`_prune_nibbles`; blocks whose source is one of several keep the union over those sources.
    """
    p, e = _nibble_blocks(plain, scheme.block_size), _nibble_blocks(encrypted, scheme.block_size)
    _, n, length = p.shape
    tanaka = not scheme.options["independent_flags"]

    def columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h0, h1 = _hash(x.transpose(1, 2, 0)), _hash((15 - x).transpose(1, 2, 0))  # (n, L) each
        canon = np.minimum(h0, h1)
        return canon, h0 != canon

    canon_p, flip_p = columns(p)
    canon_e, flip_e = columns(e)
    sig_p, sig_e = _hash(np.sort(canon_p, axis=1)), _hash(np.sort(canon_e, axis=1))
    if not np.array_equal(np.sort(sig_p), np.sort(sig_e)):
        raise _inconsistent(scheme, "some encrypted block holds other 4-bit columns than every plain block")
    source = np.empty(n, dtype=np.int64)
    source[np.argsort(sig_e, kind="stable")] = np.argsort(sig_p, kind="stable")
    sigs, klass_p, class_size = np.unique(sig_p, return_inverse=True, return_counts=True)
    klass_e = np.searchsorted(sigs, sig_e)
    # candidates of (j, q): the positions s of any block of j's class whose column is in the same orbit
    values, cid = np.unique(np.concatenate([canon_p.ravel(), canon_e.ravel()]), return_inverse=True)
    cid_p, cid_e = cid[: n * length].reshape(n, length), cid[n * length:].reshape(n, length)
    group_p = klass_p[:, None].astype(np.int64) * len(values) + cid_p
    group_e = klass_e[:, None].astype(np.int64) * len(values) + cid_e
    triples = np.unique(group_p * length + np.arange(length))  # distinct (group, s)
    groups, first, counts = np.unique(triples // length, return_index=True, return_counts=True)
    at = np.minimum(np.searchsorted(groups, group_e), len(groups) - 1)
    if not np.array_equal(groups[at], group_e):
        raise _inconsistent(scheme, "some 4-bit column of an encrypted block is in no plain block of its kind")
    high = np.arange(length) > length / 2
    highs = np.add.reduceat(high[triples % length].astype(np.int64), first)
    det_perm = counts[at] == 1
    det_flags = (highs[at] == 0) | (highs[at] == counts[at]) if tanaka else np.zeros((n, length), dtype=bool)
    flag_value = highs[at] > 0
    fixed = np.where(det_perm, (triples[first] % length)[at], -1)
    # blocks with a unique source and open entries: dense candidates, pruned, in chunks of blocks that fit the budget
    unique = np.flatnonzero((class_size[klass_e] == 1) & ~det_perm.all(axis=1))
    chunk = max(1, _PRUNE_BUDGET // (2 * length * length))
    for lo in range(0, len(unique), chunk):
        rows = unique[lo:lo + chunk]
        same = canon_e[rows][:, :, None] == canon_p[source[rows]][:, None, :]  # (b, q, s)
        rev = flip_e[rows][:, :, None] ^ flip_p[source[rows]][:, None, :]
        cand = _prune_nibbles(np.stack([same & ~rev, same & rev], axis=-1), tanaka)
        src = cand[..., 0] | cand[..., 1]
        det_perm[rows], det_flags[rows], flag_value[rows] = _nibble_determined(src, tanaka)
        fixed[rows] = np.where(det_perm[rows], src.argmax(axis=-1), -1)
    # the guess: determined entries, the rest paired in sorted order within each orbit (equal counts on both sides)
    big = len(values)
    used = np.zeros((n, length), dtype=bool)
    j, q = np.nonzero(fixed >= 0)
    used[j, fixed[j, q]] = True
    order_e = np.argsort(np.where(fixed >= 0, big, cid_e), axis=1, kind="stable")
    order_p = np.argsort(np.where(used, big, cid_p[source]), axis=1, kind="stable")
    perm = np.empty((n, length), dtype=np.int64)
    np.put_along_axis(perm, order_e, order_p, axis=1)
    perm = np.where(fixed >= 0, fixed, perm)
    if tanaka:  # determined flags as determined, even where the paired-in-order guess of nibble_perm is wrong
        flags = np.where(det_flags, flag_value, perm > length / 2)
    else:
        flags = _solve_flags(perm, flip_e ^ np.take_along_axis(flip_p[source], perm, axis=1))
    arrays = {"block_perm": source, "nibble_perm": perm, "flags": flags}
    determined = {"block_perm": class_size[klass_e] == 1, "nibble_perm": det_perm, "flags": det_flags}
    return arrays, determined


# ------------------------------------------------------------------------------------------------ PE

def _recover_pixels(x: np.ndarray, y: np.ndarray, colour: bool,
                    per_image: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel candidates (colour permutation code, NP bits of the input channels) mapping ``x`` onto ``y``.

    Returns ``(codes, negpos, codes_determined, negpos_determined)`` of shapes ``(..., H, W)`` and
    ``(..., H, W, 3)``, with a leading pair axis when ``per_image`` (each pair its own key), else one key for all.
    """
    codes = np.arange(6) if colour else np.zeros(1, dtype=np.int64)
    valid, bits = [], []
    for c in codes:  # output channel k of a pixel is input channel perm[k], inverted when negpos[perm[k]]
        perm = CHANNEL_PERMS[c]
        g = x[..., perm]
        same, flip = y == g, y == 255 - g
        if not per_image:
            same, flip = same.all(axis=0), flip.all(axis=0)
        valid.append((same | flip).all(axis=-1))
        b = np.empty_like(flip)
        b[..., perm] = flip
        bits.append(b)
    valid_a, bits_a = np.stack(valid), np.stack(bits)  # (C, ..., H, W), (C, ..., H, W, 3)
    if not valid_a.any(axis=0).all():
        raise EtcbenchError("the pairs are not PE encryptions of their plain images: some pixel's colours are no "
                            "permutation and inversion of the plain pixel's")
    choice = valid_a.argmax(axis=0)
    negpos = np.take_along_axis(bits_a, choice[None, ..., None], axis=0)[0]
    one = (valid_a[..., None] & bits_a).any(axis=0)
    zero = (valid_a[..., None] & ~bits_a).any(axis=0)
    return codes[choice], negpos, valid_a.sum(axis=0) == 1, one != zero


def _recover_pe(scheme: Scheme, plain: np.ndarray, encrypted: np.ndarray, image_size: tuple[int, int]) -> RecoveredKey:
    """PE: each pair's own per-image key; the secret that derives them is not recovered (nothing transfers)."""
    codes, negpos, det_codes, det_np = _recover_pixels(plain, encrypted, scheme.color_shuffle, per_image=True)
    secret = np.zeros(8, dtype=np.uint32)  # the guess: no information about the secret
    key = Key(scheme.name, scheme.block_size, image_size, dict(scheme.options), {"secret": secret})
    reproduces = bool(np.array_equal(apply_pixel_keys(plain, negpos, codes, inverse=False), encrypted))
    return RecoveredKey(key, {"secret": np.zeros(8, dtype=bool)}, ("secret",), len(plain), transfers=False,
                        reproduces_pairs=reproduces, image_arrays={"negpos": negpos, "channel_perm": codes},
                        image_determined={"negpos": det_np, "channel_perm": det_codes})
