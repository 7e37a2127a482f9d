"""Everything :func:`~resnet_course.training.engine.fit` does differently when ``torchrun`` starts several processes.

``fit`` asks :func:`processes` once and meets the answer at a few named points. For a single process
(:class:`OneProcess`) every point is the identity: ``wrap`` returns the model, ``combine`` returns the metrics.
Under ``torchrun`` (:class:`DataParallel`, data parallelism with ``DistributedDataParallel``):

* ``check_loader``: the training loader must be this process's shard, with as many batches as every other's;
* ``wrap``: the training step calls the model through ``DistributedDataParallel`` (``sync_bn``: BatchNorm
  statistics over all processes, CUDA only); checkpoints and evaluation keep the plain model;
* ``combine``: an epoch's training metrics and an evaluation's are summed over the processes (each image once);
* ``end_epoch``: every process takes rank 0's BatchNorm running statistics (as DDP does before each forward);
* ``agree`` / ``share``: a flag true on any process, an object read by rank 0 (the checkpoint to resume);
* ``report``: how far the processes' copies of the model ended apart (``history.extra["ddp"]``).

Only rank 0 prints and writes files (``is_main``). The process group itself is joined by
:func:`resnet_course.parallel.group.init_from_env` (the command line does it under ``torchrun``), which also
builds the loaders of this process's shard: ``DataBundle.loaders(config, rank=..., world_size=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from resnet_course.parallel.group import World, all_sum, gather, replica_difference, world

if TYPE_CHECKING:
    from resnet_course.training.config import TrainConfig

__all__ = ["DataParallel", "OneProcess", "processes"]


class OneProcess:
    """A run in one process: nothing to share."""

    is_main = True
    distributed = False
    rank = 0
    size = 1

    def check_loader(self, loader: Iterable[Any], n_batches: int) -> None:
        return None

    def wrap(self, model: nn.Module, config: TrainConfig) -> tuple[nn.Module, nn.Module]:
        """``(the model checkpoints hold, what the training step calls)``."""
        return model, model

    def combine(self, metrics: dict[str, Any], loader: Iterable[Any]) -> dict[str, Any]:
        """``metrics`` (``loss``, ``accuracy``, ``n``) of this process's part of ``loader``, over all processes."""
        return metrics

    def end_epoch(self, model: nn.Module) -> None:
        return None

    def agree(self, flag: bool) -> bool:
        return flag

    def share(self, value: Any) -> Any:
        return value

    def barrier(self) -> None:
        return None

    def describe(self, config: TrainConfig) -> str | None:
        return None

    def report(self, model: nn.Module, config: TrainConfig) -> dict[str, Any] | None:
        return None


class DataParallel(OneProcess):
    """This process's part of a job of ``world.size`` processes (see the module documentation)."""

    distributed = True

    def __init__(self, here: World) -> None:
        self.world = here
        self.is_main = here.is_main
        self.rank = here.rank
        self.size = here.size

    def check_loader(self, loader: Iterable[Any], n_batches: int) -> None:
        if getattr(loader, "world_size", None) != self.size:
            raise ValueError(
                f"fit runs in a process group of {self.size} processes, but the training loader is not sharded "
                "for it (each process would train on every image): build them with DataBundle.loaders(config, "
                "rank=processes().rank, world_size=processes().size), or TensorLoader/StreamLoader(..., rank=, "
                "world_size=)"
            )
        counts = gather(n_batches)
        if len(set(counts)) > 1:  # DDP would wait forever for the processes with fewer batches
            raise ValueError(
                f"the processes' training loaders have different numbers of batches per epoch ({counts}); "
                "shard them with equal_batches=True (the default of a shuffling TensorLoader)"
            )

    def wrap(self, model: nn.Module, config: TrainConfig) -> tuple[nn.Module, nn.Module]:
        device = config.torch_device
        if config.sync_bn:
            if self.world.backend != "nccl" or device.type != "cuda":
                raise ValueError(
                    f"sync_bn needs CUDA processes (backend nccl); this job runs on {device.type} with "
                    f"{self.world.backend}, where PyTorch's SyncBatchNorm does not work. Train without --sync-bn: "
                    "each process then normalises with its own batch's statistics (and rank 0's running "
                    "statistics are kept)"
                )
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = None
        if device.type == "cuda":
            ids = [device.index if device.index is not None else torch.cuda.current_device()]
        return model, DistributedDataParallel(model, device_ids=ids)

    def combine(self, metrics: dict[str, Any], loader: Iterable[Any]) -> dict[str, Any]:
        if getattr(loader, "world_size", 1) == 1:
            return metrics  # every process saw every image
        n = metrics["n"]
        loss, correct, total = all_sum(metrics["loss"] * n, metrics["accuracy"] * n, n)
        return {**metrics, "loss": loss / total, "accuracy": round(correct) / total, "n": int(total)}

    def end_epoch(self, model: nn.Module) -> None:
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)

    def agree(self, flag: bool) -> bool:
        return all_sum(1.0 if flag else 0.0)[0] > 0

    def share(self, value: Any) -> Any:
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        dist.barrier()

    def describe(self, config: TrainConfig) -> str:
        how = ""
        if config.lr is None and config.optimizer == "sgd":
            how = f" = 0.1 × {config.global_batch_size(self.size)}/128 (linear scaling, Goyal et al. 2017)"
        accum = f", × {config.accum_steps} accumulated batches per step" if config.accum_steps > 1 else ""
        return (
            f"DDP: {self.size} processes ({self.world.backend}), {config.batch_size} images per process per batch "
            f"→ global batch {config.global_batch_size(self.size)}{accum}; learning rate {config.effective_lr(self.size):.3g}{how}"
        )

    def report(self, model: nn.Module, config: TrainConfig) -> dict[str, Any]:
        return {
            "world_size": self.size,
            "backend": self.world.backend,
            "global_batch_size": config.global_batch_size(self.size),
            "lr": config.effective_lr(self.size),
            **replica_difference(model),
        }


def processes() -> OneProcess:
    """This run's processes: :class:`OneProcess`, or :class:`DataParallel` inside a ``torchrun`` process group."""
    here = world()
    return DataParallel(here) if here.distributed else OneProcess()
