"""The in-memory dataset: :class:`ImageTensors` (uint8 images, labels, class names) and the data errors.

Every dataset the course uses is small enough to hold as one uint8 tensor ``(N, 3, H, W)`` (CIFAR-10: 60 000
images, 184 MB).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

__all__ = ["CorruptDatasetError", "DataError", "DatasetUnavailableError", "ImageTensors"]


class DataError(RuntimeError):
    """A dataset could not be loaded; the message says why and what to do."""


class DatasetUnavailableError(DataError):
    """The dataset's files are absent and could not be downloaded."""


class CorruptDatasetError(DataError):
    """The dataset's files (or the downloaded archive) are present but damaged."""


# --------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------


@dataclass
class ImageTensors(torch.utils.data.Dataset):
    """A labelled image set in memory: ``images`` uint8 ``(N, 3, H, W)`` on CPU, ``labels`` int64 ``(N,)``.

    It is a ``Dataset``: ``ds[i]`` is ``(image, label)`` with the uint8 ``(3, H, W)`` image passed through
    ``transform`` when one is set (e.g. :func:`~resnet_course.data.transforms.train_transforms`), so the classic
    ``DataLoader`` path works on it as well as :class:`~resnet_course.data.loaders.TensorLoader`.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    transform: Callable[[torch.Tensor], Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            raise TypeError("images must be a uint8 tensor of shape (N, 3, H, W)")
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(self.images.shape)}")
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must have shape ({self.images.shape[0]},) to match the images, "
                f"got {tuple(self.labels.shape)}"
            )
        self.classes = [str(c) for c in self.classes]
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in 0..{len(self.classes) - 1} (one per class name)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageTensors:
        """The images at ``indices`` (a copy), same classes and transform."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return ImageTensors(
            self.images[idx].clone(), self.labels[idx].clone(), list(self.classes), self.transform
        )

    def select_classes(self, class_ids: Sequence[int]) -> ImageTensors:
        """The images of the classes ``class_ids`` (a copy), relabelled ``0 … len(class_ids) - 1`` in that
        order, e.g. to split a dataset into a source and a target task with no class in common."""
        ids = [int(i) for i in class_ids]
        if not ids or len(set(ids)) != len(ids) or not all(0 <= i < len(self.classes) for i in ids):
            raise ValueError(
                f"class_ids must be distinct class indices in 0..{len(self.classes) - 1}, got {list(class_ids)}"
            )
        keep = torch.isin(self.labels, torch.tensor(ids))
        relabel = torch.full((len(self.classes),), -1, dtype=torch.int64)
        relabel[ids] = torch.arange(len(ids))
        return ImageTensors(
            self.images[keep].clone(),
            relabel[self.labels[keep]],
            [self.classes[i] for i in ids],
            self.transform,
        )

    def with_transform(self, transform: Callable[[torch.Tensor], Any] | None) -> ImageTensors:
        """The same images (shared memory) with another ``transform`` for the ``DataLoader`` path."""
        return replace(self, transform=transform)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))
