"""Confusion matrices from the predictions the evaluation stage records (scikit-learn's ``confusion_matrix``).

They are computed here, in the report, and not in the evaluation jobs: importing scikit-learn (and scipy) takes
seconds that every evaluation job would pay, and the report pays once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import EtcbenchError

__all__ = ["confusion_record", "confusion_from_predictions"]

_CELL = ("dataset", "image_size", "block_size", "model", "scheme", "seed", "test_key", "jpeg_quality", "subsampling")


def confusion_record(labels: np.ndarray, predictions: np.ndarray, num_classes: int,
                     class_names: list[str] | None = None) -> dict[str, Any]:
    """The confusion matrix of ``predictions`` against ``labels`` (rows = true class, columns = predicted, classes
    ``0 .. num_classes - 1`` whether they occur or not) as a JSON-ready record, with the class names if given."""
    from sklearn.metrics import confusion_matrix

    truth, guess = np.asarray(labels, dtype=np.int64).ravel(), np.asarray(predictions, dtype=np.int64).ravel()
    if truth.shape != guess.shape:
        raise EtcbenchError(f"{truth.size} labels but {guess.size} predictions")
    if truth.size and (min(truth.min(), guess.min()) < 0 or max(truth.max(), guess.max()) >= num_classes):
        raise EtcbenchError(f"a label or prediction outside the {num_classes} classes 0..{num_classes - 1}")
    classes = list(range(num_classes))
    matrix = confusion_matrix(truth, guess, labels=classes)
    if class_names is not None and len(class_names) != num_classes:
        raise EtcbenchError(f"{len(class_names)} class names for {num_classes} classes")
    return {"labels": classes, "class_names": list(class_names) if class_names is not None else None,
            "matrix": matrix.astype(int).tolist()}


def confusion_from_predictions(record: Mapping[str, Any]) -> dict[str, Any]:
    """The confusion record (the cell's keys, ``labels``, ``class_names``, ``matrix``) of one ``predictions`` entry
    of an evaluation record (the cell's keys, ``num_classes``, ``truth``, ``predicted`` and, where the evaluation
    knew them, ``class_names``)."""
    missing = [k for k in (*_CELL, "num_classes", "truth", "predicted") if k not in record]
    if missing:
        raise EtcbenchError(f"a predictions record lacks key(s) {', '.join(missing)}")
    return {**{k: record[k] for k in _CELL},
            **confusion_record(record["truth"], record["predicted"], int(record["num_classes"]),
                               record.get("class_names"))}
