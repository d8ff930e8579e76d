"""Tidy result tables from the accuracy and compression records, and their CSV / Markdown / LaTeX files.

The records are plain dicts as loaded from JSON. The paper's published numbers are unknown, so any paper column
holds the string ``"not available"`` and no paper value is ever invented.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import EtcbenchError
from ..io import atomic_write
from .stats import ci_halfwidth

__all__ = [
    "ACCURACY_COLUMNS",
    "COMPRESSION_COLUMNS",
    "SUMMARY_COLUMNS",
    "PAPER_NOT_AVAILABLE",
    "PAPER_NOTE",
    "accuracy_table",
    "compression_table",
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
                       "psnr", "psnr_std", "n_images", "jpeg_aligned", "jpeg_mode"]
SUMMARY_COLUMNS = ["dataset", "image_size", "block_size", "model", "scheme", "top1_mean_pct", "top1_std_pct",
                   "top1_ci95_pct", "n_seeds",
                   "paper_top1"]
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
PAPER_NOT_AVAILABLE = "not available"
PAPER_NOTE = "Paper values: not available (the paper's tables are not known; see docs/paper.md §12)."

_ACC_KEYS = ["dataset", "image_size", "block_size", "model", "scheme", "subsampling", "jpeg_quality", "seed"]
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
                    "psnr": "float64", "psnr_std": "float64", "n_images": "int64", "jpeg_aligned": bool,
                    "jpeg_mode": str},
               "compression")
    _check_duplicates(df, _COMP_KEYS, "compression")
    return _sorted(df, _COMP_KEYS)[COMPRESSION_COLUMNS]


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
                    **{c: "float64" for c in floats}}, "attack")
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


def accuracy_summary(acc: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread of top-1 (%) over seeds on uncompressed test images.

    Args:
        acc: output of :func:`accuracy_table`.

    Returns:
        Columns :data:`SUMMARY_COLUMNS`: one row per dataset, image_size, block_size, model, scheme with
        ``top1_mean_pct``, ``top1_std_pct`` (sample std, ddof=1; NaN for a single seed), ``top1_ci95_pct`` (the
        half-width of the 95% Student-t confidence interval of the mean, :mod:`.stats`; NaN for a single seed),
        ``n_seeds`` and ``paper_top1`` = "not available". Empty (with these columns) when there is no uncompressed row.
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
    out["paper_top1"] = PAPER_NOT_AVAILABLE
    return out.reset_index()[SUMMARY_COLUMNS]


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in text)


def _display(df: pd.DataFrame, float_format: str, na_rep: str) -> pd.DataFrame:
    """All cells as strings: floats through ``float_format``, missing values as ``na_rep``."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_float_dtype(s.dtype):
            out[col] = [na_rep if pd.isna(v) else float_format % v for v in s]
        else:
            out[col] = [na_rep if (v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))) else str(v)
                        for v in s]
    return out.astype(object)


def write_table(df: pd.DataFrame, stem: Path, caption: str, float_format: str = "%.4f") -> list[Path]:
    """Write ``stem.csv``, ``stem.md`` and ``stem.tex``, each atomically.

    The CSV is tidy and keeps full float precision (``index=False``, missing values as empty cells, so
    ``pd.read_csv`` reads them back as NA). Markdown and LaTeX show floats through ``float_format`` and missing
    values as ``--``; both carry the note that paper values are not available.

    Args:
        df: the table.
        stem: output path without suffix (``results/report/accuracy`` gives ``accuracy.csv`` ...).
        caption: one-line caption (Markdown heading and LaTeX caption; LaTeX specials are escaped).
        float_format: printf-style float format for the Markdown and LaTeX files.

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

    shown = _display(df, float_format, "--")
    numeric = [pd.api.types.is_numeric_dtype(df[c].dtype) and not pd.api.types.is_bool_dtype(df[c].dtype)
               for c in df.columns]
    markdown = shown.to_markdown(index=False, disable_numparse=True,
                                 colalign=tuple("right" if n else "left" for n in numeric))
    with atomic_write(md_path, binary=False) as fh:
        fh.write(f"## {caption}\n\n{markdown}\n\n{PAPER_NOTE}\n")

    latex = shown.to_latex(index=False, escape=True, caption=_latex_escape(caption), label=f"tab:{stem.name}",
                           column_format="".join("r" if n else "l" for n in numeric))
    with atomic_write(tex_path, binary=False) as fh:
        fh.write(f"% {PAPER_NOTE}\n{latex}")

    log.info("wrote table %s.{csv,md,tex} (%d rows)", stem, len(df))
    return [csv_path, md_path, tex_path]
