"""Command-line interface: ``python -m resnet_course train | evaluate | predict | gui``.

::

    python -m resnet_course train --model resnet20 --data shapes10 --epochs 10 --out runs/r20
    python -m resnet_course evaluate --checkpoint runs/r20/best.pt --data shapes10 --json
    python -m resnet_course predict --checkpoint runs/r20/best.pt cat.png dog.jpg --top-k 3 --json
    python -m resnet_course gui --checkpoint runs/r20/best.pt
    torchrun --standalone --nproc_per_node=2 -m resnet_course train --model resnet20 --data shapes10 \
        --epochs 10 --out runs/r20-ddp    # one model, two processes (DDP; --batch-size is per process)

Exit codes: 0 success; 2 bad arguments (argparse); 1 missing data, unreadable checkpoint or image, divergence;
130 training interrupted with Ctrl-C (a resumable ``last.pt`` was saved). Expected errors are one line on
stderr starting with ``error:``, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from resnet_course.devices import DEVICE_CHOICES
from resnet_course.models.registry import create_for_data, list_models
from resnet_course.profiles import PROFILES, get_profile
from resnet_course.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from resnet_course.training.runlock import RunFolderBusy

__all__ = ["main", "build_parser"]

#: The ``train`` options that set a :class:`TrainConfig` field take the field's default from here.
_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
# except: the command line computes in bf16/fp16 wherever the hardware runs it natively (the library's default is
# fp32 everywhere, so that code calling fit gives the same numbers on every machine)
_CONFIG_DEFAULTS["amp"] = "auto"
# and: batch size and SGD's learning rate come from the run profile's recipe (see _profile_recipe)
_CONFIG_DEFAULTS["batch_size"] = None
_CPU = PROFILES["cpu"]  # for the help texts


class CLIError(Exception):
    """An expected failure: reported as one ``error:`` line, exit code 1."""


def _one_line(e: BaseException) -> str:
    return " ".join(line.strip() for line in str(e).strip().splitlines() if line.strip()) or type(e).__name__


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _amp_setting(text: str) -> bool | str:
    choices = {"auto": "auto", "on": True, "off": False}
    if text not in choices:
        raise argparse.ArgumentTypeError(f"choose auto, on or off, got {text!r}")
    return choices[text]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _nonnegative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (``--help`` on each documents every option)."""
    parser = argparse.ArgumentParser(
        prog="python -m resnet_course",
        description="Train, evaluate and use residual networks from the resnet-course package.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,evaluate,predict,gui}")
    _add_train_parser(sub)
    _add_evaluate_parser(sub)
    _add_predict_parser(sub)
    _add_gui_parser(sub)
    return parser


def _add_train_parser(sub: Any) -> None:
    """The ``train`` subcommand: model, data, output folder, the :class:`TrainConfig` options and data sizes."""
    t = sub.add_parser(
        "train",
        help="train a model and write DIR/last.pt, DIR/best.pt and DIR/history.json",
        description="Train a registry model on a dataset. The defaults are a good recipe: SGD with Nesterov "
        f"momentum, the run profile's batch size and learning rate (on a CPU {_CPU.batch_size} images and "
        f"{_CPU.lr:g}, tuned on real CIFAR-10; elsewhere lr 0.1 per 128 images), weight decay 5e-4 (not on "
        "BN/bias), one-cycle with warm-up, "
        "label smoothing 0.1, crop+flip augmentation, channels_last, bf16/fp16 where the hardware runs it "
        "natively. best.pt is chosen on the validation split; the final model is evaluated once on the test split.",
    )
    t.add_argument(
        "--model",
        required=True,
        choices=list_models(),
        metavar="NAME",
        help=f"registry model name: {', '.join(list_models())}",
    )
    t.add_argument(
        "--data",
        required=True,
        metavar="DATA",
        help="'cifar10', 'shapes10' (generated offline dataset) or the path of an ImageFolder root",
    )
    t.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder for checkpoints")
    _add_config_options(t)
    t.add_argument(
        "--val-fraction",
        type=_fraction,
        default=0.1,
        metavar="F",
        help="share of the training split held out for validation (default 0.1; 0 = none, best = last)",
    )
    t.add_argument("--resume", action="store_true", help="continue from DIR/last.pt (same settings)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars or per-epoch lines")
    t.add_argument(
        "--train-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use a stratified subset of N training images (default: all)",
    )
    t.add_argument(
        "--test-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="use a stratified subset of N test images (default: all)",
    )
    t.add_argument("--stream", action="store_true", help=_STREAM_HELP)


