"""What a lesson measured, written where a benchmark can read it.

A notebook calls :func:`record_result` with the few numbers its lesson is about (final training errors in 01, the
final test accuracy in 05, ...) and the profile it ran with. The file lands in
``results_dir()/<notebook>-<profile>-seed<seed>.json``, so ``benchmarks/lessons.py`` can run the notebooks with
several seeds (``RESNET_COURSE_SEED``) and tabulate what each lesson showed in each seed, from the notebooks
themselves rather than from a second copy of their code. ``RESNET_COURSE_RESULTS`` moves the folder (a timing run
that must not overwrite the records points it elsewhere).
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from resnet_course.atomic import write_text_atomically
from resnet_course.profiles import data_dir

__all__ = ["record_result", "read_results", "results_dir", "result_path", "RESULTS_ENV"]

RESULTS_ENV = "RESNET_COURSE_RESULTS"


def results_dir() -> Path:
    """Where :func:`record_result` writes: ``RESNET_COURSE_RESULTS`` if set, else ``data_dir()/results`` (not
    created here)."""
    env = os.environ.get(RESULTS_ENV, "").strip()
    return Path(env).expanduser() if env else data_dir() / "results"


def result_path(notebook: str, profile: str, seed: int) -> Path:
    """The file :func:`record_result` writes for ``notebook`` run with profile ``profile`` and ``seed``."""
    return results_dir() / f"{notebook}-{profile}-seed{int(seed)}.json"


def _plain(value: Any) -> Any:
    """JSON-friendly copy: tuples to lists, NumPy/torch scalars to Python numbers, keys to strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # NumPy arrays and tensors
        return _plain(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(
        f"record_result takes numbers, strings, lists and dicts; got {type(value).__name__}: {value!r}"
    )


def record_result(notebook: str, values: dict[str, Any], *, profile: Any, dataset: str) -> Path:
    """Write ``values`` (a JSON-friendly dict of what ``notebook`` measured) with the profile's name, seed and every
    knob (``profile``: a :class:`~resnet_course.profiles.Profile`; ``mixed precision`` included), the dataset, date
    and machine; returns the file. Written atomically (a temporary file renamed), so a reader never sees half. A
    benchmark compares the knobs of the records it combines, so runs with other settings are never mixed."""
    if not notebook or any(c in notebook for c in "/\\"):
        raise ValueError(f"notebook must be a short name such as '01', got {notebook!r}")
    path = result_path(notebook, profile.name, profile.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "notebook": notebook,
        "profile": profile.name,
        "seed": int(profile.seed),
        "dataset": dataset,
        "settings": _plain(profile.as_dict()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "values": _plain(values),
    }
    return write_text_atomically(path, json.dumps(record, indent=1))


def read_results(notebook: str | None = None, profile: str | None = None) -> list[dict[str, Any]]:
    """The records in :func:`results_dir`, optionally only those of ``notebook`` and ``profile``, by seed."""
    folder = results_dir()
    if not folder.is_dir():
        return []
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    return sorted(
        (
            r
            for r in records
            if (notebook is None or r["notebook"] == notebook)
            and (profile is None or r["profile"] == profile)
        ),
        key=lambda r: (r["notebook"], r["profile"], r["seed"]),
    )
