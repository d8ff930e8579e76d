"""Position-embedding leakage: recover the block scrambling of a scheme from the ViT trained on it.

Threat model. The cloud that trains (or holds) the classifier never sees a plain image or the key, but it holds
the model, knows how it was initialised (it trained it) and can train the same ViT on plain images of the task.
A ViT whose patch size equals the block size M gives every block one token and every token one learned position
embedding. On block-scrambled images token ``j`` always carries plain block ``block_perm[j]`` (output block ``j``
of the encrypted image is input block ``block_perm[j]``, row-major, :mod:`etcbench.ciphers.etc`), so the embedding
learned for token ``j`` comes to encode the position of that plain block: the model stores the permutation. For
an exact model transformation the relation is exact
(:func:`etcbench.ciphers.pixel_shuffle.transform_position_embedding`: ``pos'[P + j] = pos[P + block_perm[j]]``,
``P`` prefix tokens); a model trained on the scrambled images learns it only approximately.

Method. The patch rows of the two models' ``pos_embed`` (prefix tokens dropped, :func:`position_embeddings`) are
matched token to token (:func:`recover_permutation`); the estimate gives, for each encrypted token ``j``, the plain
block it holds, the convention of the key's ``block_perm``:

* ``linear``: maximum-weight linear assignment (:func:`scipy.optimize.linear_sum_assignment`) on the ``T x T``
  cosine similarities between the scheme model's rows and the reference's. It needs both in the same coordinates:
  models fine-tuned from a common start. Such models also share the start itself, in the *plain* order in both
  (training does not permute it); where the start dominates the rows they match the identity. With the common
  start subtracted (``init_embed``; ``init`` of :func:`position_leak`) the *learned updates* are matched instead,
  and they carry the permutation.
* ``structure``: graph matching of the two ``T x T`` cosine-similarity matrices (which tokens are alike *within*
  each model), a quadratic assignment problem maximising ``trace(A P B P^T)``, solved with FAQ (Vogelstein et
  al., "Fast approximate quadratic programming for graph matching", PLoS ONE 2015;
  :func:`scipy.optimize.quadratic_assignment`) from the linear solution and seeded restarts. Every solution is
  also tried under each shape-preserving symmetry of the grid (:func:`~etcbench.attacks.layout.grid_symmetry_map`),
  FAQ often stopping at a mirrored optimum; the candidate with the highest structure correlation (Pearson
  correlation of the off-diagonal similarities, an affine function of the FAQ objective) wins. Rows are never
  compared across models, so this works when the models started from unrelated points (another seed, another
  basis); but the similarity structure of an isotropic grid embedding does not change when the grid is turned or
  flipped as a whole, so the permutation may come back composed with such a symmetry (``share_up_to_symmetry``).
* ``combined`` (the default): the candidates of ``structure``, scored by the structure correlation plus
  ``ROW_WEIGHT`` (0.1) times a gate times the matched rows' mean cosine. The gate, in [0, 1], is the structure
  correlation the linear solution reaches divided by the best one: near 1 when the rows are comparable (the row
  term then picks the right one of structurally equal, mirrored solutions), near 0 when they are not (the rows'
  cosines are then noise that must not overrule the structure).

Measured on synthetic grid embeddings (D = 192; a 2-D sine-cosine embedding, isotropic, or white noise blurred
over the grid, anisotropic; the scheme rows are the reference's permuted, and each gets independent Gaussian noise
of 0.1, 0.3 or 0.5 times the rows' RMS; "rotated": the scheme rows in another basis, a random rotation). Share of
tokens recovered, mean of 4 draws, for ``linear`` / ``structure`` / ``combined``:

* same basis, noise 0.1, 4x4, 8x8 and 14x14 grids: 1.00 / (isotropic 0.00 to 0.38, 1.00 up to symmetry;
  anisotropic 1.00) / 1.00;
* same basis, 14x14, noise 0.3: 0.93 / 0.00 / 1.00 (isotropic), 1.00 / 1.00 / 1.00 (anisotropic); noise 0.5:
  0.38 / 0.42 / 0.42 and 0.93 / 0.98 / 0.98;
* rotated, noise 0.1: ``linear`` at chance (0.00 to 0.08); ``structure`` and ``combined`` 1.00 up to symmetry on
  every grid, and exactly 1.00 on the anisotropic 8x8 and 14x14 embeddings (10 of 10 draws at 14x14, where an
  ungated row term of weight 1.0 picked a mirrored solution in 6 of 10 draws);
* where ``combined`` loses: on 4x4 grids (T = 16, few rows to average the row noise over) it is the worse of the
  two (anisotropic rotated, noise 0.1: 0.56 against ``structure``'s 1.00; isotropic same basis, noise 0.5: 0.19
  against ``linear``'s 0.45);
* FAQ stops in local optima as the noise grows (14x14 anisotropic rotated, noise 0.3: 0.35, while the true
  permutation has a higher structure correlation than anything 32 restarts found);
* unrelated random rows: chance, ``1 / T``.

``combined`` takes about 0.7 s for T = 196 (10 FAQ runs, one CPU thread), 0.04 s for T = 64.

Scores (:func:`recovery_share`): the share of tokens whose plain block is recovered, optionally the best over the
grid's shape-preserving symmetries (as :func:`etcbench.attacks.layout.direct_comparison`). Baselines: guessing
"no scrambling" (:func:`identity_share`, the key's fixed points over T) and chance, ``1 / T`` expected for a
random guess. :func:`position_leak` runs the attack on two trained model files and the scheme's key.

Choices the method leaves open, fixed here:
    * rows are centred (the mean over tokens, which does not depend on their order, is subtracted) and scaled to
      unit length before any similarity; similarity is the cosine;
    * a model's start (``init`` of :func:`position_leak`) is what training started from: the ``pretrained`` setting
      of training (``True``: hub weights, or a checkpoint path), or ``False`` for the random initialisation that
      :func:`etcbench.train.train_model` draws right after seeding torch with the run's seed (checked by the
      tests); each model's own start is subtracted from its rows;
    * FAQ: ``restarts`` (8) starts, the barycentre and then randomised ones from ``numpy.random.default_rng(seed)``
      (seed 0), plus one from the linear solution; at most 30 iterations each (scipy's default);
    * ``ROW_WEIGHT`` = 0.1 and the gate above, chosen on the synthetic embeddings among weights 0.03, 0.1, 0.3
      and 1.0, gated or not (the best or equal best in most of the cases above);
    * ties go to the first candidate: the linear solution, its FAQ polish, the restarts in order, each under the
      symmetry codes in the order of :func:`etcbench.attacks.layout.shape_preserving_codes`;
    * a scheme whose key has no ``block_perm``, or the identity (scrambling switched off, or one block), or that
      scrambles the blocks of another plane than the image (grayscale-based EtC: a YCbCr plane of other size) is
      *not applicable*: :func:`position_leak` returns a record with ``applicable`` False, the reason and no shares, so a
      report can list every scheme; inputs that cannot be compared (not a ViT, other token grids, a scheme model
      not trained with the key) raise :class:`~etcbench.errors.EtcbenchError`.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(size=(16, 32))
    >>> block_perm = rng.permutation(16)
    >>> estimate = recover_permutation(reference[block_perm], reference, grid=(4, 4))
    >>> recovery_share(estimate, block_perm, (4, 4)), identity_share(block_perm)
    (1.0, 0.0)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment, quadratic_assignment

from ..errors import EtcbenchError
from .layout import direct_comparison, grid_symmetry_map, shape_preserving_codes

if TYPE_CHECKING:
    from torch import nn

__all__ = ["METHODS", "identity_share", "position_embeddings", "position_leak", "recover_permutation",
           "recovery_share", "start_embeddings"]

METHODS: tuple[str, ...] = ("combined", "linear", "structure")
_EPS = 1e-12
ROW_WEIGHT = 0.1  # most the mean row cosine weighs against the structure correlation (method "combined")


# ------------------------------------------------------------------------------------------------ embeddings

def position_embeddings(model: nn.Module) -> np.ndarray:
    """The patch-token rows of a timm ViT's learned position embedding, as ``(T, D)`` float64.

    Prefix tokens (class token, registers) are dropped: ``model.num_prefix_tokens`` rows, none when the model
    has ``no_embed_class=True`` (its ``pos_embed`` then covers the patches only).

    Args:
        model: a timm ``VisionTransformer`` (anything with a ``pos_embed`` of shape ``(1, P + T, D)``).

    Raises:
        EtcbenchError: the model has no learned position embedding (a ConvMixer, a ResNet, a ViT built without
            ``pos_embed``).
    """
    pos = getattr(model, "pos_embed", None)
    if pos is None:
        raise EtcbenchError(f"position-embedding leakage needs a ViT, got {type(model).__name__}")
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 0))
    rows = pos.detach().to("cpu").double().numpy().reshape(-1, pos.shape[-1])
    if rows.shape[0] <= prefix:
        raise EtcbenchError(f"{type(model).__name__}.pos_embed of shape {tuple(pos.shape)} holds no patch tokens")
    return rows[prefix:]


def start_embeddings(checkpoint: dict[str, Any], init: bool | str | Path) -> np.ndarray:
    """The patch rows of ``pos_embed`` that a trained model started from, rebuilt as training built it.

    The model of ``checkpoint["spec"]`` is built right after seeding torch with ``checkpoint["record"]["seed"]``
    (what :func:`etcbench.train.train_model` does), inside a forked RNG so the caller's state is untouched, then
    ``init`` is loaded into it as training loads ``pretrained`` (:func:`etcbench.models.load_pretrained`).

    Args:
        checkpoint: a model file's contents without weights, as :func:`etcbench.evaluate.load_trained_model`
            returns them (``spec`` and ``record``).
        init: the model's ``pretrained`` setting: ``False`` (the seeded random initialisation), ``True`` (timm hub
            weights of its ``arch``, from the Hugging Face cache) or the path of a ``.pth``/``.safetensors`` file.

    Returns:
        ``(T, D)`` float64, as :func:`position_embeddings`.
    """
    import torch

    from ..models import build_model, load_pretrained
    from ..models.factory import DEFAULT_ARCH

    try:
        spec, seed = checkpoint["spec"], int(checkpoint["record"]["seed"])
    except (KeyError, TypeError) as exc:
        raise EtcbenchError(f"the model file records no spec or seed to rebuild its start from ({exc})") from exc
    options = dict(spec.get("options") or {})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(spec["model"], spec["num_classes"], spec["image_size"], spec["patch_size"], options,
                            in_chans=spec.get("in_chans", 3))
    arch = options.get("arch", DEFAULT_ARCH.get(spec["model"], spec["model"]))
    load_pretrained(model, spec["model"], arch, init if isinstance(init, bool) else str(init))
    return position_embeddings(model)


# ------------------------------------------------------------------------------------------------ matching

def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows centred over the tokens and scaled to unit length (zero rows stay zero)."""
    x = x - x.mean(axis=0, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def _check_embeddings(scheme_embed: np.ndarray, reference_embed: np.ndarray, init_embed: np.ndarray | None,
                      grid: tuple[int, int] | None, method: str) -> tuple[np.ndarray, np.ndarray]:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    a = np.asarray(scheme_embed, dtype=np.float64)
    b = np.asarray(reference_embed, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"embeddings must be (T, D) with the same T, got {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[1] and method != "structure":
        raise ValueError(f"method {method!r} compares rows, which needs the same width D, got {a.shape[1]} and "
                         f"{b.shape[1]}; method='structure' compares within-model similarities only")
    if init_embed is not None:
        init = np.asarray(init_embed, dtype=np.float64)
        if init.shape != a.shape or init.shape != b.shape:
            raise ValueError(f"init_embed must have the embeddings' shape {a.shape}, got {init.shape}")
        a, b = a - init, b - init
    if grid is not None and int(grid[0]) * int(grid[1]) != a.shape[0]:
        raise ValueError(f"grid {grid[0]}x{grid[1]} does not hold {a.shape[0]} tokens")
    return a, b


def _linear(row_sim: np.ndarray) -> np.ndarray:
    """Maximum-weight assignment of scheme tokens (rows) to plain blocks (columns)."""
    rows, cols = linear_sum_assignment(row_sim, maximize=True)
    estimate = np.empty(len(rows), dtype=np.int64)
    estimate[rows] = cols
    return estimate


def _faq(a_sim: np.ndarray, b_sim: np.ndarray, starts: list[np.ndarray | str], rng: np.random.Generator,
         ) -> list[np.ndarray]:
    """FAQ graph matching (maximising) from each start: a permutation estimate or ``"barycenter"``/``"randomized"``."""
    n = len(a_sim)
    out = []
    for start in starts:
        p0 = np.eye(n)[start] if isinstance(start, np.ndarray) else start
        res = quadratic_assignment(a_sim, b_sim, method="faq", options={"maximize": True, "P0": p0, "rng": rng})
        out.append(np.asarray(res.col_ind, dtype=np.int64))
    return out


def _structure_scores(a_sim: np.ndarray, b_sim: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``(K,)`` Pearson correlation of A's off-diagonal similarities with B's reordered by each candidate."""
    n = len(a_sim)
    if n < 2:
        return np.zeros(len(candidates))
    off = ~np.eye(n, dtype=bool)
    a = np.where(off, a_sim - a_sim[off].mean(), 0.0) / max(a_sim[off].std(), _EPS)  # sums to 0 off the diagonal
    # the multiset of B's off-diagonal values does not depend on the order: one spread for every candidate, and
    # its mean drops out against A's zero sum
    scale = max(b_sim[off].std(), _EPS) * off.sum()
    return np.array([np.vdot(a, b_sim[np.ix_(c, c)]) for c in candidates]) / scale


def recover_permutation(scheme_embed: np.ndarray, reference_embed: np.ndarray, *, grid: tuple[int, int] | None,
                        init_embed: np.ndarray | None = None, method: str = "combined", restarts: int = 8,
                        seed: int = 0) -> np.ndarray:
    """Estimate ``block_perm`` from the position embeddings of a scheme model and a plain reference model.

    Args:
        scheme_embed: ``(T, D)`` patch rows of the model trained on scrambled images (:func:`position_embeddings`).
        reference_embed: ``(T, D')`` patch rows of the reference (the same ViT trained on plain images, or its
            start); ``D' = D`` except for ``method="structure"``.
        grid: ``(rows, cols)`` of the token grid; ``structure`` and ``combined`` also try every candidate under
            the grid's shape-preserving symmetries (not when None).
        init_embed: ``(T, D)`` common start of both models, subtracted from both before matching (match the learned
            updates rather than the shared start).
        method: ``"combined"`` (default), ``"linear"`` or ``"structure"`` (see the module docstring).
        restarts: FAQ starting points besides the linear solution (``structure``, ``combined``).
        seed: seeds the randomised FAQ starts.

    Returns:
        ``(T,)`` int64 permutation: ``estimate[j]`` is the plain block that encrypted token ``j`` holds.
    """
    a, b = _check_embeddings(scheme_embed, reference_embed, init_embed, grid, method)
    n = a.shape[0]
    if n < 2:
        return np.arange(n, dtype=np.int64)
    ua, ub = _unit_rows(a), _unit_rows(b)
    row_sim = ua @ ub.T if ua.shape[1] == ub.shape[1] else None
    linear = _linear(row_sim) if row_sim is not None else None
    if method == "linear":
        return linear
    a_sim, b_sim = ua @ ua.T, ub @ ub.T
    rng = np.random.default_rng(seed)
    starts: list[np.ndarray | str] = [] if linear is None else [linear]
    starts += ["barycenter"] + ["randomized"] * max(int(restarts) - 1, 0)
    candidates = ([] if linear is None else [linear]) + _faq(a_sim, b_sim, starts, rng)
    stack = np.stack(candidates)
    if grid is not None:
        rows, cols = int(grid[0]), int(grid[1])
        maps = np.stack([grid_symmetry_map(rows, cols, c)[0] for c in shape_preserving_codes(rows, cols)])
        # row k * S + s: candidate k with every block moved by symmetry s of the grid
        stack = maps[np.arange(len(maps))[None, :, None], stack[:, None, :]].reshape(-1, n)
    score = _structure_scores(a_sim, b_sim, stack)
    if method == "combined":
        # how far the rows can be trusted: the structure the linear solution (row 0) attains, relative to the best
        gate = float(np.clip(score[0] / max(score.max(), _EPS), 0.0, 1.0))
        score = score + ROW_WEIGHT * gate * row_sim[np.arange(n)[None, :], stack].mean(axis=1)
    return stack[int(np.argmax(score))]


# ------------------------------------------------------------------------------------------------ scores

def recovery_share(estimate: np.ndarray, true_perm: np.ndarray, grid: tuple[int, int],
                   up_to_symmetry: bool = False) -> float:
    """Share of tokens whose plain block is recovered, ``mean(estimate == true_perm)``.

    Args:
        estimate: ``(T,)`` int, from :func:`recover_permutation`.
        true_perm: ``(T,)`` int, the key's ``block_perm``.
        grid: ``(rows, cols)`` of the token grid.
        up_to_symmetry: the best share over the grid's shape-preserving symmetries applied to the estimate
            (8 for a square grid, 4 otherwise; :func:`etcbench.attacks.layout.direct_comparison`).
    """
    estimate, true_perm = np.asarray(estimate), np.asarray(true_perm)
    if estimate.ndim != 1 or estimate.shape != true_perm.shape:
        raise ValueError(f"estimate and true_perm must both be (T,), got {estimate.shape} and {true_perm.shape}")
    return float(direct_comparison(estimate[None], true_perm[None], grid=grid, up_to_symmetry=up_to_symmetry)[0])


def identity_share(true_perm: np.ndarray) -> float:
    """Share a guess of "no scrambling" (the identity) gets: the key's fixed points over T (1.0 for T = 0)."""
    true_perm = np.asarray(true_perm)
    return float((true_perm == np.arange(true_perm.size)).mean()) if true_perm.size else 1.0


# ------------------------------------------------------------------------------------------------ the attack

def _describe_init(init: bool | str | Path | None, seeds: set[Any], arch: str | None) -> str:
    """A short, secret-free description of the start subtracted (or used as the reference)."""
    if init is None:
        return "none"
    if init is False:
        return "seeded random start (seed " + ", ".join(str(s) for s in sorted(s for s in seeds if s is not None)) + ")"
    if init is True:
        return f"hub weights of {arch}"
    return f"file:{init}"


def _model_name(checkpoint: dict[str, Any]) -> dict[str, Any]:
    spec, record = checkpoint.get("spec", {}), checkpoint.get("record", {})
    options = spec.get("options") or {}
    return {"model": spec.get("model"), "arch": options.get("arch"), "scheme": record.get("scheme"),
            "seed": record.get("seed")}


def _not_applicable(key: Any, encrypted_shape: tuple[int, int, int]) -> str | None:
    """Why matching positions cannot recover this key's block order, or None when it can."""
    block_perm = key.arrays.get("block_perm")
    if block_perm is None:
        return f"the {key.scheme} scheme does not scramble blocks (its key has no block_perm)"
    if np.array_equal(block_perm, np.arange(block_perm.size)):
        return f"the {key.scheme} key's block_perm is the identity (block scrambling off, or one block)"
    channels, height, width = encrypted_shape
    if (height, width) != tuple(key.image_size):
        return (f"the {key.scheme} scheme scrambles the blocks of a {height}x{width} {channels}-channel plane, not "
                f"of the {key.image_size[0]}x{key.image_size[1]} image: its positions have no counterpart in a ViT "
                f"trained on plain images")
    return None


def position_leak(scheme_model_path: str | Path, reference_model_path: str | Path | None, key_path: str | Path, *,
                  init: bool | str | Path | None = None, method: str = "combined") -> dict[str, Any]:
    """Recover the block permutation of a scheme's key from the ViT trained on it; one JSON-serialisable record.

    Args:
        scheme_model_path: a ViT trained on the scheme's images with the key at ``key_path`` (a model file of
            :func:`etcbench.evaluate.save_trained_model`).
        reference_model_path: the same ViT trained on plain images (a model file), or None to use the scheme
            model's start (``init``, not None then) as the reference.
        key_path: the scheme's key file (only its ``block_perm`` is used, to score; it is never written out).
        init: what the models started from, subtracted from each model's rows before matching (see
            :func:`start_embeddings`): None (nothing subtracted), ``False`` (the random start drawn from each
            model's recorded seed), ``True`` or a checkpoint path (the pretrained start).
        method: :func:`recover_permutation`'s method.

    Returns:
        ``{dataset, image_size, block_size, model, arch, scheme, seed, key_fingerprint, reference, init, method,
        tokens, grid, applicable, reason, share, share_up_to_symmetry, identity_share, chance}``; for a scheme that
        does not scramble the image's blocks (no or an identity ``block_perm``, grayscale-based EtC's plane)
        ``applicable`` is False, ``reason`` says why and the shares are None.

    Raises:
        EtcbenchError: a model that is not a ViT, a scheme model not trained with this key, token grids that differ
            from each other or from the key's, or ``reference_model_path`` and ``init`` both None.
    """
    import torch

    from ..ciphers import load_scheme
    from ..evaluate import load_trained_model

    if reference_model_path is None and init is None:
        raise EtcbenchError("position leakage needs a reference: a model trained on plain images or the start (init)")
    if method not in METHODS:
        raise EtcbenchError(f"position leakage method must be one of {', '.join(METHODS)}, got {method!r}")
    key, scheme = load_scheme(key_path)
    cpu = torch.device("cpu")
    model, ckpt = load_trained_model(Path(scheme_model_path), cpu)
    if ckpt.get("key_fingerprint") != key.fingerprint:
        raise EtcbenchError(f"{scheme_model_path} was not trained with the key {key_path}")
    scheme_embed = position_embeddings(model)
    del model
    record_in = ckpt.get("record", {})
    own = _model_name(ckpt)
    out: dict[str, Any] = {
        "dataset": record_in.get("dataset"), "image_size": record_in.get("image_size"),
        "block_size": int(key.block_size), "model": own["model"], "arch": own["arch"], "scheme": key.scheme,
        "seed": own["seed"], "key_fingerprint": key.fingerprint,
    }
    if reference_model_path is None:
        assert init is not None  # checked above
        ref_ckpt, reference_embed = ckpt, start_embeddings(ckpt, init)
        out["reference"] = {"start": _describe_init(init, {own["seed"]}, own["arch"])}
    else:
        ref_model, ref_ckpt = load_trained_model(Path(reference_model_path), cpu)
        reference_embed = position_embeddings(ref_model)
        del ref_model
        out["reference"] = _model_name(ref_ckpt)
    tokens = scheme_embed.shape[0]
    channels, height, width = scheme.encrypted_shape(*key.image_size)
    grid = (height // key.block_size, width // key.block_size)
    if grid[0] * grid[1] != tokens:
        raise EtcbenchError(f"the model has {tokens} patch tokens, but the key's {height}x{width} input holds "
                            f"{grid[0]}x{grid[1]} blocks of {key.block_size} pixels: the patch size must be the "
                            f"block size")
    seeds = {own["seed"], ref_ckpt.get("record", {}).get("seed")}
    out.update({"init": _describe_init(init, seeds, own["arch"]), "method": method, "tokens": tokens,
                "grid": list(grid), "chance": 1.0 / tokens})
    reason = _not_applicable(key, (channels, height, width))
    if reason is not None:
        return {**out, "applicable": False, "reason": reason, "share": None, "share_up_to_symmetry": None,
                "identity_share": None}
    block_perm = key.arrays["block_perm"]
    if block_perm.size != tokens:
        raise EtcbenchError(f"the key's block_perm has {block_perm.size} entries for {tokens} patch tokens")
    if reference_embed.shape[0] != tokens:
        raise EtcbenchError(f"the scheme model has {tokens} patch tokens and the reference "
                            f"{reference_embed.shape[0]}: the models must share the token grid")
    if init is not None and reference_model_path is not None:
        scheme_embed = scheme_embed - start_embeddings(ckpt, init)
        reference_embed = reference_embed - start_embeddings(ref_ckpt, init)
    try:
        estimate = recover_permutation(scheme_embed, reference_embed, grid=grid, method=method)
    except ValueError as exc:
        raise EtcbenchError(f"cannot match the position embeddings: {exc}") from exc
    return {**out, "applicable": True, "reason": None, "share": recovery_share(estimate, block_perm, grid),
            "share_up_to_symmetry": recovery_share(estimate, block_perm, grid, up_to_symmetry=True),
            "identity_share": identity_share(block_perm)}