def _add_config_options(t: argparse.ArgumentParser) -> None:
    """``train``'s options that set :class:`TrainConfig` fields; each default is the field's default, except
    ``amp`` and ``batch_size`` (see ``_CONFIG_DEFAULTS``)."""
    add_config = _config_option_adder(t)
    add_config("epochs", required=True, type=_positive_int, metavar="N", help="number of epochs")
    add_config(
        "batch_size",
        type=_positive_int,
        metavar="B",
        help="batch size per process (default: the run profile's, RESNET_COURSE_PROFILE or the hardware: "
        f"{_CPU.batch_size} on a CPU, {PROFILES['gpu'].batch_size} on a GPU, {PROFILES['smoke'].batch_size} in smoke)",
    )
    add_config(
        "lr",
        type=_positive_float,
        metavar="LR",
        help="peak learning rate (default for SGD: the profile's, scaled linearly to B x processes — "
        f"{_CPU.lr:g} per {_CPU.batch_size} images on a CPU, 0.1 per 128 elsewhere; 1e-3 for AdamW)",
    )
    add_config("optimizer", choices=OPTIMIZERS, help="optimizer (default %(default)s)")
    add_config(
        "schedule",
        choices=SCHEDULES,
        metavar="NAME",
        help=f"learning-rate schedule: {', '.join(SCHEDULES)} (default %(default)s)",
    )
    add_config(
        "weight_decay",
        type=_nonnegative_float,
        metavar="WD",
        help="weight decay (default 5e-4 for SGD, 0.05 for AdamW; never on BN/bias)",
    )
    add_config("label_smoothing", type=_fraction, metavar="X", help="label smoothing (default %(default)s)")
    add_config(
        "amp",
        nargs="?",
        const=True,
        type=_amp_setting,
        metavar="auto|on|off",
        help="mixed precision (bf16 autocast on CPU; bf16 or fp16 with a gradient scaler on CUDA): 'auto' "
        "(default) turns it on exactly where the hardware runs it natively — CUDA, Intel CPUs with AMX, "
        "AMD CPUs with avx512_bf16 — and off elsewhere; --amp alone = on",
    )
    add_config("swa", action="store_true", help="stochastic weight averaging over the last 25%% of epochs")
    add_config(
        "sync_bn",
        action="store_true",
        help="under torchrun on CUDA (nccl): BatchNorm statistics over all processes (SyncBatchNorm)",
    )
    add_config(
        "accum_steps",
        type=_positive_int,
        metavar="K",
        help="accumulate gradients over K batches per optimizer step (default %(default)s)",
    )
    add_config(
        "seed", type=int, metavar="S", help="random seed of the run and the data split (default %(default)s)"
    )
    add_config("device", choices=DEVICE_CHOICES, help="device (default %(default)s: cuda, mps, cpu)")


_STREAM_HELP = (
    "read an ImageFolder from disk batch by batch instead of decoding it into memory (default: only when "
    "the decoded images would exceed half the memory available)"
)


def _add_evaluate_parser(sub: Any) -> None:
    """The ``evaluate`` subcommand."""
    e = sub.add_parser(
        "evaluate",
        help="loss, accuracy and per-class accuracy of a checkpoint",
        description="Evaluate a checkpoint on the test (or validation) split of a dataset, with "
        "the preprocessing stored in the checkpoint.",
    )
    e.add_argument("--checkpoint", required=True, type=Path, metavar="FILE", help="a checkpoint (.pt)")
    e.add_argument(
        "--data", required=True, metavar="DATA", help="'cifar10', 'shapes10' or an ImageFolder root"
    )
    e.add_argument(
        "--split", choices=("test", "val"), default="test", help="split to evaluate (default test)"
    )
    e.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: accuracy, loss, n, per_class (class -> accuracy), ...",
    )
    e.add_argument(
        "--batch-size", type=_positive_int, default=256, metavar="B", help="batch size (default 256)"
    )
    e.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="device (default auto)")
    e.add_argument("--stream", action="store_true", help=_STREAM_HELP)


