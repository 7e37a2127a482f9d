"""A model's predictions over a loader: :func:`predict`, for analysis (:mod:`resnet_course.analysis.classification`).

It runs in eval mode on the model's device and restores the model's mode afterwards. Loss and accuracy come from
:func:`resnet_course.training.loop.evaluate` (importable from here too, as the notebooks do).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from resnet_course.devices import model_device
from resnet_course.training.loop import evaluate

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


def _outputs(model: nn.Module, loader: Iterable[Any]) -> Iterator[tuple[Tensor, Tensor]]:
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
                yield model(x).float(), y
    finally:
        model.train(was_training)


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
