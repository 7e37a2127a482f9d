"""Time to accuracy on real CIFAR-10: the course's recipes against a plain SGD + one-cycle loop, whole processes.

Each run is a fresh process (start-up, data loading and every evaluation count) that trains ResNet-20 on the
CIFAR-10 found in ``RESNET_COURSE_DATA`` (all its training images minus a 10 % validation split) for ``--epochs``
epochs and reports, after every epoch, the wall time since the process was started and the **validation**
accuracy; the final model is tested once on the test split. Recipes:

* ``plain``: the textbook loop — pad-4 crop + flip, SGD lr 0.1 with Nesterov momentum 0.9, weight decay 5e-4 on
  every parameter, ``torch.optim.lr_scheduler.OneCycleLR``, batch 128, no label smoothing, channels_last, fp32;
* ``cpu-profile``: notebook 05's cpu-profile recipe, which is also what the command line trains with on a CPU
  (batch 64, lr 0.15, the rest as ``TrainConfig``; mixed precision as the profile chooses);
* ``config-fp32``: ``TrainConfig(epochs=E)``'s own defaults (batch 128, lr 0.1: the plain loop's plus label
  smoothing 0.1, no weight decay on BatchNorm and biases, 20 % warm-up) in fp32, through ``fit`` — the command
  line's recipe before it took the profile's batch size and learning rate;
* ``config-bf16``: the same with bf16 autocast (``amp=True``).

The table gives, per recipe, mean ± spread over the seeds of the seconds to reach 60 % and 70 % validation
accuracy (``not reached`` when a seed never does), of the whole run, and of its final test accuracy, plus the time
each recipe took to reach the final validation accuracy the plain loop reaches in every seed (its worst seed's),
and when its validation curve averaged over the seeds first reaches the plain loop's mean final validation
accuracy, as seconds and as a share of the plain loop's mean whole run (less noisy than single seeds on a
500-image validation split). Numbers for the log and ``benchmarks/RESULTS.md``, not a test:

    RESNET_COURSE_DATA=/path/with/cifar-10-batches-py python benchmarks/time_to_accuracy.py [--epochs 16] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_runs import add_isa_option, cap_isa, machine  # noqa: E402

RECIPES = ("plain", "cpu-profile", "config-fp32", "config-bf16")
VAL_FRACTION = 0.1


def _plain(data, epochs: int, seed: int, report) -> float:  # noqa: ANN001
    import torch
    import torch.nn.functional as F

    from resnet_course.data.loaders import crop_and_flip
    from resnet_course.models.registry import create_for_data
    from resnet_course.training.loop import evaluate

    torch.manual_seed(seed)
    mean, std = torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255 - mean) / std).contiguous(memory_format=torch.channels_last)

    def batches(part):  # noqa: ANN001, ANN202
        for i in range(0, len(part), 500):
            yield prepare(part.images[i : i + 500]), part.labels[i : i + 500]

    model = create_for_data("resnet20", len(data.classes), data.image_size).to(
        memory_format=torch.channels_last
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = -(-len(data.train) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=epochs * steps)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(data.train))
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            n = len(idx)
            x = crop_and_flip(
                data.train.images[idx],
                torch.randint(0, 9, (n,)),
                torch.randint(0, 9, (n,)),
                torch.rand(n) < 0.5,
            )
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(prepare(x)), data.train.labels[idx]).backward()
            optimizer.step()
            schedule.step()
        report(epoch + 1, evaluate(model, list(batches(data.val)))["accuracy"])
    return evaluate(model, list(batches(data.test)))["accuracy"]


def _engine(data, recipe: str, epochs: int, seed: int, report) -> float:  # noqa: ANN001
    import torch

    from resnet_course.models.registry import create_for_data
    from resnet_course.profiles import get_profile
    from resnet_course.training.config import TrainConfig
    from resnet_course.training.engine import fit
    from resnet_course.training.loop import evaluate

    if recipe == "cpu-profile":
        p = get_profile("cpu")
        config = TrainConfig(epochs=epochs, batch_size=p.batch_size, lr=p.lr, seed=seed, amp=p.amp)
    else:
        config = TrainConfig(epochs=epochs, seed=seed, amp=recipe == "config-bf16")
    torch.manual_seed(seed)
    model = create_for_data("resnet20", len(data.classes), data.image_size)
    train, val, test = data.loaders(config, eval_batch_size=500)

    def callback(history) -> None:  # noqa: ANN001
        report(len(history), history.val_acc[-1])

    fit(model, train, val, config, progress=False, callback=callback)
    return evaluate(model, test)["accuracy"]


def child(recipe: str, epochs: int, seed: int, t0: float, out: Path) -> None:
    """One run in this process; writes ``{"epochs": [[epoch, seconds since t0, val acc], ...], "test": acc}``."""
    from resnet_course.data.loading import load_data

    data = load_data("cifar10", val_fraction=VAL_FRACTION, seed=seed, download=False)
    rows: list[list[float]] = []

    def report(epoch: int, val_acc: float) -> None:
        rows.append([epoch, time.time() - t0, val_acc])

    run = _plain if recipe == "plain" else lambda *a: _engine(a[0], recipe, *a[1:])
    test = run(data, epochs, seed, report)
    out.write_text(
        json.dumps({"epochs": rows, "test": test, "seconds": time.time() - t0, "n_train": len(data.train)})
    )


def _first(rows: list[list[float]], threshold: float) -> float | None:
    return next((t for _, t, acc in rows if acc >= threshold), None)


def _fmt(values: list[float | None]) -> str:
    if any(v is None for v in values):
        reached = [v for v in values if v is not None]
        return f"not reached ({len(reached)}/{len(values)} seeds)"
    mean = statistics.mean(values)  # type: ignore[arg-type]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0  # type: ignore[arg-type]
    return f"{mean:.0f} ± {spread:.0f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    add_isa_option(p)
    p.add_argument("--json", type=Path, default=None, help="also write every run's rows to this file")
    p.add_argument(
        "--table-from", type=Path, default=None, help="print the table of a --json file, run nothing"
    )
    p.add_argument("--child", nargs=4, metavar=("RECIPE", "SEED", "T0", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cap_isa(args.isa)
    if args.child:
        recipe, seed, t0, out = args.child
        child(recipe, args.epochs, int(seed), float(t0), Path(out))
        return 0
    if args.table_from:
        print(_table(json.loads(args.table_from.read_text()), args))
        return 0
    import torch

    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    runs: dict[str, list[dict]] = {r: [] for r in args.recipes}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for recipe in args.recipes:
                out = Path(tmp) / f"{recipe}-{seed}.json"
                cmd = [
                    sys.executable,
                    __file__,
                    "--epochs",
                    str(args.epochs),
                    "--child",
                    recipe,
                    str(seed),
                    repr(time.time()),
                    str(out),
                ]
                done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"{recipe} seed {seed} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                    return 1
                runs[recipe].append(json.loads(out.read_text()))
                r = runs[recipe][-1]
                print(
                    f"  {recipe:<12} seed {seed}: {r['seconds']:.0f} s, final val {r['epochs'][-1][2]:.1%}, "
                    f"test {r['test']:.1%}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    print(_table(runs, args))
    return 0


def _table(runs: dict[str, list[dict]], args: argparse.Namespace) -> str:
    n_train = next(iter(runs.values()))[0]["n_train"]
    lines = [
        f"\nResNet-20, real CIFAR-10 ({n_train:,} training images, 10 % validation), {args.epochs} epochs, seeds "
        f"{', '.join(map(str, args.seeds))}; seconds since process start, mean ± sd over seeds",
        "",
        "| recipe | to 60 % val | to 70 % val | to the plain loop's final val (its worst seed) | mean curve to the "
        "plain loop's mean final val | whole run | final val | final test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    # the accuracy the plain loop ends with in every seed: its worst seed's final validation accuracy
    plain_final = min(r["epochs"][-1][2] for r in runs["plain"]) if "plain" in runs else None
    plain_mean = statistics.mean(r["epochs"][-1][2] for r in runs["plain"]) if "plain" in runs else None
    plain_run = statistics.mean(r["seconds"] for r in runs["plain"]) if "plain" in runs else None
    for recipe, rs in runs.items():
        finals = [r["epochs"][-1][2] for r in rs]
        tests = [r["test"] for r in rs]
        target = _fmt([_first(r["epochs"], plain_final) for r in rs]) if plain_final is not None else "-"
        curve = "-"
        if plain_mean is not None:
            t = _curve_first(rs, plain_mean)
            curve = "not reached" if t is None else f"{t:.0f} s ({t / plain_run:.2f} of the plain run)"
        lines.append(
            f"| {recipe} | {_fmt([_first(r['epochs'], 0.6) for r in rs])} | "
            f"{_fmt([_first(r['epochs'], 0.7) for r in rs])} | {target} | {curve} | {_fmt([r['seconds'] for r in rs])} | "
            f"{100 * statistics.mean(finals):.1f} ± {100 * _sd(finals):.1f} % | "
            f"{100 * statistics.mean(tests):.1f} ± {100 * _sd(tests):.1f} % |"
        )
    if plain_final is not None:
        lines.append(
            f"\nthe plain loop's final validation accuracy: {plain_mean:.1%} on average, {plain_final:.1%} in its "
            f"worst seed; its whole run: {plain_run:.0f} s on average"
        )
    return "\n".join(lines)


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _curve_first(rs: list[dict], threshold: float) -> float | None:
    """The first epoch-end (mean seconds over the seeds) at which the seeds' mean validation accuracy reaches
    ``threshold``; None when it never does."""
    for epoch in range(min(len(r["epochs"]) for r in rs)):
        if statistics.mean(r["epochs"][epoch][2] for r in rs) >= threshold:
            return statistics.mean(r["epochs"][epoch][1] for r in rs)
    return None


if __name__ == "__main__":
    raise SystemExit(main())
