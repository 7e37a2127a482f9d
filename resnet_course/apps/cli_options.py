"""The options of ``python -m resnet_course``: the argument parser of every subcommand, the ``train`` options that
build a :class:`~resnet_course.training.config.TrainConfig`, and the recipe (batch size, learning rate) that the run
profile supplies when they are not given. The subcommands themselves are in :mod:`resnet_course.apps.cli`."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from resnet_course.devices import DEVICE_CHOICES
from resnet_course.models.registry import list_models
from resnet_course.parallel.group import launched_size
from resnet_course.profiles import PROFILES, get_profile
from resnet_course.training.config import OPTIMIZERS, SCHEDULES, TrainConfig, profile_recipe

__all__ = ["CLIError", "build_parser", "config_from_args", "one_line"]


class CLIError(Exception):
    """An expected failure: reported as one ``error:`` line, exit code 1."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (an expected error is one line on stderr)."""
    return " ".join(line.strip() for line in str(e).strip().splitlines() if line.strip()) or type(e).__name__


#: The ``train`` options that set a :class:`TrainConfig` field take the field's default from here.
_CONFIG_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
# except: the command line computes in bf16/fp16 wherever the hardware runs it natively (the library's default is
# fp32 everywhere, so that code calling fit gives the same numbers on every machine)
_CONFIG_DEFAULTS["amp"] = "auto"
# and: batch size and SGD's learning rate come from the run profile's recipe (training.config.profile_recipe)
_CONFIG_DEFAULTS["batch_size"] = None
_CPU = PROFILES["cpu"]  # for the help texts


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
    how = t.add_mutually_exclusive_group()
    how.add_argument("--resume", action="store_true", help="continue from DIR/last.pt (same settings and data)")
    how.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run DIR already holds (without it, train refuses a folder that holds one)",
    )
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


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of the ``train`` options (the config resolves the device, once); the batch size
    and learning rate left unset come from the run profile (:func:`~resnet_course.training.config.profile_recipe`).
    Sets ``args.recipe`` to the line that says which recipe the run takes (empty when both were given)."""
    values = {k: v for k, v in vars(args).items() if k in _CONFIG_DEFAULTS}
    given = values["batch_size"] is not None and values["lr"] is not None
    processes = launched_size()
    try:
        profile = None if given else get_profile()
        recipe = profile_recipe(
            profile, values["batch_size"], values["lr"], optimizer=values["optimizer"], processes=processes
        )
        config = TrainConfig(**{**values, **recipe})
    except ValueError as e:
        raise CLIError(one_line(e)) from None
    args.recipe = ""
    if profile is not None:
        source = f"the {profile.name} profile's ({profile.chosen_by.split(',')[0]})"
        per = " per process" if processes > 1 else ""
        args.recipe = (
            f"recipe: batch {config.batch_size}{per}, lr {config.effective_lr(processes):.3g} — {source}; "
            "--batch-size/--lr set them"
        )
    return config
