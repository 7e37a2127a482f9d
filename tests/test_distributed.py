"""Data parallelism: DDP with torchrun on the CPU (gloo), sharded loaders, rank-0 writes, resume, Ctrl-C, a dead
process, two simulated machines, run-folder locks and one-line errors for wrong launches.

The multi-process tests start real ``torchrun`` jobs of ``tests/ddp_train.py`` (2 processes, a few seconds each).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from resnet_course.apps.launch import torchrun_command
from resnet_course.data.loaders import TensorLoader, batch_positions
from resnet_course.data.shapes10 import make_shapes10
from resnet_course.parallel.group import DistributedError, World, init_from_env, world
from resnet_course.training.checkpoints import read_checkpoint
from resnet_course.training.config import TrainConfig
from resnet_course.training.runlock import RunFolderBusy, RunLock

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "ddp_train.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
    }
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp(out: Path, *args: str, nproc: int = 2, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    cmd = [*TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", str(SCRIPT), "--out", str(out), *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _two_machines(out: Path, *args: str) -> list[str]:
    """Two torchrun agents of one process each, as two machines would run them (node ranks 0 and 1, node 0's
    address as the rendezvous); their outputs, after both succeeded."""
    port, jobs = _free_port(), []
    for node in (0, 1):
        cmd = [
            *TORCHRUN, "--nnodes=2", f"--node-rank={node}", "--nproc_per_node=1", "--master-addr=127.0.0.1",
            f"--master-port={port}", str(SCRIPT), "--out", str(out), *args,
        ]  # fmt: skip
        jobs.append(
            subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    outputs = [job.communicate(timeout=180)[0] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], outputs
    return outputs


def _single_here(out: Path, *args: str) -> None:
    """The training script in this process (one compute thread, as its launched copies have): one process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ddp_train", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        script.main(["--out", str(out), *args])
    finally:
        torch.set_num_threads(threads)


def _train_command(*args: str, nproc: int | None = None, data: str = "shapes10") -> list[str]:
    """``python -m resnet_course train --model resnet20 --data <data> <args>``, under torchrun with ``nproc``."""
    train = ["--model", "resnet20", "--data", data, *args]
    if nproc is None:
        return [sys.executable, "-m", "resnet_course", "train", *train]
    return torchrun_command(train, nproc_per_node=nproc)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


# --------------------------------------------------------------------------------------------------
# Sharding (no process group needed)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [96, 100, 129, 3])
def test_training_shards_cut_each_global_batch_into_equal_slices(n: int) -> None:
    single = batch_positions(n, 64)
    shards = [batch_positions(n, 32, rank=r, world_size=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(single)
    for whole, a, b in zip(single, *shards, strict=True):
        assert len(a) >= 1 and len(b) >= 1 and abs(len(a) - len(b)) <= 1
        if len(whole) >= 2:
            assert torch.equal(torch.cat([a, b]), whole)
        else:  # one image left for two processes: the second is padded with the epoch's first image
            assert a.tolist() == whole.tolist() and b.tolist() == [0]


def test_evaluation_shards_count_every_image_once() -> None:
    shards = [torch.cat(batch_positions(101, 8, rank=r, world_size=3, equal_batches=False)) for r in range(3)]
    assert sorted(torch.cat(shards).tolist()) == list(range(101))


def test_tensor_loader_shards_together_give_the_one_process_batches() -> None:
    data = make_shapes10(96, seed=0)
    common = {"mean": (0.5,) * 3, "std": (0.25,) * 3, "shuffle": True, "augment": True, "seed": 3}
    one = list(TensorLoader(data, 32, **common))
    parts = [list(TensorLoader(data, 16, rank=r, world_size=2, **common)) for r in range(2)]
    for (x, y), (x0, y0), (x1, y1) in zip(one, *parts, strict=True):
        assert torch.equal(x, torch.cat([x0, x1])) and torch.equal(y, torch.cat([y0, y1]))
    with pytest.raises(ValueError, match="rank"):
        TensorLoader(data, 16, mean=(0.5,) * 3, std=(0.25,) * 3, rank=2, world_size=2)


# --------------------------------------------------------------------------------------------------
# Launch errors
# --------------------------------------------------------------------------------------------------


def test_without_torchrun_there_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert init_from_env("cpu") == World() and world().size == 1 and world().is_main


def test_world_size_without_rendezvous_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DistributedError, match="MASTER_ADDR, MASTER_PORT is not.*torchrun"):
        init_from_env("cpu")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))  # nobody listens there
    start = time.perf_counter()
    with pytest.raises(DistributedError, match="cannot reach the rendezvous at 127.0.0.1"):
        init_from_env("cpu")
    assert time.perf_counter() - start < 15


