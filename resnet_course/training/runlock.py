"""One training per run folder: a lock file that a second training refuses, and a dead one does not leave stuck.

:class:`RunLock` takes an exclusive ``fcntl.flock`` on ``<run folder>/.lock`` for the whole run and writes who
holds it (pid, host, command, start time, DDP job). The operating system releases the lock when the process
ends, however it ends (a crash, ``kill -9``), so a stale file never blocks the next run: the next one simply
takes the lock again. Under DDP only rank 0 takes it (the other processes of the same job write nothing).

Where ``fcntl`` is missing (Windows) the holder's pid is checked instead; a lock whose process is gone is taken over.
Within one thread the lock is re-entrant: the command line takes it before loading the data, and ``fit`` takes it
again for the run (another thread of the same process is refused, as another process is). A ``.lock`` that is a
symbolic or hard link is refused, never written through.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
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

# the run folders this process holds, by folder and thread: [file descriptor, how many holders]
_HELD: dict[tuple[Path, int], list[int]] = {}


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


def _open_lock_file(path: Path) -> int:
    """Open (or create) the lock file, refusing a link: writing through it would change another file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as err:
        if path.is_symlink():
            raise OSError(
                err.errno, f"{path} is a symbolic link: a run folder's lock must be a plain file; delete the link"
            ) from None
        raise
    if os.fstat(fd).st_nlink > 1:
        os.close(fd)
        raise OSError(f"{path} is a hard link to another file: a run folder's lock must be its own; delete it")
    return fd


class RunLock:
    """Hold ``folder/.lock`` while a training writes into ``folder``; use as a context manager.

    Raises :class:`RunFolderBusy` (one line, naming the holder) when another live process holds it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._key: tuple[Path, int] | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        key = (self.folder.resolve(), threading.get_ident())
        if key in _HELD:  # this thread holds it already
            _HELD[key][1] += 1
            self._key = key
            return self
        fd = _open_lock_file(self.path)
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
        _HELD[key] = [fd, 1]
        self._key = key
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
        if self._key is None:
            return
        key, self._key = self._key, None
        fd, holders = _HELD[key]
        if holders > 1:
            _HELD[key][1] -= 1
            return
        del _HELD[key]
        try:
            os.ftruncate(fd, 0)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
