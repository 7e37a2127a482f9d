"""The background writer of a run's files: snapshots, order, atomic files, errors that surface."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch

from resnet_course.training.checkpoints import read_checkpoint, save_checkpoint_to
from resnet_course.training.writer import BackgroundWriter


def ckpt(value: float, epoch: int = 1) -> dict:
    return {
        "format": "resnet_course.checkpoint/1",
        "state_dict": {"w": torch.full((3,), value)},
        "epoch": epoch,
    }


def test_save_checkpoint_to_writes_the_same_bytes_to_every_path(tmp_path: Path) -> None:
    last, best = save_checkpoint_to(ckpt(1.0), [tmp_path / "last.pt", tmp_path / "best.pt"])
    assert last.read_bytes() == best.read_bytes()
    assert read_checkpoint(best)["state_dict"]["w"].tolist() == [1.0, 1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left


def test_the_writer_saves_the_checkpoint_as_it_was_when_asked(tmp_path: Path) -> None:
    writer = BackgroundWriter()
    live = ckpt(1.0)
    writer.save(live, [tmp_path / "last.pt"])
    live["state_dict"]["w"].fill_(2.0)  # training goes on changing the tensors
    live["epoch"] = 2
    writer.close()
    saved = read_checkpoint(tmp_path / "last.pt")
    assert saved["epoch"] == 1 and saved["state_dict"]["w"].tolist() == [1.0, 1.0, 1.0]


def test_writes_run_in_order_in_one_background_thread(tmp_path: Path) -> None:
    writer, seen = BackgroundWriter(), []

    def note(i: int) -> None:
        seen.append((i, threading.current_thread() is threading.main_thread()))

    for i in range(5):
        writer.save(ckpt(float(i), epoch=i), [tmp_path / "last.pt"])
        writer.call(note, i)
    writer.flush()
    assert seen == [(i, False) for i in range(5)]
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 4
    writer.close()


def test_a_failed_write_is_raised_by_flush_and_keeps_the_previous_file(tmp_path: Path) -> None:
    writer = BackgroundWriter()
    writer.save(ckpt(1.0), [tmp_path / "last.pt"])
    writer.flush()
    (tmp_path / "best.pt").mkdir()  # a folder where the file should go: os.replace fails
    writer.save(ckpt(2.0, epoch=2), [tmp_path / "last.pt", tmp_path / "best.pt"])
    with pytest.raises(OSError):
        writer.flush()
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 2  # written before best.pt failed
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    writer.close()


def test_an_error_is_raised_at_the_next_request_once_it_happened(tmp_path: Path) -> None:
    writer = BackgroundWriter()

    def fail() -> None:
        raise RuntimeError("disk full")

    writer.call(fail)
    writer._pending[-1].exception()  # wait until it has failed
    with pytest.raises(RuntimeError, match="disk full"):
        writer.save(ckpt(1.0), [tmp_path / "last.pt"])
    writer.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_waits_until_the_pending_writes_are_done(tmp_path: Path) -> None:
    writer, done = BackgroundWriter(), threading.Event()

    def slow_write() -> None:
        time.sleep(0.5)
        done.set()

    writer.call(slow_write)
    pid = os.fork()  # as DataLoader workers start: the writer's thread must not be inside a write
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert done.is_set()
    writer.close()
