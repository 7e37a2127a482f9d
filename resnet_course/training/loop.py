"""The training loop of notebook 05: one epoch of training, one pass of evaluation.

Students write these two functions in notebook 05, and :func:`~resnet_course.training.engine.fit` calls these
very functions for every run of the course. Called as ``train_one_epoch(model, loader, optimizer, loss_fn,
device)``, it is the textbook loop line for line. ``fit`` passes a ``step``
(:class:`~resnet_course.training.steps.CourseStep`) that adds what the course layers around it — mixed
precision, gradient accumulation and clipping, the learning-rate schedule, a check for NaN losses, a progress
bar — at the four points marked below, each of which does exactly the plain call by default (:class:`Step`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from resnet_course.devices import model_device

__all__ = ["Step", "evaluate", "train_one_epoch"]


class Step:
    """The plain optimizer step: every batch zeroes the gradients, computes in full precision, back-propagates
    and takes one step. :class:`~resnet_course.training.steps.CourseStep` overrides these methods."""

    def batches(self, loader: Iterable[Any]) -> Iterable[Any]:
        return loader

    def zero_grad(self, optimizer: Optimizer) -> None:
        optimizer.zero_grad()

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def backward(self, loss: Tensor) -> None:
        loss.backward()

    def update(self, optimizer: Optimizer) -> None:
        optimizer.step()


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[Any],
    optimizer: Optimizer,
    loss_fn: nn.Module,
    device: torch.device | str,
    step: Step | None = None,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``; return the epoch's mean ``loss`` per image, its
    ``accuracy`` (fraction of correct predictions, measured while the weights change) and ``n`` images."""
    step = step or Step()
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in step.batches(loader):
        images, labels = images.to(device), labels.to(device)
        step.zero_grad(optimizer)  # optimizer.zero_grad()
        with step.autocast():  # full precision unless mixed precision is on
            logits = model(images)
            loss = loss_fn(logits, labels)
        step.backward(loss)  # loss.backward()
        step.update(optimizer)  # optimizer.step()
        total_loss += loss.item() * labels.size(0)  # the batch's mean loss × its size: a sum over images
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += labels.size(0)
    if seen == 0:
        raise ValueError("the training loader yielded no images")
    return {"loss": total_loss / seen, "accuracy": correct / seen, "n": seen}


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    loss_fn: nn.Module | None = None,
    device: torch.device | str | None = None,
    *,
    classes: Sequence[str] | None = None,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Mean ``loss`` per image (cross-entropy unless ``loss_fn``), ``accuracy`` and ``n`` over ``loader``, in
    eval mode without gradients, on ``device`` (default: the model's). The model's mode is restored afterwards.

    With ``classes``, also ``per_class``: class name → accuracy on that class's images (``None`` for a class
    without images). ``amp_dtype`` computes the forward pass under ``torch.autocast`` (as training did).
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    hits, totals = torch.zeros(len(classes or ()), dtype=torch.long), torch.zeros(len(classes or ()), dtype=torch.long)
    try:
        with torch.no_grad():
            for images, labels in loader:
                images, labels = images.to(device), labels.to(device)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    logits = model(images)
                logits = logits.float()
                total_loss += loss_fn(logits, labels).item() * labels.size(0)
                correct += (logits.argmax(dim=1) == labels).sum().item()
                seen += labels.size(0)
                if classes is not None:
                    _count_per_class(logits, labels, hits, totals)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("the loader yielded no images; there is nothing to evaluate")
    result: dict[str, Any] = {"loss": total_loss / seen, "accuracy": correct / seen, "n": seen}
    if classes is not None:
        result["per_class"] = {
            name: (h / t if t else None) for name, h, t in zip(classes, hits.tolist(), totals.tolist(), strict=True)
        }
    return result


def _count_per_class(logits: Tensor, labels: Tensor, hits: Tensor, totals: Tensor) -> None:
    if logits.shape[1] != len(hits):
        raise ValueError(f"the model has {logits.shape[1]} outputs but {len(hits)} class names were given")
    labels_cpu, ok = labels.cpu(), (logits.argmax(dim=1) == labels).cpu().long()
    totals += torch.bincount(labels_cpu, minlength=len(totals))
    hits += torch.bincount(labels_cpu, weights=ok, minlength=len(hits)).long()
