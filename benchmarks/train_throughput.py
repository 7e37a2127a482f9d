"""Training throughput (images/s) of ResNet-20 and CIFAR ResNet-18 under different numeric settings, and a
short accuracy comparison of the engine's default recipe against a tuned SGD + one-cycle baseline.

Throughput: one training step = forward + cross-entropy + backward + SGD step on random 32×32 batches, timed
after warm-up. Each setting is printed with its ratio to the plain fp32 contiguous loop:

* CPU: ``fp32``, ``channels_last``, ``bf16 autocast``, ``channels_last + bf16`` and ``engine default`` (what
  :func:`resnet_course.training.engine.fit` does with ``TrainConfig()`` on this device);
* CUDA, in addition: ``fp16 AMP`` (autocast + ``GradScaler``), ``bf16 AMP``, each with ``channels_last``,
  and with ``--compile`` the same under ``torch.compile``.

    python benchmarks/train_throughput.py [--models resnet20 resnet18] [--batch-size 128] [--steps 10]
        [--threads N] [--device auto|cpu|cuda] [--compile]
    python benchmarks/train_throughput.py --compare-recipes [--images 4000] [--epochs 6] [--threads N]
    python benchmarks/train_throughput.py --compare-precision [--images 9000] [--epochs 8] [--seeds 3]

``--compare-recipes`` trains ResNet-20 on ``--images`` shapes10 images (crop/flip augmentation) with
(a) the defaults of ``TrainConfig`` and (b) a hand-tuned baseline — SGD, Nesterov momentum 0.9, one-cycle
(30 % warm-up, PyTorch's default shape), weight decay 5e-4 on every parameter, no label smoothing, fp32
contiguous — at several peak learning rates, and prints test accuracy and training time of each.

``--compare-precision`` trains the engine's default recipe in fp32 and with ``amp=True`` (bf16 autocast on a
CPU) for ``--seeds`` seeds each and prints the final test accuracy (mean ± std) and training time: does the
speed of mixed precision cost accuracy?
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from collections.abc import Callable
from datetime import date

import torch
import torch.nn.functional as F

from resnet_course.devices import resolve_device
from resnet_course.models.registry import create


def _build(name: str) -> torch.nn.Module:
    kwargs = {"num_classes": 10}
    if name in ("resnet18", "resnet34", "resnet50", "preact_resnet18", "se_resnet18"):
        kwargs["stem"] = "cifar"
    return create(name, **kwargs)


def images_per_second(
    name: str,
    device: torch.device,
    batch_size: int,
    steps: int,
    *,
    channels_last: bool = False,
    amp_dtype: torch.dtype | None = None,
    compile_model: bool = False,
    warmup: int = 3,
) -> float:
    """Images/s of ``steps`` timed training steps (after ``warmup`` untimed ones)."""
    torch.manual_seed(0)
    model = _build(name).to(device)
    x = torch.randn(batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    step_model: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if compile_model else model
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = F.cross_entropy(step_model(x), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch_size / (time.perf_counter() - start)


def settings(device: torch.device, compile_model: bool) -> list[tuple[str, dict]]:
    """(label, keyword arguments of :func:`images_per_second`) for ``device``; the first one is the baseline."""
    from resnet_course.training.config import TrainConfig

    default = TrainConfig(device=str(device))
    out = [
        ("fp32 contiguous (plain loop)", {}),
        ("channels_last", {"channels_last": True}),
    ]
    if device.type == "cpu":
        out += [
            ("bf16 autocast", {"amp_dtype": torch.bfloat16}),
            ("channels_last + bf16", {"channels_last": True, "amp_dtype": torch.bfloat16}),
        ]
    else:
        out += [
            ("fp16 AMP + GradScaler", {"amp_dtype": torch.float16}),
            ("channels_last + fp16 AMP", {"channels_last": True, "amp_dtype": torch.float16}),
        ]
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            out += [("channels_last + bf16 AMP", {"channels_last": True, "amp_dtype": torch.bfloat16})]
    out.append(
        (
            "engine default (TrainConfig())",
            {"channels_last": default.uses_channels_last(), "amp_dtype": default.autocast_dtype()},
        )
    )
    if compile_model:
        out += [(f"torch.compile + {label}", {**kw, "compile_model": True}) for label, kw in out[1:]]
    return out


def throughput(args: argparse.Namespace) -> None:
    device = resolve_device(args.device)
    print(
        f"device {device} ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, batch {args.batch_size}, {args.steps} steps, best of "
        f"{args.repeats}, {date.today()}"
    )
    for name in args.models:
        base = None
        for label, kw in settings(device, args.compile):
            # best of --repeats: on a shared machine the fastest run is the least disturbed one
            ips = max(
                images_per_second(name, device, args.batch_size, args.steps, **kw)
                for _ in range(args.repeats)
            )
            base = base or ips
            print(f"{name:>9s}  {label:<34s} {ips:8.1f} img/s  ×{ips / base:.2f}", flush=True)


def compare_recipes(args: argparse.Namespace) -> None:
    from resnet_course.data.loading import load_data
    from resnet_course.training.config import TrainConfig
    from resnet_course.training.engine import fit
    from resnet_course.training.loop import evaluate

    device = resolve_device(args.device)
    bundle = load_data(
        "shapes10", train_size=args.images, test_size=args.images // 4, val_fraction=0.0, seed=0
    )
    runs: list[tuple[str, TrainConfig]] = [("defaults TrainConfig()", TrainConfig(epochs=args.epochs))]
    for lr in args.baseline_lrs:
        runs.append(
            (
                f"baseline SGD+one-cycle lr {lr}",
                TrainConfig(
                    epochs=args.epochs,
                    lr=lr,
                    decay_norm_and_bias=True,
                    label_smoothing=0.0,
                    channels_last=False,
                    warmup_epochs=0.3 * args.epochs,
                ),
            )
        )
    print(
        f"ResNet-20 on {len(bundle.train)} shapes10 images, {args.epochs} epochs, batch 128, crop+flip, "
        f"test on {len(bundle.test)}; device {device}, {torch.get_num_threads()} threads, {date.today()}"
    )
    for label, config in runs:
        config = config.replace(device=device)
        torch.manual_seed(0)
        model = create("resnet20", num_classes=10)
        train, _, test = bundle.loaders(config)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        fit(model, train, None, config, progress=False)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        acc = evaluate(model, test)["accuracy"]
        print(
            f"{label:<34s} test acc {acc:.2%}   train wall {wall:6.1f}s  process CPU {cpu:6.1f}s", flush=True
        )


def compare_precision(args: argparse.Namespace) -> None:
    """Final test accuracy and training time of the engine's recipe in fp32 and under mixed precision
    (``TrainConfig(amp=True)``: bf16 autocast on CPU, fp16/bf16 on CUDA), over ``--seeds`` seeds each."""
    import statistics

    from resnet_course.data.loading import load_data
    from resnet_course.training.config import TrainConfig
    from resnet_course.training.engine import fit
    from resnet_course.training.loop import evaluate

    device = resolve_device(args.device)
    bundle = load_data(
        "shapes10", train_size=args.images, test_size=args.images // 4, val_fraction=0.0, seed=0
    )
    print(
        f"ResNet-20 on {len(bundle.train)} shapes10 images, {args.epochs} epochs, batch 128, engine defaults "
        f"(SGD, one-cycle, label smoothing 0.1, channels_last); test on {len(bundle.test)}; device {device}, "
        f"{torch.get_num_threads()} threads, seeds 0..{args.seeds - 1}, {date.today()}"
    )
    for label, amp in (("fp32", False), ("mixed precision (amp=True)", True)):
        accs, walls = [], []
        for seed in range(args.seeds):
            config = TrainConfig(epochs=args.epochs, amp=amp, seed=seed, device=device)
            torch.manual_seed(seed)
            model = create("resnet20", num_classes=10)
            train, _, test = bundle.loaders(config)
            wall0 = time.perf_counter()
            fit(model, train, None, config, progress=False)
            walls.append(time.perf_counter() - wall0)
            accs.append(evaluate(model, test)["accuracy"])
            print(
                f"  {label:<28s} seed {seed}: test acc {accs[-1]:.2%}  train wall {walls[-1]:6.1f}s",
                flush=True,
            )
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"{label:<30s} test acc {statistics.mean(accs):.2%} ± {spread:.2%} (mean ± std over {len(accs)} "
            f"seeds)   train wall {statistics.mean(walls):6.1f}s per run",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet18"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="time each setting this often, keep the best")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA recommended)")
    parser.add_argument("--compare-recipes", action="store_true")
    parser.add_argument(
        "--compare-precision", action="store_true", help="fp32 vs amp accuracy over --seeds seeds"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--baseline-lrs", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with contextlib.suppress(KeyboardInterrupt):
        if args.compare_precision:
            compare_precision(args)
        else:
            (compare_recipes if args.compare_recipes else throughput)(args)


if __name__ == "__main__":
    main()
