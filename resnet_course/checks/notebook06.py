"""Checks of notebook 06's exercise: per-class recall from a confusion matrix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from resnet_course.checks.framework import Hint, friendly_check, student_call

__all__ = ["check_recall_from_confusion"]


# --- notebook 06 ---
# --------------------------------------------------------------------------------------------------
# Notebook 06: per-class recall from a confusion matrix
# --------------------------------------------------------------------------------------------------


def _labels_from_confusion(cm: Any) -> tuple[Any, Any]:
    """``(labels, preds)`` arrays whose confusion matrix is ``cm`` (rows = true, columns = predicted)."""
    import numpy as np

    cm = np.asarray(cm, dtype=int)
    labels, preds = [], []
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            labels += [i] * int(cm[i, j])
            preds += [j] * int(cm[i, j])
    return np.array(labels, dtype=np.int64), np.array(preds, dtype=np.int64)


@friendly_check
def check_recall_from_confusion(recall_fn: Callable[[Any], Any]) -> str:
    """Notebook 06: ``recall_fn(cm)`` must return each class's recall (diagonal / row sum), NaN for an empty class.

    The reference is :func:`resnet_course.analysis.classification.per_class_accuracy` on labels and predictions that
    produce the same matrix.
    """
    import numpy as np

    from resnet_course.analysis.classification import per_class_accuracy

    rng = np.random.default_rng(6)
    cases = [
        np.array([[5, 1], [3, 1]]),
        rng.integers(0, 20, size=(4, 4)) + np.diag(rng.integers(10, 40, size=4)),
        np.array([[7, 2, 1], [0, 0, 0], [4, 0, 9]]),  # class 1 has no test images
        rng.integers(0, 8, size=(10, 10)) + np.diag(rng.integers(20, 60, size=10)),
    ]
    for cm in cases:
        n = cm.shape[0]
        labels, preds = _labels_from_confusion(cm)
        expected = per_class_accuracy(labels, preds, n)
        got = student_call(recall_fn, cm.copy(), what="recall_from_confusion(cm)")
        try:
            got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got, dtype=float)
        except (TypeError, ValueError):
            raise Hint(
                f"recall_from_confusion returned {type(got).__name__}", "return a 1-D NumPy array"
            ) from None
        if got.shape != (n,):
            raise Hint(
                f"for a {n}×{n} matrix your function returned shape {got.shape}",
                f"return one recall per class: a 1-D array of length {n}",
            )
        empty = np.isnan(expected)
        if np.allclose(got[~empty], expected[~empty], atol=1e-9) and not np.array_equal(np.isnan(got), empty):
            raise Hint(
                "the recalls are right, but a class with no images should give NaN",
                "an all-zero row has no recall (0 / 0); return np.nan there, e.g. with np.where(support > 0, ..., np.nan)",
            )
        if not np.allclose(got, expected, atol=1e-9, equal_nan=True):
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = np.diag(cm) / cm.sum(axis=0)
            if np.allclose(got[~empty], precision[~empty], atol=1e-9, equal_nan=True):
                raise Hint(
                    "you computed precision (diagonal / column sums)",
                    "recall divides by the row sums: rows are the true classes, cm.sum(axis=1)",
                )
            raise Hint(
                f"for cm = {cm.tolist()} you returned {np.round(got, 4).tolist()}, "
                f"expected {np.round(expected, 4).tolist()}",
                "recall of class i = cm[i, i] / (sum of row i)",
            )
    return "recall_from_confusion matches the package on 4 matrices, including one with an empty class"
