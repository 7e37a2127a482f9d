"""Checks of notebook 08's exercises: a feature extractor, and parameter groups for fine-tuning."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from resnet_course.checks.framework import Hint, describe_error, first_items, friendly_check, student_call

__all__ = ["check_feature_extractor", "check_param_groups"]


# --- notebook 08 ---


def _fresh_resnet20(seed: int = 0) -> nn.Module:
    from resnet_course.models.registry import create

    torch.manual_seed(seed)
    return create("resnet20", num_classes=10)


@friendly_check
def check_feature_extractor(fn: Callable[..., Any]) -> str:
    """Check ``fn(model, num_classes) -> model``: every pretrained weight frozen, ``fc`` replaced by a new
    ``nn.Linear(in_features, num_classes)`` that is the only trainable part, the backbone's weights unchanged.

    Tried on a course ResNet-20 (64 features, 10 classes) with 3 and with 7 new classes, so a head size
    copied from ResNet-18 (512 features) or a hard-coded class count fails.
    """
    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_feature_extractor(feature_extractor)",
        )
    for num_classes in (3, 7):
        model = _fresh_resnet20()
        before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
        in_features = model.fc.in_features
        out = student_call(fn, model, num_classes, what=f"feature_extractor(model, {num_classes})")
        if not isinstance(out, nn.Module):
            raise Hint(
                f"feature_extractor returned {type(out).__name__}, not the model",
                "end the function with `return model`",
            )
        fc = getattr(out, "fc", None)
        if not isinstance(fc, nn.Linear):
            raise Hint(
                "the returned model has no nn.Linear called fc",
                "replace the head with model.fc = nn.Linear(model.fc.in_features, num_classes)",
            )
        if fc.in_features != in_features:
            raise Hint(
                f"the new head takes {fc.in_features} features, the backbone gives {in_features}",
                "read the width from the old head: model.fc.in_features (512 is only ResNet-18's)",
            )
        if fc.out_features != num_classes:
            raise Hint(
                f"the new head has {fc.out_features} outputs for {num_classes} classes",
                "use num_classes for out_features",
            )
        trainable = sorted(n for n, p in out.named_parameters() if p.requires_grad)
        if trainable != ["fc.bias", "fc.weight"]:
            extra = [n for n in trainable if not n.startswith("fc.")]
            if extra:
                raise Hint(
                    f"{len(extra)} backbone tensors are still trainable (e.g. {first_items(extra, 2)})",
                    "set p.requires_grad = False for every parameter *before* you create the new head",
                )
            raise Hint(
                f"trainable parameters are {trainable}, expected only fc.weight and fc.bias",
                "the new nn.Linear is trainable by default: create it after freezing the rest",
            )
        after = out.state_dict()
        changed = [k for k, v in before.items() if k not in after or not torch.equal(after[k], v)]
        if changed:
            raise Hint(
                f"the backbone changed ({first_items(changed, 2)})",
                "keep the pretrained weights: only freeze them and swap the head",
            )
        out.eval()
        with torch.no_grad():
            y = student_call(out, torch.randn(2, 3, 32, 32), what="the returned model's forward pass")
        if tuple(y.shape) != (2, num_classes):
            raise Hint(
                f"the model outputs shape {tuple(y.shape)}, expected (2, {num_classes})",
                "the head must map the pooled features to num_classes logits",
            )
    return "backbone frozen, new fc head is the only trainable part (tried with 3 and 7 classes)"


@friendly_check
def check_param_groups(fn: Callable[..., Any]) -> str:
    """Check ``fn(model, lr, backbone_factor) -> list of dicts`` for discriminative fine-tuning: the head's
    parameters at ``lr``, every other trainable parameter at ``lr * backbone_factor``, each exactly once,
    frozen parameters left out, and ``torch.optim.SGD`` accepts the groups."""
    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_param_groups(param_groups)",
        )
    model = _fresh_resnet20()
    model.conv1.weight.requires_grad_(False)  # one frozen tensor: it must not be handed to the optimizer
    lr, factor = 0.05, 0.1
    groups = student_call(fn, model, lr, factor, what=f"param_groups(model, {lr}, {factor})")
    if isinstance(groups, dict) or not isinstance(groups, list | tuple):
        raise Hint(
            f"expected a list of dicts, got {type(groups).__name__}",
            'return [{"params": [...], "lr": ...}, {"params": [...], "lr": ...}]',
        )
    names = {id(p): n for n, p in model.named_parameters()}
    seen: dict[str, float] = {}
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or "params" not in g or "lr" not in g:
            raise Hint(
                f"group {i} is not a dict with 'params' and 'lr'",
                'each group looks like {"params": list_of_parameters, "lr": 0.01}',
            )
        for p in list(g["params"]):
            n = names.get(id(p))
            if n is None:
                raise Hint(
                    f"group {i} holds a tensor that is not a parameter of the model",
                    "take the parameters from model.named_parameters()",
                )
            if n in seen:
                raise Hint(f"{n} appears in two groups", "put every parameter in exactly one group")
            seen[n] = float(g["lr"])
    if "conv1.weight" in seen:
        raise Hint(
            "a frozen parameter (requires_grad=False) was put in a group",
            "skip parameters with p.requires_grad == False",
        )
    wanted = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(wanted - set(seen))
    if missing:
        raise Hint(
            f"{len(missing)} trainable parameters are in no group (e.g. {first_items(missing, 2)})",
            "the backbone group holds every trainable parameter whose name does not start with 'fc.'",
        )
    for n, group_lr in seen.items():
        expected = lr if n.startswith("fc.") else lr * factor
        if abs(group_lr - expected) > 1e-12 * max(1.0, expected):
            part = "the head" if n.startswith("fc.") else "the backbone"
            raise Hint(
                f"{n} ({part}) gets lr {group_lr:g}, expected {expected:g}",
                "head: lr; backbone: lr * backbone_factor",
            )
    try:
        torch.optim.SGD(groups, lr=lr, momentum=0.9)
    except Exception as err:
        raise Hint(
            f"torch.optim.SGD rejects the groups: {describe_error(err)}",
            "each group is a dict with a 'params' list",
        ) from None
    return f"{len(groups)} groups: head at lr {lr:g}, backbone at {lr * factor:g}, frozen tensors left out"
