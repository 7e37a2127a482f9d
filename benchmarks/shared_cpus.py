"""Trainings that share a machine: how much slower is each than one alone? Whole processes, side by side in one run.

Each run is ``python -m resnet_course train`` (ResNet-20, ``shapes10``, ``--images`` training images, ``--epochs``
epochs, batch 128, fp32, no progress bar), timed from start to exit. Cases:

* **default**: what a student gets: PyTorch's compute threads, one per CPU, which spin while they wait;
* **passive**: ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep; it must be set before the process starts, so a
  JupyterHub sets it in the spawner's environment);
* **quota** (Linux, as root, with a cgroup v1 ``cpu`` or v2 hierarchy): each process in a cgroup of its own with a
  CPU quota of ``--quota`` CPUs, as a JupyterHub server with ``cpu_limit`` is: the course's default, whose threads
  follow the quota (``resnet_course.cpus``), against PyTorch's own count (``RESNET_COURSE_THREADS`` = all CPUs).

For each case: one run alone, then two started together (their mean wall time), ``--repeats`` times alternating;
the fastest of each is compared: "pair/alone" is how much a neighbour slows a run down (sharing the cores fairly
between two runs gives about 2×). Timings depend on the CPU: the first line names it.

    python benchmarks/shared_cpus.py [--images 1500] [--epochs 2] [--repeats 2] [--cases default passive quota]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_runs import machine  # noqa: E402  (shared with the other benchmarks)

CGROUP = Path("/sys/fs/cgroup")


def _train(images: int, epochs: int, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "resnet_course", "train", "--model", "resnet20", "--data", "shapes10",
        "--train-size", str(images), "--test-size", str(max(100, images // 5)), "--epochs", str(epochs),
        "--batch-size", "128", "--lr", "0.1", "--amp", "off", "--no-progress", "--out", str(out),
    ]  # fmt: skip


def _quota_group(cpus: float) -> Path | None:
    """A new cgroup limited to ``cpus`` CPUs (v1 ``cpu`` controller or v2), or ``None`` where none can be made."""
    name = f"resnet-course-bench-{uuid.uuid4().hex[:8]}"
    for folder, write in (
        (CGROUP / "cpu" / name, lambda f: (f / "cpu.cfs_quota_us").write_text(str(int(cpus * 100_000)))),
        (CGROUP / name, lambda f: (f / "cpu.max").write_text(f"{int(cpus * 100_000)} 100000")),
    ):
        try:
            folder.mkdir()
            write(folder)
            return folder
        except OSError:
            try:
                folder.rmdir()
            except OSError:
                pass
    return None


def _start(cmd: list[str], env: dict[str, str], group: Path | None) -> subprocess.Popen:
    if group is not None:  # the shell joins the cgroup, then becomes the training
        cmd = ["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "$@"', "sh", *cmd]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _timed(runs: int, images: int, epochs: int, env: dict[str, str], quota: float | None, tmp: Path) -> float:
    """Mean wall seconds of ``runs`` trainings started together (each in a cgroup of its own with ``quota``)."""
    groups = [_quota_group(quota) if quota else None for _ in range(runs)]
    try:
        if quota and None in groups:
            raise RuntimeError("cannot make a cgroup with a CPU quota here (needs Linux, root and a cpu hierarchy)")
        start = time.perf_counter()
        procs = [_start(_train(images, epochs, tmp / uuid.uuid4().hex), env, g) for g in groups]
        ends, failed = [], []
        for proc in procs:  # every run is waited for, so that its cgroup is empty below
            _, err = proc.communicate()
            ends.append(time.perf_counter() - start)
            if proc.returncode != 0:
                failed.append(err[-2000:])
        if failed:
            raise RuntimeError(f"a training failed:\n{failed[0]}")
    finally:
        for group in groups:
            if group is not None:
                group.rmdir()
    return sum(ends) / len(ends)


CASES = {
    "default": ({}, None),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, None),
    "quota, threads follow it": ({}, "quota"),
    "quota, PyTorch's count": ({"RESNET_COURSE_THREADS": str(os.cpu_count() or 1)}, "quota"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; the fastest counts")
    parser.add_argument("--quota", type=float, default=1.0, help="CPUs per process in the quota cases")
    parser.add_argument("--cases", nargs="+", choices=["default", "passive", "quota"], default=["default", "passive"])
    args = parser.parse_args(argv)
    print(f"trainings sharing a machine: resnet20, shapes10, {args.images} images × {args.epochs} epochs, fp32, "
          f"best of {args.repeats}; {machine()}", flush=True)  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "RESNET_COURSE_THREADS")}
    chosen = [c for c in CASES if c.split(",")[0] in args.cases]
    times: dict[str, dict[int, list[float]]] = {c: {1: [], 2: []} for c in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for case in chosen:
                extra, quota = CASES[case]
                for runs in (1, 2):
                    q = args.quota if quota else None
                    times[case][runs].append(_timed(runs, args.images, args.epochs, {**base, **extra}, q, Path(tmp)))
    print("| case | one alone | two at once (each) | pair/alone |\n|---|---|---|---|")
    for case in chosen:
        alone, pair = min(times[case][1]), min(times[case][2])
        label = case.replace("quota", f"quota of {args.quota:g} CPU per process")
        print(f"| {label} | {alone:.1f} s | {pair:.1f} s | {pair / alone:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