def _add_predict_parser(sub: Any) -> None:
    """The ``predict`` subcommand."""
    p = sub.add_parser(
        "predict",
        help="top-k classes of image files",
        description="Classify image files with a checkpoint (grayscale/RGBA are converted to RGB, "
        "images are resized to the training size).",
    )
    p.add_argument("--checkpoint", required=True, type=Path, metavar="FILE", help="a checkpoint (.pt)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (PNG, JPEG, ...)")
    p.add_argument(
        "--top-k", type=_positive_int, default=5, metavar="K", help="classes shown per image (default 5)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object per image and line: {"image", "predictions": [{"class", '
        '"probability"}, ...]} (or {"image", "error"})',
    )
    p.add_argument("--device", choices=DEVICE_CHOICES, default="cpu", help="device (default cpu)")


def _add_gui_parser(sub: Any) -> None:
    """The ``gui`` subcommand."""
    g = sub.add_parser(
        "gui",
        help="open the desktop app (needs PySide6)",
        description="Open the desktop app to classify images with a checkpoint.",
    )
    g.add_argument(
        "--checkpoint", type=Path, default=None, metavar="FILE", help="checkpoint to load at start"
    )
    g.add_argument("--image", type=Path, default=None, metavar="FILE", help="image to classify at start")
    g.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        metavar="PNG",
        help="save a screenshot of the window to PNG and exit",
    )


def _config_option_adder(parser: argparse.ArgumentParser) -> Callable[..., None]:
    """``add(field, **kw)``: add ``--field-name`` for a :class:`TrainConfig` field, with the field's default."""

    def add(name: str, **kwargs: Any) -> None:
        if not kwargs.get("required"):
            kwargs["default"] = _CONFIG_DEFAULTS[name]
        parser.add_argument("--" + name.replace("_", "-"), dest=name, **kwargs)

    return add


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of the ``train`` options (the config resolves the device, once); the batch size
    and learning rate left unset come from :func:`_profile_recipe`. Sets ``args.recipe`` to the line that says
    which recipe the run takes (empty when both were given)."""
    values = {k: v for k, v in vars(args).items() if k in _CONFIG_DEFAULTS}
    try:
        recipe, source = _profile_recipe(values["batch_size"], values["lr"], values["optimizer"])
        config = TrainConfig(**{**values, **recipe})
    except ValueError as e:
        raise CLIError(_one_line(e)) from None
    args.recipe = ""
    if source:
        per = " per process" if _processes() > 1 else ""
        args.recipe = (
            f"recipe: batch {config.batch_size}{per}, lr {config.effective_lr():.3g} — {source}; "
            "--batch-size/--lr set them"
        )
    return config


def _processes() -> int:
    """The processes of this training: ``WORLD_SIZE`` under torchrun, else 1."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _profile_recipe(batch_size: int | None, lr: float | None, optimizer: str) -> tuple[dict[str, Any], str]:
    """``({"batch_size", "lr"}, where they come from)``: the values given, the others from the run profile
    (:func:`~resnet_course.profiles.get_profile`). The profile's SGD learning rate belongs to its batch size on one
    process; for another batch size, or several processes under torchrun, it is scaled linearly (Goyal et al.
    2017). A profile without a learning rate, and AdamW, leave ``lr`` to :class:`TrainConfig` (0.1 x global
    batch/128 for SGD, 1e-3 for AdamW)."""

    if batch_size is not None and lr is not None:
        return {"batch_size": batch_size, "lr": lr}, ""
    profile = get_profile()
    batch = batch_size if batch_size is not None else profile.batch_size
    if lr is None and optimizer == "sgd" and profile.lr is not None:
        lr = profile.lr * batch * _processes() / profile.batch_size
    return {
        "batch_size": batch,
        "lr": lr,
    }, f"the {profile.name} profile's ({profile.chosen_by.split(',')[0]})"


# --------------------------------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------------------------------


