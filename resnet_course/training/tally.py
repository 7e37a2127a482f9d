"""An epoch's running totals and the model state a mid-epoch checkpoint must hold: the bookkeeping of
:func:`~resnet_course.training.engine.fit` between two optimizer steps."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from resnet_course.distributed import World, all_sum

__all__ = ["BufferSnapshot", "EpochTally"]


@dataclass
class EpochTally:
    """An epoch's running totals: ``batches``, ``loss``, ``correct``, ``seen`` as of its last completed optimizer
    step (what a mid-epoch checkpoint records), the device-side sums of the accumulation group in progress, the
    learning rate of the last step (``None`` before the first) and ``seconds`` of training before ``started``
    (time spent before an interruption; the epoch's total once its training ends)."""

    batches: int
    loss: float
    correct: int
    seen: int
    seconds: float
    pending_loss: Tensor
    pending_correct: Tensor
    pending_seen: int = 0
    lr: float | None = None
    started: float = 0.0

    @classmethod
    def resumed(cls, partial: dict[str, Any] | None, device: torch.device) -> EpochTally:
        p = partial or {}
        return cls(
            int(p.get("batches", 0)),
            float(p.get("loss", 0.0)),
            int(p.get("correct", 0)),
            int(p.get("seen", 0)),
            float(p.get("seconds", 0.0)),
            torch.zeros((), device=device, dtype=torch.float64),
            torch.zeros((), device=device, dtype=torch.long),
            started=time.perf_counter(),
        )

    def add(self, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        """Add one batch (summed on the device: no synchronisation)."""
        self.pending_loss += loss.detach().double() * len(y)
        self.pending_correct += (logits.detach().argmax(1) == y).sum()
        self.pending_seen += len(y)

    def commit(self, batches: int) -> None:
        """An optimizer step completed after ``batches`` batches: move the group's sums into the totals."""
        self.batches = batches
        self.loss += float(self.pending_loss)
        self.correct += int(self.pending_correct)
        self.seen += self.pending_seen
        self.pending_loss.zero_()
        self.pending_correct.zero_()
        self.pending_seen = 0

    def reduce(self, here: World) -> None:
        """Sum the completed totals over all processes (each process trained on its own shard)."""
        self.loss, correct, seen = all_sum(self.loss, self.correct, self.seen)
        self.correct, self.seen = int(correct), int(seen)

    def elapsed(self) -> float:
        """Training seconds of the epoch so far, time before an interruption included."""
        return self.seconds + time.perf_counter() - self.started

    def position(self, rng_epoch_start: dict[str, Any]) -> dict[str, Any]:
        """The ``partial`` entry of a mid-epoch checkpoint."""
        return {
            "batches": self.batches,
            "loss": self.loss,
            "correct": self.correct,
            "seen": self.seen,
            "seconds": self.elapsed(),
            "rng_epoch_start": rng_epoch_start,
        }


class BufferSnapshot:
    """The model's buffers (BatchNorm statistics) as of the last optimizer step: a forward pass cut short by
    Ctrl-C has already updated them, and a mid-epoch checkpoint must hold the state *before* that group."""

    def __init__(self, model: nn.Module) -> None:
        self.buffers = dict(model.named_buffers())
        self.saved = {k: v.clone() for k, v in self.buffers.items()}

    def take(self) -> None:
        for k, v in self.buffers.items():
            self.saved[k].copy_(v)

    def restore(self) -> None:
        with torch.no_grad():
            for k, v in self.buffers.items():
                v.copy_(self.saved[k])
