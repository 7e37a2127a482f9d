"""Data parallelism with PyTorch's own stack: the process group that ``torchrun`` sets up, seen from one process.

``torchrun --nproc_per_node=N -m resnet_course train ...`` starts N processes and gives each the environment
variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. :func:`init_from_env`
reads them and joins the process group (``nccl`` on CUDA, ``gloo`` on the CPU) with a one-line error for a
wrong launch; :func:`world` tells which process this is (rank 0 of 1 without a process group). What ``fit``
does with it is in :mod:`resnet_course.parallel.ddp`.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistributedError",
    "World",
    "all_sum",
    "any_true",
    "first_on_each_machine",
    "gather",
    "init_from_env",
    "job_id",
    "launched_by_torchrun",
    "launched_size",
    "world",
]


class DistributedError(RuntimeError):
    """A wrong distributed launch (no rendezvous, a backend without its devices, too many processes)."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: ``rank`` of ``size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The current process group as a :class:`World` (``World()``, rank 0 of 1, when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
        backend=str(dist.get_backend()),
    )


def launched_by_torchrun() -> bool:
    """True when this process was started by ``torchrun`` (or another launcher that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ


def job_id() -> str | None:
    """The torchrun job this process belongs to (its rendezvous), or ``None`` outside torchrun."""
    if not launched_by_torchrun():
        return None
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    return f"{run_id}@{where}" if run_id else where


def launched_size() -> int:
    """How many processes the launcher started (``WORLD_SIZE``; 1 for a plain start), before any group exists."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


@contextmanager
def first_on_each_machine(here: World) -> Iterator[None]:
    """Run the block in the first process of each machine, then in the others (a CIFAR-10 download or extraction
    happens once; the others read what it wrote). Without a process group the block just runs."""
    if not here.distributed:
        yield
        return
    if here.local_rank != 0:
        dist.barrier()
    try:
        yield
    finally:
        if here.local_rank == 0:
            dist.barrier()  # also when the block failed: the others then fail with the same error themselves


def _env_int(name: str) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text)
    except ValueError:
        raise DistributedError(
            f"environment variable {name}={text!r} is not an integer; start the job with torchrun, which sets it"
        ) from None


