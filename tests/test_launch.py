"""resnet_course.apps.launch: torchrun commands for one and several machines, and running a command."""

from __future__ import annotations

import sys

import pytest

from resnet_course.apps.launch import run_command, torchrun_command


def test_one_machine_is_standalone_and_ends_with_the_train_arguments() -> None:
    cmd = torchrun_command(["--model", "resnet20", "--epochs", 1], nproc_per_node=4, python="python")
    assert cmd == [
        "python", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
        "-m", "resnet_course", "train", "--model", "resnet20", "--epochs", "1",
    ]  # fmt: skip


def test_several_machines_need_the_rendezvous_of_node_0() -> None:
    cmd = torchrun_command(["--epochs", "1"], nnodes=2, node_rank=1, rdzv_endpoint="10.0.0.1:29500")
    assert "--standalone" not in cmd
    assert cmd[3:7] == ["--nnodes=2", "--node-rank=1", "--master-addr=10.0.0.1", "--master-port=29500"]
    with pytest.raises(ValueError, match="rdzv_endpoint='host:port'"):
        torchrun_command([], nnodes=2, node_rank=0)
    with pytest.raises(ValueError, match="node_rank < nnodes"):
        torchrun_command([], nnodes=2, node_rank=2, rdzv_endpoint="h:1")


def test_run_command_returns_the_output_and_raises_with_its_end_on_failure() -> None:
    done = run_command([sys.executable, "-c", "import os; print('threads', os.environ['OMP_NUM_THREADS'])"])
    assert done.output.strip() == "threads 1" and done.seconds > 0
    with pytest.raises(RuntimeError, match=r"exit code 3\):\nlast words"):
        run_command([sys.executable, "-c", "import sys; print('last words'); sys.exit(3)"])
    with pytest.raises(RuntimeError, match="longer than 1 s"):
        run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=1)
