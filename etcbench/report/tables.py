"""Tidy result tables from the accuracy and compression records, and their CSV / Markdown / LaTeX files.

The records are plain dicts as loaded from JSON. The paper's published numbers are unknown (docs/paper.md §12), so
no table has a paper column: only :func:`comparison_table` adds one, and only for the cells that
:data:`PUBLISHED_TOP1` (empty today) holds a published value for. No paper value is ever invented.

CSV files keep machine column names and full precision; Markdown and LaTeX show human column names
(:data:`COLUMN_LABELS`), numbers formatted column by column (:data:`COLUMN_FORMATS`) and missing values as "–".
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..bjontegaard import bd_psnr, bd_rate
from ..errors import EtcbenchError
from ..io import atomic_write
from .stats import ci_halfwidth

__all__ = [
    "ACCURACY_COLUMNS",
    "COMPRESSION_COLUMNS",
    "SUMMARY_COLUMNS",
    "COLUMN_LABELS",
    "COLUMN_FORMATS",
    "PUBLISHED_TOP1",
    "HISTORY_COLUMNS",
    "accuracy_table",
    "comparison_table",
    "comparison_caption",
    "scheme_table",
    "scheme_caption",
    "history_table",
    "column_label",
    "compression_table",
    "BD_RATE_COLUMNS",
    "bd_rate_table",
    "accuracy_summary",
    "attack_table",
    "key_mismatch_table",
    "position_leak_table",
    "ATTACK_COLUMNS",
    "CONTROL_SSIM",
    "POSITION_LEAK_COLUMNS",
    "KEY_MISMATCH_COLUMNS",
    "write_table",
]

log = logging.getLogger(__name__)

ACCURACY_COLUMNS = ["dataset", "image_size", "block_size", "model", "scheme", "jpeg_quality", "subsampling", "seed",
                    "top1"]
COMPRESSION_COLUMNS = ["dataset", "image_size", "block_size", "scheme", "jpeg_quality", "subsampling", "bpp", "bpp_std",
                       "header_bytes", "payload_bpp", "payload_bpp_std", "psnr", "psnr_std", "n_images",
                       "jpeg_aligned", "jpeg_mode"]
# one row per (setting, subsampling, scheme) against the plain-JPEG anchor of the same setting and subsampling
BD_RATE_COLUMNS = ["dataset", "image_size", "block_size", "subsampling", "scheme", "anchor", "n_points",
                   "n_points_anchor", "bd_rate_payload_pct", "bd_psnr_payload_db", "bd_rate_file_pct"]
SUMMARY_COLUMNS = ["dataset", "image_size", "block_size", "model", "scheme", "top1_mean_pct", "top1_std_pct",
                   "top1_ci95_pct", "n_seeds"]
ATTACK_COLUMNS = ["dataset", "image_size", "block_size", "scheme", "attack", "known_pairs", "ssim", "ssim_std",
                  "ssim_ci95", "psnr", "psnr_std", "native_size", "ssim_native", "psnr_native", "control_ssim",
                  "control_ssim_native", "under_trained", "semantic_top1", "semantic_top1_plain", "key_share",
                  "direct_comparison", "neighbour_comparison", "largest_component", "direct_comparison_sym",
                  "neighbour_comparison_sym", "largest_component_sym", "ssim_best_candidate", "n_images",
                  "attacker_images", "attacker_ciphertexts", "attacker_keys", "target_key_ciphertexts", "seconds"]
# a learned attack whose control (the same attack on the plain scheme, where it only has to learn the identity)
# stays below this SSIM at the native resolution is flagged as under-trained
CONTROL_SSIM = 0.8
POSITION_LEAK_COLUMNS = ["dataset", "image_size", "block_size", "scheme", "model", "seed", "method", "tokens",
                         "share", "share_up_to_symmetry", "identity_share", "chance"]
_CONTROLLED = ("itn", "gan", "gan-paired")
KEY_MISMATCH_COLUMNS = ["dataset", "image_size", "block_size", "model", "scheme", "seed", "test_key", "top1"]
HISTORY_COLUMNS = ["dataset", "image_size", "block_size", "model", "scheme", "seed", "epoch", "train_loss",
                   "train_top1", "val_top1", "val_loss"]
# Published top-1 (%) per (dataset, image_size, block_size, model, scheme), each entered with its source (page and
# table) in a comment beside it. Empty: the paper's numbers are not known (docs/paper.md §12), so the comparison
# table has no paper column. Only the comparison table reads it.
PUBLISHED_TOP1: dict[tuple[str, int, int, str, str], float] = {}
MISSING = "–"  # how a missing value prints in the Markdown and LaTeX files
_SETTING = ["dataset", "image_size", "block_size"]
# Human column names for the Markdown and LaTeX files (the CSV keeps the machine names); columns not listed here
# are named by the patterns of column_label(), else by their machine name with spaces for underscores.
COLUMN_LABELS = {
    "dataset": "Dataset", "image_size": "Image size (px)", "block_size": "Block (px)", "model": "Model",
    "scheme": "Scheme", "jpeg_quality": "JPEG quality", "subsampling": "Subsampling", "seed": "Seed",
    "top1": "Top-1", "loss": "Loss", "top1_mean_pct": "Top-1 (%)", "top1_std_pct": "SD (pp)",
    "top1_ci95_pct": "95% CI ± (pp)", "n_seeds": "Seeds", "parameters_m": "Parameters (M)", "bpp": "bpp",
    "role": "Role", "training_seed": "Training seed", "key_id": "Key fingerprint", "master_source": "Master from",
    "master_fingerprint": "Master fingerprint",
    "bpp_std": "bpp SD",
    "payload_bpp": "Payload bpp", "payload_bpp_std": "Payload bpp SD", "header_bytes": "Header (bytes)",
    "psnr": "PSNR (dB)", "psnr_std": "PSNR SD (dB)", "n_images": "Images", "jpeg_aligned": "Fits JPEG grid",
    "jpeg_mode": "JPEG mode", "attack": "Attack", "known_pairs": "Known pairs", "ssim": "SSIM", "ssim_std": "SSIM SD",
    "ssim_ci95": "SSIM 95% CI ±", "native_size": "Native size (px)", "ssim_native": "SSIM (native)",
    "psnr_native": "PSNR native (dB)", "control_ssim": "Control SSIM", "control_ssim_native": "Control SSIM (native)",
    "under_trained": "Under-trained", "semantic_top1": "Semantic top-1",
    "semantic_top1_plain": "Semantic top-1 (plain images)", "key_share": "Key share",
    "direct_comparison": "Direct comparison", "neighbour_comparison": "Neighbour comparison",
    "largest_component": "Largest component", "direct_comparison_sym": "Direct comparison (up to symmetry)",
    "neighbour_comparison_sym": "Neighbour comparison (up to symmetry)",
    "largest_component_sym": "Largest component (up to symmetry)", "ssim_best_candidate": "SSIM (best candidate)",
    "attacker_images": "Attacker images", "attacker_ciphertexts": "Attacker ciphertexts",
    "attacker_keys": "Attacker keys", "target_key_ciphertexts": "Target-key ciphertexts", "seconds": "Time (s)",
    "method": "Method", "tokens": "Tokens", "share": "Share recovered",
    "share_up_to_symmetry": "Share (up to symmetry)",
    "identity_share": "Identity guess", "chance": "Chance", "test_key": "Test key",
    "jpeg_subsampling": "JPEG subsampling", "best_attack": "Best attack", "best_attack_ssim": "Best attack SSIM",
    "anchor": "Anchor", "n_points": "Quality points", "n_points_anchor": "Anchor quality points",
    "bd_rate_payload_pct": "BD-rate, payload (%)", "bd_psnr_payload_db": "BD-PSNR, payload (dB)",
    "bd_rate_file_pct": "BD-rate, whole file (%)",
}
_LABEL_PATTERNS = [
    (r"delta_top1_pp_(.+)", "Δ top-1 vs plain, {0} (pp)"),
    (r"jpeg_q(\d+)_top1_pct_(.+)", "Top-1 at JPEG q{0}, {1} (%)"),
    (r"other_key_top1_pct_(.+)", "Top-1 with another key, {0} (%)"),
    (r"jpeg_q(\d+)_payload_bpp", "Payload bpp at q{0}"),
    (r"jpeg_q(\d+)_bpp", "bpp at q{0}"),
    (r"jpeg_q(\d+)_psnr", "PSNR at q{0} (dB)"),
    (r"paper_(.+)", "{0} (paper)"),
]
# printf formats of float columns in the Markdown and LaTeX files: exact names, then name patterns (first match);
# other float columns print as integers when every value is one, else with write_table's float_format
COLUMN_FORMATS = {"top1": "%.4f", "loss": "%.4f", "seconds": "%.1f", "header_bytes": "%.0f", "tokens": "%.0f"}
_FORMAT_PATTERNS = [
    (r".*_pp(_.*)?", "%+.1f"),
    (r".*_pct(_.*)?", "%.1f"),
    (r".*bpp.*", "%.3f"),
    (r".*psnr.*", "%.2f"),
    (r".*(ssim|top1|share|comparison|component|chance).*", "%.3f"),
]
_VALUE_LABELS = {"subsampling": {"444": "4:4:4", "420": "4:2:0"}, "jpeg_subsampling": {"444": "4:4:4", "420": "4:2:0"}}

_COMP_KEYS = ["dataset", "image_size", "block_size", "scheme", "subsampling", "jpeg_quality"]
# Subsampling sort order: uncompressed first, then full chroma, then 4:2:0; any other value after, alphabetically.
_SUBSAMPLING_ORDER = {"none": 0, "444": 1, "420": 2}
_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _frame(records: Iterable[Mapping[str, Any]], columns: Sequence[str], what: str) -> pd.DataFrame:
    """Check that every record has ``columns`` and return them as a DataFrame (extra keys are dropped)."""
    records = list(records)
    if not records:
        raise EtcbenchError(f"no {what} records to tabulate")
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise EtcbenchError(f"{what} record {i} is a {type(rec).__name__}, not a mapping")
        missing = [c for c in columns if c not in rec]
        if missing:
            raise EtcbenchError(f"{what} record {i} lacks key(s) {', '.join(missing)}")
    return pd.DataFrame([{c: rec[c] for c in columns} for rec in records], columns=list(columns))


def _cast(df: pd.DataFrame, dtypes: Mapping[str, Any], what: str) -> pd.DataFrame:
    for col, dtype in dtypes.items():
        try:
            if dtype == "Int64":
                df[col] = pd.array([None if _is_missing(v) else _as_int(v) for v in df[col]], dtype="Int64")
            elif dtype == "int64":
                df[col] = pd.Series([_as_int(v) for v in df[col]], index=df.index, dtype="int64")
            elif dtype is str:
                if not all(isinstance(v, str) and v for v in df[col]):
                    raise ValueError("expected non-empty strings")
                df[col] = df[col].astype(str)
            elif dtype is bool:
                if not all(isinstance(v, bool) for v in df[col]):
                    raise ValueError("expected true/false")
                df[col] = df[col].astype(bool)
            else:
                df[col] = df[col].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise EtcbenchError(f"{what} column {col!r} cannot be read as {dtype}: {exc}") from None
    return df


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or float(value) != int(value):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def _check_duplicates(df: pd.DataFrame, keys: Sequence[str], what: str) -> None:
    dup = df.duplicated(subset=list(keys), keep=False)
    if dup.any():
        first = df.loc[dup, list(keys)].iloc[0]
        desc = ", ".join(f"{k}={'NA' if pd.isna(first[k]) else first[k]}" for k in keys)
        raise EtcbenchError(f"duplicate {what} records ({int(dup.sum())} rows) for {desc}")


def _sorted(df: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Stable sort with ``subsampling`` in :data:`_SUBSAMPLING_ORDER` and missing JPEG quality first."""
    def key(col: pd.Series) -> pd.Series:
        if col.name == "subsampling":
            return col.map(lambda s: (_SUBSAMPLING_ORDER.get(s, len(_SUBSAMPLING_ORDER)), s)).map(
                lambda t: f"{t[0]:03d}{t[1]}")
        return col

    out = df.sort_values(list(by), key=key, na_position="first", kind="mergesort")
    return out.reset_index(drop=True)