def _check_rendezvous(timeout: float) -> None:
    """Fail in seconds, with the address, when ``MASTER_ADDR:MASTER_PORT`` is missing or unreachable."""
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={os.environ['WORLD_SIZE']} is set but {', '.join(missing)} is not: start the job with "
            "torchrun (e.g. torchrun --standalone --nproc_per_node=2 -m resnet_course train ...), or unset "
            "WORLD_SIZE to train in one process"
        )
    if _env_int("RANK") == 0:
        return  # rank 0 hosts the store itself
    host, port = os.environ["MASTER_ADDR"], _env_int("MASTER_PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as err:
        raise DistributedError(
            f"cannot reach the rendezvous at {host}:{port} ({err.strerror or err}); check --rdzv-endpoint / "
            "MASTER_ADDR and MASTER_PORT, and that rank 0 has started"
        ) from None


def _backend_for(device: torch.device, backend: str | None, size: int, local_world: int) -> str:
    if device.type == "mps":
        raise DistributedError(
            "DDP does not run on Apple's MPS device (no PyTorch backend for it); use --device cpu (gloo)"
        )
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError(
            "backend 'nccl' needs CUDA GPUs, and this machine has none; use gloo (the CPU default)"
        )
    if backend == "nccl" and local_world > torch.cuda.device_count():
        raise DistributedError(
            f"{local_world} processes on this machine but only {torch.cuda.device_count()} CUDA device(s): "
            f"use --nproc_per_node={torch.cuda.device_count()} (one process per GPU)"
        )
    if backend not in ("nccl", "gloo"):
        raise DistributedError(f"unknown backend {backend!r}; use 'nccl' (CUDA) or 'gloo' (CPU)")
    return backend


def init_from_env(
    device: str | torch.device = "cpu",
    *,
    backend: str | None = None,
    timeout: float = 1800.0,
    rendezvous_timeout: float = 120.0,
) -> World:
    """Join the process group described by ``torchrun``'s environment and return this process's :class:`World`.

    Without ``WORLD_SIZE`` (a plain ``python`` start), or when a group already exists, nothing is initialised.
    ``backend``: ``None`` chooses ``nccl`` for a CUDA ``device`` and ``gloo`` otherwise; with CUDA each process
    uses the GPU of its ``LOCAL_RANK``. ``timeout``: seconds a collective waits for a process that has stopped
    before it fails. Processes started by hand (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` set
    without torchrun) wait at most ``rendezvous_timeout`` seconds for each other. Raises
    :class:`DistributedError` (one line) for a launch that cannot work.
    """
    if dist.is_initialized() or not launched_by_torchrun():
        return world()
    size = _env_int("WORLD_SIZE")
    if size < 1:
        raise DistributedError(f"WORLD_SIZE must be ≥ 1, got {size}")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    chosen = _backend_for(torch.device(device), backend, size, local_world)
    if size == 1 and chosen == "gloo":
        return World()  # one process: nothing to synchronise
    _check_rendezvous(timeout=10.0)
    if chosen == "nccl":
        torch.cuda.set_device(_env_int("LOCAL_RANK"))
    collective = datetime.timedelta(seconds=timeout)
    if "TORCHELASTIC_RUN_ID" in os.environ:  # torchrun: its agent has already gathered every process
        dist.init_process_group(chosen, timeout=collective)
    else:
        rank = _env_int("RANK")
        dist.init_process_group(
            chosen,
            store=_store(rank, size, rendezvous_timeout),
            rank=rank,
            world_size=size,
            timeout=collective,
        )
    return world()


def _store(rank: int, size: int, wait: float) -> dist.TCPStore:
    """The rendezvous of processes started by hand: rank 0 serves it and waits ``wait`` seconds for the others."""
    host, port = os.environ["MASTER_ADDR"], _env_int("MASTER_PORT")
    try:
        return dist.TCPStore(
            host,
            port,
            size,
            is_master=rank == 0,
            timeout=datetime.timedelta(seconds=wait),
            wait_for_workers=True,
        )
    except (RuntimeError, OSError) as err:
        raise DistributedError(
            f"rank {rank}: the {size - 1 if rank == 0 else size} other process(es) did not all join the rendezvous "
            f"at {host}:{port} within {wait:.0f} s ({str(err).splitlines()[0][:120]}); start every rank with the "
            "same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, or use torchrun"
        ) from None


def all_sum(*values: float | int, device: torch.device | str = "cpu") -> list[float]:
    """The sums of ``values`` over all processes (the values themselves without a process group)."""
    if not world().distributed:
        return [float(v) for v in values]
    device = torch.device(device)
    if world().backend == "nccl" and device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def gather(value: object) -> list[object]:
    """``value`` of every process, in rank order (``[value]`` without a process group)."""
    if not world().distributed:
        return [value]
    values: list[object] = [None] * world().size
    dist.all_gather_object(values, value)
    return values


def any_true(flag: bool, device: torch.device | str = "cpu") -> bool:
    """True when ``flag`` is true in at least one process (``flag`` itself without a process group)."""
    return bool(all_sum(1.0 if flag else 0.0, device=device)[0] > 0)


def replica_difference(module: torch.nn.Module) -> dict[str, float | int]:
    """How far the processes' copies of ``module`` are apart: ``max_difference`` is the largest absolute
    difference of any parameter or buffer value between any two processes (0.0 when DDP kept them equal),
    ``values`` how many numbers were compared. Every process must call it (it is a collective)."""
    tensors = [t.detach().reshape(-1).double() for t in (*module.parameters(), *module.buffers())]
    flat = torch.cat(tensors) if tensors else torch.zeros(0, dtype=torch.float64)
    if not world().distributed:
        return {"max_difference": 0.0, "values": int(flat.numel())}
    high, low = flat.clone(), flat.clone()
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    diff = float((high - low).max()) if flat.numel() else 0.0
    return {"max_difference": diff, "values": int(flat.numel())}
