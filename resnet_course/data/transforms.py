"""Image transforms with ``torchvision.transforms.v2`` for the classic per-image pipeline.

They accept a PIL image or a uint8 ``(3, H, W)`` tensor (what :class:`~resnet_course.data.containers.ImageTensors`
returns) and produce a normalised float32 tensor. The standard CIFAR-10 recipe (He et al. 2015, §4.2) is
``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``; optional extras are AutoAugment/RandAugment/
TrivialAugment and Cutout (DeVries & Taylor 2017, as a fixed-size ``RandomErasing`` square).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

__all__ = ["train_transforms", "test_transforms", "denormalize", "AUTO_AUGMENT_POLICIES"]

AUTO_AUGMENT_POLICIES = ("autoaugment", "randaugment", "trivialaugment")


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> None:
    if len(mean) != len(std) or len(mean) not in (1, 3):
        raise ValueError(f"mean and std need one value per channel (3), got {len(mean)} and {len(std)}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std values must be positive, got {tuple(std)}")


def train_transforms(
    mean: Sequence[float],
    std: Sequence[float],
    *,
    image_size: int = 32,
    padding: int = 4,
    flip: bool = True,
    auto_augment: str | None = None,
    cutout: int = 0,
    resize: bool = False,
) -> v2.Compose:
    """Training augmentation: random crop of the zero-padded image (``padding`` pixels) and horizontal flip,
    optionally an automatic policy and Cutout, then float conversion and normalisation with ``mean``/``std``.

    ``auto_augment``: ``None``, ``"autoaugment"`` (CIFAR-10 policy), ``"randaugment"``, ``"trivialaugment"``.
    ``cutout``: side in pixels of a square set to 0 (after normalisation, i.e. to the mean colour) at a random
    place; ``0`` disables it. ``resize``: first resize (shorter side) and centre-crop to ``image_size``, for
    images of another size.
    """
    _check_stats(mean, std)
    steps: list[v2.Transform] = [v2.ToImage()]
    if resize:
        steps += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    steps.append(v2.RandomCrop(image_size, padding=padding) if padding > 0 else v2.RandomCrop(image_size))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if auto_augment is not None:
        policy = auto_augment.lower()
        if policy == "autoaugment":
            steps.append(v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10))
        elif policy == "randaugment":
            steps.append(v2.RandAugment())
        elif policy == "trivialaugment":
            steps.append(v2.TrivialAugmentWide())
        else:
            raise ValueError(
                f"unknown auto_augment {auto_augment!r}; choose one of {', '.join(AUTO_AUGMENT_POLICIES)}"
            )
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    if cutout:
        if not 0 < cutout <= image_size:
            raise ValueError(f"cutout must be between 1 and image_size={image_size} pixels, got {cutout}")
        area = (cutout / image_size) ** 2
        steps.append(v2.RandomErasing(p=1.0, scale=(area, area), ratio=(1.0, 1.0), value=0))
    return v2.Compose(steps)


def test_transforms(
    mean: Sequence[float], std: Sequence[float], *, image_size: int | None = None
) -> v2.Compose:
    """Evaluation transform: (optionally resize the shorter side, centre-crop to ``image_size``), convert to
    float in [0, 1] and normalise with ``mean``/``std``. No randomness."""
    _check_stats(mean, std)
    steps: list[v2.Transform] = [v2.ToImage()]
    if image_size is not None:
        steps += [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


test_transforms.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported by tests


def denormalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo :func:`v2.Normalize`: ``x * std + mean``, clamped to [0, 1], for ``(C, H, W)`` or ``(N, C, H, W)``
    float tensors. The result can be shown with matplotlib after ``permute(1, 2, 0)``."""
    _check_stats(mean, std)
    if not torch.is_floating_point(x):
        raise TypeError("denormalize expects a normalised float tensor; uint8 images need no denormalising")
    shape = (-1, 1, 1)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x * s + m).clamp(0, 1)