def _load_data(spec: str, **kwargs: Any) -> Any:
    from resnet_course.data.loading import load_data

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_data(spec, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        raise CLIError(f"cannot load data {spec!r}: {_one_line(e)}") from None


def _train(args: argparse.Namespace) -> int:
    """``train``: in one process, or as one process of a DDP job when started by ``torchrun``."""
    import torch.distributed as dist

    from resnet_course.distributed import DistributedError, init_from_env

    config = _config_from_args(args)
    try:
        here = init_from_env(config.torch_device)
    except DistributedError as e:
        raise CLIError(_one_line(e)) from None
    try:
        return _train_here(args, config, here)
    except dist.DistError as e:  # a collective failed: another process of the job has stopped
        raise CLIError(
            f"rank {here.rank} of {here.size}: a collective operation failed, so another process of this DDP "
            f"job has stopped (torchrun names it; {_one_line(e)[:200]}); {args.out / 'last.pt'} keeps the last "
            "completed epoch: fix the cause and run the same command with --resume"
        ) from None
    except RuntimeError as e:
        if not here.distributed:
            raise
        raise CLIError(f"rank {here.rank} of {here.size}: {_one_line(e)}") from None
    finally:
        if here.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _load_data_once_per_machine(spec: str, here: Any, **kwargs: Any) -> Any:
    """:func:`_load_data`; under DDP the first process of each machine goes first (a CIFAR-10 download or
    extraction happens once), the others follow and read what it wrote."""
    import torch.distributed as dist

    if not here.distributed:
        return _load_data(spec, **kwargs)
    if here.local_rank != 0:
        dist.barrier()
    try:
        return _load_data(spec, **kwargs)
    finally:
        if here.local_rank == 0:
            dist.barrier()  # also when loading failed: the others then fail with the same error themselves


def _train_here(args: argparse.Namespace, config: TrainConfig, here: Any) -> int:
    import torch

    from resnet_course.data.images import ImageError
    from resnet_course.training.engine import TrainingDiverged, fit

    talk = here.is_main and not args.no_progress
    data_args = {
        "val_fraction": args.val_fraction,
        "seed": config.seed,
        "train_size": args.train_size,
        "test_size": args.test_size,
    }
    if args.stream:  # only then, so that in-memory runs write the same checkpoints as before
        data_args["stream"] = True
    bundle = _load_data_once_per_machine(args.data, here, **data_args)
    if bundle.notice and talk:
        print(bundle.notice.splitlines()[0], file=sys.stderr)
    if bundle.storage and talk:
        print(f"data: {bundle.storage}", file=sys.stderr)
    if talk:
        if args.recipe:
            print(args.recipe, file=sys.stderr)
        print(f"precision: {config.amp_choice()}", file=sys.stderr)
    torch.manual_seed(config.seed)
    model = create_for_data(args.model, len(bundle.classes), bundle.image_size)
    train_loader, val_loader, test_loader = bundle.loaders(config)
    if len(train_loader) == 0:
        raise CLIError(
            f"the training split has {len(bundle.train)} images, fewer than one batch of {config.batch_size}"
        )
    last = args.out / "last.pt"
    if args.resume and not last.exists() and talk:
        print(f"note: {last} does not exist yet, starting a new run", file=sys.stderr)
    meta = {
        "data": {"spec": str(args.data), **data_args, "image_size": bundle.image_size},
        "model": args.model,
    }
    try:
        history = fit(
            model,
            train_loader,
            val_loader,
            config,
            test_loader=test_loader,
            out_dir=args.out,
            resume=args.resume,
            progress=not args.no_progress,
            classes=bundle.classes,
            preprocess=bundle.preprocess,
            meta=meta,
            label=args.model,
        )
    except (
        TrainingDiverged,
        RunFolderBusy,
        ImageError,
        ValueError,
    ) as e:  # ImageError: a streamed file that cannot be decoded
        raise CLIError(_one_line(e)) from None
    if history.interrupted:
        if here.is_main:
            print(
                f"error: training interrupted; continue with the same command and --resume ({last})",
                file=sys.stderr,
            )
        return 130
    if here.is_main:
        print(_train_result(history, args.out))
    return 0


def _train_result(history: Any, out: Path) -> str:
    test = history.extra["test"]
    best = history.best_val_acc
    best_text = f"best val acc {best:.2%} (epoch {history.best_epoch}), " if best is not None else ""
    text = (
        f"{best_text}final test acc {test['accuracy']:.2%} on {test['n']} images; "
        f"wrote {out / 'best.pt'}, {out / 'last.pt'}, {out / 'history.json'}"
    )
    ddp = history.extra.get("ddp")
    if ddp:
        text += (
            f"\nDDP: {ddp['world_size']} processes, global batch {ddp['global_batch_size']}, learning rate "
            f"{ddp['lr']:.3g}; the processes' copies "
            f"of the model differ by at most {ddp['max_difference']:.3g} over {ddp['values']:,} values"
        )
    return text


def _evaluate(args: argparse.Namespace) -> int:
    from resnet_course.data.images import ImageError
    from resnet_course.data.streaming import make_loader
    from resnet_course.devices import resolve_device
    from resnet_course.training.checkpoints import load_checkpoint
    from resnet_course.training.predictions import evaluate

    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise CLIError(_one_line(e)) from None
    model, ckpt = load_checkpoint(args.checkpoint, device=device)
    pre, classes = ckpt.get("preprocess"), ckpt.get("classes")
    if not pre or not classes:
        raise CLIError(
            f"{args.checkpoint}: has no class names or preprocessing; it cannot be evaluated on data"
        )
    saved = (ckpt.get("meta") or {}).get("data") or {}
    data_args: dict[str, Any] = {"image_size": int(pre["image_size"])}
    if saved.get("spec") == str(args.data):  # same dataset: the same split and subsets as in training
        data_args.update(
            {k: saved[k] for k in ("val_fraction", "seed", "train_size", "test_size") if k in saved}
        )
    elif args.split == "val":
        data_args["val_fraction"] = 0.1
    if args.stream:
        data_args["stream"] = True
    bundle = _load_data(args.data, **data_args)
    if bundle.streamed:
        print(f"data: {bundle.storage}", file=sys.stderr)
    if list(bundle.classes) != list(classes):
        raise CLIError(
            f"{args.data}: its classes {bundle.classes[:5]}... differ from the checkpoint's {classes[:5]}..."
        )
    part = bundle.test if args.split == "test" else bundle.val
    if part is None or len(part) == 0:
        raise CLIError(f"{args.data}: has no {args.split} split (trained with --val-fraction 0?)")
    loader = make_loader(part, args.batch_size, mean=pre["mean"], std=pre["std"], device=device)
    try:
        result = evaluate(model, loader, classes=classes)
    except ImageError as e:  # a streamed file that cannot be decoded
        raise CLIError(_one_line(e)) from None
    result.update(
        split=args.split,
        checkpoint=str(args.checkpoint),
        data=str(args.data),
        model=(ckpt.get("model") or {}).get("name"),
        epoch=ckpt.get("epoch"),
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.checkpoint} on {args.data} ({args.split}, {result['n']} images): "
            f"accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f}"
        )
        for name, acc in result["per_class"].items():
            print(f"  {name:>20s}  {'n/a' if acc is None else f'{acc:.2%}'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from resnet_course.apps.inference import Classifier
    from resnet_course.data.images import ImageError

    try:
        classifier = Classifier.from_checkpoint(args.checkpoint, device=args.device)
    except ValueError as e:  # CheckpointError, or an unavailable device
        raise CLIError(_one_line(e)) from None
    failed = 0
    for image in args.images:
        try:
            (top,) = classifier.predict([image], top_k=args.top_k)
        except ImageError as e:
            failed += 1
            print(f"error: {_one_line(e)}", file=sys.stderr)
            if args.json:
                print(json.dumps({"image": str(image), "error": _one_line(e)}))
            continue
        if args.json:
            print(
                json.dumps(
                    {"image": str(image), "predictions": [{"class": c, "probability": p} for c, p in top]}
                )
            )
        else:
            print(f"{image}: " + ", ".join(f"{c} {p:.1%}" for c, p in top))
    return 1 if failed else 0


def _gui(args: argparse.Namespace) -> int:
    try:
        from resnet_course.apps.gui.app import run_app
    except ImportError as e:
        raise CLIError(f"the GUI needs PySide6 (pip install 'resnet-course[gui]'): {_one_line(e)}") from None
    return int(run_app(checkpoint=args.checkpoint, image=args.image, screenshot=args.screenshot) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (``python -m resnet_course`` exits with it)."""
    from resnet_course.training.checkpoints import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"train": _train, "evaluate": _evaluate, "predict": _predict, "gui": _gui}
    try:
        return handlers[args.command](args)
    except (CLIError, CheckpointError) as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
