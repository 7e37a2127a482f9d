"""The training engine shared by the notebooks, the command line and the GUI.

:func:`fit` trains a model with every technique the course teaches — SGD with (Nesterov) momentum or AdamW,
weight decay kept off BatchNorm and bias parameters, warm-up and step / multistep / cosine / one-cycle /
plateau schedules, label smoothing, mixed precision with ``torch.amp``, ``channels_last``, gradient
accumulation and clipping, and stochastic weight averaging with ``torch.optim.swa_utils`` — and keeps the
model that is best on the **validation** split. With ``out_dir`` it writes ``last.pt`` after every epoch,
``best.pt`` and ``history.json``; a run stopped with Ctrl-C (or by a crash) resumes exactly where it was.
With ``test_loader`` the final model is evaluated once on the test split and the result is stored in the
history and both checkpoints.

Ctrl-C during :func:`fit`: the first press stops at the next batch boundary, saves a resumable ``last.pt``
(mid-epoch position included), warns, and ``fit`` **returns** the partial history with ``interrupted=True`` —
the notebook kernel stays usable and ``fit(..., resume=True)`` continues. A second press interrupts at once.

Each batch is the loop of notebook 05: zero the gradients (at the start of an accumulation group) → forward →
loss → backward → optimizer step → schedule step (at the end of the group). The knobs are in
:class:`~resnet_course.training.config.TrainConfig`, the run's state in :class:`~resnet_course.training.runstate.RunState`.

Inside a process group (``torchrun``; :mod:`resnet_course.distributed`) the same ``fit`` trains one model on all
processes with ``DistributedDataParallel``: each process takes its shard of every batch (the loaders of
``DataBundle.loaders``), epoch totals and evaluation counts are summed over the processes, the processes agree on
Ctrl-C and NaN at the same optimizer step, only rank 0 prints and writes files (holding the plain model), and a
run folder is locked against a second training (:class:`~resnet_course.training.runlock.RunLock`).

Evaluation (:func:`~resnet_course.training.predictions.evaluate`, :func:`~resnet_course.training.predictions.predict`) is in
:mod:`resnet_course.training.predictions`.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import update_bn
from tqdm.auto import tqdm

from resnet_course.distributed import World, all_sum, any_true, gather, replica_difference, world
from resnet_course.training.config import TrainConfig
from resnet_course.training.history import History
from resnet_course.training.interrupts import GracefulStop, deferred_sigint
from resnet_course.training.predictions import batch_to_device, evaluate
from resnet_course.training.runlock import RunFolderBusy, RunLock
from resnet_course.training.runstate import RunState
from resnet_course.training.tally import BufferSnapshot, EpochTally

__all__ = ["TrainingDiverged", "fit"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says when and what to try."""


