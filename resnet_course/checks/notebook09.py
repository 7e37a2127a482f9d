"""Checks of notebook 09's exercises: label-smoothed targets, and gradient accumulation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnet_course.checks.framework import Hint, friendly_check, student_call

__all__ = ["check_accumulation", "check_smoothed_targets"]


# --- notebook 09 ---


@friendly_check
def check_smoothed_targets(fn: Callable[..., Any]) -> str:
    """Check ``fn(labels, num_classes, eps) -> (N, num_classes)`` label-smoothed target distributions
    ``q = (1 - eps) · one_hot + eps / num_classes`` (Szegedy et al. 2016, Sec. 7), and that the cross-entropy
    with ``q`` equals ``F.cross_entropy(logits, labels, label_smoothing=eps)``."""
    import torch.nn.functional as F

    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_smoothed_targets(smoothed_targets)",
        )
    g = torch.Generator().manual_seed(0)
    for num_classes, eps in ((10, 0.1), (4, 0.3), (5, 0.0)):
        labels = torch.randint(0, num_classes, (6,), generator=g)
        logits = torch.randn(6, num_classes, generator=g)
        q = student_call(
            fn, labels.clone(), num_classes, eps, what=f"smoothed_targets(labels, {num_classes}, {eps})"
        )
        if not isinstance(q, torch.Tensor):
            raise Hint(
                f"expected a tensor, got {type(q).__name__}",
                "return a float tensor of shape (N, num_classes)",
            )
        if tuple(q.shape) != (6, num_classes):
            raise Hint(
                f"got shape {tuple(q.shape)}, expected (6, {num_classes}) for 6 labels",
                "one row per label, one column per class (F.one_hot(labels, num_classes))",
            )
        q = q.double()
        expected = (1 - eps) * F.one_hot(labels, num_classes).double() + eps / num_classes
        if not torch.allclose(q.sum(1), torch.ones(6, dtype=torch.float64), atol=1e-6):
            raise Hint(
                f"rows sum to {q.sum(1)[0].item():.4f}, not 1 (eps={eps}, {num_classes} classes)",
                "the target must be a probability distribution: (1 - eps) on the one-hot plus eps spread uniformly",
            )
        if not torch.allclose(q, expected, atol=1e-6):
            true_val = q[0, labels[0]].item()
            hint = (
                f"the true class should get 1 - eps + eps/K = {1 - eps + eps / num_classes:.4f} "
                f"and every other class eps/K = {eps / num_classes:.4f}"
            )
            if abs(true_val - (1 - eps)) < 1e-6:
                hint += " (you gave the true class 1 - eps: the uniform part eps/K goes to every class, the true one too)"
            raise Hint(
                f"wrong values for {num_classes} classes, eps={eps}: true class gets {true_val:.4f}", hint
            )
        ours = -(q * F.log_softmax(logits.double(), 1)).sum(1).mean()
        torch_ce = F.cross_entropy(logits.double(), labels, label_smoothing=eps)
        if not torch.allclose(ours, torch_ce, atol=1e-6):  # cannot differ when q is right; kept as the link
            raise Hint(
                f"cross-entropy with your targets {ours.item():.5f} ≠ PyTorch's {torch_ce.item():.5f}",
                "check the formula q = (1 - eps) * one_hot + eps / num_classes",
            )
    return "targets match, and −Σ q·log p equals F.cross_entropy(..., label_smoothing=eps)"


def _all_close(got: list[torch.Tensor], expected: list[torch.Tensor]) -> bool:
    return all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(got, expected, strict=True))


@friendly_check
def check_accumulation(fn: Callable[..., Any]) -> str:
    """Check ``fn(model, x, y, accum_steps)``: it splits the batch into ``accum_steps`` micro-batches and
    calls ``backward`` on each so that the accumulated ``.grad`` equals the gradient of the mean loss over
    the whole batch (no BatchNorm in the test model, so the two must agree up to rounding)."""
    import torch.nn.functional as F

    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_accumulation(accumulate_gradients)",
        )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))
    x, y = torch.randn(24, 3, 2, 2), torch.randint(0, 5, (24,))

    def grads_of(loss: torch.Tensor) -> list[torch.Tensor]:
        return [gr.detach() for gr in torch.autograd.grad(loss, list(model.parameters()))]

    reference = grads_of(F.cross_entropy(model(x), y))
    for accum in (4, 3):
        last = grads_of(F.cross_entropy(model(x.chunk(accum)[-1]), y.chunk(accum)[-1]) / accum)
        model.zero_grad(set_to_none=True)
        student_call(fn, model, x, y, accum, what=f"accumulate_gradients(model, x, y, {accum})")
        grads = [p.grad for p in model.parameters()]
        if any(gr is None for gr in grads):
            raise Hint(
                "some parameters have no gradient after your function",
                "call loss.backward() on every micro-batch (and don't zero the gradients in between)",
            )
        if _all_close(grads, reference):
            continue
        if _all_close(grads, [accum * gr for gr in reference]):
            raise Hint(
                f"the gradient is {accum}× too large (accum_steps={accum})",
                "each micro-batch loss is a mean over its own images: divide it by accum_steps before backward",
            )
        if _all_close(grads, last):
            raise Hint(
                "only the last micro-batch's gradient is left",
                "don't zero the gradients between micro-batches: backward() adds to .grad",
            )
        raise Hint(
            f"with accum_steps={accum} the accumulated gradient differs from the full-batch gradient",
            "split x and y into accum_steps equal chunks (torch.chunk), backward (loss / accum_steps) on each",
        )
    return "accumulated gradients equal the full-batch gradient (accum_steps 4 and 3)"
