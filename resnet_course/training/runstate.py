"""The state of one training run: everything a checkpoint must capture for an exact resume.

:class:`RunState` owns the model, optimizer, schedule, gradient scaler, SWA model, history and random states of
a run, writes them to ``last.pt`` / ``best.pt`` / ``history.json`` after every epoch (atomically, through
:mod:`resnet_course.training.checkpoints`) and reads them back when a run resumes. The epochs themselves are run
by :mod:`resnet_course.training.engine`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel

from resnet_course.parallel.ddp import OneProcess
from resnet_course.training.checkpoints import (
    CheckpointError,
    load_weights,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint_to,
    update_checkpoint,
)
from resnet_course.training.config import TrainConfig
from resnet_course.training.history import History
from resnet_course.training.optimizers import build_optimizer
from resnet_course.training.schedules import LRSchedule, build_schedule

__all__ = ["RUN_FILES", "RunState"]

RUN_FILES = ("last.pt", "best.pt", "history.json")  # what a run writes into its folder


@dataclass
class RunState:
    """One run's stateful objects, where it writes, and what it has reached (best accuracy, SWA, test).

    Build it with :meth:`start`; :meth:`resume` continues from ``out_dir/last.pt``.
    """

    model: nn.Module
    config: TrainConfig
    loader: Any  # the training loader: its generator's state is part of the random state
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    history: History
    procs: OneProcess
    train_model: nn.Module  # what the training step calls: the model (or, under DDP, its wrapper)
    out_dir: Path | None = None
    classes: list[str] | None = None
    preprocess: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    swa_model: AveragedModel | None = None
    swa_schedule: SWALR | None = None
    swa_applied: bool = False
    best_acc: float = -1.0
    metrics: dict[str, Any] = field(default_factory=dict)
    saved_epochs: int = 0  # the epochs that last.pt holds (0: none written by this process)

    @classmethod
    def start(
        cls,
        model: nn.Module,
        config: TrainConfig,
        loader: Any,
        steps_per_epoch: int,
        procs: OneProcess,
        *,
        out_dir: str | Path | None = None,
        classes: Sequence[str] | None = None,
        preprocess: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        label: str = "",
    ) -> RunState:
        """Move ``model`` to the config's device (and memory format), build the optimizer, schedule, scaler,
        loss and SWA model, and seed Python, NumPy and PyTorch with ``config.seed``."""
        model.to(config.torch_device)
        if config.uses_channels_last():
            model.to(memory_format=torch.channels_last)
        model, train_model = procs.wrap(model, config)
        optimizer = build_optimizer(model, config, procs.size)
        state = cls(
            model=model,
            config=config,
            loader=loader,
            optimizer=optimizer,
            schedule=build_schedule(optimizer, config, steps_per_epoch),
            scaler=torch.amp.GradScaler(
                config.torch_device.type, enabled=config.autocast_dtype() == torch.float16
            ),
            criterion=nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
            history=History(label=label),
            procs=procs,
            train_model=train_model,
            out_dir=Path(out_dir) if out_dir is not None else None,
            classes=list(classes) if classes is not None else None,
            preprocess=preprocess,
            meta=meta,
            swa_model=AveragedModel(model) if config.swa else None,
        )
        _seed_everything(config.seed)
        if state.writes:
            state.out_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
        return state

    @property
    def last_path(self) -> Path | None:
        return self.out_dir / "last.pt" if self.out_dir is not None else None

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: it has an ``out_dir`` and is rank 0."""
        return self.out_dir is not None and self.procs.is_main

    def start_swa_phase(self) -> None:
        """Switch to SWA's constant learning rate (scaled per parameter group); once per run."""
        if self.swa_schedule is None:
            swa_lr = self.config.swa_lr if self.config.swa_lr is not None else self.config.effective_lr(self.procs.size) / 10
            swa_lrs = [swa_lr * g.get("lr_factor", 1.0) for g in self.optimizer.param_groups]
            self.swa_schedule = SWALR(self.optimizer, swa_lr=swa_lrs, anneal_epochs=1, anneal_strategy="cos")

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The checkpoint dict of the run after ``epoch`` epochs."""
        swa = None
        if self.swa_model is not None:
            swa = {
                "model": self.swa_model.state_dict(),
                "scheduler": None if self.swa_schedule is None else self.swa_schedule.state_dict(),
                "applied": self.swa_applied,
            }
        ckpt = make_checkpoint(
            self.model,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.schedule.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            swa=swa,
            epoch=epoch,
            history=self.history.to_dict(),
            config=self.config.to_dict(),
            rng=_rng_state(self.loader),
            classes=self.classes,
            preprocess=self.preprocess,
            metrics=self.metrics,
            meta=self.meta,
        )
        ckpt["world_size"] = self.procs.size  # the number of processes: a resume must use as many
        return ckpt

    def save(self, epoch: int, *, best: bool = False) -> None:
        """Write ``last.pt`` (and ``best.pt`` when ``best``: the same bytes) after ``epoch`` epochs, and
        ``history.json``; nothing without ``out_dir`` or on a process other than rank 0.

        ``best.pt`` is written first: a run killed before ``last.pt`` records this epoch redoes it on resume and
        writes ``best.pt`` again, so neither file is ever missing after a resume."""
        if not self.writes:
            return
        assert self.out_dir is not None
        paths = ([self.out_dir / "best.pt"] if best else []) + [self.out_dir / "last.pt"]
        save_checkpoint_to(self.checkpoint(epoch), paths)
        self.saved_epochs = epoch
        self.save_history()

    def save_history(self) -> None:
        """Write ``history.json`` (rank 0, with an ``out_dir``)."""
        if self.writes:
            self.history.to_json(self.out_dir / "history.json")  # type: ignore[operator]

    def record_test(self, result: dict[str, Any]) -> None:
        """Store the final model's test metrics in the history and in ``last.pt``, ``best.pt``, ``history.json``."""
        epoch = len(self.history)
        self.history.extra["test"] = {
            "accuracy": result["accuracy"],
            "loss": result["loss"],
            "n": result["n"],
            "epoch": epoch,
        }
        self.metrics = {
            "test_accuracy": result["accuracy"],
            "test_loss": result["loss"],
            "test_n": result["n"],
            "test_of_epoch": epoch,
        }
        if not self.writes:
            return
        assert self.out_dir is not None
        best_path = self.out_dir / "best.pt"
        best_is_last = self.history.best_epoch == epoch and not self.swa_applied
        if best_path.exists() and not best_is_last:
            update_checkpoint(best_path, metrics=self.metrics)
        self.save(epoch, best=best_is_last)

    def resume(self) -> int:
        """Load ``out_dir/last.pt`` into every stateful object and restore the random states; return the number
        of completed epochs (0 when there is no ``last.pt``: a new run).

        Under DDP rank 0 reads the checkpoint and sends it to the other processes, so they resume from the same
        state even where they cannot see rank 0's files (another machine, or no ``out_dir``)."""
        problem, ckpt = None, None
        if self.procs.is_main:
            try:
                ckpt = self._read_last()
            except ValueError as err:  # CheckpointError too
                problem = err
        problem, ckpt = self.procs.share((problem, ckpt))
        if problem is not None:
            raise problem
        if ckpt is None:
            return 0
        load_weights(self.model, ckpt, (self.out_dir or Path(".")) / "last.pt")
        self.schedule.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler") is not None and self.scaler.is_enabled():
            self.scaler.load_state_dict(ckpt["scaler"])
        self._restore_swa(ckpt.get("swa"))
        # Last: building the schedulers above changed the learning rates; the saved optimizer state has the
        # exact values (and momentum buffers).
        self.optimizer.load_state_dict(ckpt["optimizer"])
        label = self.history.label
        self.history = History.from_dict(ckpt["history"])
        self.history.label = self.history.label or label
        self.history.interrupted = False
        if self.history.best_epoch is not None:
            self.best_acc = self.history.best_val_acc if self.history.best_val_acc is not None else -1.0
        self.metrics = dict(ckpt.get("metrics") or {})
        _set_rng_state(ckpt["rng"], self.loader)
        self.saved_epochs = int(ckpt["epoch"]) if self.writes else 0
        return int(ckpt["epoch"])

    def _read_last(self) -> dict[str, Any] | None:
        if self.out_dir is None:
            raise ValueError("resume=True needs out_dir (the folder holding last.pt)")
        path = self.out_dir / "last.pt"
        if not path.exists():
            return None
        ckpt = read_checkpoint(path)
        if ckpt.get("partial") is not None:
            raise CheckpointError(
                f"{path}: saved in the middle of an epoch by an older version of resnet_course, which this one "
                "cannot continue; train into a new output folder"
            )
        _check_resume_config(ckpt.get("config") or {}, self.config, path)
        if int(ckpt.get("world_size", 1)) != self.procs.size:
            raise ValueError(
                f"{path}: cannot resume, the run was trained by {ckpt.get('world_size', 1)} process(es) and "
                f"this one has {self.procs.size}; resume with the same number of processes (the data shards "
                "and the global batch depend on it)"
            )
        return ckpt

    def _restore_swa(self, swa: dict[str, Any] | None) -> None:
        self.swa_applied = bool((swa or {}).get("applied", False))
        if self.swa_model is None or swa is None:
            return
        self.swa_model.load_state_dict(swa["model"])
        if swa.get("scheduler") is not None:
            self.start_swa_phase()
            self.swa_schedule.load_state_dict(swa["scheduler"])  # type: ignore[union-attr]