class _Stop(Exception):
    """Internal: leave the training loop at a consistent point (a callback asked)."""


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


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
        callback: called with the history after every epoch (after saving); return ``True`` to stop.
        label: name of the run, kept in the history (for plots).

    Ctrl-C: see the module documentation (``fit`` returns the partial history with ``interrupted=True``).

    Raises:
        TrainingDiverged: the loss became NaN/inf; ``last.pt`` keeps the last good epoch.
        ValueError: inconsistent settings (e.g. the loader's batch size differs from ``config.batch_size``).
    """
    config = config or TrainConfig()
    here = world()
    n_batches = _batches_per_epoch(train_loader, config, here)
    progress = progress and here.is_main
    with _run_lock(out_dir, here):
        run = RunState.start(
            model,
            config,
            train_loader,
            math.ceil(n_batches / config.accum_steps),
            out_dir=out_dir,
            classes=classes,
            preprocess=preprocess,
            meta=meta,
            label=label,
        )
        try:
            start_epoch, partial = run.resume() if resume else (0, None)
            if progress and here.distributed:
                tqdm.write(_ddp_line(config, here))
            with deferred_sigint() as sigint:
                loaders = (train_loader, val_loader, test_loader)
                _run_epochs(run, loaders, start_epoch, partial, progress, sigint, callback)
        finally:
            run.close()  # every file asked for is on disk before fit returns or raises
        if here.distributed:
            torch.distributed.barrier()  # every process returns after rank 0 has written its files
    return run.history


def _run_epochs(
    run: RunState,
    loaders: tuple[Iterable[Any], Iterable[Any] | None, Iterable[Any] | None],
    start_epoch: int,
    partial: dict[str, Any] | None,
    progress: bool,
    sigint: dict[str, bool],
    callback: Callable[[History], bool | None] | None,
) -> None:
    """The epochs from ``start_epoch`` on, then :func:`_finish`; a stop (Ctrl-C, callback) is recorded."""
    config, (train_loader, val_loader, test_loader) = run.config, loaders
    n_batches = len(train_loader)  # type: ignore[arg-type]
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            if run.swa_model is not None and epoch >= config.swa_start_epoch():
                run.start_swa_phase()
            tally = _train_one_epoch(run, train_loader, epoch, n_batches, partial, progress, sigint)
            partial = None
            if run.world.distributed:
                tally.reduce(run.world)
                _broadcast_buffers(run.model)
            _end_epoch(run, val_loader, epoch, tally)
            if progress:
                tqdm.write(_summary_line(run.history, config.epochs))
            if callback is not None:
                run.flush()  # the callback may read this epoch's files
            wants_stop = callback is not None and bool(callback(run.history))
            if any_true(wants_stop) if run.world.distributed else wants_stop:
                raise _Stop
        if len(run.history) == config.epochs:
            _finish(run, train_loader, val_loader, test_loader)
    except (KeyboardInterrupt, _Stop) as stop:
        _mark_stopped(run, stop, epoch)
        if (
            run.world.distributed
            and isinstance(stop, KeyboardInterrupt)
            and not isinstance(stop, GracefulStop)
        ):
            raise  # this process alone was interrupted: the others cannot meet it at the closing barrier


@contextlib.contextmanager
def _run_lock(out_dir: str | Path | None, here: World) -> Iterator[None]:
    """Hold ``out_dir``'s :class:`~resnet_course.training.runlock.RunLock` on rank 0 for the run; every process of
    a DDP job raises :class:`~resnet_course.training.runlock.RunFolderBusy` when another training holds it."""
    lock, busy = None, None
    if out_dir is not None and here.is_main:
        try:
            lock = RunLock(out_dir).acquire()
        except RunFolderBusy as err:
            busy = err
    if here.distributed and any_true(busy is not None):
        raise busy or RunFolderBusy(f"{out_dir} is in use by another training (see rank 0's error)")
    if busy is not None:
        raise busy
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _broadcast_buffers(model: nn.Module) -> None:
    """DDP: give every process rank 0's buffers (BatchNorm running statistics), as DDP does before each forward."""
    for buffer in model.buffers():
        torch.distributed.broadcast(buffer.data, src=0)


def _ddp_line(config: TrainConfig, here: World) -> str:
    lr = config.effective_lr()
    how = ""
    if config.lr is None and config.optimizer == "sgd":
        how = f" = 0.1 × {config.global_batch_size()}/128 (linear scaling, Goyal et al. 2017)"
    accum = f", × {config.accum_steps} accumulated batches per step" if config.accum_steps > 1 else ""
    return (
        f"DDP: {here.size} processes ({here.backend}), {config.batch_size} images per process per batch → global "
        f"batch {config.global_batch_size()}{accum}; learning rate {lr:.3g}{how}"
    )


def _finish(
    run: RunState,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    test_loader: Iterable[Any] | None,
) -> None:
    """After the last epoch: apply SWA's averaged weights (once), under DDP record how far the processes' copies
    of the model are apart (``history.extra["ddp"]``), then test the final model (once)."""
    if run.swa_model is not None and not run.swa_applied:
        _finish_swa(run, train_loader, val_loader)
    if run.world.distributed:
        run.history.extra["ddp"] = {
            "world_size": run.world.size,
            "backend": run.world.backend,
            "global_batch_size": run.config.global_batch_size(),
            "lr": run.config.effective_lr(),
            **replica_difference(run.model),
        }
        run.save_history()
    if test_loader is not None:
        run.record_test(evaluate(run.model, test_loader))


def _mark_stopped(run: RunState, stop: BaseException, epoch: int) -> None:
    """Record that the run stopped early; warn when Ctrl-C stopped it (a callback's stop is silent)."""
    run.history.interrupted = True
    run.save_history()
    if isinstance(stop, KeyboardInterrupt):
        where = f" (checkpoint: {run.last_path}; continue with resume=True)" if run.last_path else ""
        warnings.warn(
            f"training interrupted during epoch {epoch + 1}/{run.config.epochs}{where}", stacklevel=3
        )


def _batches_per_epoch(train_loader: Iterable[Any], config: TrainConfig, here: World) -> int:
    """``len(train_loader)``, after checking that it is a usable training loader for ``config`` (sharded for
    this process when it is one of several)."""
    if not hasattr(train_loader, "__len__"):
        raise TypeError(
            "train_loader must have a length (batches per epoch), like a DataLoader or TensorLoader"
        )
    n_batches = len(train_loader)
    if n_batches == 0:
        raise ValueError(
            "the training loader yields no batches (dataset smaller than one batch with drop_last?)"
        )
    if here.distributed:
        if getattr(train_loader, "world_size", None) != here.size:
            raise ValueError(
                f"fit runs in a process group of {here.size} processes, but the training loader is not sharded "
                "for it (each process would train on every image): build the loaders inside the group with "
                "DataBundle.loaders(config), or TensorLoader/StreamLoader(..., rank=, world_size=)"
            )
        counts = gather(n_batches)
        if len(set(counts)) > 1:  # DDP would wait forever for the processes with fewer batches
            raise ValueError(
                f"the processes' training loaders have different numbers of batches per epoch ({counts}); "
                "shard them with equal_batches=True (the default of a shuffling TensorLoader)"
            )
    loader_bs = getattr(train_loader, "batch_size", None)
    if isinstance(loader_bs, int) and loader_bs != config.batch_size:
        raise ValueError(
            f"the training loader yields batches of {loader_bs} but config.batch_size is {config.batch_size}; "
            f"set TrainConfig(batch_size={loader_bs}) (the default learning rate scales with it)"
        )
    return n_batches


def _train_one_epoch(
    run: RunState,
    loader: Iterable[Any],
    epoch: int,
    n_batches: int,
    partial: dict[str, Any] | None,
    progress: bool,
    sigint: dict[str, bool],
) -> EpochTally:
    """Train one epoch (from ``partial``'s position when resuming inside it) and return its totals.

    Ctrl-C (or an exception raised from inside the model, e.g. a hook) saves the state after the last complete
    optimizer step to ``last.pt``, with the position in the epoch, and ``KeyboardInterrupt`` propagates. Under
    DDP the processes agree after every optimizer step whether to stop, so they stop at the same step; an
    immediate interruption (a second Ctrl-C, a dead peer) saves nothing there and keeps the last saved epoch.
    """
    config = run.config
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)  # type: ignore[attr-defined]
    rng_epoch_start = run.rng_state()
    tally = EpochTally.resumed(partial if run.world.is_main else _without_sums(partial), config.torch_device)
    bn = BufferSnapshot(run.model) if run.writes else None  # only a process that saves needs the snapshot
    bar = tqdm(
        total=n_batches,
        initial=tally.batches,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        leave=False,
        disable=not progress,
        dynamic_ncols=True,
    )
    run.model.train()
    try:
        for b, batch in enumerate(loader):
            if b < tally.batches:
                continue  # already trained before the interruption
            group_end = min(b - b % config.accum_steps + config.accum_steps, n_batches)
            _forward_backward(run, batch, b, group_end, tally)
            if not run.world.distributed and ((b + 1) % _check_every(config) == 0 or b + 1 == n_batches):
                _check_finite(run, tally, bar, epoch, b)
            if b + 1 == group_end:
                stop = (
                    _agree(run, tally, bar, epoch, b, sigint, n_batches)
                    if run.world.distributed
                    else sigint["stop"]
                )
                tally.lr = _optimizer_step(run)
                _schedule_step(run)
                tally.commit(b + 1)
                if bn is not None:
                    bn.take()
                if stop:
                    raise GracefulStop
            bar.update(1)
    except KeyboardInterrupt as stop:
        bar.close()
        run.optimizer.zero_grad(set_to_none=True)
        if isinstance(stop, GracefulStop) or not run.world.distributed:  # every process stopped at this step
            if run.world.distributed:
                tally.reduce(run.world)
            if bn is not None:
                bn.restore()  # BatchNorm statistics as of the last optimizer step, not of the unfinished group
                run.save(epoch, partial=tally.position(rng_epoch_start))
        raise
    bar.close()
    run.optimizer.zero_grad(set_to_none=True)
    tally.seconds = tally.elapsed()  # training time only: validation is not counted
    return tally


