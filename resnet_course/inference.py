"""From images to top-k classes: the one prediction path used by the CLI, the GUI and the notebook widget.

:class:`Classifier` wraps a trained model with its class names and the preprocessing it was trained with
(``{"image_size", "mean", "std"}``). It accepts image files, PIL images and uint8 ``(3, H, W)`` tensors;
grayscale and RGBA become RGB, the shorter side is resized to ``image_size`` (antialiased) and the centre
cropped to a square, then the image is normalised with the training mean and std.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from .checkpoints import load_checkpoint
from .devices import resolve_device

__all__ = ["Classifier", "ImageError", "load_image"]

ImageLike = str | os.PathLike | Image.Image | Tensor | np.ndarray


class ImageError(ValueError):
    """An input could not be used as an image; the message names the file (or the argument) and why."""


def load_image(item: ImageLike, name: str = "image") -> Tensor:
    """A uint8 ``(3, H, W)`` RGB tensor from a file path, a PIL image, an ``(H, W[, C])`` uint8 array or a
    ``(C, H, W)`` tensor (uint8, or float in [0, 1]); raises :class:`ImageError` naming the input."""
    if isinstance(item, str | os.PathLike):
        path = Path(item)
        if not path.exists():
            raise ImageError(f"{path}: no such file")
        if path.is_dir():
            raise ImageError(f"{path}: is a folder, not an image file")
        try:
            with Image.open(path) as img:
                img.load()
                return load_image(img.convert("RGB"), str(path))
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            if isinstance(e, ImageError):
                raise
            raise ImageError(
                f"{path}: cannot be read as an image ({e}); use a PNG, JPEG, BMP, GIF or WebP file"
            ) from None
    if isinstance(item, Image.Image):
        return torch.from_numpy(np.asarray(item.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
    if isinstance(item, np.ndarray):
        if item.ndim == 2 or (item.ndim == 3 and item.shape[-1] in (1, 3, 4)):
            arr = item if item.dtype == np.uint8 else np.clip(item * 255.0, 0, 255).astype(np.uint8)
            return load_image(Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr),
                              name)
        raise ImageError(f"{name}: a NumPy image must have shape (H, W) or (H, W, C) with C in 1/3/4, got {item.shape}")
    if isinstance(item, Tensor):
        x = item.detach().cpu()
        if x.ndim == 2:
            x = x.unsqueeze(0)
        if x.ndim != 3 or x.shape[0] not in (1, 3, 4):
            raise ImageError(
                f"{name}: a tensor image must have shape (C, H, W) with C in 1/3/4, got {tuple(item.shape)}"
                + (" (channels last? use x.permute(2, 0, 1))" if x.ndim == 3 and x.shape[-1] in (1, 3, 4) else "")
            )
        if x.dtype.is_floating_point:
            if x.numel() and (x.min() < 0 or x.max() > 1):
                raise ImageError(f"{name}: a float tensor image must hold values in [0, 1] (or pass uint8 0..255)")
            x = (x * 255).round().to(torch.uint8)
        elif x.dtype != torch.uint8:
            raise ImageError(f"{name}: a tensor image must be uint8 (0..255) or float in [0, 1], got {x.dtype}")
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        return x[:3].contiguous()
    raise ImageError(f"{name}: expected a file path, PIL image, NumPy array or tensor, got {type(item).__name__}")


class Classifier:
    """A model with its class names and preprocessing: images in, top-k ``(class, probability)`` out.

    Args:
        model: a classifier with ``len(classes)`` outputs.
        classes: class names, in label order.
        preprocess: ``{"image_size": int, "mean": [..3], "std": [..3]}`` as used in training.
        device: where to run the model.
        info: shown by the GUI; ``Classifier.from_checkpoint`` fills ``model``, ``classes``, ``epoch`` and
            ``test_accuracy`` (``None`` when unknown).
    """

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str],
        preprocess: dict[str, Any],
        device: str | torch.device = "cpu",
        info: dict[str, Any] | None = None,
    ) -> None:
        missing = [k for k in ("image_size", "mean", "std") if k not in (preprocess or {})]
        if missing:
            raise ValueError(f"preprocess must have image_size, mean and std; missing {', '.join(missing)}")
        if not classes:
            raise ValueError("classes must list the class names (in label order)")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.classes = [str(c) for c in classes]
        self.preprocess = dict(preprocess)
        self.image_size = int(preprocess["image_size"])
        self._mean = torch.tensor(preprocess["mean"], dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(preprocess["std"], dtype=torch.float32).view(-1, 1, 1)
        self.info: dict[str, Any] = {
            "model": type(model).__name__, "classes": self.classes, "epoch": None, "test_accuracy": None,
            **(info or {}),
        }

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Classifier:
        """Rebuild the model of a ``resnet_course`` checkpoint; raises ``CheckpointError`` (one line) on failure."""
        from .checkpoints import CheckpointError

        model, ckpt = load_checkpoint(path, device=resolve_device(device))
        if not ckpt.get("classes") or not ckpt.get("preprocess"):
            raise CheckpointError(f"{path}: has no class names or preprocessing, so it cannot classify images")
        if len(ckpt["classes"]) != getattr(model, "num_classes", len(ckpt["classes"])):
            raise CheckpointError(
                f"{path}: lists {len(ckpt['classes'])} classes but the model has {model.num_classes} outputs"
            )
        metrics = ckpt.get("metrics") or {}
        info = {
            "model": (ckpt.get("model") or {}).get("name", type(model).__name__),
            "epoch": ckpt.get("epoch"),
            "test_accuracy": metrics.get("test_accuracy"),
            "path": str(path),
        }
        return cls(model, ckpt["classes"], ckpt["preprocess"], device=device, info=info)

    def prepare(self, images: ImageLike | Sequence[ImageLike]) -> Tensor:
        """The normalised float batch ``(N, 3, image_size, image_size)`` the model sees."""
        items = self._as_list(images)
        if not items:
            raise ImageError("no images given")
        batch = []
        for i, item in enumerate(items):
            name = str(item) if isinstance(item, str | os.PathLike) else f"image #{i}"
            x = load_image(item, name)
            if min(x.shape[1:]) < 1:
                raise ImageError(f"{name}: the image is empty ({tuple(x.shape[1:])} pixels)")
            x = TF.resize(x, [self.image_size], antialias=True)
            x = TF.center_crop(x, [self.image_size, self.image_size])
            batch.append((x.float() / 255.0 - self._mean) / self._std)
        return torch.stack(batch)

    @staticmethod
    def _as_list(images: Any) -> list[Any]:
        if isinstance(images, str | os.PathLike | Image.Image | np.ndarray):
            return [images]
        if isinstance(images, Tensor):
            return list(images) if images.ndim == 4 else [images]
        return list(images)

    @torch.inference_mode()
    def probabilities(self, images: ImageLike | Sequence[ImageLike]) -> Tensor:
        """Softmax probabilities ``(N, num_classes)`` on the CPU."""
        x = self.prepare(images).to(self.device)
        return self.model(x).float().softmax(1).cpu()

    def predict(self, images: ImageLike | Sequence[ImageLike], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each image, the ``top_k`` most probable ``(class name, probability)`` pairs, best first.

        ``images`` is one image or a sequence of them (paths, PIL images, uint8 tensors, or an
        ``(N, 3, H, W)`` tensor). ``top_k`` is capped at the number of classes.
        """
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        probs = self.probabilities(images)
        values, indices = probs.topk(min(top_k, len(self.classes)), dim=1)
        return [
            [(self.classes[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist(), strict=True)]
            for vs, ix in zip(values, indices, strict=True)
        ]

    def __repr__(self) -> str:
        return (f"Classifier({self.info.get('model')}, {len(self.classes)} classes, "
                f"image_size={self.image_size}, device={self.device})")