def accuracy_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per accuracy record, columns :data:`ACCURACY_COLUMNS`, sorted.

    Args:
        records: accuracy records (dicts); extra keys such as ``loss`` are ignored.

    Returns:
        DataFrame with ``jpeg_quality`` as nullable ``Int64`` (NA = uncompressed test images), ``top1`` as a
        fraction in [0, 1], sorted by dataset, image_size, block_size, model, scheme, subsampling (none first),
        jpeg_quality, seed.

    Raises:
        EtcbenchError: empty input, a missing key, an unreadable value, top1 outside [0, 1], a JPEG quality without
            subsampling (or the reverse), or two records for the same setting and seed.
    """
    df = _frame(records, ACCURACY_COLUMNS, "accuracy")
    df = _cast(df, {"dataset": str, "image_size": "int64", "block_size": "int64", "model": str, "scheme": str,
                    "jpeg_quality": "Int64", "subsampling": str, "seed": "int64", "top1": "float64"}, "accuracy")
    bad = ~df["top1"].between(0.0, 1.0)
    if bad.any():
        raise EtcbenchError(f"accuracy top1 must be a fraction in [0, 1], got {df.loc[bad, 'top1'].iloc[0]!r}")
    mismatch = df["jpeg_quality"].isna() != (df["subsampling"] == "none")
    if mismatch.any():
        row = df.loc[mismatch].iloc[0]
        raise EtcbenchError(f"accuracy record has jpeg_quality={row['jpeg_quality']} with subsampling="
                            f"{row['subsampling']!r} (uncompressed needs None with 'none')")
    _check_duplicates(df, [c for c in ACCURACY_COLUMNS if c != "top1"], "accuracy")
    return _sorted(df, ["dataset", "image_size", "block_size", "model", "scheme", "subsampling", "jpeg_quality",
                        "seed"])[ACCURACY_COLUMNS]


def compression_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per compression record, columns :data:`COMPRESSION_COLUMNS`, sorted.

    Args:
        records: compression records (dicts); extra keys such as ``key_fingerprint`` are ignored.

    Returns:
        DataFrame sorted by dataset, image_size, block_size, scheme, subsampling (444 before 420), jpeg_quality.
        ``psnr`` may be ``inf`` (lossless).

    Raises:
        EtcbenchError: empty input, a missing key, an unreadable value or two records for the same setting.
    """
    df = _frame(records, COMPRESSION_COLUMNS, "compression")
    df = _cast(df, {"dataset": str, "image_size": "int64", "block_size": "int64", "scheme": str,
                    "jpeg_quality": "int64", "subsampling": str, "bpp": "float64", "bpp_std": "float64",
                    "header_bytes": "float64", "payload_bpp": "float64", "payload_bpp_std": "float64",
                    "psnr": "float64", "psnr_std": "float64", "n_images": "int64", "jpeg_aligned": bool,
                    "jpeg_mode": str},
               "compression")
    _check_duplicates(df, _COMP_KEYS, "compression")
    return _sorted(df, _COMP_KEYS)[COMPRESSION_COLUMNS]


