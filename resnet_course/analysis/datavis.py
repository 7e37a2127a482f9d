"""Visual checks of the data: an image grid with class names, and augmentations of one image.

Both functions return a ``matplotlib.figure.Figure`` built without pyplot (no global state, nothing shown
twice in a notebook); a notebook displays it as the cell's value or with ``display(fig)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from resnet_course.analysis.plots import new_figure
from resnet_course.data.containers import ImageTensors
from resnet_course.data.transforms import denormalize, train_transforms

__all__ = ["show_images", "show_augmentations"]


def _displayable(
    image: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> np.ndarray:
    """A ``(H, W, 3)`` float array in [0, 1] from a uint8 image or a normalised float image."""
    if image.dtype == torch.uint8:
        x = image.float() / 255
    elif mean is not None and std is not None:
        x = denormalize(image.detach().float(), mean, std)
    else:
        x = image.detach().float().clamp(0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.permute(1, 2, 0).cpu().numpy()


def show_images(
    images: ImageTensors | torch.Tensor,
    labels: Sequence[int] | torch.Tensor | None = None,
    classes: Sequence[str] | None = None,
    *,
    n: int = 32,
    ncols: int = 8,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    predictions: Sequence[int] | torch.Tensor | None = None,
    indices: Sequence[int] | None = None,
    title: str | None = None,
    size: float = 1.4,
) -> Figure:
    """A grid of the first ``n`` images (or those at ``indices``), each titled with its class name.

    ``images``: :class:`~resnet_course.data.containers.ImageTensors` (labels and class names are taken from it) or a
    batch tensor ``(N, C, H, W)`` — uint8, or float normalised with ``mean``/``std`` (un-normalised for
    display), e.g. a batch from a loader. With ``predictions`` each title reads ``predicted (true)``, in red
    when they differ.
    """
    if isinstance(images, ImageTensors):
        labels = images.labels if labels is None else labels
        classes = images.classes if classes is None else classes
        batch = images.images
    elif isinstance(images, torch.Tensor) and images.ndim == 4:
        batch = images
    else:
        raise TypeError("show_images expects ImageTensors or an image batch tensor of shape (N, C, H, W)")
    chosen = list(indices) if indices is not None else list(range(min(n, len(batch))))
    if not chosen:
        raise ValueError("no images to show")
    if labels is not None and len(labels) != len(batch):
        raise ValueError(f"got {len(labels)} labels for {len(batch)} images")

    def name(k: int) -> str:
        return classes[k] if classes is not None else str(k)

    ncols = max(1, min(ncols, len(chosen)))
    nrows = math.ceil(len(chosen) / ncols)
    fig = new_figure(figsize=(size * ncols, size * nrows + (0.4 if title else 0.1)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, i in zip(axes, chosen, strict=False):
        ax.imshow(_displayable(batch[i], mean, std), interpolation="nearest")
        if labels is not None:
            true = int(labels[i])
            if predictions is not None:
                pred = int(predictions[i])
                ax.set_title(
                    f"{name(pred)}\n({name(true)})", fontsize=8, color="black" if pred == true else "red"
                )
            else:
                ax.set_title(name(true), fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def show_augmentations(
    image: torch.Tensor | Image.Image | ImageTensors,
    transform: Callable[[Any], torch.Tensor] | None = None,
    *,
    n: int = 8,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    index: int = 0,
    seed: int = 0,
    ncols: int = 9,
    title: str | None = None,
    size: float = 1.4,
) -> Figure:
    """The original image followed by ``n`` random augmentations of it (seeded, reproducible).

    ``image``: a uint8 ``(3, H, W)`` tensor, a PIL image, or :class:`ImageTensors` (then image ``index``).
    ``transform`` defaults to :func:`~resnet_course.data.transforms.train_transforms` with ``mean``/``std``
    (pad-4 crop + flip); its normalised output is un-normalised with ``mean``/``std`` for display. A transform
    that returns uint8 images is shown as is.
    """
    if isinstance(image, ImageTensors):
        label = image.classes[int(image.labels[index])]
        image = image.images[index]
        title = title or f"augmentations of one '{label}' image"
    if isinstance(image, Image.Image):
        from torchvision.transforms.v2 import functional as TF

        image = TF.pil_to_tensor(image.convert("RGB"))
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.dtype != torch.uint8:
        raise TypeError("show_augmentations expects a uint8 (3, H, W) tensor, a PIL image or ImageTensors")
    if transform is None:
        if mean is None or std is None:
            mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        transform = train_transforms(mean, std, image_size=image.shape[-1])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        augmented = [transform(image) for _ in range(n)]
    pictures = [_displayable(image, None, None)] + [_displayable(a, mean, std) for a in augmented]
    ncols = max(1, min(ncols, len(pictures)))
    nrows = math.ceil(len(pictures) / ncols)
    fig = new_figure(figsize=(size * ncols, size * nrows + (0.4 if title else 0.1)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for k, (ax, picture) in enumerate(zip(axes, pictures, strict=False)):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title("original" if k == 0 else f"#{k}", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig
