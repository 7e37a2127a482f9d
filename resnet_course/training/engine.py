"""``fit``: the course's runs, epoch after epoch, around the loop of notebook 05.

Every epoch is :func:`~resnet_course.training.loop.train_one_epoch` — the loop students write in notebook 05 —
with a :class:`~resnet_course.training.steps.CourseStep` for the knobs of
:class:`~resnet_course.training.config.TrainConfig` (schedule, mixed precision, accumulation, clipping), then
:func:`~resnet_course.training.loop.evaluate` on the **validation** split. Around the epochs ``fit`` adds:

* files (``out_dir``): ``last.pt`` after every epoch, ``best.pt`` when the validation accuracy improves,
  ``history.json``, written atomically by :class:`~resnet_course.training.runstate.RunState`, which also holds
  everything an exact resume needs (``resume=True`` continues from ``last.pt`` as if never stopped);
* SWA (``config.swa``): the averaged weights with recomputed BatchNorm statistics, once at the end;
* ``test_loader``: the final model evaluated once, stored in the history and both checkpoints;
* Ctrl-C (the notebook's stop button): ``KeyboardInterrupt`` propagates at once, with a message saying what
  ``last.pt`` holds; ``fit(..., resume=True)`` continues from there;
* a run folder is held by one training at a time (:class:`~resnet_course.training.runlock.RunLock`);
* several processes (``torchrun``): :mod:`resnet_course.parallel.ddp`, met at its named points.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import nn
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from resnet_course.atomic import remove_stale_temporaries
from resnet_course.cpus import follow_usable_cpus
from resnet_course.parallel.ddp import OneProcess, processes
from resnet_course.training.config import TrainConfig
from resnet_course.training.history import History
from resnet_course.training.loop import evaluate, train_one_epoch
from resnet_course.training.runlock import RunFolderBusy, RunLock
from resnet_course.training.runstate import RUN_FILES, RunState
from resnet_course.training.steps import CourseStep, TrainingDiverged

__all__ = ["TrainingDiverged", "fit"]


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    config: TrainConfig | None = None,
    *,
    test_loader: Iterable[Any] | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    classes: Sequence[str] | None = None,
    preprocess: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    callback: Callable[[History], bool | None] | None = None,
    label: str = "",
) -> History:
    """Train ``model`` in place on ``train_loader`` and return the per-epoch :class:`History`.

    Args:
        model: any classifier ``(N, C, H, W) → (N, num_classes)``; moved to ``config.device``. At the end it
            holds the **final** weights (the SWA average when ``config.swa``), not the best ones: load
            ``out_dir/best.pt`` for those.
        train_loader, val_loader: iterables of ``(images, labels)`` batches with ``len()`` (e.g.
            ``data.loaders(config)``); ``set_epoch(epoch)`` is called when present (then shuffling/augmentation
            depend only on ``(seed, epoch)``, which exact resume needs). ``val_loader=None`` trains without
            validation (best = last).
        config: hyperparameters; ``TrainConfig()`` by default.
        test_loader: when given, the final model of a completed run is evaluated once on it (full precision);
            ``history.extra["test"]`` gets ``accuracy, loss, n, epoch`` and the ``metrics`` of ``last.pt`` and
            ``best.pt`` get ``test_accuracy, test_loss, test_n, test_of_epoch``.
        out_dir: folder for ``last.pt`` (every epoch), ``best.pt`` (best validation accuracy) and
            ``history.json``. Without it nothing is written.
        resume: continue from ``out_dir/last.pt`` when it exists (start fresh otherwise). The run continues
            exactly: same weights as an uninterrupted run. The settings must be the same as when it started.
        progress: show a ``tqdm`` bar per epoch and a summary line per epoch.
        classes, preprocess, meta: stored in the checkpoints (class names, ``{"image_size", "mean", "std"}``,
            anything else JSON-like such as the dataset used).
        callback: called with the history after every epoch (after saving); return ``True`` to stop (the
            history is then marked ``interrupted``).
        label: name of the run, kept in the history (for plots).

    Raises:
        KeyboardInterrupt: Ctrl-C; its message says which epochs ``last.pt`` holds.
        TrainingDiverged: the loss became NaN/inf; ``last.pt`` keeps the last good epoch.
        ValueError: inconsistent settings (e.g. the loader's batch size differs from ``config.batch_size``).
    """
    config = config or TrainConfig()
    procs = processes()
    n_batches = _batches_per_epoch(train_loader, config)
    procs.check_loader(train_loader, n_batches)
    progress = progress and procs.is_main
    if (threads := follow_usable_cpus()) and progress:
        tqdm.write(threads)  # a container's CPU quota, say: more threads than CPUs would wait on each other
    with _run_lock(out_dir, procs):
        steps_per_epoch = math.ceil(n_batches / config.accum_steps)
        run = RunState.start(
            model, config, train_loader, steps_per_epoch, procs,
            out_dir=out_dir, classes=classes, preprocess=preprocess, meta=meta, label=label,
        )  # fmt: skip
        start_epoch = run.resume() if resume else 0
        if progress and (line := procs.describe(config)):
            tqdm.write(line)
        epoch = start_epoch
        try:
            for epoch in range(start_epoch, config.epochs):
                _one_epoch(run, train_loader, val_loader, epoch, n_batches, progress)
                if callback is not None and procs.agree(bool(callback(run.history))):
                    run.history.interrupted = True
                    run.save_history()
                    break
            else:
                _finish(run, train_loader, val_loader, test_loader)
        except KeyboardInterrupt:
            run.history.interrupted = True
            raise KeyboardInterrupt(_interrupted_message(run, epoch)) from None
        except TrainingDiverged as err:
            kept = f"; {run.last_path} still holds the last good epoch ({run.saved_epochs})" if run.saved_epochs else ""
            raise TrainingDiverged(err.where, err.lr, kept) from None
    procs.barrier()  # every process returns after rank 0 has written its files
    return run.history


def _one_epoch(
    run: RunState,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    epoch: int,
    n_batches: int,
    progress: bool,
) -> None:
    """Train one epoch, validate, advance the per-epoch schedule (or SWA), record the epoch and save."""
    config, procs = run.config, run.procs
    if run.swa_model is not None and epoch >= config.swa_start_epoch():
        run.start_swa_phase()  # SWA's constant rate replaces the schedule from here on
    if hasattr(train_loader, "set_epoch"):
        train_loader.set_epoch(epoch)  # type: ignore[attr-defined]
    step = CourseStep(
        run.model, config, run.scaler, None if run.swa_schedule is not None else run.schedule,
        epoch=epoch, n_batches=n_batches, progress=progress, check_finite=not procs.distributed,
    )  # fmt: skip
    started = time.perf_counter()
    train = train_one_epoch(run.train_model, train_loader, run.optimizer, run.criterion, config.torch_device, step)
    train = procs.combine(train, train_loader)
    seconds = time.perf_counter() - started  # training time only: validation is not counted
    if not math.isfinite(train["loss"]):
        raise step.diverged()
    procs.end_epoch(run.model)
    val_loss = val_acc = None
    if val_loader is not None:
        val = procs.combine(evaluate(run.model, val_loader, amp_dtype=config.autocast_dtype()), val_loader)
        val_loss, val_acc = val["loss"], val["accuracy"]
    if run.swa_schedule is not None:
        run.swa_model.update_parameters(run.model)  # type: ignore[union-attr]
        run.swa_schedule.step()
    else:
        run.schedule.epoch_end(val_loss if val_loss is not None else train["loss"])
    lr = step.lr if step.lr is not None else float(run.optimizer.param_groups[0]["lr"])
    run.history.append(
        epoch=epoch + 1, train_loss=train["loss"], train_acc=train["accuracy"],
        val_loss=val_loss, val_acc=val_acc, lr=lr, seconds=seconds,
    )  # fmt: skip
    improved = val_acc is None or val_acc > run.best_acc
    if improved:
        run.best_acc = -1.0 if val_acc is None else val_acc
        run.history.best_epoch = epoch + 1
    run.save(epoch + 1, best=improved)
    if progress:
        tqdm.write(_summary_line(run.history, config.epochs))


def _finish(
    run: RunState,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    test_loader: Iterable[Any] | None,
) -> None:
    """After the last epoch: apply SWA's averaged weights (once), record how far several processes' copies of
    the model ended apart (``history.extra["ddp"]``), then test the final model (once)."""
    if run.swa_model is not None and not run.swa_applied:
        _finish_swa(run, train_loader, val_loader)
    report = run.procs.report(run.model, run.config)
    if report is not None:
        run.history.extra["ddp"] = report
        run.save_history()
    if test_loader is not None:
        run.record_test(run.procs.combine(evaluate(run.model, test_loader), test_loader))


def _finish_swa(run: RunState, train_loader: Iterable[Any], val_loader: Iterable[Any] | None) -> None:
    """Recompute BatchNorm statistics for the averaged weights, copy them into the model, evaluate, save."""
    assert run.swa_model is not None
    update_bn(train_loader, run.swa_model, device=run.config.torch_device)
    run.procs.end_epoch(run.swa_model)  # each process saw its own shard: keep rank 0's statistics
    run.model.load_state_dict(run.swa_model.module.state_dict())
    metrics: dict[str, Any] = {"n_averaged": int(run.swa_model.n_averaged)}
    if val_loader is not None:
        m = evaluate(run.model, val_loader, amp_dtype=run.config.autocast_dtype())
        m = run.procs.combine(m, val_loader)
        metrics.update(val_loss=m["loss"], val_acc=m["accuracy"])
    run.history.extra["swa"] = metrics
    run.swa_applied = True
    swa_acc = metrics.get("val_acc")
    best = swa_acc is None or swa_acc >= run.best_acc
    if best and run.out_dir is not None:
        run.history.best_epoch = run.config.epochs
    run.save(run.config.epochs, best=best)


@contextlib.contextmanager
def _run_lock(out_dir: str | Path | None, procs: OneProcess) -> Iterator[None]:
    """Hold ``out_dir``'s :class:`~resnet_course.training.runlock.RunLock` (rank 0) for the run, and clear the
    temporary files a killed run left there; every process raises
    :class:`~resnet_course.training.runlock.RunFolderBusy` when another training holds it."""
    lock, busy = None, None
    if out_dir is not None and procs.is_main:
        try:
            lock = RunLock(out_dir).acquire()
        except RunFolderBusy as err:
            busy = err
        else:
            remove_stale_temporaries(out_dir, RUN_FILES)
    if procs.agree(busy is not None):
        raise busy or RunFolderBusy(f"{out_dir} is in use by another training (see rank 0's error)")
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _batches_per_epoch(train_loader: Iterable[Any], config: TrainConfig) -> int:
    """``len(train_loader)``, after checking that it is a usable training loader for ``config``."""
    if not hasattr(train_loader, "__len__"):
        raise TypeError(
            "train_loader must have a length (batches per epoch), like a DataLoader or TensorLoader"
        )
    n_batches = len(train_loader)
    if n_batches == 0:
        raise ValueError(
            "the training loader yields no batches (dataset smaller than one batch with drop_last?)"
        )
    loader_bs = getattr(train_loader, "batch_size", None)
    if isinstance(loader_bs, int) and loader_bs != config.batch_size:
        raise ValueError(
            f"the training loader yields batches of {loader_bs} but config.batch_size is {config.batch_size}; "
            f"set TrainConfig(batch_size={loader_bs}) (the default learning rate scales with it)"
        )
    return n_batches


def _interrupted_message(run: RunState, epoch: int) -> str:
    if run.saved_epochs:
        kept = (
            f"{run.last_path} holds the first {run.saved_epochs} epoch(s): continue with resume=True "
            "(the command line: the same command with --resume)"
        )
    else:
        kept = "nothing was saved" + ("" if run.out_dir is not None else " (no out_dir)")
    if run.out_dir is not None and run.saved_epochs == run.config.epochs:
        return f"interrupted after the last epoch, in the final evaluation; {kept}"
    return f"training interrupted in epoch {epoch + 1}/{run.config.epochs}; {kept}"


def _summary_line(history: History, epochs: int) -> str:
    i = -1
    text = (
        f"epoch {history.epoch[i]:>3}/{epochs}  train loss {history.train_loss[i]:.4f} "
        f"acc {history.train_acc[i]:.2%}"
    )
    if history.val_acc[i] is not None:
        text += f"  val loss {history.val_loss[i]:.4f} acc {history.val_acc[i]:.2%}"
    return text + f"  lr {history.lr[i]:.3g}  {history.seconds[i]:.1f}s"
