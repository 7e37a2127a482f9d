"""A training script for tests/test_distributed.py: run it with ``python`` (one process) or under ``torchrun``.

It trains on generated shapes10 images with :func:`resnet_course.training.engine.fit` and writes, besides the
run's own files, ``rank<r>.pt`` (this process's final weights and history) into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch
from torch import nn

from resnet_course.data.loading import load_data
from resnet_course.models.registry import create_for_data
from resnet_course.parallel.group import init_from_env, world
from resnet_course.training.config import TrainConfig
from resnet_course.training.engine import fit


def _no_bn_net() -> nn.Module:
    """A small CNN without BatchNorm: its DDP run must equal a one-process run with the same global batch."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10)
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default="nobn", choices=["nobn", "resnet20"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-size", type=int, default=256)
    p.add_argument("--die-after", type=int, default=None, help="rank 1 kills itself after this epoch")
    p.add_argument("--slow", type=float, default=0.0, help="seconds of sleep per epoch (signal tests)")
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)

    here = init_from_env("cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"pid{here.rank}").write_text(str(os.getpid()))  # the Ctrl-C test checks that it has ended
    # test_size 100 + val 10 %: evaluation shards of unequal sizes (every image must be counted once)
    bundle = load_data("shapes10", train_size=args.train_size, test_size=100, val_fraction=0.1, seed=0)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.05, device="cpu", seed=0)
    torch.manual_seed(0)
    model = _no_bn_net() if args.model == "nobn" else create_for_data("resnet20", 10, 32)
    train, val, test = bundle.loaders(config, augment=True, rank=here.rank, world_size=here.size)

    def callback(history):  # noqa: ANN001, ANN202
        import time

        time.sleep(args.slow)
        epoch = len(history)
        if args.die_after is not None and epoch == args.die_after and here.rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    history = fit(
        model,
        train,
        val,
        config,
        test_loader=test,
        out_dir=args.out,
        resume=args.resume,
        progress=False,
        callback=callback,
    )
    torch.save(
        {"state_dict": model.state_dict(), "history": history.to_dict(), "world": world().size},
        args.out / f"rank{here.rank}.pt",
    )
    if here.distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
