"""The CPUs a process may use: affinity, cgroup quotas (v1 and v2, written here as the kernel shows them), the
explicit setting; PyTorch's compute threads follow them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_course import cpus
from resnet_course.cpus import THREADS_ENV, cgroup_cpu_limit, follow_usable_cpus, usable_cpus


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_quota_is_the_smallest_along_the_path(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "self_cgroup"
    _write(proc, "0::/user.slice/jupyter-ada\n")
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "user.slice" / "cpu.max", "300000 100000\n")  # the slice: 3 CPUs
    _write(root / "user.slice" / "jupyter-ada" / "cpu.max", "150000 100000\n")  # the student's server: 1.5
    assert cgroup_cpu_limit(proc, root) == 1.5
    _write(root / "user.slice" / "jupyter-ada" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(proc, root) == 3.0
    _write(root / "user.slice" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(proc, root) is None


def test_cgroup_v1_quota_of_the_cpu_controller(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "self_cgroup"
    _write(proc, "4:memory:/box\n2:cpu,cpuacct:/box\n0::/\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    _write(root / "cpu,cpuacct" / "box" / "cpu.cfs_quota_us", "100000\n")
    _write(root / "cpu,cpuacct" / "box" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(proc, root) == 1.0
    _write(root / "cpu,cpuacct" / "box" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(proc, root) is None
    assert cgroup_cpu_limit(tmp_path / "missing", root) is None  # not Linux: no quota known


def test_usable_cpus_takes_the_quota_rounded_down_and_the_setting_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: None)
    assert usable_cpus() == (4, "4 CPUs available")
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 1.5)
    assert usable_cpus() == (1, "a CPU quota of 1.5 CPUs (cgroup) on 4 CPUs")
    monkeypatch.setattr(cpus, "cgroup_cpu_limit", lambda: 0.5)
    assert usable_cpus()[0] == 1  # at least one thread
    monkeypatch.setenv(THREADS_ENV, "3")
    assert usable_cpus() == (3, f"{THREADS_ENV}=3")
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(ValueError, match=f"{THREADS_ENV}={bad!r}: give a whole number"):
            usable_cpus()


def test_torch_threads_follow_the_usable_cpus_and_are_never_raised_unasked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(cpus, "usable_cpus", lambda: (1, "a CPU quota of 1 CPUs (cgroup) on 2 CPUs"))
        assert follow_usable_cpus() == "compute threads: 1 instead of 2 (a CPU quota of 1 CPUs (cgroup) on 2 CPUs)"
        assert torch.get_num_threads() == 1
        assert follow_usable_cpus() is None  # already there
        monkeypatch.setattr(cpus, "usable_cpus", lambda: (2, "2 CPUs available"))
        assert follow_usable_cpus() is None and torch.get_num_threads() == 1  # set lower elsewhere: kept
        monkeypatch.undo()  # the real usable_cpus, asked for two threads
        monkeypatch.setenv(THREADS_ENV, "2")
        assert follow_usable_cpus() == f"compute threads: 2 instead of 1 ({THREADS_ENV}=2)"
    finally:
        torch.set_num_threads(before)
