"""Statistics and splits of image sets: per-channel mean/std (and the mean of per-image stds, the other
"std" in circulation), stratified train/validation splits and stratified subsets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from resnet_course.data.containers import ImageTensors

__all__ = ["compute_mean_std", "mean_per_image_std", "stratified_split", "stratified_subset"]


# --------------------------------------------------------------------------------------------------
# Statistics and splits
# --------------------------------------------------------------------------------------------------


def _as_images(images: ImageTensors | torch.Tensor) -> torch.Tensor:
    x = images.images if isinstance(images, ImageTensors) else images
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError("expected ImageTensors or an image tensor of shape (N, C, H, W)")
    if len(x) == 0:
        raise ValueError("cannot compute statistics of an empty image set")
    return x


def _to_unit(chunk: torch.Tensor) -> torch.Tensor:
    return chunk.to(torch.float64) / 255.0 if chunk.dtype == torch.uint8 else chunk.to(torch.float64)


def compute_mean_std(
    images: ImageTensors | torch.Tensor, batch_size: int = 2048
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation over **all pixels of all images** (values scaled to [0, 1]).

    uint8 input is divided by 255; float input is taken as is. This is the ``std`` that makes each
    normalised channel have unit variance over the dataset (CIFAR-10: 0.2470, 0.2435, 0.2616). Accumulated
    in float64, ``batch_size`` images at a time.
    """
    x = _as_images(images)
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        chunk = _to_unit(x[i : i + batch_size])
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += (chunk * chunk).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0)
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def mean_per_image_std(images: ImageTensors | torch.Tensor, batch_size: int = 2048) -> tuple[float, ...]:
    """Average over images of each image's own per-channel standard deviation (values in [0, 1]).

    This is **not** the dataset's std: it ignores how image means differ from each other, so it is smaller.
    On CIFAR-10 it gives the 0.2023/0.1994/0.2010 that many tutorials quote as "the std".
    """
    x = _as_images(images)
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        chunk = _to_unit(x[i : i + batch_size])
        total += chunk.std(dim=(2, 3), correction=0).sum(dim=0)
    return tuple((total / len(x)).tolist())


def _labels_array(labels: Any) -> np.ndarray:
    if isinstance(labels, ImageTensors):
        labels = labels.labels
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError("labels must be a 1-D sequence of class indices")
    return arr


def _stratified(labels: np.ndarray, n_second: int, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        first, second = train_test_split(idx, test_size=n_second, stratify=labels, random_state=seed)
    except ValueError as err:
        counts = np.bincount(labels) if len(labels) else np.array([])
        raise ValueError(
            f"cannot make a stratified {what} of {n_second} out of {len(labels)} images "
            f"(smallest class has {int(counts[counts > 0].min()) if counts.size else 0} images; {err}). "
            "Use a larger size/fraction or more images per class."
        ) from None
    return np.sort(first).astype(np.int64), np.sort(second).astype(np.int64)


def stratified_split(labels: Any, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0..N-1`` into ``(train_idx, val_idx)`` keeping class proportions (scikit-learn's
    ``train_test_split(stratify=...)``). Deterministic in ``seed``; both index arrays are sorted.

    ``val_fraction=0`` gives all indices for training and an empty validation array.
    """
    y = _labels_array(labels)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0 or len(y) == 0:
        return np.arange(len(y), dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_val = max(1, int(round(val_fraction * len(y))))
    return _stratified(y, n_val, seed, "validation split")


def stratified_subset(labels: Any, size: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-balanced random subset of ``size`` items (all indices when ``size`` is
    ``None`` or not smaller than ``N``). Deterministic in ``seed``."""
    y = _labels_array(labels)
    if size is None or size >= len(y):
        return np.arange(len(y), dtype=np.int64)
    if size < 1:
        raise ValueError(f"subset size must be a positive number of images or None for all, got {size}")
    _, keep = _stratified(y, size, seed, "subset")
    return keep