def test_rank_0_started_by_hand_without_its_peers_stops_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    start = time.perf_counter()
    with pytest.raises(
        DistributedError, match=r"rank 0: the 1 other process\(es\) did not all join .* within 2 s"
    ):
        init_from_env("cpu", rendezvous_timeout=2)
    assert time.perf_counter() - start < 15 and not torch.distributed.is_initialized()


def test_mps_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="MPS .* use --device cpu"):
        init_from_env("mps")


def test_nccl_without_cuda_and_too_many_processes_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DistributedError, match="'nccl' needs CUDA"):
        init_from_env("cpu", backend="nccl")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(DistributedError, match="2 processes on this machine but only 1 CUDA device"):
        init_from_env("cpu", backend="nccl")


def test_cli_reports_a_launch_without_rendezvous_in_one_line(tmp_path: Path) -> None:
    env = {**_env(), "WORLD_SIZE": "2", "RANK": "1"}
    cmd = _train_command("--epochs", "1", "--out", str(tmp_path / "run"))
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("error: WORLD_SIZE=2 is set but") and result.stderr.count("\n") == 1


# --------------------------------------------------------------------------------------------------
# Run-folder lock
# --------------------------------------------------------------------------------------------------


def _busy(lock: RunLock) -> str:
    try:
        lock.acquire()
    except RunFolderBusy as err:
        return str(err)
    lock.release()
    return "not refused"


def test_a_second_training_refuses_a_locked_run_folder_and_a_dead_one_leaves_no_lock(tmp_path: Path) -> None:
    refused = []
    with RunLock(tmp_path):
        with RunLock(tmp_path):  # the same thread again (the command line, then fit): re-entrant
            thread = threading.Thread(target=lambda: refused.append(_busy(RunLock(tmp_path))))
            thread.start()
            thread.join()
        assert refused and f"in use by another training: pid {os.getpid()}" in refused[0]
        assert RunLock(tmp_path).read_holder()["pid"] == os.getpid()  # still held after the inner release
    RunLock(tmp_path).acquire().release()  # released: free again
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from resnet_course.training.runlock import RunLock; import time; "
            f"RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)",
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=rf"pid {holder.pid} on "):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs
        holder.wait()
    RunLock(tmp_path).acquire().release()  # the kernel dropped the dead process's lock


# --------------------------------------------------------------------------------------------------
# DDP runs (torchrun, gloo, 2 processes)
# --------------------------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_ctrl_c_on_torchrun_stops_every_process_and_the_resumed_run_equals_one_process_of_the_global_batch(
    tmp_path: Path,
) -> None:
    """A small CNN without BatchNorm on two processes of 32 images each: Ctrl-C stops both, the run resumes on two
    simulated machines (one process each, node 0's address the rendezvous), and it equals one process with the
    global batch of 64 to float tolerance (gradients averaged over the processes are the global batch's; a resume
    that restored the wrong shard, random state or schedule would be far off).
    Bit-identical resume: tests/test_training.py; ResNet-20 with BatchNorm under DDP: the command-line test below."""
    out, common = tmp_path / "run", ["--epochs", "2", "--batch-size", "32"]
    cmd = [
        *TORCHRUN,
        "--standalone",
        "--nproc_per_node=2",
        str(SCRIPT),
        "--out",
        str(out),
        *common,
        "--slow",
        "2",
    ]
    # a terminal's Ctrl-C goes to torchrun's process group; torchrun passes it on to its workers (own sessions)
    job = subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline = time.time() + 120
    while not (out / "last.pt").exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.1)
    os.killpg(job.pid, signal.SIGINT)  # during epoch 1's 2-second callback, after last.pt of epoch 1
    try:
        output, _ = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        pytest.fail("torchrun did not stop within 60 s of Ctrl-C")
    workers = [int((out / f"pid{r}").read_text()) for r in range(2)]
    time.sleep(1)
    assert not [p for p in workers if _pid_alive(p)], f"workers left running after Ctrl-C\n{output[-2000:]}"
    assert read_checkpoint(out / "last.pt")["epoch"] == 1, output[-2000:]  # stopped at once, in epoch 2
    # resumed on "two machines" (one process each, node 0 the rendezvous): the same job, rank 0 writes alone
    # (resuming with another number of processes is refused: tests/test_training.py, without a launch)
    _two_machines(out, *common, "--resume")
    _single_here(tmp_path / "one", "--epochs", "2", "--batch-size", "64")
    one, two = torch.load(tmp_path / "one" / "rank0.pt"), torch.load(out / "rank1.pt")
    for k, v in one["state_dict"].items():
        torch.testing.assert_close(two["state_dict"][k], v, rtol=1e-5, atol=1e-6)
    h1, h2 = one["history"], two["history"]
    assert h2["epoch"] == [1, 2] and h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-6)
    assert h2["val_acc"] == h1["val_acc"]  # validation summed over both shards: every image once
    assert h2["extra"]["test"]["n"] == h1["extra"]["test"]["n"] == 100
    assert h2["extra"]["test"]["accuracy"] == h1["extra"]["test"]["accuracy"]
    # only rank 0 writes; the checkpoint holds the unwrapped model (torchvision's names, no "module.")
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["world_size"] == 2 and not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "last.pt", "rank0.pt", "rank1.pt"]


