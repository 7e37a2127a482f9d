"""Starting the command line's ``train`` as a DDP job with ``torchrun``, from Python (a notebook, a benchmark).

:func:`torchrun_command` builds the command a student would type in a terminal (shown with ``shlex.join``), and
:func:`run_command` runs it and returns its output, raising with the output's end when it fails. On one machine
``--standalone`` sets up the rendezvous; for several machines give ``nnodes``, ``node_rank`` and
``rdzv_endpoint`` (the address of node 0), and start the same command on every machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CommandResult", "run_command", "torchrun_command"]


def torchrun_command(
    train_args: Sequence[str | Path],
    *,
    nproc_per_node: int = 2,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    python: str | None = None,
) -> list[str]:
    """``python -m torch.distributed.run ... -m resnet_course train <train_args>`` (``torchrun`` is the same
    program; calling it through the running Python keeps the notebook's environment).

    One machine (``nnodes=1``): ``--standalone``. Several: ``--nnodes``, ``--node-rank`` and a static
    rendezvous at ``rdzv_endpoint`` (``host:port`` of node 0), which every node must be given.
    """
    if nproc_per_node < 1 or nnodes < 1 or not 0 <= node_rank < nnodes:
        raise ValueError(
            f"need nproc_per_node ≥ 1, nnodes ≥ 1 and 0 ≤ node_rank < nnodes, got {nproc_per_node}, {nnodes}, "
            f"{node_rank}"
        )
    cmd = [python or sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1:
        cmd.append("--standalone")
    else:
        if not rdzv_endpoint or ":" not in rdzv_endpoint:
            raise ValueError(
                f"several machines need rdzv_endpoint='host:port' of node 0, got {rdzv_endpoint!r}"
            )
        host, port = rdzv_endpoint.rsplit(":", 1)
        cmd += [
            f"--nnodes={nnodes}",
            f"--node-rank={node_rank}",
            f"--master-addr={host}",
            f"--master-port={port}",
        ]
    cmd += [f"--nproc_per_node={nproc_per_node}", "-m", "resnet_course", "train", *map(str, train_args)]
    return cmd


@dataclass
class CommandResult:
    """What :func:`run_command` returns: the command's combined output and its wall time."""

    command: list[str]
    output: str
    seconds: float


def run_command(command: Sequence[str], *, timeout: float = 600, threads: int | None = 1) -> CommandResult:
    """Run ``command`` (e.g. from :func:`torchrun_command`) and return its output and wall time.

    ``threads``: ``OMP_NUM_THREADS`` of each process (torchrun's own default for several processes is 1; on a
    2-core machine two processes with one thread each use both cores). Raises ``RuntimeError`` with the last
    lines of the output when the command fails or runs longer than ``timeout`` seconds; then, and when the
    caller is interrupted (a notebook's stop button), the job is stopped as Ctrl-C would stop it.
    """
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    job = subprocess.Popen(
        list(command), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _stop(job)
        raise RuntimeError(f"{command[0]} ... ran longer than {timeout:.0f} s and was stopped") from None
    except KeyboardInterrupt:  # the notebook's stop button: stop the job the way Ctrl-C in a terminal would
        _stop(job)
        raise
    output = _without_launcher_noise(output)
    if job.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise RuntimeError(f"the command failed (exit code {job.returncode}):\n{tail}")
    return CommandResult(list(command), output, time.perf_counter() - start)


def _stop(job: subprocess.Popen[str], grace: float = 60.0) -> None:
    """Stop ``job`` as Ctrl-C would: SIGINT (torchrun passes it to its workers, which save and exit), then
    SIGTERM, then SIGKILL, each after a grace period. Killing torchrun outright would leave its workers running:
    they live in sessions of their own."""
    steps = [(lambda: job.send_signal(signal.SIGINT), grace), (job.terminate, 10.0), (job.kill, None)]
    for send, wait in steps:
        if job.poll() is not None:
            return
        send()
        try:
            job.communicate(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _without_launcher_noise(text: str) -> str:
    """The output without torchrun's start-up banner about OMP_NUM_THREADS and progress-bar redraws."""
    keep = []
    for line in text.replace("\r", "\n").splitlines():
        if "OMP_NUM_THREADS" in line or set(line.split("]")[-1].strip()) <= {"*"} or "it/s" in line:
            continue
        keep.append(line)
    return "\n".join(keep)
