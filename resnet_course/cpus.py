"""How many CPUs this process may use, and PyTorch's compute threads made to follow them.

PyTorch starts one compute thread per CPU it sees. A process may use fewer: a JupyterHub server or a container
with a CPU quota (``cpu_limit``, ``docker --cpus``, Kubernetes limits) sees every core of the machine but gets
the time of a few. Threads beyond the quota then wait for each other in every operation, and the run slows down
(``benchmarks/RESULTS.md``, "Shared machines"). :func:`usable_cpus` is the smallest of the CPUs in the affinity
mask, the cgroup's quota (rounded down, at least 1) and ``RESNET_COURSE_THREADS`` when set;
:func:`follow_usable_cpus` lowers ``torch.set_num_threads`` to it, which works even after torch was imported
(a notebook kernel).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

__all__ = ["THREADS_ENV", "cgroup_cpu_limit", "follow_usable_cpus", "usable_cpus"]

THREADS_ENV = "RESNET_COURSE_THREADS"


def _quota(folder: Path) -> float | None:
    """CPUs the cgroup ``folder`` itself allows (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``); ``None``: no limit."""
    try:
        if (folder / "cpu.max").is_file():
            quota, period = (folder / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if (folder / "cpu.cfs_quota_us").is_file():
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            return None if quota <= 0 else quota / int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None


def cgroup_cpu_limit(
    proc_cgroup: str | Path = "/proc/self/cgroup", root: str | Path = "/sys/fs/cgroup"
) -> float | None:
    """CPUs this process's cgroup lets it use (quota ÷ period, the smallest along the path from its cgroup up
    to the root), or ``None`` when there is no quota or it cannot be read (not Linux)."""
    root, limits = Path(root), []
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: one hierarchy, mounted at root
            mount = root
        elif "cpu" in controllers.split(","):  # cgroup v1: the cpu controller's own hierarchy
            names = (controllers, "cpu", "cpu,cpuacct")
            mount = next((root / name for name in names if (root / name).is_dir()), None)
            if mount is None:
                continue
        else:
            continue
        folder = mount / path.lstrip("/")
        for level in (folder, *folder.parents):
            if level == mount.parent:
                break
            if (quota := _quota(level)) is not None:
                limits.append(quota)
    return min(limits) if limits else None


def usable_cpus() -> tuple[int, str]:
    """``(n, why)``: the CPUs this process may use — its affinity mask, lowered by a cgroup CPU quota (rounded
    down, at least 1), replaced by ``RESNET_COURSE_THREADS`` when that is set — and a few words saying which."""
    setting = os.environ.get(THREADS_ENV, "").strip()
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ValueError(f"{THREADS_ENV}={setting!r}: give a whole number of threads ≥ 1, or unset it")
        return int(setting), f"{THREADS_ENV}={setting}"
    seen = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None and max(1, math.floor(limit)) < seen:
        return max(1, math.floor(limit)), f"a CPU quota of {limit:g} CPUs (cgroup) on {seen} CPUs"
    return seen, f"{seen} CPUs available"


def follow_usable_cpus() -> str | None:
    """Set PyTorch's compute threads to :func:`usable_cpus` where it would use more (or to
    ``RESNET_COURSE_THREADS``); returns a line saying so when the number changed, else ``None``."""
    n, why = usable_cpus()
    before, asked = torch.get_num_threads(), bool(os.environ.get(THREADS_ENV, "").strip())
    if n == before or (n > before and not asked):
        return None  # fewer threads were asked for elsewhere (torch.set_num_threads, OMP_NUM_THREADS): kept
    torch.set_num_threads(n)
    return f"compute threads: {n} instead of {before} ({why})"