def test_a_process_that_dies_stops_the_job_naming_it_and_keeps_the_saved_epoch(tmp_path: Path) -> None:
    result = _ddp(tmp_path / "run", "--epochs", "3", "--die-after", "1")
    assert result.returncode != 0
    assert "rank      : 1" in result.stderr or "local_rank: 1" in result.stderr, result.stderr[-3000:]
    assert read_checkpoint(tmp_path / "run" / "last.pt")["epoch"] >= 1


def test_an_unsharded_loader_and_sync_bn_on_cpu_are_refused() -> None:
    """What a process of a 2-process gloo job checks before it trains (no process group needed to refuse)."""
    from resnet_course.parallel.ddp import DataParallel

    procs = DataParallel(World(rank=0, size=2, backend="gloo"))
    with pytest.raises(ValueError, match="the training loader is not sharded"):
        procs.check_loader([(torch.zeros(1), torch.zeros(1))], 1)
    with pytest.raises(ValueError, match=r"sync_bn needs CUDA processes \(backend nccl\)"):
        procs.wrap(nn.Linear(2, 2), TrainConfig(device="cpu", sync_bn=True))


def test_cli_under_torchrun_streams_a_folder_trains_one_model_and_a_second_job_cannot_share_it(
    tmp_path: Path,
) -> None:
    """The command line under torchrun on a streamed ImageFolder: each process reads its shard of the files, rank 0
    alone reports and writes, and a second job started on the same run folder is refused while the first trains
    (before its data loads: in about 4 s, where the first job's two epochs leave about 15 s)."""
    from resnet_course.data.imagefolder import write_image_folder

    folder = write_image_folder(make_shapes10(500, seed=0), tmp_path / "folder")
    out = tmp_path / "run"
    base = _train_command("--stream", "--batch-size", "32", "--out", str(out), nproc=2, data=str(folder))
    first = subprocess.Popen(
        [*base, "--epochs", "2"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 120
    while not (out / ".lock").exists() or not (out / ".lock").read_text():
        assert time.time() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.2)
    second = _train_command("--train-size", "200", "--test-size", "50", "--epochs", "1", "--out", str(out))
    refused = subprocess.run(second, env=_env(), capture_output=True, text=True, timeout=120)
    running = first.poll() is None
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-3000:]
    assert running, "the first job ended before the second was refused: the test proves nothing"
    assert refused.returncode == 1 and "is in use by another training: pid" in refused.stderr
    assert "DDP job" in refused.stderr
    assert (
        "data: streamed from disk" in stderr and stderr.count("data: streamed") == 1
    )  # rank 0 alone reports
    assert stdout.count("final test acc") == 1 and "on 100 images" in stdout  # 20 % of 500, each image once
    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt["world_size"] == 2 and ckpt["metrics"]["test_n"] == 100
    # ResNet-20's two replicas end equal, BatchNorm's running statistics included (DDP broadcasts rank 0's buffers)
    ddp = json.loads((out / "history.json").read_text())["extra"]["ddp"]
    assert ddp["max_difference"] == 0.0 and ddp["world_size"] == 2 and ddp["global_batch_size"] == 64
    assert ddp["values"] == sum(v.numel() for v in ckpt["state_dict"].values())