def bd_rate_table(comp: pd.DataFrame, anchor: str = "plain") -> pd.DataFrame:
    """Bjontegaard deltas (:mod:`etcbench.bjontegaard`) of every scheme against plain JPEG.

    For each setting (dataset, image_size, block_size) and chroma subsampling that has ``anchor`` rows, every other
    scheme's rate-distortion curve (one point per JPEG quality; PSNR after decryption against the plain image, as
    in the compression table) is compared with the anchor's: ``bd_rate_payload_pct`` (BD-rate, %, on the
    entropy-coded payload bpp), ``bd_psnr_payload_db`` (BD-PSNR, dB, on the payload bpp) and ``bd_rate_file_pct``
    (BD-rate on whole-file bpp, headers included). ``n_points`` and ``n_points_anchor`` count the quality points
    used: those with finite PSNR (lossless points are left out). A delta is NaN where a curve has fewer than 2
    points or the two curves do not overlap (in PSNR for BD-rate, in rate for BD-PSNR).

    Args:
        comp: output of :func:`compression_table`.
        anchor: the reference scheme.

    Returns:
        Columns :data:`BD_RATE_COLUMNS`, sorted by setting, subsampling (444 before 420) and scheme; empty (with
        these columns) where no setting has the anchor.
    """
    missing = [c for c in [*_SETTING, "scheme", "subsampling", "bpp", "payload_bpp", "psnr"] if c not in comp.columns]
    if missing:
        raise EtcbenchError(f"compression table lacks column(s) {', '.join(missing)}")
    finite = pd.Series(np.isfinite(comp["psnr"].astype(float)), index=comp.index)
    rows = []
    for key, group in comp.groupby([*_SETTING, "subsampling"], sort=False):
        if not (group["scheme"] == anchor).any():
            log.info("BD-rate: no %s rows for %s, no deltas", anchor, "/".join(map(str, key)))
            continue
        usable = group.loc[finite.loc[group.index]]
        ref = usable.loc[usable["scheme"] == anchor]
        for scheme in sorted(set(group["scheme"]) - {anchor}):
            test = usable.loc[usable["scheme"] == scheme]
            try:
                deltas = {
                    "bd_rate_payload_pct": bd_rate(ref["payload_bpp"], ref["psnr"], test["payload_bpp"], test["psnr"]),
                    "bd_psnr_payload_db": bd_psnr(ref["payload_bpp"], ref["psnr"], test["payload_bpp"], test["psnr"]),
                    "bd_rate_file_pct": bd_rate(ref["bpp"], ref["psnr"], test["bpp"], test["psnr"]),
                }
            except ValueError as exc:
                raise EtcbenchError(f"BD-rate of {scheme} against {anchor} at {'/'.join(map(str, key))}: {exc}"
                                    ) from None
            rows.append(dict(zip([*_SETTING, "subsampling"], key), scheme=scheme, anchor=anchor,
                             n_points=len(test), n_points_anchor=len(ref), **deltas))
    dtypes = {"dataset": object, "image_size": "int64", "block_size": "int64", "subsampling": object,
              "scheme": object, "anchor": object, "n_points": "int64", "n_points_anchor": "int64",
              "bd_rate_payload_pct": "float64", "bd_psnr_payload_db": "float64", "bd_rate_file_pct": "float64"}
    if not rows:
        log.warning("no setting has %s compression rows: the BD-rate table is empty", anchor)
        return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in BD_RATE_COLUMNS})
    df = pd.DataFrame(rows, columns=BD_RATE_COLUMNS).astype(dtypes)
    return _sorted(df, [*_SETTING, "subsampling", "scheme"])[BD_RATE_COLUMNS]


