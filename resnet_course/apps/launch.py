"""Starting the command line's ``train`` as a DDP job with ``torchrun``, from Python (a notebook, a benchmark).

:func:`torchrun_command` builds the command a student would type in a terminal (shown with ``shlex.join``), and
:func:`run_command` runs it and returns its output, raising with the output's end when it fails. On one machine
``--standalone`` sets up the rendezvous; for several machines give ``nnodes``, ``node_rank`` and
``rdzv_endpoint`` (the address of node 0), and start the same command on every machine.
"""

from __future__ import annotations

import os
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
            raise ValueError(f"several machines need rdzv_endpoint='host:port' of node 0, got {rdzv_endpoint!r}")
        host, port = rdzv_endpoint.rsplit(":", 1)
        cmd += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--master-addr={host}", f"--master-port={port}"]
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
    lines of the output when the command fails or runs longer than ``timeout`` seconds.
    """
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(command), env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"{command[0]} ... ran longer than {timeout:.0f} s and was stopped") from err
    output = _without_launcher_noise(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join(output.splitlines()[-15:])
        raise RuntimeError(f"the command failed (exit code {done.returncode}):\n{tail}")
    return CommandResult(list(command), output, time.perf_counter() - start)


def _without_launcher_noise(text: str) -> str:
    """The output without torchrun's start-up banner about OMP_NUM_THREADS and progress-bar redraws."""
    keep = []
    for line in text.replace("\r", "\n").splitlines():
        if "OMP_NUM_THREADS" in line or set(line.split("]")[-1].strip()) <= {"*"} or "it/s" in line:
            continue
        keep.append(line)
    return "\n".join(keep)
