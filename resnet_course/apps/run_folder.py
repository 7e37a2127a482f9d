"""What ``train`` checks about its ``--out`` folder before any data loads, so that a run that cannot write, or
would overwrite or wrongly continue another run, stops at once with one line instead of after minutes.

:func:`claim_run_folder` returns the folder's :class:`~resnet_course.training.runlock.RunLock`, held: the folder
exists and takes files; no other training is using it; it holds no earlier run unless ``--resume`` continues
that run (on the same data: the checkpoint records the data options) or ``--overwrite`` replaces it (its files
are deleted now, so nothing of the old run mixes into the new one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from resnet_course.apps.cli_options import CLIError, one_line
from resnet_course.training.checkpoints import read_checkpoint
from resnet_course.training.runlock import RunLock
from resnet_course.training.runstate import RUN_FILES

__all__ = ["claim_run_folder"]

DATA_OPTIONS = {"spec": "--data", "val_fraction": "--val-fraction", "train_size": "--train-size", "test_size": "--test-size"}


def claim_run_folder(out: Path, *, resume: bool, overwrite: bool, data: dict[str, Any]) -> RunLock:
    """Check ``out`` for a training with the data options ``data`` (``spec`` and the split) and hold its lock;
    raises :class:`CLIError` (one line) or :class:`~resnet_course.training.runlock.RunFolderBusy`."""
    _check_writable(out)
    try:
        lock = RunLock(out).acquire()
    except OSError as err:  # a link in place of the lock file
        raise CLIError(one_line(err)) from None
    try:
        _check_earlier_run(out, resume=resume, overwrite=overwrite, data=data)
    except BaseException:
        lock.release()
        raise
    return lock


def _check_writable(out: Path) -> None:
    probe = out / f".write-test.{os.getpid()}"
    try:
        if out.exists() and not out.is_dir():
            raise CLIError(f"--out {out} is a file, not a folder: give the folder the run should write into")
        out.mkdir(parents=True, exist_ok=True)
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as err:
        reason = err.strerror or one_line(err)
        raise CLIError(f"--out {out}: cannot write there ({reason}); choose a folder you can write to") from None


def _check_earlier_run(out: Path, *, resume: bool, overwrite: bool, data: dict[str, Any]) -> None:
    found = [name for name in RUN_FILES if (out / name).exists()]
    if not resume:
        if found and not overwrite:
            raise CLIError(
                f"{out} already holds a run ({', '.join(found)}): continue it with --resume, replace it with "
                "--overwrite, or choose another --out"
            )
        for name in found:  # --overwrite: nothing of the old run may end up in the new one
            (out / name).unlink()
        return
    if (out / "last.pt").exists():
        saved = (read_checkpoint(out / "last.pt").get("meta") or {}).get("data")
        if saved:
            _check_same_data(out / "last.pt", saved, data)


def _check_same_data(path: Path, saved: dict[str, Any], now: dict[str, Any]) -> None:
    diffs = [
        f"{option} {saved.get(key)} there, {now.get(key)} now"
        for key, option in DATA_OPTIONS.items()
        if not _same(key, saved.get(key), now.get(key))
    ]
    if diffs:
        raise CLIError(
            f"{path}: cannot resume on other data ({'; '.join(diffs)}); resume with the data options the run "
            "started with, or train into another --out"
        )


def _same(key: str, saved: Any, now: Any) -> bool:
    if saved == now:
        return True
    if key != "spec" or saved is None or now is None:  # numbers, parsed the same way each time: equal or not
        return False
    return Path(saved).expanduser().resolve() == Path(now).expanduser().resolve()  # one folder, named two ways