def attack_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per attack record (setting, scheme, attack), columns :data:`ATTACK_COLUMNS`, sorted.

    ``direct_comparison`` and ``neighbour_comparison`` (as recovered, and ``_sym``: up to a symmetry of the whole
    grid, which edges alone cannot resolve) are empty except for layout-recovering attacks (jigsaw);
    ``psnr`` is ``inf`` where every reconstruction is exact. The ``none`` attack (the encrypted image as it is)
    sorts first within a scheme.
    """
    records = [{"control_ssim": None, "control_ssim_native": None, "under_trained": None, **r} for r in records]
    df = _frame(records, ATTACK_COLUMNS, "attack")
    floats = ["ssim", "ssim_std", "ssim_ci95", "psnr", "psnr_std", "ssim_native", "psnr_native", "semantic_top1",
              "semantic_top1_plain", "key_share", "direct_comparison", "neighbour_comparison", "largest_component",
              "direct_comparison_sym", "neighbour_comparison_sym", "largest_component_sym", "ssim_best_candidate",
              "seconds"]
    df = _cast(df, {"dataset": str, "image_size": "int64", "block_size": "int64", "scheme": str, "attack": str,
                    "known_pairs": "Int64", "native_size": "Int64", "n_images": "int64", "attacker_images": "int64",
                    "attacker_ciphertexts": "int64", "attacker_keys": "int64",
                    **dict.fromkeys(floats, "float64")}, "attack")
    keys = ["dataset", "image_size", "block_size", "scheme", "attack", "known_pairs"]
    _check_duplicates(df, keys, "attack")
    df = _with_controls(df)
    df["_order"] = df["attack"] != "none"
    df = df.sort_values(["dataset", "image_size", "block_size", "scheme", "_order", "attack", "known_pairs"],
                        kind="mergesort")
    return df[ATTACK_COLUMNS].reset_index(drop=True)


def _with_controls(df: pd.DataFrame) -> pd.DataFrame:
    """Each learned attack's control beside it: its SSIM on the plain scheme of the same setting (at the scored
    and the native size), and ``under_trained`` where the native control is below :data:`CONTROL_SSIM` (empty
    where the setting attacks no plain scheme, or the attack does not learn)."""
    setting = ["dataset", "image_size", "block_size", "attack"]
    control = (df.loc[(df["scheme"] == "plain") & df["attack"].isin(_CONTROLLED), [*setting, "ssim", "ssim_native"]]
               .rename(columns={"ssim": "_c", "ssim_native": "_cn"}))
    df = df.drop(columns=["control_ssim", "control_ssim_native", "under_trained"]).merge(control, on=setting,
                                                                                         how="left")
    learned = df["attack"].isin(_CONTROLLED) & df["_cn"].notna()
    df["control_ssim"] = df["_c"].where(learned)
    df["control_ssim_native"] = df["_cn"].where(learned)
    df["under_trained"] = pd.array([bool(c < CONTROL_SSIM) if ok else None
                                    for c, ok in zip(df["_cn"], learned)], dtype="boolean")
    return df.drop(columns=["_c", "_cn"])


def position_leak_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (setting, scheme, model, seed): the share of block positions recovered from a ViT's learned
    position embeddings (as matched, and up to a symmetry of the grid), beside the identity guess and chance;
    empty shares where the scheme scrambles no blocks."""
    df = _frame(records, POSITION_LEAK_COLUMNS, "position-leak")
    df = _cast(df, {"dataset": str, "image_size": "int64", "block_size": "int64", "scheme": str, "model": str,
                    "seed": "int64", "tokens": "int64", "share": "float64", "share_up_to_symmetry": "float64",
                    "identity_share": "float64", "chance": "float64"}, "position-leak")
    keys = ["dataset", "image_size", "block_size", "scheme", "model", "seed"]
    _check_duplicates(df, keys, "position-leak")
    return df.sort_values(keys, kind="mergesort")[POSITION_LEAK_COLUMNS].reset_index(drop=True)


def key_mismatch_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Top-1 of every model on its test images encrypted with its own key, another key, and not encrypted.

    Columns :data:`KEY_MISMATCH_COLUMNS`; ``test_key`` is ``own``, ``other`` or ``none`` (in that order).
    """
    df = _frame(records, KEY_MISMATCH_COLUMNS, "key-mismatch")
    df = _cast(df, {"dataset": str, "image_size": "int64", "block_size": "int64", "model": str, "scheme": str,
                    "seed": "int64", "test_key": str, "top1": "float64"}, "key-mismatch")
    keys = [c for c in KEY_MISMATCH_COLUMNS if c != "top1"]
    _check_duplicates(df, keys, "key-mismatch")
    df["_order"] = df["test_key"].map({"own": 0, "other": 1, "none": 2}).fillna(3)
    df = df.sort_values(["dataset", "image_size", "block_size", "model", "scheme", "seed", "_order"], kind="mergesort")
    return df[KEY_MISMATCH_COLUMNS].reset_index(drop=True)


KEY_COLUMNS = ["image_size", "block_size", "scheme", "role", "training_seed", "key_id", "master_source",
               "master_fingerprint"]


def key_table(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per key from the keys' public records (``etcbench keygen --info``): its setting, scheme, role and
    training seed (the derivation context), the first 16 hex digits of its fingerprint, and the source and
    fingerprint of the master secret it was derived from. Nothing here regenerates a key.

    Raises:
        EtcbenchError: a record without its context or master (written before keys were derived).
    """
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec.get("context"), Mapping) or not isinstance(rec.get("master"), Mapping):
            raise EtcbenchError(f"key record {i} has no derivation context or master (made by an older etcbench)")
        context, master = rec["context"], rec["master"]
        rows.append({"image_size": int(rec["image_size"][0]), "block_size": int(rec["block_size"]),
                     "scheme": rec["scheme"], "role": context.get("role"), "training_seed": context.get("seed"),
                     "key_id": str(rec["key_fingerprint"])[:16], "master_source": master.get("source"),
                     "master_fingerprint": master.get("fingerprint")})
    df = pd.DataFrame(rows, columns=KEY_COLUMNS)
    df["training_seed"] = df["training_seed"].astype(object).where(df["training_seed"].notna(), None)
    df["_plain"] = df["scheme"] != "plain"
    df = df.sort_values(["image_size", "block_size", "_plain", "scheme", "role"], kind="mergesort")
    return df[KEY_COLUMNS].reset_index(drop=True)


