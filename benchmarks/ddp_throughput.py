"""Training images per second with 1, 2, … processes (DDP through torchrun), side by side in one run.

Each row is one ``python -m resnet_course train`` job with the same *global* batch (``--global-batch``, split
evenly over the processes), the same images and epochs; the table gives the training images/s of the last epoch
(from ``history.json``: training time only, evaluation excluded) and the whole job's wall time. On a CPU the
processes share the cores (each gets cores/N threads), so more processes cannot be faster than one with all the
threads — the figures show what DDP costs there. On a machine with N GPUs (``--device cuda``) each process has
its own GPU and the table shows the scaling:

    python benchmarks/ddp_throughput.py                       # CPU: 1 and 2 processes, ResNet-20
    python benchmarks/ddp_throughput.py --device cuda --nproc 1 2 4 8 --model resnet18 --data cifar10 \\
        --images 50000 --global-batch 512 --epochs 2           # a GPU machine

The data is CIFAR-10 when it is on disk (``RESNET_COURSE_DATA``), else the generated ``shapes10``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_course.apps.launch import run_command, torchrun_command  # noqa: E402
from tools.notebook_runs import machine  # noqa: E402


def _data_spec(requested: str | None) -> str:
    if requested:
        return requested
    from resnet_course.data.cifar10 import load_cifar10

    try:
        load_cifar10(download=False)
        return "cifar10"
    except Exception:  # noqa: BLE001 - any failure means: not on disk
        return "shapes10"


def _one(nproc: int, args: argparse.Namespace, data: str, out: Path) -> dict[str, float]:
    if args.global_batch % nproc:
        raise SystemExit(f"--global-batch {args.global_batch} is not divisible by {nproc} processes")
    train_args = [
        "--model", args.model, "--data", data, "--train-size", str(args.images), "--test-size", "500",
        "--epochs", str(args.epochs), "--batch-size", str(args.global_batch // nproc), "--device", args.device,
        "--out", str(out), "--no-progress", "--val-fraction", "0.1",
    ]  # fmt: skip
    cores = os.cpu_count() or 1
    threads = max(1, cores // nproc) if args.device == "cpu" else None
    if nproc == 1:
        command = [sys.executable, "-m", "resnet_course", "train", *train_args]
    else:
        command = torchrun_command(train_args, nproc_per_node=nproc)
    done = run_command(command, timeout=3600, threads=threads)
    history = json.loads((out / "history.json").read_text())
    n_train = round(args.images * 0.9)
    return {
        "images_per_s": n_train / history["seconds"][-1],
        "wall": done.seconds,
        "threads": threads or 0,
        "test_acc": history["extra"]["test"]["accuracy"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", default="resnet20")
    p.add_argument("--data", default=None, help="default: cifar10 when on disk, else shapes10")
    p.add_argument(
        "--images", type=int, default=2000, help="training images before the 10 %% validation split"
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--global-batch", type=int, default=128)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args()
    data = _data_spec(args.data)
    print(f"machine: {machine()}")
    print(
        f"{args.model}, {data}, {args.images} images (90 % train), {args.epochs} epochs, global batch "
        f"{args.global_batch}, {args.device}"
    )
    print(
        f"{'processes':>9} {'threads each':>12} {'train img/s':>12} {'vs 1':>6} {'job wall s':>10} {'test acc':>9}"
    )
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in args.nproc:
            r = _one(nproc, args, data, Path(tmp) / f"p{nproc}")
            base = base or r["images_per_s"]
            threads = str(r["threads"]) if r["threads"] else "-"
            print(
                f"{nproc:>9} {threads:>12} {r['images_per_s']:>12.0f} {r['images_per_s'] / base:>6.2f} "
                f"{r['wall']:>10.1f} {r['test_acc']:>9.2%}"
            )


if __name__ == "__main__":
    main()