def _check_every(config: TrainConfig) -> int:
    """Batches between NaN checks: every batch on the CPU (free), every 20 on a GPU (each check synchronises)."""
    return 1 if config.torch_device.type == "cpu" else 20


def _forward_backward(run: RunState, batch: Any, b: int, group_end: int, tally: EpochTally) -> None:
    """One batch: zero the gradients at the start of an accumulation group, forward, loss, backward (scaled by
    the group's size). Under DDP, batches before the group's last skip the gradient all-reduce (``no_sync``)."""
    config, device = run.config, run.config.torch_device
    accum = config.accum_steps
    group_start = b - b % accum
    x, y = batch_to_device(batch, device, config.uses_channels_last())
    if b == group_start:
        run.optimizer.zero_grad(set_to_none=True)
    amp_dtype = config.autocast_dtype()
    local = run.world.distributed and b + 1 < group_end
    with run.train_model.no_sync() if local else contextlib.nullcontext():  # type: ignore[operator, union-attr]
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = run.train_model(x)  # type: ignore[misc]
            loss = run.criterion(logits, y)
        run.scaler.scale(loss / (group_end - group_start)).backward()
    tally.add(loss, logits, y)


def _agree(
    run: RunState, tally: EpochTally, bar: Any, epoch: int, batch: int, sigint: dict[str, bool], n_batches: int
) -> bool:
    """DDP: all processes learn whether any saw a NaN/inf loss (then all raise :class:`TrainingDiverged`) or a
    Ctrl-C (then all stop after this step): one small all-reduce at every optimizer step on the CPU, every 20th
    and the epoch's last on a GPU (each one synchronises the device), at the same steps on every process."""
    step = -(-(batch + 1) // run.config.accum_steps)
    if step % _check_every(run.config) and batch + 1 != n_batches:
        return False
    stops, bad = all_sum(sigint["stop"], not math.isfinite(float(tally.pending_loss)))
    if bad:
        raise TrainingDiverged(_divergence_message(epoch, batch, run))
    _check_finite(run, tally, bar, epoch, batch)  # progress bar of this process (its own batches)
    return stops > 0


def _without_sums(partial: dict[str, Any] | None) -> dict[str, Any] | None:
    """A mid-epoch position as a process other than rank 0 resumes it: same position, sums of 0 (the saved
    sums already cover all processes, and they are added up again at the epoch's end)."""
    if partial is None:
        return None
    return {**partial, "loss": 0.0, "correct": 0, "seen": 0}


def _optimizer_step(run: RunState) -> float:
    """Clip the gradients (if asked) and take one optimizer step through the scaler; return its learning rate."""
    if run.config.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    lr = float(run.optimizer.param_groups[0]["lr"])
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return lr


def _schedule_step(run: RunState) -> None:
    """Advance the learning-rate schedule by one optimizer step (SWA keeps its constant rate instead)."""
    if run.swa_schedule is not None:
        return
    with warnings.catch_warnings():  # a GradScaler-skipped first step is expected
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        run.schedule.step()


def _end_epoch(run: RunState, val_loader: Iterable[Any] | None, epoch: int, tally: EpochTally) -> None:
    """Validate, advance the per-epoch schedule (or SWA), record the epoch, and save last/best/history."""
    if tally.seen == 0:
        raise ValueError("the training loader yielded no images")
    val_loss = val_acc = None
    if val_loader is not None:
        metrics = evaluate(run.model, val_loader, amp_dtype=run.config.autocast_dtype())
        val_loss, val_acc = metrics["loss"], metrics["accuracy"]
    lr = tally.lr if tally.lr is not None else float(run.optimizer.param_groups[0]["lr"])
    if run.swa_schedule is not None:
        run.swa_model.update_parameters(run.model)  # type: ignore[union-attr]
        run.swa_schedule.step()
    else:
        run.schedule.epoch_end(val_loss if val_loss is not None else tally.loss / tally.seen)
    run.history.append(
        epoch=epoch + 1,
        train_loss=tally.loss / tally.seen,
        train_acc=tally.correct / tally.seen,
        val_loss=val_loss,
        val_acc=val_acc,
        lr=lr,
        seconds=tally.seconds,
    )
    improved = val_acc is None or val_acc > run.best_acc
    if improved:
        run.best_acc = -1.0 if val_acc is None else val_acc
        run.history.best_epoch = epoch + 1
    run.save(epoch + 1, best=improved)
    run.save_history()


def _finish_swa(run: RunState, train_loader: Iterable[Any], val_loader: Iterable[Any] | None) -> None:
    """Recompute BatchNorm statistics for the averaged weights, copy them into the model, evaluate, save."""
    assert run.swa_model is not None
    update_bn(train_loader, run.swa_model, device=run.config.torch_device)
    if run.world.distributed:
        _broadcast_buffers(run.swa_model)  # each process saw its own shard: keep rank 0's statistics
    run.model.load_state_dict(run.swa_model.module.state_dict())
    metrics: dict[str, Any] = {"n_averaged": int(run.swa_model.n_averaged)}
    if val_loader is not None:
        m = evaluate(run.model, val_loader, amp_dtype=run.config.autocast_dtype())
        metrics.update(val_loss=m["loss"], val_acc=m["accuracy"])
    run.history.extra["swa"] = metrics
    run.swa_applied = True
    swa_acc = metrics.get("val_acc")
    best = swa_acc is None or swa_acc >= run.best_acc
    if best and run.out_dir is not None:
        run.history.best_epoch = run.config.epochs
    run.save(run.config.epochs, best=best)
    run.save_history()


def _check_finite(run: RunState, tally: EpochTally, bar: Any, epoch: int, batch: int) -> None:
    """Raise :class:`TrainingDiverged` when the loss is NaN/inf; otherwise update the progress bar."""
    pending = float(tally.pending_loss)
    if not math.isfinite(pending):
        raise TrainingDiverged(_divergence_message(epoch, batch, run))
    seen = tally.seen + tally.pending_seen
    bar.set_postfix(
        loss=f"{(tally.loss + pending) / seen:.3f}",
        acc=f"{(tally.correct + int(tally.pending_correct)) / seen:.3f}",
        lr=f"{run.optimizer.param_groups[0]['lr']:.3g}",
        refresh=False,
    )


def _divergence_message(epoch: int, batch: int, run: RunState) -> str:
    run.flush()  # name last.pt only once it is on disk
    lr, last = run.optimizer.param_groups[0]["lr"], run.last_path
    kept = f"; {last} still holds the last good epoch" if last is not None and last.exists() else ""
    return (
        f"training diverged: the loss became NaN/inf in epoch {epoch + 1}, batch {batch + 1} "
        f"(learning rate {lr:.3g}){kept}. Try a lower learning rate (e.g. half), longer warm-up, gradient "
        "clipping (grad_clip=1.0), and check that the inputs are normalised"
    )


def _summary_line(history: History, epochs: int) -> str:
    i = -1
    text = (
        f"epoch {history.epoch[i]:>3}/{epochs}  train loss {history.train_loss[i]:.4f} "
        f"acc {history.train_acc[i]:.2%}"
    )
    if history.val_acc[i] is not None:
        text += f"  val loss {history.val_loss[i]:.4f} acc {history.val_acc[i]:.2%}"
    return text + f"  lr {history.lr[i]:.3g}  {history.seconds[i]:.1f}s"
