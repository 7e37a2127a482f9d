"""The optimizer of a :class:`~resnet_course.training.config.TrainConfig`: SGD or AdamW with per-layer learning rates and
weight decay kept off BatchNorm and bias parameters."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from resnet_course.training.config import TrainConfig

__all__ = ["build_optimizer"]


def _lr_factor(name: str, factors: dict[str, float]) -> float:
    """The factor of the longest prefix of ``name`` in ``factors`` (1 when none matches)."""
    matches = [prefix for prefix in factors if name.startswith(prefix)]
    return factors[max(matches, key=len)] if matches else 1.0


def build_optimizer(model: nn.Module, config: TrainConfig, processes: int = 1) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over the trainable parameters of ``model`` (``processes``: of a data-parallel
    job, whose global batch sets the default learning rate).

    Parameters are grouped by learning rate (``lr × lr_factors``, see :class:`TrainConfig`) and, unless
    ``decay_norm_and_bias``, by weight decay: 1-D parameters (BatchNorm weights/biases and biases) are not
    decayed. Each group has a ``"name"`` such as ``"lr x0.1, decay"`` for display.

    PyTorch's default implementation (``fused=True`` gained nothing on a whole ResNet-20 run on a 2-core CPU:
    ``benchmarks/speed_devices.py``, ``benchmarks/RESULTS.md``).
    """
    lr, wd = config.effective_lr(processes), config.effective_weight_decay()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters (did you freeze everything?)")
    unused = [prefix for prefix in config.lr_factors if not any(n.startswith(prefix) for n, _ in named)]
    if unused:
        examples = ", ".join(repr(n) for n, _ in named[:2]) + (
            f", ..., {named[-1][0]!r}" if len(named) > 2 else ""
        )
        raise ValueError(
            f"lr_factors prefix(es) {unused} match no trainable parameter of the model; "
            f"its trainable parameter names are {examples}"
        )
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, p in named:
        factor = _lr_factor(name, config.lr_factors)
        decayed = config.decay_norm_and_bias or p.ndim > 1
        group = groups.setdefault(
            (factor, decayed),
            {
                "params": [],
                "lr": lr * factor,
                "weight_decay": wd if decayed else 0.0,
                "lr_factor": factor,
                "name": (f"lr x{factor:g}, " if config.lr_factors else "")
                + ("decay" if decayed else "no decay"),
            },
        )
        group["params"].append(p)
    ordered = sorted(groups.values(), key=lambda g: (-g["lr_factor"], g["weight_decay"] == 0))
    if config.optimizer == "sgd":
        return torch.optim.SGD(ordered, lr=lr, momentum=config.momentum, nesterov=config.nesterov)
    return torch.optim.AdamW(ordered, lr=lr)
