"""Files written whole or not at all, and only where they are meant to be.

:func:`write_atomically` writes into a new temporary file next to the target, syncs it to disk and renames it
over the target with ``os.replace``. A crash, ``kill -9`` or Ctrl-C during the write leaves the previous file
as it was. The temporary file is created exclusively (``O_EXCL``) under a name no one can predict, so a
symbolic link planted in the folder is never written through; the rename replaces a link that has the
target's name instead of writing where it points. A writer killed mid-write leaves its temporary file behind:
:func:`remove_stale_temporaries` clears those (the next training in a run folder does, once it holds the
folder's lock).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["remove_stale_temporaries", "write_atomically", "write_text_atomically"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def write_atomically(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write`` on a new temporary file next to ``path``, sync it and rename it over ``path``; on any
    failure (Ctrl-C included) remove the temporary file and leave ``path`` as it was. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, _FLAGS, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: str | Path, text: str) -> Path:
    """:func:`write_atomically` for text (UTF-8)."""
    return write_atomically(path, lambda f: f.write(text.encode("utf-8")))


def remove_stale_temporaries(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete what writers of ``folder/<name>`` killed mid-write left (``.<name>.<pid>.<random>.tmp``), for each
    of ``names``; returns the removed paths. Call it only while no one can be writing those files."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            if tmp.is_symlink() or tmp.is_file():
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    return removed
