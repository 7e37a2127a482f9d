"""Is the course's engine behind a plain PyTorch loop? Whole processes, timed side by side in one run.

Two processes do the same work — load ``shapes10``, train ResNet-20 for ``--epochs`` epochs on ``--images``
training images (batch 128, pad-4 crop + flip, SGD + Nesterov, one-cycle, label smoothing 0.1, weight decay
5e-4, channels_last; the plain loop in fp32), evaluate on the validation split every epoch and on the test split
at the end:

* **engine**: ``python -m resnet_course train ...`` — the command line's default path (``--amp auto``: bf16
  autocast where the CPU runs it natively, fp32 elsewhere; it also writes ``last.pt``/``best.pt``/``history.json``
  every epoch, which counts);
* **plain**: :func:`plain_loop` below, the textbook loop with ``torch.optim.lr_scheduler.OneCycleLR``, run as
  ``python benchmarks/engine_vs_plain.py --plain-child ...``.

Each is started ``--repeats`` times, alternating, and the fastest wall time of each is compared (start-up,
data loading and evaluation included); every run's time and the median ratio of the pairs are printed too, since
on a noisy machine one slow run moves the fastest times. The printed ratio engine/plain is a figure, not a pass/fail
test; ``--quick`` (one short run each, well under a minute) is a smoke run of the benchmark itself, too short to
resolve a difference of less than about 15 % on a shared VM. Timings depend on the CPU: the first line names it.

    python benchmarks/engine_vs_plain.py [--images 4000] [--epochs 2] [--repeats 2]
    python benchmarks/engine_vs_plain.py --quick
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_runs import add_isa_option, cap_isa, machine  # noqa: E402  (shared with benchmarks/lessons.py and the render tool)

BATCH = 128
PEAK_LR = 0.1  # one-cycle's peak at batch 128 (TrainConfig's default rule: 0.1 × batch / 128)
VAL_FRACTION = 0.1


def plain_loop(images: int, epochs: int, seed: int, model_name: str = "resnet20") -> float:
    """Train and evaluate as described in the module docstring; returns the final test accuracy."""
    import torch
    import torch.nn.functional as F

    from resnet_course.data.loaders import crop_and_flip  # the same two gathers the engine's loader does
    from resnet_course.data.loading import load_data
    from resnet_course.models.registry import create_for_data

    torch.manual_seed(seed)
    data = load_data(
        "shapes10", val_fraction=VAL_FRACTION, seed=seed, train_size=images, test_size=images // 5
    )
    mean = torch.tensor(data.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.std).view(1, 3, 1, 1)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)

    def augment(x: torch.Tensor) -> torch.Tensor:  # pad-4 random crop + horizontal flip, per image
        n = len(x)
        return crop_and_flip(x, torch.randint(0, 9, (n,)), torch.randint(0, 9, (n,)), torch.rand(n) < 0.5)

    def accuracy(model: torch.nn.Module, part) -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(part), 512):
                x = prepare(part.images[i : i + 512])
                correct += (model(x).argmax(1) == part.labels[i : i + 512]).sum().item()
        return correct / len(part)

    model = create_for_data(model_name, len(data.classes), data.image_size).to(
        memory_format=torch.channels_last
    )
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
        lr=PEAK_LR,
        momentum=0.9,
        nesterov=True,
    )
    steps = math.ceil(len(data.train) / BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=PEAK_LR, total_steps=epochs * steps)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data.train))
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            x, y = prepare(augment(data.train.images[idx])), data.train.labels[idx]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy(model, data.val)
    return accuracy(model, data.test)


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} … failed:\n{proc.stderr[-2000:]}")
    return seconds


def cpu_line() -> str:
    """The machine as the lesson benchmark describes it (CPU, cores, bf16/AVX2 kind, GPU), threads, torch."""
    import torch

    return f"{machine()}; {torch.get_num_threads()} threads; torch {torch.__version__}"


def compare(
    images: int, epochs: int, repeats: int, model: str = "resnet20", amp: str = "auto"
) -> tuple[list[float], list[float]]:
    """Wall seconds of the engine's and the plain loop's ``repeats`` runs, run alternately."""
    engine, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            engine.append(
                _timed(
                    [
                        sys.executable,
                        "-m",
                        "resnet_course",
                        "train",
                        "--model",
                        model,
                        "--data",
                        "shapes10",
                        "--epochs",
                        str(epochs),
                        "--train-size",
                        str(images),
                        "--test-size",
                        str(images // 5),
                        "--val-fraction",
                        str(VAL_FRACTION),
                        "--batch-size",  # the plain loop's batch and peak rate, not the run profile's
                        str(BATCH),
                        "--lr",
                        str(PEAK_LR),
                        "--no-progress",
                        "--amp",
                        amp,
                        "--out",
                        str(Path(tmp) / f"run{r}"),
                    ]
                )
            )
            plain.append(
                _timed(
                    [
                        sys.executable,
                        __file__,
                        "--plain-child",
                        "--images",
                        str(images),
                        "--epochs",
                        str(epochs),
                        "--model",
                        model,
                    ]
                )
            )
    return engine, plain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images", type=int, default=4000, help="training images (before the validation split)"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--model", default="resnet20", help="registry model, e.g. resnet18 (CIFAR stem at 32 px)")
    parser.add_argument(
        "--amp", default="auto", choices=["auto", "on", "off"], help="the engine's --amp (default auto, as the CLI)"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="runs of each, alternating; the fastest counts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,500 images, 1 epoch, one run each (about half a minute)"
    )
    add_isa_option(parser)
    parser.add_argument("--plain-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cap_isa(args.isa)
    if args.plain_child:
        plain_loop(args.images, args.epochs, seed=0, model_name=args.model)
        return 0
    if args.quick:
        args.images, args.epochs, args.repeats = 1500, 1, 1
    print(
        f"engine vs plain loop, whole processes: {args.model}, shapes10, {args.images} images, {args.epochs} "
        f"epoch(s), best of {args.repeats}, engine --amp {args.amp}; {cpu_line()}",
        flush=True,
    )
    try:
        engine, plain = compare(args.images, args.epochs, args.repeats, args.model, args.amp)
    except RuntimeError as err:
        print(f"benchmark could not run: {err}", file=sys.stderr)
        return 1
    print(f"engine {min(engine):.1f} s, plain loop {min(plain):.1f} s: engine/plain = {min(engine) / min(plain):.2f}")
    if args.repeats > 1:  # the spread shows how much of a difference this machine can resolve
        pairs = sorted(e / p for e, p in zip(engine, plain, strict=True))
        print(
            f"runs: engine {', '.join(f'{t:.1f}' for t in engine)} s; plain {', '.join(f'{t:.1f}' for t in plain)} s; "
            f"ratio of each pair {', '.join(f'{r:.2f}' for r in pairs)} (median {statistics.median(pairs):.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