def _check_resume_config(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    defaults = TrainConfig().to_dict()  # a field added after the run started counts as its default
    ignore = {"device"}
    diffs = [
        f"{k}={saved.get(k, defaults[k])!r} there, {v!r} now"
        for k, v in current.items()
        if k not in ignore and saved.get(k, defaults[k]) != v
    ]
    if diffs:
        raise ValueError(
            f"{path}: cannot resume, the run was started with different settings ({'; '.join(diffs)}); "
            "resume with the same settings or train into a new output folder"
        )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(loader: Any = None) -> dict[str, Any]:
    """Python, NumPy, PyTorch (CPU and CUDA) random states — and the state of ``loader.generator`` when the
    loader has its own ``torch.Generator`` — in a form ``torch.load(weights_only=True)`` reads."""
    np_state = np.random.get_state()
    generator = getattr(loader, "generator", None)
    return {
        "loader": generator.get_state() if isinstance(generator, torch.Generator) else None,
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all()
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else [],
    }


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _set_rng_state(state: dict[str, Any], loader: Any = None) -> None:
    generator = getattr(loader, "generator", None)
    if state.get("loader") is not None and isinstance(generator, torch.Generator):
        generator.set_state(state["loader"])
    random.setstate(_tuples(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(v: Any) -> Any:
    """``random.setstate`` wants tuples; JSON/pickle round trips may have produced lists."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list | tuple) else v
