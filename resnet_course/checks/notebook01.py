"""Checks of notebook 01's exercise: final-epoch training errors from ``History`` objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resnet_course.checks.framework import Hint, first_items, friendly_check, student_call

__all__ = ["check_final_train_errors"]


# --- notebook 01 ---
# --------------------------------------------------------------------------------------------------
# Notebook 01: final-epoch training error from training histories
# --------------------------------------------------------------------------------------------------


def _series(history: Any, key: str) -> list[Any]:
    values = history.get(key) if isinstance(history, dict) else getattr(history, key, None)
    return list(values or [])


@friendly_check
def check_final_train_errors(errors_fn: Callable[[Any], Any], histories: dict[str, Any]) -> str:
    """Check ``errors_fn(histories) -> {name: final-epoch training error as a fraction}``.

    ``histories`` maps run names to :class:`resnet_course.training.history.History` objects (or dicts with
    ``train_acc``/``val_acc`` lists). Recognised mistakes: percentages instead of fractions, accuracy instead of
    error, the best epoch instead of the final one, validation instead of training accuracy, missing runs.
    """
    import math

    if not histories:
        raise Hint("there are no training histories to check against", "run the training cells above first")
    got = student_call(errors_fn, histories, what="final_train_errors(histories)")
    if not isinstance(got, dict):
        raise Hint(
            f"expected a dict {{run name: error}}, got {type(got).__name__}",
            "return e.g. {name: ... for name, h in histories.items()}",
        )
    missing = [name for name in histories if name not in got]
    if missing:
        raise Hint(f"no value for {first_items(missing)}", "return one entry per run in histories")
    for name, h in histories.items():
        train = [float(a) for a in _series(h, "train_acc")]
        if not train:
            raise Hint(f"run {name!r} has no recorded epochs", "train it first (its History is empty)")
        try:
            value = float(got[name])
        except (TypeError, ValueError):
            raise Hint(f"the value for {name!r} is {got[name]!r}, not a number", "return floats") from None
        expected = 1.0 - train[-1]
        if math.isclose(value, expected, abs_tol=1e-6):
            continue
        val = [a for a in _series(h, "val_acc") if a is not None]
        if math.isclose(value, 100 * expected, abs_tol=1e-4) and value > 1:
            hint = "give fractions in [0, 1], not percentages (the package uses fractions everywhere)"
        elif math.isclose(value, train[-1], abs_tol=1e-6):
            hint = "that is the accuracy; the error is 1 − accuracy"
        elif math.isclose(value, 1.0 - max(train), abs_tol=1e-6):
            hint = "that is the best epoch's error; use the final epoch, h.train_acc[-1]"
        elif math.isclose(value, 1.0 - train[0], abs_tol=1e-6):
            hint = "that is the first epoch; the final one is the last entry, h.train_acc[-1]"
        elif val and math.isclose(value, 1.0 - float(val[-1]), abs_tol=1e-6):
            hint = "that is the validation error; the training error uses h.train_acc"
        else:
            hint = "training error = 1 − h.train_acc[-1]"
        raise Hint(f"{name}: got {value:.4g}, expected {expected:.4g}", hint)
    return f"final-epoch training errors are right for all {len(histories)} runs"
