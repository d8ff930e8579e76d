"""The report's tables of the two arms beside the trained grid: the model-transformation arm (a plain-trained ViT
transformed with a scheme's key, next to the ViT trained on encrypted images) and the JPEG-trained arms (a model
trained and tested on the decoded JPEG ciphertexts, next to the same model trained on uncompressed ones)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ..errors import EtcbenchError
from ..labels import base_model, jpeg_variant
from . import tables

__all__ = ["TRANSFORMATION_COLUMNS", "JPEG_TRAINING_COLUMNS", "jpeg_training_caption", "jpeg_training_table",
           "transformation_caption", "transformation_table"]

TRANSFORMATION_COLUMNS = ["dataset", "image_size", "block_size", "scheme", "model", "seed", "plain_top1",
                          "transformed_top1", "equal_top1", "prediction_agreement", "max_abs_logit_diff",
                          "wrong_key_top1", "chance", "trained_top1"]
JPEG_TRAINING_COLUMNS = ["dataset", "image_size", "block_size", "scheme", "model", "seed", "train_input",
                         "jpeg_arm_top1", "uncompressed_arm_top1", "delta_top1_pp", "jpeg_arm_top1_uncompressed",
                         "uncompressed_arm_top1_uncompressed"]
_KEYS = ["dataset", "image_size", "block_size", "scheme", "model", "seed"]
tables.COLUMN_LABELS.update({
    "plain_top1": "Plain model, plain images", "transformed_top1": "Transformed, encrypted images",
    "equal_top1": "Equal top-1", "prediction_agreement": "Same predictions", "max_abs_logit_diff": "Max |Δ logit|",
    "wrong_key_top1": "Transformed, wrong key", "trained_top1": "Trained on encrypted images",
    "train_input": "Trained on", "jpeg_arm_top1": "JPEG-trained", "uncompressed_arm_top1": "Uncompressed-trained",
    "delta_top1_pp": "Δ top-1 (pp)", "jpeg_arm_top1_uncompressed": "JPEG-trained, uncompressed test",
    "uncompressed_arm_top1_uncompressed": "Uncompressed-trained, uncompressed test",
})
tables.COLUMN_FORMATS.setdefault("max_abs_logit_diff", "%.2e")


def _lookup(df: pd.DataFrame, **where: Any) -> float:
    """The one ``top1`` of ``df`` where every column equals its value (NaN when there is none)."""
    rows = df
    for col, value in where.items():
        rows = rows[rows[col].isna()] if value is None else rows[rows[col] == value]
    return float(rows["top1"].iloc[0]) if len(rows) else float("nan")


def transformation_table(records: Iterable[Mapping[str, Any]], accuracy: pd.DataFrame,
                         mismatch: pd.DataFrame) -> pd.DataFrame:
    """One row per transformed model (the ``transformation`` entries of the evaluation records): the plain model's
    top-1 on the plain test images, the transformed model's on the images encrypted with the key (equal up to float
    rounding: ``equal_top1``, the share of identical predictions and the largest logit difference say how exactly),
    its top-1 with a wrong key (the scheme's other key) against chance, and the top-1 of the same model trained on
    the encrypted images (NaN where the grid trains none)."""
    records = list(records)
    if not records:
        raise EtcbenchError("no model-transformation records to tabulate")
    rows = []
    for r in records:
        where = {k: r[k] for k in ("dataset", "image_size", "block_size", "scheme", "seed")}
        label = r["model"]
        rows.append({**where, "model": r["plain_model"], "plain_top1": r["plain_top1"],
                     "transformed_top1": r["transformed_top1"],
                     "equal_top1": bool(r["transformed_top1"] == r["plain_top1"]),
                     "prediction_agreement": r["prediction_agreement"], "max_abs_logit_diff": r["max_abs_logit_diff"],
                     "wrong_key_top1": _lookup(mismatch, **where, model=label, test_key="other"),
                     "chance": 1.0 / r["num_classes"],
                     "trained_top1": _lookup(accuracy, **where, model=r["plain_model"], jpeg_quality=None)})
    df = pd.DataFrame(rows, columns=TRANSFORMATION_COLUMNS)
    return df.sort_values(_KEYS, kind="mergesort").reset_index(drop=True)


def transformation_caption(table: pd.DataFrame) -> str:
    exact = "equal in every row" if table["equal_top1"].all() else "NOT equal in every row"
    return ("Model transformation: the plain-trained model transformed with the scheme's key, on the encrypted test "
            f"images, against the plain model on the plain images (top-1 {exact}), with a wrong key, and the model "
            "trained on encrypted images")


def jpeg_training_table(accuracy: pd.DataFrame) -> pd.DataFrame:
    """One row per JPEG-trained model (label ``<model>@q<quality>-<subsampling>``): its top-1 on the test set
    JPEG-coded as it was trained, next to the same model trained on uncompressed ciphertexts on that same JPEG
    test set (and the difference), and both on the uncompressed test set."""
    arms = accuracy[accuracy["model"].map(jpeg_variant).notna()]
    if arms.empty:
        raise EtcbenchError("no JPEG-trained models in the accuracy records")
    rows = []
    for key in arms[_KEYS].drop_duplicates().itertuples(index=False):
        rec = dict(zip(_KEYS, key, strict=True))
        base, (_, quality, subsampling) = base_model(rec["model"]), jpeg_variant(rec["model"])
        where = {k: v for k, v in rec.items() if k != "model"}
        jpeg_arm = _lookup(accuracy, **where, model=rec["model"], jpeg_quality=quality, subsampling=subsampling)
        plain_arm = _lookup(accuracy, **where, model=base, jpeg_quality=quality, subsampling=subsampling)
        rows.append({**where, "model": base, "train_input": f"JPEG q{quality} {subsampling[0]}:{subsampling[1]}:"
                                                                 f"{subsampling[2]}",
                     "jpeg_arm_top1": jpeg_arm, "uncompressed_arm_top1": plain_arm,
                     "delta_top1_pp": 100 * (jpeg_arm - plain_arm),
                     "jpeg_arm_top1_uncompressed": _lookup(accuracy, **where, model=rec["model"], jpeg_quality=None),
                     "uncompressed_arm_top1_uncompressed": _lookup(accuracy, **where, model=base, jpeg_quality=None)})
    df = pd.DataFrame(rows, columns=JPEG_TRAINING_COLUMNS)
    return df.sort_values(_KEYS, kind="mergesort").reset_index(drop=True)


def jpeg_training_caption(table: pd.DataFrame) -> str:
    del table
    return ("Training on what the client sends: top-1 on the JPEG test set of the training quality of the model "
            "trained on JPEG-decoded ciphertexts and of the same model trained on uncompressed ones "
            "(Δ: JPEG-trained minus uncompressed-trained), and both on the uncompressed test set")
