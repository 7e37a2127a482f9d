"""What each of the engine's speed devices buys on a whole training run: the rule is that a device stays in the
package only where it gains at least 3 % somewhere the course runs (figures in ``benchmarks/RESULTS.md``).

Each variant is one child process that loads the data, trains ResNet-20 with ``fit`` for ``--epochs`` epochs on
``--images`` training images (the cpu profile's recipe: batch 64, lr 0.15, one-cycle, label smoothing 0.1),
validates every epoch, writes its checkpoints and tests at the end; its wall time is measured from outside, start-up
included. Variants, each differing from ``default`` (``TrainConfig`` as ``fit`` gets it from the cpu profile) in one
device only:

* ``no-channels-last``: ``TrainConfig(channels_last=False)`` (NCHW model and batches);
* ``fused``: PyTorch's fused SGD (one kernel for every parameter) instead of its default (a loop on the CPU);
* ``bf16`` / ``fp32``: the other precision than ``amp="auto"`` chose here.

Variants run alternately, ``--repeats`` times each; the fastest time of each counts. The machine line names the CPU.

    python benchmarks/speed_devices.py [--images 4000] [--epochs 2] [--repeats 2] [--data cifar10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_runs import machine  # noqa: E402

VARIANTS = ("default", "no-channels-last", "fused", "other-precision")


def child(variant: str, images: int, epochs: int, data: str, out: str) -> None:
    """One whole run of ``variant`` (see the module documentation); prints the test accuracy as JSON."""
    import torch

    from resnet_course.data.loading import load_data
    from resnet_course.models.registry import create_for_data
    from resnet_course.profiles import get_profile
    from resnet_course.training.config import TrainConfig
    from resnet_course.training.engine import fit

    profile = get_profile("cpu")
    config = TrainConfig(epochs=epochs, batch_size=profile.batch_size, lr=profile.lr, seed=0, amp="auto")
    if variant == "no-channels-last":
        config = config.replace(channels_last=False)
    elif variant == "other-precision":
        config = config.replace(amp=not config.amp)
    elif variant == "fused":
        for name in ("SGD", "AdamW"):
            original = getattr(torch.optim, name)

            def fused(*args, _original=original, **kwargs):  # noqa: ANN002, ANN003, ANN202
                return _original(*args, fused=True, **kwargs)

            setattr(torch.optim, name, fused)
    bundle = load_data(data, val_fraction=0.1, seed=0, train_size=images, test_size=max(images // 5, 100))
    torch.manual_seed(0)
    model = create_for_data("resnet20", len(bundle.classes), bundle.image_size)
    train, val, test = bundle.loaders(config)
    history = fit(model, train, val, config, test_loader=test, out_dir=out, progress=False)
    print(json.dumps({"test": history.extra["test"]["accuracy"], "amp": bool(config.amp)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--data", default="shapes10", help="shapes10 (default) or cifar10 (RESNET_COURSE_DATA)")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.images, args.epochs, args.data, args.out)
        return
    print(machine())
    best: dict[str, float] = {}
    info: dict[str, dict] = {}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            with tempfile.TemporaryDirectory() as out:
                cmd = [sys.executable, __file__, "--child", variant, "--out", out, "--images", str(args.images),
                       "--epochs", str(args.epochs), "--data", args.data]  # fmt: skip
                start = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                seconds = time.perf_counter() - start
            best[variant] = min(best.get(variant, float("inf")), seconds)
            info[variant] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"ResNet-20, {args.images:,} {args.data} images × {args.epochs} epochs, fastest of {args.repeats}:")
    print("| variant | precision | wall | its time / default's |")
    print("|---|---|---|---|")
    for variant in VARIANTS:
        precision = "bf16" if info[variant]["amp"] else "fp32"
        print(f"| {variant} | {precision} | {best[variant]:.1f} s | {best[variant] / best['default']:.3f} |")


if __name__ == "__main__":
    main()
