"""Checks of notebook 05's exercises: the warm-up + cosine learning rate, and which split selects a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resnet_course.checks.framework import Hint, friendly_check, student_call

__all__ = ["check_model_selection_split", "check_warmup_cosine_lr"]


# --- notebook 05 ---
# --------------------------------------------------------------------------------------------------
# Notebook 05: learning rate of a warm-up + cosine schedule; which split selects the model
# --------------------------------------------------------------------------------------------------


@friendly_check
def check_warmup_cosine_lr(lr_fn: Callable[[int, float, int, int], Any]) -> str:
    """Check ``lr_fn(step, base_lr, warmup_steps, total_steps)`` against the engine's ``"cosine"`` schedule
    (:func:`resnet_course.training.schedules.lr_curve`): linear warm-up from ``0.1 × base_lr`` over ``warmup_steps``
    optimizer steps, then cosine annealing to 0 over the remaining steps. Steps are counted from 0."""
    import math

    from resnet_course.training.config import TrainConfig
    from resnet_course.training.schedules import lr_curve

    cases = [
        (10, 2.0, 7, 0.4),
        (4, 1.0, 25, 0.1),
        (3, 0.0, 10, 0.05),
    ]  # epochs, warm-up epochs, steps/epoch, lr
    for epochs, warmup_epochs, steps_per_epoch, lr in cases:
        config = TrainConfig(epochs=epochs, schedule="cosine", warmup_epochs=warmup_epochs, lr=lr)
        curve = lr_curve(config, steps_per_epoch)
        total = epochs * steps_per_epoch
        warmup = round(warmup_epochs * steps_per_epoch)
        probes = sorted({0, 1, max(warmup - 1, 0), warmup, warmup + 1, (warmup + total) // 2, total - 1})
        for step in probes:
            got = student_call(lr_fn, step, lr, warmup, total, what=f"lr_at({step}, {lr}, {warmup}, {total})")
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise Hint(f"lr_at returned {got!r}, not a number", "return a float") from None
            want = curve[step]
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                continue
            where = f"lr_at({step}, base_lr={lr}, warmup_steps={warmup}, total_steps={total}) = {got:.6g}, expected {want:.6g}"
            if step < warmup:
                if math.isclose(got, lr * step / warmup, rel_tol=1e-6, abs_tol=1e-12):
                    hint = (
                        "warm-up starts at 0.1 × base_lr, not 0: base_lr × (0.1 + 0.9 × step / warmup_steps)"
                    )
                else:
                    hint = "during warm-up: base_lr × (0.1 + 0.9 × step / warmup_steps)"
            else:
                t, span = step - warmup, total - warmup
                if math.isclose(got, 0.5 * lr * (1 + math.cos(math.pi * step / total)), rel_tol=1e-6):
                    hint = "the cosine starts after the warm-up: use t = step − warmup_steps over total_steps − warmup_steps"
                elif span > 1 and math.isclose(
                    got, 0.5 * lr * (1 + math.cos(math.pi * t / (span - 1))), rel_tol=1e-6
                ):
                    hint = "the cosine spans total_steps − warmup_steps steps (it would reach 0 one step after the last)"
                else:
                    hint = "after warm-up: 0.5 × base_lr × (1 + cos(π × (step − warmup_steps) / (total_steps − warmup_steps)))"
            raise Hint(where, hint)
    return "your warm-up + cosine learning rate matches the engine's schedule at every probed step"


@friendly_check
def check_model_selection_split(answer: Any) -> str:
    """Which split should pick the epoch, learning rate or model? ``"train"``, ``"val"`` or ``"test"``."""
    text = str(answer).strip().lower()
    aliases = {"validation": "val", "valid": "val", "training": "train"}
    text = aliases.get(text, text)
    if text == "val":
        return (
            "the validation split: choose with it, then evaluate the chosen model on the test split once; "
            "its accuracy is then an unbiased estimate"
        )
    if text == "test":
        raise Hint(
            "choosing with the test split makes its accuracy optimistic (you picked the luckiest option on it)",
            "keep the test split for one final measurement; choose with a split held out of the training data",
        )
    if text == "train":
        raise Hint(
            "training accuracy rewards memorising: the biggest, longest-trained model always wins on it",
            "choose with data the model was not trained on, but not the test split",
        )
    raise Hint(
        f"{answer!r} is not one of 'train', 'val', 'test'", "answer with the name of a split, e.g. 'val'"
    )
