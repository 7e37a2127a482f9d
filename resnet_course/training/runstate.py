"""The state of one training run: everything a checkpoint must capture for an exact resume.

:class:`RunState` owns the model, optimizer, schedule, gradient scaler, SWA model, history and random states of
a run, writes them to ``last.pt`` / ``best.pt`` / ``history.json`` (atomically, through
:mod:`resnet_course.training.checkpoints`) and reads them back when a run resumes. The training loop itself is in
:mod:`resnet_course.training.engine`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import SWALR, AveragedModel

from resnet_course.devices import reuse_freed_memory
from resnet_course.distributed import World, world
from resnet_course.training.checkpoints import (
    CheckpointError,
    load_weights,
    make_checkpoint,
    read_checkpoint,
    save_checkpoint_to,
)
from resnet_course.training.config import TrainConfig
from resnet_course.training.history import History
from resnet_course.training.optimizers import build_optimizer
from resnet_course.training.schedules import LRSchedule, build_schedule
from resnet_course.training.writer import BackgroundWriter

__all__ = ["RunState"]


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
    out_dir: Path | None = None
    classes: list[str] | None = None
    preprocess: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    swa_model: AveragedModel | None = None
    swa_schedule: SWALR | None = None
    swa_applied: bool = False
    best_acc: float = -1.0
    best: dict[str, Any] | None = None  # a CPU copy of best.pt, to add the test metrics without reading it
    metrics: dict[str, Any] = field(default_factory=dict)
    world: World = field(default_factory=World)
    train_model: nn.Module | None = None  # what the training step calls: the model, or its DDP wrapper
    writer: BackgroundWriter | None = None  # writes the run's files while training goes on (rank 0 only)

    @classmethod
    def start(
        cls,
        model: nn.Module,
        config: TrainConfig,
        loader: Any,
        steps_per_epoch: int,
        *,
        out_dir: str | Path | None = None,
        classes: Sequence[str] | None = None,
        preprocess: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        label: str = "",
    ) -> RunState:
        """Move ``model`` to the config's device (and memory format), build the optimizer, schedule, scaler,
        loss and SWA model, and seed Python, NumPy and PyTorch with ``config.seed``.

        Inside a process group (:func:`~resnet_course.distributed.world`) the training step calls the model
        through ``DistributedDataParallel`` (``config.sync_bn``: BatchNorm statistics over all processes);
        ``model`` itself stays unwrapped, and that is what checkpoints hold."""
        here = world()
        if config.torch_device.type == "cpu":
            reuse_freed_memory()  # no page faults for each step's activations
        model.to(config.torch_device)
        if config.sync_bn and here.distributed:
            _check_sync_bn(here, config)
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if config.uses_channels_last():
            model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, config)
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
            out_dir=Path(out_dir) if out_dir is not None else None,
            classes=list(classes) if classes is not None else None,
            preprocess=preprocess,
            meta=meta,
            swa_model=AveragedModel(model) if config.swa else None,
            world=here,
            train_model=_ddp(model, config) if here.distributed else model,
        )
        _seed_everything(config.seed)
        if state.out_dir is not None:
            state.out_dir.mkdir(parents=True, exist_ok=True)
        if state.writes:
            state.writer = BackgroundWriter()
        return state

    @property
    def last_path(self) -> Path | None:
        return self.out_dir / "last.pt" if self.out_dir is not None else None

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: it has an ``out_dir`` and is rank 0."""
        return self.out_dir is not None and self.world.is_main

    def rng_state(self) -> dict[str, Any]:
        """The random states of Python, NumPy, PyTorch and the training loader's generator."""
        return _rng_state(self.loader)

    def start_swa_phase(self) -> None:
        """Switch to SWA's constant learning rate (scaled per parameter group); once per run."""
        if self.swa_schedule is None:
            swa_lr = self.config.swa_lr if self.config.swa_lr is not None else self.config.effective_lr() / 10
            swa_lrs = [swa_lr * g.get("lr_factor", 1.0) for g in self.optimizer.param_groups]
            self.swa_schedule = SWALR(self.optimizer, swa_lr=swa_lrs, anneal_epochs=1, anneal_strategy="cos")

    def checkpoint(self, epoch: int, partial: dict[str, Any] | None = None) -> dict[str, Any]:
        """The checkpoint dict of the run after ``epoch`` epochs (``partial``: position inside the next one)."""
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
            rng=self.rng_state(),
            classes=self.classes,
            preprocess=self.preprocess,
            metrics=self.metrics,
            partial=partial,
            meta=self.meta,
        )
        ckpt["world_size"] = self.world.size  # the number of processes: a resume must use as many
        return ckpt

    def save(self, epoch: int, *, best: bool = False, partial: dict[str, Any] | None = None) -> None:
        """Write ``last.pt`` (and ``best.pt`` when ``best``) after ``epoch`` epochs; nothing without ``out_dir``
        or on a process other than rank 0. An epoch's files are written in the background (:meth:`flush` waits
        for them); a mid-epoch checkpoint (``partial``, the run is stopping) before this returns."""
        if not self.writes:
            return
        assert self.writer is not None and self.out_dir is not None
        paths = [self.out_dir / "last.pt"] + ([self.out_dir / "best.pt"] if best else [])
        snapshot = self.writer.save(self.checkpoint(epoch, partial), paths)
        if best:
            self.best = snapshot
        if partial is not None:
            self.writer.flush()

    def save_history(self) -> None:
        """Write ``history.json`` (in the background, after the checkpoints asked for before)."""
        if self.writes:
            assert self.writer is not None and self.out_dir is not None
            self.writer.call(History.from_dict(self.history.to_dict()).to_json, self.out_dir / "history.json")

    def flush(self) -> None:
        """Wait until the run's files asked for so far are on disk (raises a write's error)."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """:meth:`flush` and stop the writer's thread; call once the run is over."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

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
        self.flush()  # self.best may still be being written
        paths = [self.out_dir / "last.pt"]
        best_is_last = self.best is not None and self.best["epoch"] == epoch and not self.swa_applied
        if best_is_last:
            paths.append(self.out_dir / "best.pt")  # one file's bytes for both
        elif self.best is not None:
            self.best["metrics"] = dict(self.metrics)
            self.writer.call(save_checkpoint_to, self.best, [self.out_dir / "best.pt"])
        last = self.writer.save(self.checkpoint(epoch), paths)
        if best_is_last:
            self.best = last
        self.save_history()

    def resume(self) -> tuple[int, dict[str, Any] | None]:
        """Load ``out_dir/last.pt`` (and ``best.pt``) into every stateful object and restore the random states;
        return ``(completed epochs, position inside the next epoch or None)``. Without ``last.pt``: ``(0, None)``.

        Under DDP rank 0 reads the checkpoint and sends it to the other processes, so they resume from the same
        state even where they cannot see rank 0's files (another machine, or no ``out_dir``)."""
        ckpt = self._last_checkpoint()
        if ckpt is None:
            return 0, None
        path = (self.out_dir or Path(".")) / "last.pt"
        load_weights(self.model, ckpt, path)
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
        self.best = _read_if_readable(self.out_dir / "best.pt") if self.writes else None  # type: ignore[operator]
        partial = ckpt.get("partial")
        _set_rng_state(ckpt["rng"] if partial is None else partial["rng_epoch_start"], self.loader)
        return int(ckpt["epoch"]), partial

    def _last_checkpoint(self) -> dict[str, Any] | None:
        """``out_dir/last.pt`` after checking that this run may continue it (``None`` when there is none); under
        DDP read by rank 0 and broadcast, a problem raised on every process."""
        problem: Exception | None = None
        ckpt = None
        if self.world.is_main:
            try:
                ckpt = self._read_last()
            except ValueError as err:  # CheckpointError too
                problem = err
        if self.world.distributed:
            box = [problem, ckpt]
            dist.broadcast_object_list(box, src=0)
            problem, ckpt = box
        if problem is not None:
            raise problem
        return ckpt

    def _read_last(self) -> dict[str, Any] | None:
        if self.out_dir is None:
            raise ValueError("resume=True needs out_dir (the folder holding last.pt)")
        path = self.out_dir / "last.pt"
        if not path.exists():
            return None
        ckpt = read_checkpoint(path)
        _check_resume_config(ckpt.get("config") or {}, self.config, path)
        if int(ckpt.get("world_size", 1)) != self.world.size:
            raise ValueError(
                f"{path}: cannot resume, the run was trained by {ckpt.get('world_size', 1)} process(es) and "
                f"this one has {self.world.size}; resume with the same number of processes (the data shards "
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


def _check_sync_bn(here: World, config: TrainConfig) -> None:
    if here.backend != "nccl" or config.torch_device.type != "cuda":
        raise ValueError(
            f"sync_bn needs CUDA processes (backend nccl); this job runs on {config.torch_device.type} with "
            f"{here.backend}, where PyTorch's SyncBatchNorm does not work. Train without --sync-bn: each process "
            "then normalises with its own batch's statistics (and rank 0's running statistics are kept)"
        )


def _ddp(model: nn.Module, config: TrainConfig) -> DistributedDataParallel:
    """``model`` wrapped for data parallelism on its device (one GPU per process, or the CPU)."""
    device = config.torch_device
    ids = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else None
    )
    return DistributedDataParallel(model, device_ids=ids)


def _read_if_readable(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or ``None`` when it is missing or damaged (the next best epoch rewrites it)."""
    try:
        return read_checkpoint(path)
    except CheckpointError:
        return None


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
