"""Context managers that leave a model as they found it: train/eval mode (:func:`model_mode`) and, for
measurements that run forward passes in training mode, the buffers too (:func:`unchanged_state`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["model_mode", "unchanged_state"]


@contextlib.contextmanager
def model_mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Put ``model`` in train/eval mode for the block and restore every sub-module's own mode after."""
    saved = {m: m.training for m in model.modules()}
    model.train(train)
    try:
        yield
    finally:
        for m, was_training in saved.items():
            m.training = was_training


@contextlib.contextmanager
def unchanged_state(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block on ``model`` and put its state back afterwards, even when the block raises: every buffer
    (BatchNorm running statistics, which a training-mode forward pass updates) gets its value back, and every
    sub-module its own train/eval mode. Parameters and gradients are not touched: a measurement that must
    leave them alone simply does not step an optimizer."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    modes = {m: m.training for m in model.modules()}
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name in buffers:
                    b.copy_(buffers[name])
        for m, was_training in modes.items():
            m.training = was_training
