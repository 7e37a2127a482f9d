"""A dataset ready for training: :class:`DataBundle` (train/val/test parts, class names, normalisation
statistics of the training part) and its loaders, which take batch size, seed, device and memory format from a
:class:`~resnet_course.training.config.TrainConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resnet_course.data.containers import ImageTensors
from resnet_course.data.streaming import ImageFiles

if TYPE_CHECKING:  # for annotations only: the data layer never imports the training package at run time
    from resnet_course.training.config import TrainConfig

__all__ = ["DataBundle"]


@dataclass
class DataBundle:
    """Train/validation/test parts of one dataset plus what a model needs to know about it.

    ``mean``/``std`` are per-channel statistics of ``train`` (pixel values in [0, 1]); ``notice`` is non-empty
    when a substitute dataset is in use (e.g. ``shapes10`` because CIFAR-10 could not be loaded). Parts are
    :class:`~resnet_course.data.containers.ImageTensors` (decoded, in memory) or, for an ImageFolder streamed
    from disk, :class:`~resnet_course.data.streaming.ImageFiles`; ``storage`` says which and why (ImageFolders
    only; e.g. ``"streamed from disk: 3,000 files × 3×64×64 = 36.9 MB > memory budget 20.0 MB"``).
    """

    name: str
    train: ImageTensors | ImageFiles
    val: ImageTensors | ImageFiles | None
    test: ImageTensors | ImageFiles
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    notice: str = ""
    root: str | None = None
    storage: str = ""

    @property
    def streamed(self) -> bool:
        """Whether the images are read from disk batch by batch (:class:`ImageFiles` parts)."""
        return isinstance(self.train, ImageFiles)

    @property
    def preprocess(self) -> dict[str, Any]:
        """``{"image_size", "mean", "std"}``: what inference needs to prepare an image (in checkpoints)."""
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}

    def loaders(
        self,
        config: TrainConfig,
        *,
        augment: bool = True,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> tuple[Any, Any | None, Any]:
        """``(train, val, test)`` :class:`~resnet_course.data.loaders.TensorLoader` s — or, for streamed parts,
        :class:`~resnet_course.data.streaming.StreamLoader` s with ``num_workers`` decoding processes each
        (default :func:`~resnet_course.data.streaming.default_num_workers`) — for a run with ``config`` (``val``:
        ``None`` without a validation split), on ``config.device`` in its memory format; train has
        ``config.batch_size`` images per batch, shuffles with ``config.seed`` and, with ``augment``, pads-crops
        and flips; val/test (``eval_batch_size`` images per batch, default ``config.batch_size``) do neither.

        Process ``rank`` of ``world_size`` (a ``torchrun`` job: ``processes().rank`` and ``.size`` of
        :mod:`resnet_course.parallel.ddp`) gets its shard of every loader
        (:func:`~resnet_course.data.loaders.batch_positions`): ``config.batch_size`` stays the per-process batch."""
        from resnet_course.data.streaming import make_loader

        eval_bs = eval_batch_size or config.batch_size
        common = {
            "rank": rank,
            "world_size": world_size,
            "mean": self.mean,
            "std": self.std,
            "device": config.device,
            "channels_last": config.uses_channels_last(),
            "num_workers": num_workers,
        }
        train = make_loader(
            self.train, config.batch_size, shuffle=True, augment=augment, seed=config.seed, **common
        )
        val = make_loader(self.val, eval_bs, **common) if self.val is not None and len(self.val) else None
        test = make_loader(self.test, eval_bs, **common)
        return train, val, test

    def summary(self) -> str:
        """A few lines describing the parts, sizes and statistics."""
        n_val = len(self.val) if self.val is not None else 0
        lines = [
            f"{self.name}: {len(self.train)} train / {n_val} val / {len(self.test)} test images, "
            f"3×{self.image_size}×{self.image_size}, {len(self.classes)} classes",
            f"classes: {', '.join(self.classes)}",
            "mean = ("
            + ", ".join(f"{m:.4f}" for m in self.mean)
            + "), std = ("
            + ", ".join(f"{s:.4f}" for s in self.std)
            + ")  [from the training part]",
        ]
        if self.streamed:
            lines.append(self.storage or "streamed from disk")
        if self.notice:
            lines.append(self.notice)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
