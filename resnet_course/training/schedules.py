"""Learning-rate schedules built from ``torch.optim.lr_scheduler``, with linear warm-up.

Every schedule except ``"plateau"`` is stepped once per **optimizer step** (so warm-up and one-cycle are
smooth even when an epoch has few batches); ``"plateau"`` is stepped once per epoch on the validation loss.

* ``"constant"``: the base learning rate throughout (after warm-up).
* ``"step"``: multiply by ``gamma`` every ``step_size`` epochs.
* ``"multistep"``: multiply by ``gamma`` at the given fractions of training; ``(0.5, 0.75)`` is the
  schedule of He et al. 2015, Sec. 4.2 (divide by 10 at 32k and 48k of 64k iterations).
* ``"cosine"``: cosine annealing to zero (Loshchilov & Hutter, *SGDR*, ICLR 2017, arXiv:1608.03983).
* ``"onecycle"``: warm up to the maximum learning rate, then anneal to almost zero (Smith & Topin,
  *Super-Convergence*, arXiv:1708.07120); its warm-up is the first phase of the cycle.
* ``"plateau"``: divide by ``1/gamma`` when the validation loss stops improving for ``patience`` epochs.

Warm-up (Goyal et al., *Accurate, Large Minibatch SGD*, arXiv:1706.02677, Sec. 2.2) ramps the learning
rate linearly from ``warmup_start_factor × lr`` to ``lr`` over ``warmup_epochs``.

The names are :data:`resnet_course.training.config.SCHEDULES`; this module depends on the config, never the reverse.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim import lr_scheduler as lrs

from resnet_course.training.config import SCHEDULES, TrainConfig

__all__ = ["LRSchedule", "build_schedule", "lr_curve"]


class LRSchedule:
    """A per-step scheduler (possibly with warm-up) and/or a per-epoch one (``ReduceLROnPlateau``).

    ``step()`` is called after every optimizer step, ``epoch_end(val_loss)`` after every epoch.
    ``state_dict()``/``load_state_dict()`` cover both, so a resumed run continues the same curve.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        per_step: lrs.LRScheduler | None,
        per_epoch: lrs.ReduceLROnPlateau | None = None,
        warmup_steps: int = 0,
    ) -> None:
        self.optimizer = optimizer
        self.per_step = per_step
        self.per_epoch = per_epoch
        self.warmup_steps = warmup_steps
        self.steps = 0

    def step(self) -> None:
        """Advance the per-step schedule by one optimizer step."""
        self.steps += 1
        if self.per_step is not None and (self.per_epoch is None or self.steps <= self.warmup_steps):
            self.per_step.step()

    def epoch_end(self, metric: float | None) -> None:
        """Advance the per-epoch schedule (plateau) with the epoch's monitored loss; once warm-up is over."""
        if self.per_epoch is not None and metric is not None and self.steps >= self.warmup_steps:
            self.per_epoch.step(metric)

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "per_step": None if self.per_step is None else self.per_step.state_dict(),
            "per_epoch": None if self.per_epoch is None else self.per_epoch.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state["steps"])
        if self.per_step is not None and state.get("per_step") is not None:
            self.per_step.load_state_dict(state["per_step"])
        if self.per_epoch is not None and state.get("per_epoch") is not None:
            self.per_epoch.load_state_dict(state["per_epoch"])


def _warmup(optimizer: Optimizer, main: lrs.LRScheduler, warmup_steps: int, start: float) -> lrs.LRScheduler:
    if warmup_steps <= 0:
        return main
    warm = lrs.LinearLR(optimizer, start_factor=start, end_factor=1.0, total_iters=warmup_steps)
    return lrs.SequentialLR(optimizer, [warm, main], milestones=[warmup_steps])


def build_schedule(optimizer: Optimizer, config: TrainConfig, steps_per_epoch: int) -> LRSchedule:
    """The learning-rate schedule ``config.schedule`` for ``config.epochs × steps_per_epoch`` optimizer steps.

    The optimizer's learning rate must already be the base (maximum) learning rate.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    total = config.epochs * steps_per_epoch
    warmup = min(total - 1, round(config.effective_warmup_epochs() * steps_per_epoch))
    warmup = max(warmup, 0)
    name = config.schedule
    start = config.warmup_start_factor
    if name == "onecycle":
        max_lrs = [g["lr"] for g in optimizer.param_groups]
        total = max(total, 2)
        # OneCycleLR needs more than one warm-up step and at least one annealing step.
        pct = min(max(warmup, 1.5) / total, 0.75)
        sched = lrs.OneCycleLR(
            optimizer,
            max_lr=max_lrs,
            total_steps=total,
            pct_start=pct,
            anneal_strategy=config.onecycle_anneal,
            cycle_momentum=False,
            div_factor=config.onecycle_div_factor,
            final_div_factor=config.onecycle_final_div_factor,
        )
        return LRSchedule(optimizer, sched)
    if name == "plateau":
        plateau = lrs.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.gamma, patience=config.plateau_patience
        )
        warm = (
            lrs.LinearLR(optimizer, start_factor=start, end_factor=1.0, total_iters=warmup)
            if warmup > 0
            else None
        )
        return LRSchedule(optimizer, warm, plateau, warmup_steps=warmup)
    rest = max(total - warmup, 1)
    main: lrs.LRScheduler
    if name == "constant":
        main = lrs.ConstantLR(optimizer, factor=1.0, total_iters=0)
    elif name == "step":
        step_epochs = config.step_size if config.step_size is not None else max(1.0, config.epochs / 3)
        main = lrs.StepLR(
            optimizer, step_size=max(1, round(step_epochs * steps_per_epoch)), gamma=config.gamma
        )
    elif name == "multistep":
        milestones = sorted({max(1, round(f * total) - warmup) for f in config.milestones})
        main = lrs.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    elif name == "cosine":
        main = lrs.CosineAnnealingLR(optimizer, T_max=rest, eta_min=0.0)
    else:  # validated by TrainConfig; kept for direct callers
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    return LRSchedule(optimizer, _warmup(optimizer, main, warmup, start))


def lr_curve(config: TrainConfig, steps_per_epoch: int, lr: float | None = None) -> list[float]:
    """The learning rate of every optimizer step of a run with ``config`` (for plotting a schedule).

    ``"plateau"`` depends on the validation loss, so its curve shows the warm-up and then a constant rate.
    """
    param = torch.nn.Parameter(torch.zeros(1))
    base = lr if lr is not None else config.effective_lr()
    optimizer = torch.optim.SGD([param], lr=base, momentum=0.9)
    schedule = build_schedule(optimizer, config, steps_per_epoch)
    values = []
    for _ in range(config.epochs * steps_per_epoch):
        values.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        schedule.step()
    return values
