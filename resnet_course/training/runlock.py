"""One training per run folder: a lock file that a second training refuses, and a dead one does not leave stuck.

:class:`RunLock` takes an exclusive ``fcntl.flock`` on ``<run folder>/.lock`` for the whole run and writes who
holds it (pid, host, command, start time, DDP job). The operating system releases the lock when the process
ends, however it ends (a crash, ``kill -9``), so a stale file never blocks the next run: the next one simply
takes the lock again. Under DDP only rank 0 takes it (the other processes of the same job write nothing).

Where ``fcntl`` is missing (Windows) the holder's pid is checked instead; a lock whose process is gone is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from resnet_course.parallel.group import job_id

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunFolderBusy", "RunLock"]

LOCK_NAME = ".lock"


class RunFolderBusy(RuntimeError):
    """Another training is writing into this run folder."""


def _holder_text(info: dict[str, Any]) -> str:
    if not info:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    job = f", DDP job {info['job']}" if info.get("job") else ""
    return f"pid {info.get('pid')} on {info.get('host')} ({info.get('command', '?')}, started {started}{job})"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """Hold ``folder/.lock`` while a training writes into ``folder``; use as a context manager.

    Raises :class:`RunFolderBusy` (one line, naming the holder) when another live process holds it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock(fd)
        except BaseException:
            os.close(fd)
            raise
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200] if sys.argv else "python",
            "started": time.time(),
            "job": job_id(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def _lock(self, fd: int) -> None:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                raise RunFolderBusy(self._busy_message(self.read_holder())) from None
        holder = self.read_holder()  # pragma: no cover - Windows
        if (
            holder.get("pid")
            and holder.get("host") == socket.gethostname()
            and _pid_alive(int(holder["pid"]))
        ):
            raise RunFolderBusy(self._busy_message(holder))

    def _busy_message(self, holder: dict[str, Any]) -> str:
        return (
            f"{self.folder} is in use by another training: {_holder_text(holder)}; wait for it to finish, stop "
            "it, or write to another folder (two trainings that are not one DDP job must not share a run folder)"
        )

    def read_holder(self) -> dict[str, Any]:
        """Who wrote the lock file last (``{}`` when it is empty or unreadable)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
