"""The course's saved runs: where notebook 05 keeps its model, and the model the later notebooks analyse.

Notebook 05 trains the course's main model and writes ``last.pt`` (final epoch), ``best.pt`` and
``history.json`` into :func:`course_run_dir`. Notebooks 06, 07 and 10 analyse that final model. When it is
missing, or was made for other data (other classes or image size), :func:`course_checkpoint` trains a short
run with the engine instead, saves it as a checkpoint of the same format, and says so in its explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from resnet_course.data.loaders import TensorLoader
from resnet_course.data.statistics import stratified_subset
from resnet_course.models.registry import create_for_data
from resnet_course.profiles import data_dir
from resnet_course.training.checkpoints import checkpoint_problem, read_checkpoint, save_checkpoint
from resnet_course.training.config import TrainConfig
from resnet_course.training.engine import fit
from resnet_course.training.history import History
from resnet_course.training.loop import evaluate

__all__ = ["course_run_dir", "course_checkpoint", "short_run", "ShortRun", "QUICK_CHECKPOINT_NAME"]

QUICK_CHECKPOINT_NAME = "quick.pt"  # file name of the fallback model inside ``work_dir``


def course_run_dir(model_name: str) -> Path:
    """The folder where notebook 05 writes its run of ``model_name``: ``data_dir()/runs/05_<model_name>``
    (it holds ``last.pt``, ``best.pt`` and ``history.json``; not created here)."""
    return data_dir() / "runs" / f"05_{model_name}"


class ShortRun(NamedTuple):
    """What :func:`short_run` trained: the model (final weights), its history, its config and the number of
    training images it saw."""

    model: nn.Module
    history: History
    config: TrainConfig
    train_images: int


def short_run(
    data: Any,
    model_name: str,
    *,
    epochs: int,
    train_size: int | None,
    batch_size: int,
    seed: int,
    device: str | torch.device | None = None,
    lr: float | None = None,
    amp: bool = False,
    val_loader: Iterable[Any] | None = None,
    callback: Callable[[nn.Module, History], bool | None] | None = None,
    label: str | None = None,
) -> ShortRun:
    """The course's short training run: the fallback model of :func:`course_checkpoint` and the seed study of
    notebook 06.

    A fresh ``model_name`` from :func:`~resnet_course.models.registry.create_for_data` (seeded with ``seed``) trained by
    :func:`~resnet_course.training.engine.fit` for ``epochs`` epochs with notebook 05's recipe (the engine's defaults:
    one-cycle schedule, label smoothing 0.1) at peak learning rate ``lr`` (``None``: the engine's default,
    0.1 × batch_size / 128) and mixed precision when ``amp``, on a stratified subset of ``train_size`` training
    images of ``data`` (a :class:`~resnet_course.data.bundle.DataBundle`; ``None`` = all) with augmentation.
    ``val_loader`` is passed to ``fit``; ``callback(model, history)`` is called after every epoch (return ``True``
    to stop), e.g. to measure something on the model as it trains. ``device=None`` means the best available device.
    """
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        amp=amp,
        seed=seed,
        device="auto" if device is None else device,
    )
    torch.manual_seed(seed)
    model = create_for_data(model_name, len(data.classes), data.image_size)
    part = data.train.subset(stratified_subset(data.train.labels, train_size, seed))
    train_loader = TensorLoader(
        part,
        config.batch_size,
        mean=data.mean,
        std=data.std,
        shuffle=True,
        augment=True,
        seed=config.seed,
        device=config.device,
    )
    history = fit(
        model,
        train_loader,
        val_loader,
        config,
        progress=False,
        label=label if label is not None else f"quick {model_name}",
        callback=None if callback is None else lambda h: callback(model, h),
    )
    return ShortRun(model, history, config, len(part))


def course_checkpoint(
    data: Any,
    model_name: str,
    *,
    epochs: int,
    train_size: int | None,
    batch_size: int,
    eval_batch_size: int,
    seed: int,
    device: str | torch.device | None = None,
    work_dir: str | Path,
    lr: float | None = None,
    amp: bool = False,
) -> tuple[Path, str]:
    """The checkpoint of the model a notebook analyses, and a one-paragraph Markdown explanation of it.

    Returns notebook 05's final checkpoint ``course_run_dir(model_name)/"last.pt"`` when
    :func:`~resnet_course.training.checkpoints.checkpoint_problem` finds it usable for ``data`` (a
    :class:`~resnet_course.data.bundle.DataBundle`: same classes, same image size). Otherwise it trains a short run:
    :func:`short_run` without a validation split; it measures test accuracy with :func:`~resnet_course.training.predictions.evaluate` and saves the model
    to ``work_dir/quick.pt`` with its classes, preprocessing, history, config and ``test_accuracy`` metric.
    The explanation names the source, says why 05's model was not used, and compares the test accuracy
    with chance (1 / number of classes). ``device=None`` means the best available device.
    """
    num_classes = len(data.classes)
    chance = 1 / num_classes
    course = course_run_dir(model_name) / "last.pt"
    problem = checkpoint_problem(course, data.classes, data.image_size)
    if problem is None:
        ckpt = read_checkpoint(course)
        reported = (ckpt.get("metrics") or {}).get("test_accuracy")
        accuracy = (
            f"test accuracy {reported:.1%} as reported by 05, chance is {chance:.0%}"
            if reported is not None
            else "no test accuracy recorded"
        )
        name = (ckpt.get("model") or {}).get("name", model_name)
        return course, (
            f"Using notebook 05's final checkpoint `{course}` ({name}, epoch {ckpt['epoch']}, {accuracy})."
        )

    model, history, config, train_images = short_run(
        data,
        model_name,
        epochs=epochs,
        train_size=train_size,
        batch_size=batch_size,
        seed=seed,
        device=device,
        lr=lr,
        amp=amp,
    )
    test_loader = TensorLoader(data.test, eval_batch_size, mean=data.mean, std=data.std, device=config.device)
    test_accuracy = evaluate(model, test_loader)["accuracy"]
    path = save_checkpoint(
        model,
        Path(work_dir) / QUICK_CHECKPOINT_NAME,
        epoch=len(history),
        classes=list(data.classes),
        preprocess=data.preprocess,
        history=history.to_dict(),
        config=config.to_dict(),
        metrics={"test_accuracy": test_accuracy},
        meta={"dataset": data.name, "source": "resnet_course.training.runs.course_checkpoint fallback"},
    )
    verdict = (
        " — close to chance: it has barely learned anything (expected in a very short run)"
        if test_accuracy < chance + 0.1
        else ""
    )
    return path, (
        f"No usable checkpoint from notebook 05 — {problem} (run notebook 05 first to use its model). "
        f"Trained a quick {model_name} here instead: {len(history)} epoch(s) on {train_images} images, seed "
        f"{seed}, test accuracy {test_accuracy:.1%} (chance is 1/{num_classes} = {chance:.0%}){verdict}; "
        f"saved as `{path.name}` in the work folder. Expect a weaker model than notebook 05's."
    )
