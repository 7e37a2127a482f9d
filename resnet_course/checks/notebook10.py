"""Checks of notebook 10's exercise: top-k classes from logits, against ``Classifier.predict``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnet_course.checks.framework import Hint, friendly_check, student_call

__all__ = ["check_top_k"]


# --- notebook 10 ---
# --------------------------------------------------------------------------------------------------
# Notebook 10: top-k classes from logits
# --------------------------------------------------------------------------------------------------


def _tiny_classifier() -> Any:
    """A small random :class:`~resnet_course.apps.inference.Classifier` (7 classes, 8×8 images) to check against."""
    from resnet_course.apps.inference import Classifier

    torch.manual_seed(10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 7))
    with torch.no_grad():
        model[1].weight.mul_(20.0)  # spread the logits so that no two probabilities tie
    classes = ["apple", "bee", "cloud", "dune", "elm", "fern", "gull"]
    return Classifier(model, classes, {"image_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3})


@friendly_check
def check_top_k(top_k_fn: Callable[..., Any]) -> str:
    """Notebook 10: ``top_k_fn(logits, classes, k)`` must equal ``Classifier.predict(image, top_k=k)[0]``.

    ``logits`` is the model's 1-D output for one image; the answer is ``[(class name, probability), ...]``,
    most probable first, ``min(k, number of classes)`` pairs, probabilities from the softmax.
    """
    clf = _tiny_classifier()
    gen = torch.Generator().manual_seed(11)
    images = [torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=gen) for _ in range(3)]
    for image, k in zip(images, (5, 1, 7), strict=True):
        expected = clf.predict(image, top_k=k)[0]
        with torch.no_grad():
            logits = clf.model(clf.prepare(image))[0]
        got = student_call(
            top_k_fn, logits.clone(), list(clf.classes), k, what=f"top_k(logits, classes, k={k})"
        )
        try:
            pairs = [(str(name), float(p)) for name, p in got]
        except (TypeError, ValueError):
            raise Hint(
                f"top_k returned {type(got).__name__} that is not a list of (name, probability) pairs",
                "return e.g. [('cat', 0.71), ('dog', 0.20), ...]",
            ) from None
        if len(pairs) != len(expected):
            raise Hint(
                f"for k={k} you returned {len(pairs)} pairs, expected {len(expected)}",
                "return exactly k pairs (k ≤ number of classes here)",
            )
        names = [n for n, _ in pairs]
        if names == [n for n, _ in reversed(expected)] and k > 1:
            raise Hint(
                "the classes are in ascending order", "put the most probable class first (sort descending)"
            )
        if names != [n for n, _ in expected]:
            if all(n.lstrip("-").isdigit() for n in names):
                raise Hint("you returned class indices, not names", "look the names up: classes[i]")
            raise Hint(
                f"for k={k} your classes are {names}, expected {[n for n, _ in expected]}",
                "take the k largest entries (torch.topk or argsort), best first",
            )
        probs = [p for _, p in pairs]
        want = [p for _, p in expected]
        if any(abs(a - b) > 1e-5 for a, b in zip(probs, want, strict=True)):
            if any(p < 0 or p > 1 for p in probs) or abs(sum(probs) - sum(want)) > 1e-3:
                raise Hint(
                    "the classes are right but the numbers are not probabilities",
                    "apply the softmax to the logits first: logits.softmax(0)",
                )
            raise Hint(
                f"probabilities {probs} differ from {want}",
                "use the softmax over all classes, then take the top k",
            )
    return "top_k agrees with Classifier.predict (names and probabilities) for k = 5, 1 and all 7 classes"
