"""Notebook 07's exercise: a ResNet-20 with a hidden gradient bug, and the check of the student's answer."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet_course.checks.framework import Hint, friendly_check

__all__ = ["check_gradient_bug", "gradient_bug_model"]


# --- notebook 07 ---
# --------------------------------------------------------------------------------------------------
# Notebook 07: find the parameter that gets no gradient
# --------------------------------------------------------------------------------------------------

_BUG_ATTRIBUTE = "_gradient_bug_parameter"


def gradient_bug_model(seed: int = 0, num_classes: int = 10) -> nn.Module:
    """Notebook 07's exercise: a ResNet-20 with one hidden bug that stops one weight from learning.

    Inside one residual block, the output of the first convolution is detached from the autograd graph
    (a forward hook returns ``output.detach()`` — the effect of a stray ``.detach()``, ``.item()``, NumPy
    round trip or ``torch.no_grad()`` block in a ``forward``). No gradient reaches that convolution's weight;
    every other parameter still gets one (the shortcut carries the gradient past the cut). Which block is
    chosen depends on ``seed``.
    """
    from resnet_course.models.registry import create

    torch.manual_seed(seed)
    model = create("resnet20", num_classes=num_classes)
    candidates = [
        f"{name}.conv1" for name, m in model.named_modules() if name.count(".") == 1 and hasattr(m, "conv1")
    ]
    chosen = candidates[
        int(torch.randint(len(candidates), (1,), generator=torch.Generator().manual_seed(seed)))
    ]
    dict(model.named_modules())[chosen].register_forward_hook(lambda _m, _inputs, output: output.detach())
    setattr(model, _BUG_ATTRIBUTE, f"{chosen}.weight")
    return model


@friendly_check
def check_gradient_bug(answer: Any, model: nn.Module) -> str:
    """Notebook 07: ``answer`` names the parameter of :func:`gradient_bug_model` that gets no gradient.

    The parameter's name (``"layer2.1.conv1.weight"``) and its module's name (``"layer2.1.conv1"``) are
    both accepted.
    """
    truth = getattr(model, _BUG_ATTRIBUTE, None)
    if truth is None:
        raise Hint(
            "this is not the exercise's model",
            "pass the model from gradient_bug_model(...) (resnet_course.checks.notebook07)",
        )
    if not isinstance(answer, str):
        raise Hint(
            f"your answer is a {type(answer).__name__}",
            "answer with a name string such as 'layer1.0.conv2.weight'",
        )
    name = answer.strip()
    if name in (truth, truth.removesuffix(".weight")):
        return f"right: {truth} gets no gradient (its output is detached from the graph), so it never learns"
    params = dict(model.named_parameters())
    if name not in params and f"{name}.weight" not in params:
        raise Hint(
            f"{name!r} is not a parameter or layer of this model",
            "use a name from the 'name' column of parameter_grad_norms(model), e.g. 'layer1.0.conv1.weight'",
        )
    p = params.get(name, params.get(f"{name}.weight"))
    if p.grad is None:
        raise Hint(
            f"{name!r} has no gradient yet — did you run loss.backward() on this model?",
            "run one forward and backward pass, then read parameter_grad_norms(model)",
        )
    raise Hint(
        f"{name!r} does get a gradient (norm {float(p.grad.norm()):.3g})",
        "look for the row with grad_is_none = True (or grad_norm NaN) although requires_grad is True",
    )
