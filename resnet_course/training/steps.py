"""What the course adds to the plain optimizer step of :func:`~resnet_course.training.loop.train_one_epoch`.

:class:`CourseStep` fills the loop's four points with the knobs of a
:class:`~resnet_course.training.config.TrainConfig`:

* ``batches``: a progress bar over the epoch (:func:`~resnet_course.training.progress.progress_bar`: a widget in
  Jupyter that leaves no widget behind, text in a terminal);
* ``zero_grad``: at the first batch of each group of ``accum_steps`` batches (gradient accumulation);
* ``autocast``: ``torch.autocast`` in the run's mixed-precision dtype (off: full precision);
* ``backward``: stops with :class:`TrainingDiverged` on a NaN/inf loss, then back-propagates the loss divided by
  the group's size (through ``GradScaler`` for fp16);
* ``update``: at the last batch of a group, clips the gradients (``grad_clip``), steps the optimizer and the
  learning-rate schedule once.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from resnet_course.training.config import TrainConfig
from resnet_course.training.loop import Step
from resnet_course.training.progress import progress_bar
from resnet_course.training.schedules import LRSchedule

__all__ = ["CourseStep", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says when, what is kept and what to try."""

    def __init__(self, where: str, lr: float, kept: str = "") -> None:
        self.where, self.lr = where, lr
        super().__init__(
            f"training diverged: the loss became NaN/inf in {where} (learning rate {lr:.3g}){kept}. Try a lower "
            "learning rate (e.g. half), longer warm-up, gradient clipping (grad_clip=1.0), and check that the "
            "inputs are normalised"
        )


class CourseStep(Step):
    """One epoch's optimizer steps as ``config`` asks for them (see the module documentation).

    Args:
        model: the model whose parameters are clipped.
        config: the run's knobs (``accum_steps``, ``grad_clip``, the autocast dtype, ``epochs``).
        scaler: the run's ``GradScaler`` (enabled for fp16 only; otherwise it passes everything through).
        schedule: stepped after every optimizer step; ``None`` while SWA holds a constant rate.
        epoch: 0-based, for the progress bar and error messages.
        n_batches: batches in the epoch (the last accumulation group may be shorter).
        progress: show the progress bar.
        check_finite: stop at the first NaN/inf loss (a job of several processes checks its epoch totals).
    """

    def __init__(
        self,
        model: nn.Module,
        config: TrainConfig,
        scaler: torch.amp.GradScaler,
        schedule: LRSchedule | None,
        *,
        epoch: int,
        n_batches: int,
        progress: bool = True,
        check_finite: bool = True,
    ) -> None:
        self.model, self.config, self.scaler, self.schedule = model, config, scaler, schedule
        self.epoch, self.n_batches, self.progress, self.check_finite = epoch, n_batches, progress, check_finite
        self.batch = -1  # index of the current batch in the epoch
        self.lr: float | None = None  # the learning rate of the epoch's last optimizer step
        self._bar: Any = None
        self._optimizer: Optimizer | None = None
        self._loss_sum, self._losses = 0.0, 0

    def batches(self, loader: Iterable[Any]) -> Iterator[Any]:
        bar = progress_bar(
            total=self.n_batches,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self._bar = bar
        try:
            for self.batch, item in enumerate(loader):
                yield item
                bar.update(1)
        finally:
            bar.close()

    def _group(self) -> tuple[int, int]:
        """The first and one-past-last batch of the current accumulation group."""
        accum = self.config.accum_steps
        start = self.batch - self.batch % accum
        return start, min(start + accum, self.n_batches)

    def zero_grad(self, optimizer: Optimizer) -> None:
        self._optimizer = optimizer
        if self.batch == self._group()[0]:
            optimizer.zero_grad(set_to_none=True)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        dtype = self.config.autocast_dtype()
        return torch.autocast(self.config.torch_device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def backward(self, loss: Tensor) -> None:
        if self.check_finite:
            value = loss.item()
            if not math.isfinite(value):
                raise self.diverged()
            self._loss_sum, self._losses = self._loss_sum + value, self._losses + 1
        start, end = self._group()
        self.scaler.scale(loss / (end - start)).backward()

    def update(self, optimizer: Optimizer) -> None:
        if self.batch + 1 != self._group()[1]:
            return  # gradients keep accumulating
        if self.config.grad_clip is not None:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.lr = float(optimizer.param_groups[0]["lr"])
        self.scaler.step(optimizer)
        self.scaler.update()
        if self.schedule is not None:
            with warnings.catch_warnings():  # a GradScaler-skipped first step is expected
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
                self.schedule.step()
        if self._bar is not None and self._losses:
            self._bar.set_postfix(loss=f"{self._loss_sum / self._losses:.3f}", lr=f"{self.lr:.3g}", refresh=False)

    def diverged(self) -> TrainingDiverged:
        """The error for a NaN/inf loss in this epoch (at this batch while the epoch runs)."""
        where = f"epoch {self.epoch + 1}" + (f", batch {self.batch + 1}" if self.batch + 1 < self.n_batches else "")
        lr = self._optimizer.param_groups[0]["lr"] if self._optimizer is not None else self.lr
        return TrainingDiverged(where, float(lr) if lr is not None else float("nan"))
