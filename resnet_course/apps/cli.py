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
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from resnet_course.apps.cli_options import CLIError, build_parser, config_from_args, one_line
from resnet_course.models.registry import create_for_data
from resnet_course.training.config import TrainConfig
from resnet_course.training.runlock import RunFolderBusy

__all__ = ["main", "build_parser"]


# --------------------------------------------------------------------------------------------------
# Subcommands
# --------------------------------------------------------------------------------------------------


def _load_data(spec: str, *, report: bool = True, **kwargs: Any) -> Any:
    """``load_data``, its failures as one ``error:`` line and its warnings (the files it skipped, by name) as one
    ``warning:`` line each on stderr (``report=False``: not printed, e.g. on DDP ranks other than 0)."""
    from resnet_course.data.loading import load_data

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            bundle = load_data(spec, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        raise CLIError(f"cannot load data {spec!r}: {one_line(e)}") from None
    for warning in caught if report else []:
        if issubclass(warning.category, UserWarning):
            lines = [line.strip() for line in str(warning.message).splitlines() if line.strip()]
            print(
                "warning: "
                + " ".join(f"{t};" if i and i < len(lines) - 1 else t for i, t in enumerate(lines)),
                file=sys.stderr,
            )
    return bundle


def _train(args: argparse.Namespace) -> int:
    """``train``: in one process, or as one process of a DDP job when started by ``torchrun``."""
    import torch.distributed as dist

    from resnet_course.parallel.group import DistributedError, init_from_env

    config = config_from_args(args)
    try:
        here = init_from_env(config.torch_device)
    except DistributedError as e:
        raise CLIError(one_line(e)) from None
    try:
        with _run_folder(args, config, here):
            return _train_here(args, config, here)
    except dist.DistError as e:  # a collective failed: another process of the job has stopped
        raise CLIError(
            f"rank {here.rank} of {here.size}: a collective operation failed, so another process of this DDP "
            f"job has stopped (torchrun names it; {one_line(e)[:200]}); {args.out / 'last.pt'} keeps the last "
            "completed epoch: fix the cause and run the same command with --resume"
        ) from None
    except RuntimeError as e:
        if not here.distributed:
            raise
        raise CLIError(f"rank {here.rank} of {here.size}: {one_line(e)}") from None
    finally:
        if here.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _data_args(args: argparse.Namespace, config: TrainConfig) -> dict[str, Any]:
    data_args = {
        "val_fraction": args.val_fraction,
        "seed": config.seed,
        "train_size": args.train_size,
        "test_size": args.test_size,
    }
    if args.stream:  # only then, so that in-memory runs write the same checkpoints as before
        data_args["stream"] = True
    return data_args


@contextlib.contextmanager
def _run_folder(args: argparse.Namespace, config: TrainConfig, here: Any) -> Iterator[None]:
    """Rank 0 claims ``--out`` before any data loads (:mod:`~resnet_course.apps.run_folder`) and holds its lock
    for the run; every process of a DDP job stops when it cannot."""
    from resnet_course.apps.run_folder import claim_run_folder
    from resnet_course.parallel.ddp import processes
    from resnet_course.training.checkpoints import CheckpointError

    lock, problem = None, None
    if here.is_main:
        data = {"spec": str(args.data), **_data_args(args, config)}
        try:
            lock = claim_run_folder(args.out, resume=args.resume, overwrite=args.overwrite, data=data)
        except (CLIError, RunFolderBusy, CheckpointError) as e:
            problem = one_line(e)
    if processes().agree(problem is not None):
        raise CLIError(problem or f"rank {here.rank} of {here.size}: stopped, rank 0 cannot use {args.out}")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _train_here(args: argparse.Namespace, config: TrainConfig, here: Any) -> int:
    import torch

    from resnet_course.data.images import ImageError
    from resnet_course.parallel.group import first_on_each_machine
    from resnet_course.training.engine import TrainingDiverged, fit

    talk = here.is_main and not args.no_progress
    data_args = _data_args(args, config)
    with first_on_each_machine(here):  # under torchrun: a download or extraction happens once per machine
        bundle = _load_data(args.data, report=here.is_main, **data_args)
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
    train_loader, val_loader, test_loader = bundle.loaders(config, rank=here.rank, world_size=here.size)
    _check_sizes(bundle, config, here, args.lr)
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
        raise CLIError(one_line(e)) from None
    except OSError as e:  # no space left, a folder made read-only during the run ...
        raise CLIError(
            f"cannot write the run's files in {args.out} ({e.strerror or one_line(e)}); {last} keeps the last "
            "saved epoch: fix that and run the same command with --resume"
        ) from None
    except KeyboardInterrupt as e:
        if here.is_main:
            where = one_line(e).split(";")[0] if str(e) else "training interrupted"
            print(f"error: {where}; continue with the same command and --resume ({last})", file=sys.stderr)
        return 130
    if here.is_main:
        print(_train_result(history, args.out))
    return 0


def _check_sizes(bundle: Any, config: TrainConfig, here: Any, args_lr: float | None) -> None:
    """Refuse what cannot train a classifier: one class; a batch larger than the split when the learning rate is
    scaled to the batch (``--lr`` not given: it would be scaled up for images that are not there; with ``--lr``
    a warning). Warn when the test split lacks classes."""
    n_train, classes = len(bundle.train), bundle.classes
    present = sorted(set(bundle.train.labels.tolist()))
    if len(present) < 2:
        raise CLIError(
            f"the training split holds one class only ({classes[present[0]] if present else 'none'}): a classifier "
            "needs images of at least two classes"
        )
    if config.batch_size * here.size > n_train:
        per = f" × {here.size} processes" if here.size > 1 else ""
        what = f"the batch of {config.batch_size} images{per} is larger than the training split ({n_train} images)"
        if args_lr is None:  # the rate would be scaled up for images that are not there
            raise CLIError(
                f"{what}, and the learning rate is scaled to the batch; give --batch-size {n_train // here.size} "
                "or less, or train on more images"
            )
        if here.is_main:
            print(f"warning: {what}: every epoch is one smaller batch, at the --lr given", file=sys.stderr)
    missing = (
        sorted(set(range(len(classes))) - set(bundle.test.labels.tolist())) if bundle.test is not None else []
    )
    if missing and here.is_main:
        names = ", ".join(classes[i] for i in missing[:5]) + (", …" if len(missing) > 5 else "")
        print(
            f"warning: the test split has no images of {len(missing)} class(es) ({names}); its accuracy covers "
            "the other classes only",
            file=sys.stderr,
        )


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
    from resnet_course.training.loop import evaluate

    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise CLIError(one_line(e)) from None
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
        raise CLIError(one_line(e)) from None
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
        raise CLIError(one_line(e)) from None
    failed = 0
    for image in args.images:
        try:
            (top,) = classifier.predict([image], top_k=args.top_k)
        except ImageError as e:
            failed += 1
            print(f"error: {one_line(e)}", file=sys.stderr)
            if args.json:
                print(json.dumps({"image": str(image), "error": one_line(e)}))
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
        raise CLIError(f"the GUI needs PySide6 (pip install 'resnet-course[gui]'): {one_line(e)}") from None
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
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
