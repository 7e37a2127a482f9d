"""A model's loss, accuracy and predictions over a loader: :func:`evaluate` and :func:`predict`.

:func:`evaluate` measures loss and accuracy (and per-class accuracy); :func:`predict` returns labels,
predictions and probabilities for analysis (:mod:`resnet_course.analysis.classification`). Both run in eval mode on the
model's device and restore the model's mode afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from resnet_course.devices import model_device
from resnet_course.distributed import all_sum, world

__all__ = ["Predictions", "evaluate", "predict", "batch_to_device"]


@dataclass
class Predictions:
    """What :func:`predict` returns: ``labels`` (N,), ``preds`` (N,) and ``probs`` (N, C) NumPy arrays."""

    labels: np.ndarray
    preds: np.ndarray
    probs: np.ndarray

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions."""
        return float((self.labels == self.preds).mean()) if len(self.labels) else float("nan")

    def __len__(self) -> int:
        return len(self.labels)


def batch_to_device(batch: Any, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    """``(images, labels)`` of a loader's batch on ``device`` (images in NHWC memory when ``channels_last``)."""
    try:
        x, y = batch[0], batch[1]
    except (TypeError, IndexError, KeyError):
        raise TypeError(
            f"a loader must yield (images, labels) pairs, got {type(batch).__name__}; wrap your data in a "
            "DataLoader/TensorLoader that returns (x, y)"
        ) from None
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _outputs(
    model: nn.Module, loader: Iterable[Any], amp_dtype: torch.dtype | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    device = model_device(model)
    channels_last = any(
        p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in model.parameters()
    )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in loader:
                x, y = batch_to_device(batch, device, channels_last)
                with torch.autocast(
                    device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
                ):
                    logits = model(x)
                yield logits.float(), y
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    classes: Sequence[str] | None = None,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Mean cross-entropy ``loss``, ``accuracy`` (fraction) and ``n`` over ``loader``, on the model's device.

    With ``classes``, also ``per_class``: class name → accuracy on that class's images (``None`` when the
    class has no image in ``loader``). The model is put in eval mode and restored afterwards.

    A loader that yields one process's shard of a DDP job (``loader.world_size > 1``) is counted over all
    processes: every process gets the totals of the whole split (each image counted once).
    """
    loss_sum, correct, n = 0.0, 0, 0
    num_classes = len(classes) if classes is not None else None
    hits = torch.zeros(num_classes or 1, dtype=torch.long)
    totals = torch.zeros(num_classes or 1, dtype=torch.long)
    for logits, y in _outputs(model, loader, amp_dtype):
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        pred = logits.argmax(1)
        correct += int((pred == y).sum())
        n += len(y)
        if num_classes is not None:
            if logits.shape[1] != num_classes:
                raise ValueError(
                    f"the model has {logits.shape[1]} outputs but {num_classes} class names were given"
                )
            y_cpu, ok = y.cpu(), (pred == y).cpu().long()
            totals += torch.bincount(y_cpu, minlength=num_classes)
            hits += torch.bincount(y_cpu, weights=ok, minlength=num_classes).long()
    if getattr(loader, "world_size", 1) > 1 and world().distributed:  # a shard: count every image once
        loss_sum, correct, n, *counts = all_sum(loss_sum, correct, n, *hits.tolist(), *totals.tolist())
        correct, n = int(correct), int(n)
        hits = torch.tensor(counts[: len(hits)], dtype=torch.long)
        totals = torch.tensor(counts[len(hits) :], dtype=torch.long)
    if n == 0:
        raise ValueError("the loader yielded no images; there is nothing to evaluate")
    result: dict[str, Any] = {"accuracy": correct / n, "loss": loss_sum / n, "n": n}
    if classes is not None:
        result["per_class"] = {
            name: (int(h) / int(t) if int(t) else None)
            for name, h, t in zip(classes, hits.tolist(), totals.tolist(), strict=True)
        }
    return result


def predict(model: nn.Module, loader: Iterable[Any]) -> Predictions:
    """True labels, predicted labels and softmax probabilities for every image of ``loader``, in order."""
    labels, preds, probs = [], [], []
    for logits, y in _outputs(model, loader):
        p = logits.softmax(1)
        labels.append(y.cpu())
        preds.append(p.argmax(1).cpu())
        probs.append(p.cpu())
    if not labels:
        raise ValueError("the loader yielded no images; there is nothing to predict")
    return Predictions(torch.cat(labels).numpy(), torch.cat(preds).numpy(), torch.cat(probs).numpy())