def key_caption(table: pd.DataFrame) -> str:
    """The caption of :func:`key_table`'s table: where the master secret came from, in words."""
    sources = set(table["master_source"])
    if sources == {"key_seed"}:
        origin = ("the config's key_seed: a reproducible benchmark, whose keys anyone with the config regenerates "
                  "(not secret)")
    elif sources == {"file"}:
        masters = ", ".join(sorted(set(table["master_fingerprint"])))
        origin = f"a master secret file (fingerprint {masters}) that only its owner can read: keys nobody else derives"
    else:
        origin = "more than one master: " + ", ".join(sorted(map(str, sources)))
    return ("Keys, derived with HKDF-SHA256 from one master secret and a context (setting, scheme, role, training "
            f"seed) so that no two share key material; master: {origin}. Fingerprints only")


def accuracy_summary(acc: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of top-1 (%) over seeds on uncompressed test images.

    Args:
        acc: output of :func:`accuracy_table`.

    Returns:
        Columns :data:`SUMMARY_COLUMNS`: one row per dataset, image_size, block_size, model, scheme with
        ``top1_mean_pct``, ``top1_std_pct`` (sample std, ddof=1; NaN for a single seed), ``top1_ci95_pct`` (the
        half-width of the 95% Student-t confidence interval of the mean, :mod:`.stats`; NaN for a single seed),
        and ``n_seeds``. Empty (with these columns) when there is no uncompressed row.
    """
    missing = [c for c in ACCURACY_COLUMNS if c not in acc.columns]
    if missing:
        raise EtcbenchError(f"accuracy table lacks column(s) {', '.join(missing)}")
    keys = ["dataset", "image_size", "block_size", "model", "scheme"]
    plain = acc.loc[acc["jpeg_quality"].isna()]
    if plain.empty:
        log.warning("no uncompressed accuracy rows: the summary table is empty")
        return pd.DataFrame({c: pd.Series(dtype="float64" if c.endswith("_pct") else object) for c in SUMMARY_COLUMNS})
    grouped = plain.groupby(keys, sort=True)
    out = grouped["top1"].agg(top1_mean_pct="mean", top1_std_pct="std", top1_ci95_pct=ci_halfwidth).mul(100.0)
    out["n_seeds"] = grouped["seed"].nunique().astype("int64")
    return out.reset_index()[SUMMARY_COLUMNS]


def _scheme_order(schemes: Iterable[str]) -> list[str]:
    """``plain`` first, then alphabetical (as the figures order them)."""
    return sorted(set(schemes), key=lambda s: (s != "plain", s))


def _mean_ci_text(mean: float, half: float) -> str:
    return f"{mean:.1f}" if math.isnan(half) else f"{mean:.1f} ± {half:.1f}"


def comparison_table(acc: pd.DataFrame,
                     published: Mapping[tuple[str, int, int, str, str], float] | None = None,
                     parameters: Mapping[tuple[str, int, int, str], Iterable[int]] | None = None) -> pd.DataFrame:
    """The paper-style comparison: one row per setting and model, one column per scheme; each cell the top-1 (%) on
    uncompressed test images as ``mean ± half-width`` of the 95% Student-t confidence interval of the mean over
    seeds (:mod:`.stats`), one decimal; the mean alone for one seed; missing where the model was not trained on the
    scheme in that setting.

    Args:
        acc: output of :func:`accuracy_table`.
        published: published top-1 (%) per ``(dataset, image_size, block_size, model, scheme)``; default
            :data:`PUBLISHED_TOP1` (empty: the paper's numbers are not known).
        parameters: the trained models' parameter counts per ``(dataset, image_size, block_size, model)`` (from
            their model cards), so that a reader sees the size behind a name (a CPU-sized ``resnet18`` is not the
            paper's); without it, no such column.

    Returns:
        Columns dataset, image_size, block_size, model, ``parameters_m`` (where ``parameters`` is given: millions,
        two decimals, ``"0.53–0.54"`` where the schemes' inputs change it), ``n_seeds`` (the seeds behind the row's
        cells: ``"3"``, or ``"2–3"`` where they differ), one text column per scheme (``plain`` first), and after a
        scheme's column a ``paper_<scheme>`` column only where ``published`` holds a value for one of the table's
        rows of that scheme.
    """
    summary = accuracy_summary(acc)
    if summary.empty:
        raise EtcbenchError("no uncompressed accuracy rows for the comparison table")
    published = PUBLISHED_TOP1 if published is None else published
    schemes = _scheme_order(summary["scheme"])
    rows = []
    for (dataset, size, block, model), group in summary.groupby([*_SETTING, "model"], sort=True):
        cells = group.set_index("scheme")
        seeds = sorted({int(n) for n in group["n_seeds"]})
        row: dict[str, Any] = {"dataset": dataset, "image_size": int(size), "block_size": int(block), "model": model}
        if parameters is not None:
            counts = sorted({f"{n / 1e6:.2f}" for n in parameters.get((dataset, int(size), int(block), model), ())},
                            key=float)
            row["parameters_m"] = None if not counts else counts[0] if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        row["n_seeds"] = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
        for scheme in schemes:
            row[scheme] = (_mean_ci_text(float(cells.loc[scheme, "top1_mean_pct"]),
                                         float(cells.loc[scheme, "top1_ci95_pct"])) if scheme in cells.index else None)
            value = published.get((dataset, int(size), int(block), model, scheme))
            row[f"paper_{scheme}"] = None if value is None else f"{float(value):.1f}"
        rows.append(row)
    table = pd.DataFrame(rows)
    keep = [c for c in table.columns if not c.startswith("paper_") or table[c].notna().any()]
    return table[keep]


def comparison_caption(table: pd.DataFrame) -> str:
    """The caption of :func:`comparison_table`'s table, stating the number of seeds."""
    seeds = set(table["n_seeds"])
    if seeds == {"1"}:
        spread = "1 seed (no interval)"
    elif len(seeds) == 1:
        spread = f"mean ± half-width of the 95% Student-t confidence interval over {seeds.pop()} seeds"
    else:
        spread = "mean ± half-width of the 95% Student-t confidence interval over the seeds of the Seeds column"
    paper = any(c.startswith("paper_") for c in table.columns)
    return (f"Top-1 (%) on uncompressed test images, models (rows) by scheme (columns): {spread}"
            + ("; paper: the published top-1 (%), sources in docs/paper.md" if paper else ""))


def _closest_quality(qualities: Iterable[int], target: int = 75) -> int | None:
    """The quality closest to ``target`` (the higher one on a tie); ``None`` for none."""
    found = sorted({int(q) for q in qualities})
    return min(found, key=lambda q: (abs(q - target), -q)) if found else None


def _best_attacks(attacks: pd.DataFrame | None) -> dict[tuple, tuple[str, float]]:
    """``(dataset, image_size, block_size, scheme) -> (attack, SSIM)``: the highest mean SSIM any attack but
    ``none`` reaches, attacks flagged under-trained left out (``kpa-k`` names the known-plaintext attack with k
    pairs)."""
    if attacks is None or attacks.empty:
        return {}
    data = attacks.loc[(attacks["attack"] != "none") & attacks["ssim"].notna()]
    if "under_trained" in data.columns:
        data = data.loc[~data["under_trained"].fillna(False).astype(bool)]
    best: dict[tuple, tuple[str, float]] = {}
    for row in data.itertuples(index=False):
        key = (row.dataset, int(row.image_size), int(row.block_size), row.scheme)
        pairs = getattr(row, "known_pairs", None)
        name = row.attack if _is_na(pairs) else f"{row.attack}-{int(pairs)}"
        if key not in best or float(row.ssim) > best[key][1]:
            best[key] = (name, float(row.ssim))
    return best


def scheme_table(acc: pd.DataFrame, comp: pd.DataFrame | None = None, attacks: pd.DataFrame | None = None,
                 key_mismatch: pd.DataFrame | None = None, jpeg_quality: int | None = None) -> pd.DataFrame:
    """One row per (setting, scheme): what a scheme costs and what it resists.

    Columns, after the setting and ``scheme``:

    * ``delta_top1_pp_<model>``: the model's top-1 on the scheme minus its top-1 on plain images of the same setting
      (uncompressed, mean over seeds, percentage points; negative: the scheme costs accuracy);
    * ``jpeg_subsampling`` and ``jpeg_q<q>_top1_pct_<model>``: top-1 (%) under JPEG at quality ``q``
      (``jpeg_quality``, by default the quality of the records closest to 75), at 4:4:4 where the scheme is coded at
      it, else at its own subsampling (grayscale planes);
    * ``jpeg_q<q>_payload_bpp`` (``jpeg_q<q>_bpp`` where the compression records have no payload figure) and
      ``jpeg_q<q>_psnr``: bits per pixel and PSNR after decryption at that quality and subsampling;
    * ``other_key_top1_pct_<model>``: top-1 (%) of the model on test images encrypted with another key of its scheme;
    * ``best_attack`` and ``best_attack_ssim``: the attack (other than ``none``) with the highest mean SSIM against
      the plain images, attacks flagged ``under_trained`` left out.

    Missing pieces (a model not trained on the scheme or on plain images, no compression, attack or key-mismatch
    records) are missing values, never estimated.

    Args:
        acc: output of :func:`accuracy_table`.
        comp: output of :func:`compression_table`, or ``None``.
        attacks: output of :func:`attack_table`, or ``None``.
        key_mismatch: output of :func:`key_mismatch_table`, or ``None``.
        jpeg_quality: the JPEG quality to report; default: the one closest to 75.
    """
    setting_scheme = [*_SETTING, "scheme"]
    uncompressed = acc.loc[acc["jpeg_quality"].isna()]
    means = uncompressed.groupby([*_SETTING, "model", "scheme"])["top1"].mean().mul(100.0).to_dict()
    cells = set(acc[setting_scheme].itertuples(index=False, name=None))
    for frame in (comp, attacks):
        if frame is not None and not frame.empty:
            cells |= set(frame[setting_scheme].itertuples(index=False, name=None))
    cells = {(d, int(s), int(b), sc) for d, s, b, sc in cells}
    qualities = list(acc["jpeg_quality"].dropna())
    if comp is not None:
        qualities += list(comp["jpeg_quality"])
    quality = _closest_quality(qualities) if jpeg_quality is None else int(jpeg_quality)
    models = sorted(set(acc["model"]))
    bpp = "payload_bpp" if comp is not None and "payload_bpp" in comp.columns else "bpp"

    jpeg_acc = acc.loc[acc["jpeg_quality"].notna() & (acc["jpeg_quality"] == quality)] if quality is not None \
        else acc.iloc[:0]
    jpeg_means = jpeg_acc.groupby([*_SETTING, "model", "scheme", "subsampling"])["top1"].mean().mul(100.0).to_dict()
    coded: dict[tuple, set[str]] = {}
    for d, s, b, sc, ss in jpeg_acc[[*setting_scheme, "subsampling"]].itertuples(index=False, name=None):
        coded.setdefault((d, int(s), int(b), sc), set()).add(ss)
    rates: dict[tuple, tuple[float, float]] = {}
    if comp is not None and quality is not None:
        at_q = comp.loc[comp["jpeg_quality"] == quality]
        for row in at_q.to_dict("records"):
            key = (row["dataset"], int(row["image_size"]), int(row["block_size"]), row["scheme"])
            coded.setdefault(key, set()).add(row["subsampling"])
            rates[(*key, row["subsampling"])] = (row[bpp], row["psnr"])
    other: dict[tuple, float] = {}
    if key_mismatch is not None and not key_mismatch.empty:
        mismatch = key_mismatch.loc[key_mismatch["test_key"] == "other"]
        other = mismatch.groupby([*_SETTING, "model", "scheme"])["top1"].mean().mul(100.0).to_dict()
    best = _best_attacks(attacks)

    order = sorted(cells, key=lambda c: (c[0], c[1], c[2], c[3] != "plain", c[3]))
    rows = []
    for cell in order:
        d, s, b, scheme = cell
        row: dict[str, Any] = {"dataset": d, "image_size": s, "block_size": b, "scheme": scheme}
        for m in models:
            own, plain = means.get((d, s, b, m, scheme)), means.get((d, s, b, m, "plain"))
            row[f"delta_top1_pp_{m}"] = math.nan if own is None or plain is None else own - plain
        if quality is not None:
            found = sorted(coded.get(cell, ()), key=lambda x: (_SUBSAMPLING_ORDER.get(x, len(_SUBSAMPLING_ORDER)), x))
            ss = found[0] if found else None
            row["jpeg_subsampling"] = ss
            for m in models:
                row[f"jpeg_q{quality}_top1_pct_{m}"] = jpeg_means.get((d, s, b, m, scheme, ss), math.nan)
            rate, psnr = rates.get((*cell, ss), (math.nan, math.nan))
            row[f"jpeg_q{quality}_{bpp}"], row[f"jpeg_q{quality}_psnr"] = rate, psnr
        for m in models:
            row[f"other_key_top1_pct_{m}"] = other.get((d, s, b, m, scheme), math.nan)
        name, ssim = best.get(cell, (None, math.nan))
        row["best_attack"], row["best_attack_ssim"] = name, ssim
        rows.append(row)
    table = pd.DataFrame(rows)
    floats = [c for c in table.columns if c not in (*setting_scheme, "jpeg_subsampling", "best_attack")]
    table[floats] = table[floats].astype("float64")
    for col in ("jpeg_subsampling", "best_attack"):
        if col in table.columns:
            table[col] = table[col].astype(object).where(table[col].notna(), None)
    return table


def scheme_caption(table: pd.DataFrame) -> str:
    """The caption of :func:`scheme_table`'s table, stating the JPEG quality."""
    quality = next((m[1] for c in table.columns if (m := re.fullmatch(r"jpeg_q(\d+)_psnr", c))), None)
    payload = "payload " if any(c.endswith("_payload_bpp") for c in table.columns) else ""
    jpeg = (f"; top-1 under JPEG at quality {quality} (4:4:4 where the scheme is coded at it), with the {payload}bits "
            "per pixel and the PSNR after decryption at that quality" if quality is not None else "")
    return ("Schemes: top-1 difference against plain images per model (uncompressed, mean over seeds, percentage "
            f"points){jpeg}; top-1 with another key of the scheme; the highest mean SSIM any attack reaches against "
            "the plain images (attacks flagged under-trained left out); – where not measured")


def history_table(metrics: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The per-epoch training history of every trained model, from its ``metrics.json`` (``etcbench train``).

    Returns:
        Columns :data:`HISTORY_COLUMNS`, one row per model, scheme, seed and epoch, sorted; top-1 as fractions.

    Raises:
        EtcbenchError: a record without ``record`` and ``history``, no epoch at all, or an epoch twice.
    """
    rows = []
    for i, result in enumerate(metrics):
        record, history = (result.get("record"), result.get("history")) if isinstance(result, Mapping) else (None, None)
        if not isinstance(record, Mapping) or not isinstance(history, list):
            raise EtcbenchError(f"training record {i} has no 'record' and 'history' (not a metrics.json of "
                                "'etcbench train')")
        missing = [k for k in (*_SETTING, "model", "scheme", "seed") if k not in record]
        if missing:
            raise EtcbenchError(f"training record {i} lacks key(s) {', '.join(missing)}")
        for epoch in history:
            rows.append({**{k: record[k] for k in (*_SETTING, "model", "scheme", "seed")},
                         **{k: epoch.get(k) for k in HISTORY_COLUMNS[6:]}})
    if not rows:
        raise EtcbenchError("no training history (no epoch in any metrics.json) for the training curves")
    df = _frame(rows, HISTORY_COLUMNS, "training history")
    df = _cast(df, {"dataset": str, "image_size": "int64", "block_size": "int64", "model": str, "scheme": str,
                    "seed": "int64", "epoch": "int64", **dict.fromkeys(HISTORY_COLUMNS[7:], "float64")},
               "training history")
    keys = [*_SETTING, "model", "scheme", "seed", "epoch"]
    _check_duplicates(df, keys, "training history")
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def column_label(name: str) -> str:
    """The human name of a column in the Markdown and LaTeX files (the CSV keeps the machine name).

    Listed names (:data:`COLUMN_LABELS`) first, then the name patterns of the per-model and per-quality columns;
    any other machine name (``n_things``) reads with spaces and a capital; a name without an underscore (a scheme
    column of the comparison table) stays as it is.

    >>> column_label("top1_mean_pct"), column_label("jpeg_q70_top1_pct_vit"), column_label("n_things")
    ('Top-1 (%)', 'Top-1 at JPEG q70, vit (%)', 'N things')
    >>> column_label("etc-gray")
    'etc-gray'
    """
    if name in COLUMN_LABELS:
        return COLUMN_LABELS[name]
    for pattern, label in _LABEL_PATTERNS:
        match = re.fullmatch(pattern, name)
        if match:
            return label.format(*match.groups())
    if "_" not in name:
        return name
    text = name.replace("_", " ")
    return text[:1].upper() + text[1:]


def _column_format(name: str, values: Iterable[float], default: str) -> str:
    """The printf format of a float column: :data:`COLUMN_FORMATS`, then the name patterns, then ``%.0f`` where
    every finite value is an integer, else ``default``."""
    if name in COLUMN_FORMATS:
        return COLUMN_FORMATS[name]
    for pattern, fmt in _FORMAT_PATTERNS:
        if re.fullmatch(pattern, name):
            return fmt
    finite = [v for v in values if math.isfinite(v)]
    if finite and all(v == int(v) for v in finite):
        return "%.0f"
    return default


def _is_na(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _display(df: pd.DataFrame, float_format: str, na_rep: str) -> pd.DataFrame:
    """All cells as strings: floats through their column's format (:func:`_column_format`), booleans as yes/no,
    subsampling codes as ``4:2:0``, missing values as ``na_rep``."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        values = list(df[col])  # Python scalars (numpy floats are floats), pd.NA for missing extension values
        fmt = _column_format(col, [v for v in values if isinstance(v, float) and not _is_na(v)], float_format)
        names = _VALUE_LABELS.get(col, {})
        out[col] = [na_rep if _is_na(v) else "yes" if v is True or isinstance(v, np.bool_) and v
                    else "no" if v is False or isinstance(v, np.bool_) else fmt % v if isinstance(v, float)
                    else names.get(str(v), str(v)) for v in values]
    return out.astype(object)


def _latex(text: str) -> str:
    """LaTeX for the characters the labels and cells use beyond LaTeX's specials (already escaped)."""
    return text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("–", "--")


def _midrules(latex: str, keys: list[tuple]) -> str:
    """``\\midrule`` between the body rows of ``latex`` where ``keys`` (one per row) changes."""
    lines = latex.split("\n")
    start = lines.index(r"\midrule") + 1
    out = lines[:start]
    for i, line in enumerate(lines[start:start + len(keys)]):
        if i > 0 and keys[i] != keys[i - 1]:
            out.append(r"\midrule")
        out.append(line)
    return "\n".join(out + lines[start + len(keys):])


def _part_title(values: Mapping[str, Any]) -> str:
    """The heading of one part of a split table: ``cifar10, 64 px, block 16`` for a setting, else ``name value``."""
    known = {"dataset": "{}", "image_size": "{} px", "block_size": "block {}"}
    return ", ".join(known.get(k, f"{column_label(k)} {{}}").format(v) for k, v in values.items())


def write_table(df: pd.DataFrame, stem: Path, caption: str, float_format: str = "%.4f", *,
                labels: Mapping[str, str] | None = None, group_by: Sequence[str] | None = None,
                split_by: Sequence[str] | None = None) -> list[Path]:
    """Write ``stem.csv``, ``stem.md`` and ``stem.tex``, each atomically.

    The CSV is tidy, keeps the machine column names and full float precision (``index=False``, missing values as
    empty cells, so ``pd.read_csv`` reads them back as NA). Markdown and LaTeX (booktabs rules) show human column
    names (:func:`column_label`, or ``labels``), each float column through its own format (:func:`_column_format`:
    integers without decimals) and missing values as "–" (``--`` in LaTeX).

    Args:
        df: the table.
        stem: output path without suffix (``results/report/accuracy`` gives ``accuracy.csv`` ...).
        caption: one-line caption (Markdown heading and LaTeX caption; LaTeX specials are escaped).
        float_format: printf-style format for float columns that no column format covers.
        labels: human column names that replace :func:`column_label`'s.
        group_by: columns whose change starts a new block (a ``\\midrule`` in LaTeX), e.g. the setting.
        split_by: columns (e.g. the setting) whose values split the Markdown and LaTeX into one table each, headed
            by those values, without them and without the columns that are missing throughout that part (a wide
            table whose settings have different models stays readable); the CSV stays one table.

    Returns:
        The three paths written, in the order csv, md, tex.
    """
    stem = Path(stem)
    try:
        float_format % 1.0
    except (TypeError, ValueError):
        raise EtcbenchError(f"float_format {float_format!r} is not a printf-style float format") from None
    csv_path, md_path, tex_path = (stem.parent / f"{stem.name}.{ext}" for ext in ("csv", "md", "tex"))

    with atomic_write(csv_path, binary=False) as fh:
        df.to_csv(fh, index=False, na_rep="", lineterminator="\n")

    parts = [(None, df)]
    if split_by and len(df):
        keys = list(split_by)
        parts = [(dict(zip(keys, key, strict=True)), part.drop(columns=keys))
                 for key, part in df.groupby(keys, sort=False)]
        parts = [(head, part.loc[:, [c for c in part.columns if not part[c].map(_is_na).all()]])
                 for head, part in parts]
    md_parts, tex_parts = [], []
    for i, (head, part) in enumerate(parts):
        names = {c: (labels or {}).get(c, column_label(c)) for c in part.columns}
        shown = _display(part, float_format, MISSING)
        numeric = [pd.api.types.is_numeric_dtype(part[c].dtype) and not pd.api.types.is_bool_dtype(part[c].dtype)
                   for c in part.columns]
        markdown = shown.rename(columns=names).to_markdown(index=False, disable_numparse=True,
                                                           colalign=tuple("right" if n else "left" for n in numeric))
        title = caption if head is None else f"{caption} ({_part_title(head)})"
        latex = shown.rename(columns=names).to_latex(
            index=False, escape=True, caption=_latex_escape(title),
            label=f"tab:{stem.name}" if head is None else f"tab:{stem.name}-{i + 1}",
            column_format="".join("r" if n else "l" for n in numeric))
        if group_by and len(part) and all(c in part.columns for c in group_by):
            latex = _midrules(latex, list(part[list(group_by)].itertuples(index=False, name=None)))
        md_parts.append(markdown if head is None else f"### {_part_title(head)}\n\n{markdown}")
        tex_parts.append(_latex(latex))
    with atomic_write(md_path, binary=False) as fh:
        fh.write(f"## {caption}\n\n" + "\n\n".join(md_parts) + "\n")
    with atomic_write(tex_path, binary=False) as fh:
        fh.write("\n".join(tex_parts))

    log.info("wrote table %s.{csv,md,tex} (%d rows)", stem, len(df))
    return [csv_path, md_path, tex_path]
