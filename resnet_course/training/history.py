"""The record of a training run: per-epoch losses, accuracies, learning rates and times."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_course.atomic import write_text_atomically

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch record of a run. Epochs are numbered from 1; accuracies are fractions in [0, 1].

    ``val_loss``/``val_acc`` hold ``None`` when there is no validation split. ``best_epoch`` is the epoch
    with the best validation accuracy (the last epoch without validation). ``interrupted`` is ``True`` when
    the run was stopped early (Ctrl-C or a callback); ``extra`` holds e.g. the SWA model's metrics
    (``"swa"``) and the final model's test metrics (``"test"``: ``accuracy``, ``loss``, ``n``, ``epoch``).
    """

    label: str = ""
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.epoch)

    def append(self, **values: Any) -> None:
        """Add one epoch's values (every per-epoch list must be given)."""
        for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
            getattr(self, key).append(values[key])

    @property
    def best_val_acc(self) -> float | None:
        """Validation accuracy of :attr:`best_epoch` (``None`` without validation)."""
        if self.best_epoch is None:
            return None
        return self.val_acc[self.epoch.index(self.best_epoch)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self, path: str | Path) -> Path:
        """Write the history as JSON (atomically) and return the path."""
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        """Read a history written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
