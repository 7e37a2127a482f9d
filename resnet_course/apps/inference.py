"""From images to top-k classes: the one prediction path used by the CLI, the GUI and the notebook widget.

:class:`Classifier` wraps a trained model with its class names and the preprocessing it was trained with
(``{"image_size", "mean", "std"}``). It accepts image files, PIL images and uint8 ``(3, H, W)`` tensors and
prepares each with :func:`resnet_course.data.images.prepare_image` (the function ImageFolder training data goes
through too: upright, RGB with transparency on white, shorter side resized to ``image_size``, centre crop),
then normalises it with the training mean and std. Unusable inputs raise
:class:`~resnet_course.data.images.ImageError` (a ``ValueError``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from resnet_course.data.images import ImageError, ImageLike, prepare_image
from resnet_course.devices import resolve_device
from resnet_course.training.checkpoints import load_checkpoint

__all__ = ["Classifier"]


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
            "model": type(model).__name__,
            "classes": self.classes,
            "epoch": None,
            "test_accuracy": None,
            **(info or {}),
        }

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> Classifier:
        """Rebuild the model of a ``resnet_course`` checkpoint; raises ``CheckpointError`` (one line) on failure."""
        from resnet_course.training.checkpoints import CheckpointError

        model, ckpt = load_checkpoint(path, device=resolve_device(device))
        if not ckpt.get("classes") or not ckpt.get("preprocess"):
            raise CheckpointError(
                f"{path}: has no class names or preprocessing, so it cannot classify images"
            )
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
        """The normalised float batch ``(N, 3, image_size, image_size)`` the model sees: each image through
        :func:`~resnet_course.data.images.prepare_image`, then ``(x / 255 - mean) / std``."""
        items = self._as_list(images)
        if not items:
            raise ImageError("no images given")
        names = [
            str(item) if isinstance(item, str | os.PathLike) else f"image #{i}"
            for i, item in enumerate(items)
        ]
        batch = torch.stack(
            [prepare_image(item, self.image_size, name) for item, name in zip(items, names, strict=True)]
        )
        return (batch.float() / 255.0 - self._mean) / self._std

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
        check_input = getattr(self.model, "check_input", None)
        if callable(check_input):  # the model's own shape check (its forward does not validate)
            check_input(x)
        return self.model(x).float().softmax(1).cpu()

    def predict(
        self, images: ImageLike | Sequence[ImageLike], top_k: int = 5
    ) -> list[list[tuple[str, float]]]:
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
        return (
            f"Classifier({self.info.get('model')}, {len(self.classes)} classes, "
            f"image_size={self.image_size}, device={self.device})"
        )
