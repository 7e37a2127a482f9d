"""The training engine shared by the notebooks, the command line and the GUI.

:func:`fit` trains a model with every technique the course teaches — SGD with (Nesterov) momentum or AdamW,
weight decay kept off BatchNorm and bias parameters, warm-up and step / multistep / cosine / one-cycle /
plateau schedules, label smoothing, mixed precision with ``torch.amp``, ``channels_last``, gradient
accumulation and clipping, and stochastic weight averaging with ``torch.optim.swa_utils`` — and keeps the
model that is best on the **validation** split. With ``out_dir`` it writes ``last.pt`` after every epoch,
``best.pt`` and ``history.json``; a run stopped with Ctrl-C (or by a crash) resumes exactly where it was.

:func:`evaluate` measures loss and accuracy (and per-class accuracy) and :func:`predict` returns labels,
predictions and probabilities for analysis.

The default :class:`TrainConfig` is the classic CIFAR recipe, made short-run friendly:

* SGD, momentum 0.9, Nesterov; learning rate 0.1 per 128 images in a batch (He et al. 2015, Sec. 4.2,
  scaled linearly with the batch size as in Goyal et al. 2017, arXiv:1706.02677);
* weight decay 5e-4 on convolution and linear weights only (kuangliu/pytorch-cifar; Goyal et al. 2017
  and Jia et al. 2018, arXiv:1807.11205, leave BN/bias undecayed);
* one-cycle schedule with 20 % warm-up (Smith & Topin 2017, arXiv:1708.07120; David Page, "How to train
  your ResNet", Myrtle.ai 2018, warms up 5 of 24 epochs);
* label smoothing 0.1 (Szegedy et al. 2016, arXiv:1512.00567);
* ``channels_last`` on CPU and CUDA (faster convolutions with oneDNN and tensor cores).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from tqdm.auto import tqdm

from .devices import DEVICE_CHOICES, resolve_device
from .inspection import model_device
from .schedules import SCHEDULES, LRSchedule, build_schedule

__all__ = [
    "TrainConfig",
    "History",
    "Predictions",
    "TrainingDiverged",
    "fit",
    "evaluate",
    "predict",
    "recipe",
    "RECIPES",
    "build_optimizer",
    "model_device",
]

OPTIMIZERS = ("sgd", "adamw")
AMP_DTYPES = ("auto", "float16", "bfloat16")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says when and what to try."""


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run. The defaults are a good CIFAR-style recipe (see module doc).

    Args:
        epochs: passes over the training data.
        batch_size: images per mini-batch of the training loader (checked against the loader); the default
            learning rate scales with it.
        optimizer: ``"sgd"`` (momentum, optionally Nesterov) or ``"adamw"`` (Loshchilov & Hutter 2019).
        lr: base / peak learning rate; ``None`` = ``0.1 × batch_size / 128`` for SGD, ``1e-3`` for AdamW.
        momentum: SGD momentum (also used as AdamW's β1 is *not* changed; AdamW keeps (0.9, 0.999)).
        nesterov: Nesterov momentum for SGD.
        weight_decay: ``None`` = 5e-4 for SGD, 0.05 for AdamW.
        decay_norm_and_bias: also decay BatchNorm weights and biases (classic Caffe/He et al. setting);
            ``False`` keeps every 1-D parameter undecayed.
        lr_factors: per-layer learning rates ("discriminative fine-tuning", Howard & Ruder 2018): a map from a
            parameter-name prefix to a multiplier of ``lr``; a parameter takes the factor of its longest
            matching prefix, 1 when none matches. ``{"": 0.1, "fc.": 1.0}`` trains the backbone at a tenth of
            the head's rate. Each factor becomes its own optimizer parameter group, which every schedule (and
            SWA's constant rate) scales together.
        schedule: one of ``constant, step, multistep, cosine, onecycle, plateau``.
        warmup_epochs: linear warm-up length in epochs (may be fractional); ``None`` = 20 % of the epochs
            for one-cycle and no warm-up for the others.
        warmup_start_factor: warm-up starts at this fraction of ``lr`` (one-cycle uses ``onecycle_div_factor``).
        milestones: ``multistep`` decay points as fractions of training (He et al. 2015: 0.5 and 0.75).
        step_size: ``step`` decays every this many epochs; ``None`` = a third of the epochs.
        gamma: decay factor of step / multistep / plateau.
        plateau_patience: epochs without improvement of the validation loss before ``plateau`` decays.
        onecycle_anneal: ``"cos"`` or ``"linear"`` annealing in one-cycle.
        onecycle_div_factor: one-cycle starts at ``lr / onecycle_div_factor``.
        onecycle_final_div_factor: one-cycle ends at ``lr / (div_factor × final_div_factor)``.
        label_smoothing: cross-entropy label smoothing (0 disables).
        amp: mixed precision with ``torch.autocast``: bf16 on CPU; on CUDA bf16 where supported, else fp16
            with a ``GradScaler``.
        amp_dtype: ``"auto"``, ``"float16"`` or ``"bfloat16"``.
        channels_last: NHWC memory format; ``None`` = on for CPU and CUDA, off for MPS.
        accum_steps: accumulate gradients over this many batches per optimizer step.
        grad_clip: clip the global gradient norm to this value (``None`` disables).
        swa: stochastic weight averaging (Izmailov et al. 2018, arXiv:1803.05407) from ``swa_start``.
        swa_start: fraction of the epochs after which weights are averaged (once per epoch).
        swa_lr: constant learning rate of the SWA phase; ``None`` = ``lr / 10``.
        seed: seeds Python, NumPy and PyTorch at the start of a fresh run.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"``.
    """

    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float | None = None
    decay_norm_and_bias: bool = False
    lr_factors: dict[str, float] = field(default_factory=dict)
    schedule: str = "onecycle"
    warmup_epochs: float | None = None
    warmup_start_factor: float = 0.1
    milestones: tuple[float, ...] = (0.5, 0.75)
    step_size: float | None = None
    gamma: float = 0.1
    plateau_patience: int = 5
    onecycle_anneal: str = "cos"
    onecycle_div_factor: float = 25.0
    onecycle_final_div_factor: float = 1e4
    label_smoothing: float = 0.1
    amp: bool = False
    amp_dtype: str = "auto"
    channels_last: bool | None = None
    accum_steps: int = 1
    grad_clip: float | None = None
    swa: bool = False
    swa_start: float = 0.75
    swa_lr: float | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        self.milestones = tuple(float(m) for m in self.milestones)
        problems = []
        if not (isinstance(self.epochs, int) and self.epochs >= 1):
            problems.append(f"epochs must be a positive integer, got {self.epochs!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            problems.append(f"batch_size must be a positive integer, got {self.batch_size!r}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number (or None for the default), got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0 and self.optimizer == "sgd":
            problems.append("nesterov=True needs momentum > 0")
        if self.weight_decay is not None and not self.weight_decay >= 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not isinstance(self.lr_factors, dict) or not all(isinstance(k, str) for k in self.lr_factors):
            problems.append(f"lr_factors must map parameter-name prefixes (str) to factors, got {self.lr_factors!r}")
        else:
            self.lr_factors = {k: float(v) for k, v in sorted(self.lr_factors.items())}
            bad = {k: v for k, v in self.lr_factors.items() if not (math.isfinite(v) and v > 0)}
            if bad:
                problems.append(
                    f"lr_factors must be positive, got {bad}; to stop a layer learning, freeze it "
                    "(requires_grad=False) instead of a factor of 0"
                )
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.warmup_epochs is not None and not 0 <= self.warmup_epochs < self.epochs:
            problems.append(f"warmup_epochs must be in [0, epochs={self.epochs}), got {self.warmup_epochs!r}")
        if not 0 < self.warmup_start_factor <= 1:
            problems.append(f"warmup_start_factor must be in (0, 1], got {self.warmup_start_factor!r}")
        if any(not 0 < m < 1 for m in self.milestones):
            problems.append(f"milestones are fractions of training in (0, 1), got {self.milestones!r}")
        if self.step_size is not None and not self.step_size > 0:
            problems.append(f"step_size must be positive (epochs), got {self.step_size!r}")
        if not 0 < self.gamma < 1:
            problems.append(f"gamma must be in (0, 1), got {self.gamma!r}")
        if self.plateau_patience < 0:
            problems.append(f"plateau_patience must be >= 0, got {self.plateau_patience!r}")
        if self.onecycle_anneal not in ("cos", "linear"):
            problems.append(f"onecycle_anneal must be 'cos' or 'linear', got {self.onecycle_anneal!r}")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.amp_dtype not in AMP_DTYPES:
            problems.append(f"amp_dtype must be one of {', '.join(AMP_DTYPES)}, got {self.amp_dtype!r}")
        if not (isinstance(self.accum_steps, int) and self.accum_steps >= 1):
            problems.append(f"accum_steps must be a positive integer, got {self.accum_steps!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be positive (or None to disable), got {self.grad_clip!r}")
        if not 0 <= self.swa_start < 1:
            problems.append(f"swa_start is a fraction of the epochs in [0, 1), got {self.swa_start!r}")
        if self.swa_lr is not None and not self.swa_lr > 0:
            problems.append(f"swa_lr must be positive (or None for lr / 10), got {self.swa_lr!r}")
        if self.device not in DEVICE_CHOICES and not str(self.device).startswith(("cuda:", "mps:")):
            problems.append(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {self.device!r}")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def effective_lr(self) -> float:
        """The base (peak) learning rate, with the batch-size-scaled default filled in."""
        if self.lr is not None:
            return float(self.lr)
        return 0.1 * self.batch_size / 128 if self.optimizer == "sgd" else 1e-3

    def effective_weight_decay(self) -> float:
        """The weight decay, with the optimizer's default filled in."""
        if self.weight_decay is not None:
            return float(self.weight_decay)
        return 5e-4 if self.optimizer == "sgd" else 0.05

    def effective_warmup_epochs(self) -> float:
        """The warm-up length in epochs, with the schedule's default filled in."""
        if self.warmup_epochs is not None:
            return float(self.warmup_epochs)
        return 0.2 * self.epochs if self.schedule == "onecycle" else 0.0

    def swa_start_epoch(self) -> int:
        """The first (0-based) epoch whose end is averaged into the SWA model."""
        return min(self.epochs - 1, int(math.floor(self.swa_start * self.epochs)))

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain Python values (JSON-friendly; what checkpoints store)."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise a ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known fields: {sorted(names)}")
        d = dict(d)
        if "milestones" in d:
            d["milestones"] = tuple(d["milestones"])
        return cls(**d)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)


RECIPES: dict[str, dict[str, Any]] = {
    # David Page, "How to train your ResNet" (Myrtle.ai, 2018; DAWNBench: 94 % CIFAR-10 test accuracy in
    # 24 epochs): batch 512, SGD Nesterov momentum 0.9, weight decay 5e-4 × batch, linear warm-up over
    # 5 of 24 epochs to 0.4 then linear decay, label smoothing 0.2, fp16. kuangliu/pytorch-cifar reaches
    # 95 % with ResNet-18 in 200 epochs of cosine at lr 0.1, batch 128; this recipe trades the last point
    # for an eighth of the time (expect about 94 % with ResNet-18, CIFAR stem, crop + flip).
    "gpu-resnet18": dict(
        epochs=30, batch_size=512, optimizer="sgd", lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
        schedule="onecycle", warmup_epochs=6.0, onecycle_anneal="linear", label_smoothing=0.2, amp=True,
    ),
    # He et al. 2015, Sec. 4.2: batch 128, lr 0.1, momentum 0.9, weight decay 1e-4 on everything,
    # divide by 10 at 32k and 48k of 64k iterations (50 % and 75 %). The paper trains on all 50k training
    # images (64k iterations ≈ 164 epochs; its 45k/5k split only chose that length); with 5k held out for
    # validation, as the course's data does, 64k iterations are ≈ 182 epochs of 45k images.
    "he2015-cifar": dict(
        epochs=182, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=False, weight_decay=1e-4,
        decay_norm_and_bias=True, schedule="multistep", milestones=(0.5, 0.75), label_smoothing=0.0,
    ),
}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A published recipe as a :class:`TrainConfig` (see :data:`RECIPES` for the sources), with overrides."""
    try:
        base = RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}") from None
    return TrainConfig(**{**base, **overrides})


# --------------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch record of a run. Epochs are numbered from 1; accuracies are fractions in [0, 1].

    ``val_loss``/``val_acc`` hold ``None`` when there is no validation split. ``best_epoch`` is the epoch
    with the best validation accuracy (the last epoch without validation). ``interrupted`` is ``True`` when
    the run was stopped early (Ctrl-C or a callback); ``extra`` holds e.g. the SWA model's metrics.
    """

    label: str = ""
    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.epoch)

    def append(self, **values: Any) -> None:
        """Add one epoch's values (every per-epoch list must be given)."""
        for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
            getattr(self, key).append(values[key])

    @property
    def best_val_acc(self) -> float | None:
        """Validation accuracy of :attr:`best_epoch` (``None`` without validation)."""
        if self.best_epoch is None:
            return None
        return self.val_acc[self.epoch.index(self.best_epoch)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self, path: str | Path) -> Path:
        """Write the history as JSON (atomically) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        tmp.replace(path)
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        """Read a history written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class Predictions:
    """What :func:`predict` returns: ``labels`` (N,), ``preds`` (N,) and ``probs`` (N, C) NumPy arrays."""

    labels: np.ndarray
    preds: np.ndarray
    probs: np.ndarray

    @property
    def accuracy(self) -> float:
        """Fraction of correct predictions."""
        return float((self.labels == self.preds).mean()) if len(self.labels) else float("nan")

    def __len__(self) -> int:
        return len(self.labels)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``config`` on ``device`` (``None`` = full precision)."""
    if not config.amp:
        return None
    if config.amp_dtype == "float16":
        return torch.float16
    if config.amp_dtype == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16


def _use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    if config.channels_last is not None:
        return bool(config.channels_last)
    return device.type in ("cpu", "cuda")


def _lr_factor(name: str, factors: dict[str, float]) -> float:
    """The factor of the longest prefix of ``name`` in ``factors`` (1 when none matches)."""
    matches = [prefix for prefix in factors if name.startswith(prefix)]
    return factors[max(matches, key=len)] if matches else 1.0


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``config`` over the trainable parameters of ``model``.

    Parameters are grouped by learning rate (``lr × lr_factors``, see :class:`TrainConfig`) and, unless
    ``decay_norm_and_bias``, by weight decay: 1-D parameters (BatchNorm weights/biases and biases) are not
    decayed. Each group has a ``"name"`` such as ``"lr x0.1, decay"`` for display.
    """
    lr, wd = config.effective_lr(), config.effective_weight_decay()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("the model has no trainable parameters (did you freeze everything?)")
    unused = [prefix for prefix in config.lr_factors if not any(n.startswith(prefix) for n, _ in named)]
    if unused:
        examples = ", ".join(repr(n) for n, _ in named[:2]) + (f", ..., {named[-1][0]!r}" if len(named) > 2 else "")
        raise ValueError(
            f"lr_factors prefix(es) {unused} match no trainable parameter of the model; "
            f"its trainable parameter names are {examples}"
        )
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, p in named:
        factor = _lr_factor(name, config.lr_factors)
        decayed = config.decay_norm_and_bias or p.ndim > 1
        group = groups.setdefault(
            (factor, decayed),
            {"params": [], "lr": lr * factor, "weight_decay": wd if decayed else 0.0, "lr_factor": factor,
             "name": (f"lr x{factor:g}, " if config.lr_factors else "") + ("decay" if decayed else "no decay")},
        )
        group["params"].append(p)
    ordered = sorted(groups.values(), key=lambda g: (-g["lr_factor"], g["weight_decay"] == 0))
    if config.optimizer == "sgd":
        return torch.optim.SGD(ordered, lr=lr, momentum=config.momentum, nesterov=config.nesterov)
    return torch.optim.AdamW(ordered, lr=lr)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(loader: Any = None) -> dict[str, Any]:
    """Python, NumPy, PyTorch (CPU and CUDA) random states — and the state of ``loader.generator`` when the
    loader has its own ``torch.Generator`` — in a form ``torch.load(weights_only=True)`` reads."""
    np_state = np.random.get_state()
    generator = getattr(loader, "generator", None)
    return {
        "loader": generator.get_state() if isinstance(generator, torch.Generator) else None,
        "python": random.getstate(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(_plain, np_state[2:])],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _set_rng_state(state: dict[str, Any], loader: Any = None) -> None:
    generator = getattr(loader, "generator", None)
    if state.get("loader") is not None and isinstance(generator, torch.Generator):
        generator.set_state(state["loader"])
    random.setstate(_tuples(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(v: Any) -> Any:
    """``random.setstate`` wants tuples; JSON/pickle round trips may have produced lists."""
    return tuple(_tuples(x) for x in v) if isinstance(v, list | tuple) else v


def _to_device(batch: Any, device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    try:
        x, y = batch[0], batch[1]
    except (TypeError, IndexError, KeyError):
        raise TypeError(
            f"a loader must yield (images, labels) pairs, got {type(batch).__name__}; wrap your data in a "
            "DataLoader/TensorLoader that returns (x, y)"
        ) from None
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


@contextlib.contextmanager
def _deferred_sigint() -> Iterator[dict[str, bool]]:
    """While active, a first Ctrl-C only sets ``flag["stop"]`` (the loop stops at the next batch boundary,
    so no optimizer step is torn); a second Ctrl-C interrupts immediately. Main thread only."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not allowed here (embedded interpreter)
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------


def _outputs(
    model: nn.Module, loader: Iterable[Any], amp_dtype: torch.dtype | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    device = model_device(model)
    channels_last = any(
        p.ndim == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in model.parameters()
    )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in loader:
                x, y = _to_device(batch, device, channels_last)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    logits = model(x)
                yield logits.float(), y
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module,
    loader: Iterable[Any],
    *,
    classes: Sequence[str] | None = None,
    amp_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Mean cross-entropy ``loss``, ``accuracy`` (fraction) and ``n`` over ``loader``, on the model's device.

    With ``classes``, also ``per_class``: class name → accuracy on that class's images (``None`` when the
    class has no image in ``loader``). The model is put in eval mode and restored afterwards.
    """
    loss_sum, correct, n = 0.0, 0, 0
    num_classes = len(classes) if classes is not None else None
    hits = torch.zeros(num_classes or 1, dtype=torch.long)
    totals = torch.zeros(num_classes or 1, dtype=torch.long)
    for logits, y in _outputs(model, loader, amp_dtype):
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        pred = logits.argmax(1)
        correct += int((pred == y).sum())
        n += len(y)
        if num_classes is not None:
            if logits.shape[1] != num_classes:
                raise ValueError(f"the model has {logits.shape[1]} outputs but {num_classes} class names were given")
            y_cpu, ok = y.cpu(), (pred == y).cpu().long()
            totals += torch.bincount(y_cpu, minlength=num_classes)
            hits += torch.bincount(y_cpu, weights=ok, minlength=num_classes).long()
    if n == 0:
        raise ValueError("the loader yielded no images; there is nothing to evaluate")
    result: dict[str, Any] = {"accuracy": correct / n, "loss": loss_sum / n, "n": n}
    if classes is not None:
        result["per_class"] = {
            name: (int(h) / int(t) if int(t) else None)
            for name, h, t in zip(classes, hits.tolist(), totals.tolist(), strict=True)
        }
    return result


def predict(model: nn.Module, loader: Iterable[Any]) -> Predictions:
    """True labels, predicted labels and softmax probabilities for every image of ``loader``, in order."""
    labels, preds, probs = [], [], []
    for logits, y in _outputs(model, loader):
        p = logits.softmax(1)
        labels.append(y.cpu())
        preds.append(p.argmax(1).cpu())
        probs.append(p.cpu())
    if not labels:
        raise ValueError("the loader yielded no images; there is nothing to predict")
    return Predictions(torch.cat(labels).numpy(), torch.cat(preds).numpy(), torch.cat(probs).numpy())


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


class _Stop(Exception):
    """Internal: leave the training loop at a consistent point (Ctrl-C or a callback asked)."""


@dataclass
class _Run:
    """Everything whose state a checkpoint must capture."""

    model: nn.Module
    config: TrainConfig
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler
    swa_model: AveragedModel | None
    swa_schedule: SWALR | None
    history: History
    classes: list[str] | None
    preprocess: dict[str, Any] | None
    meta: dict[str, Any] | None

    def checkpoint(self, epoch: int, rng: dict[str, Any], partial: dict[str, Any] | None = None,
                   swa_applied: bool = False) -> dict[str, Any]:
        from .checkpoints import make_checkpoint

        swa = None
        if self.swa_model is not None:
            swa = {
                "model": self.swa_model.state_dict(),
                "scheduler": None if self.swa_schedule is None else self.swa_schedule.state_dict(),
                "applied": swa_applied,
            }
        return make_checkpoint(
            self.model,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.schedule.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            swa=swa,
            epoch=epoch,
            history=self.history.to_dict(),
            config=self.config.to_dict(),
            rng=rng,
            classes=self.classes,
            preprocess=self.preprocess,
            partial=partial,
            meta=self.meta,
        )

    def start_swa_phase(self) -> None:
        if self.swa_schedule is None:
            swa_lr = self.config.swa_lr if self.config.swa_lr is not None else self.config.effective_lr() / 10
            swa_lrs = [swa_lr * g.get("lr_factor", 1.0) for g in self.optimizer.param_groups]
            self.swa_schedule = SWALR(self.optimizer, swa_lr=swa_lrs, anneal_epochs=1, anneal_strategy="cos")


def _check_resume_config(saved: dict[str, Any], config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    defaults = TrainConfig().to_dict()  # a field added after the run started counts as its default
    ignore = {"device"}
    diffs = [f"{k}={saved.get(k, defaults[k])!r} there, {v!r} now" for k, v in current.items()
             if k not in ignore and saved.get(k, defaults[k]) != v]
    if diffs:
        raise ValueError(
            f"{path}: cannot resume, the run was started with different settings ({'; '.join(diffs)}); "
            "resume with the same settings or train into a new output folder"
        )


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    config: TrainConfig | None = None,
    *,
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
        train_loader, val_loader: iterables of ``(images, labels)`` batches with ``len()``; ``set_epoch(epoch)``
            is called when present (then shuffling/augmentation depend only on ``(seed, epoch)``, which exact
            resume needs). ``val_loader=None`` trains without validation (best = last).
        config: hyperparameters; ``TrainConfig()`` by default.
        out_dir: folder for ``last.pt`` (every epoch), ``best.pt`` (best validation accuracy) and
            ``history.json``. Without it nothing is written.
        resume: continue from ``out_dir/last.pt`` when it exists (start fresh otherwise). The run continues
            exactly: same weights as an uninterrupted run. The settings must be the same as when it started.
        progress: show a ``tqdm`` bar per epoch and a summary line per epoch.
        classes, preprocess, meta: stored in the checkpoints (class names, ``{"image_size", "mean", "std"}``,
            anything else JSON-like such as the dataset used).
        callback: called with the history after every epoch (after saving); return ``True`` to stop.
        label: name of the run, kept in the history (for plots).

    Ctrl-C: the first press stops at the next batch boundary, saves a resumable ``last.pt`` (mid-epoch
    position included), warns, and ``fit`` **returns** the partial history with ``interrupted=True`` — the
    notebook kernel stays usable and ``fit(..., resume=True)`` continues. A second press interrupts at once.

    Raises:
        TrainingDiverged: the loss became NaN/inf; ``last.pt`` keeps the last good epoch.
        ValueError: inconsistent settings (e.g. the loader's batch size differs from ``config.batch_size``).
    """
    config = config or TrainConfig()
    device = resolve_device(config.device)
    if not hasattr(train_loader, "__len__"):
        raise TypeError("train_loader must have a length (batches per epoch), like a DataLoader or TensorLoader")
    n_batches = len(train_loader)  # type: ignore[arg-type]
    if n_batches == 0:
        raise ValueError("the training loader yields no batches (dataset smaller than one batch with drop_last?)")
    loader_bs = getattr(train_loader, "batch_size", None)
    if isinstance(loader_bs, int) and loader_bs != config.batch_size:
        raise ValueError(
            f"the training loader yields batches of {loader_bs} but config.batch_size is {config.batch_size}; "
            f"set TrainConfig(batch_size={loader_bs}) (the default learning rate scales with it)"
        )
    accum = config.accum_steps
    steps_per_epoch = math.ceil(n_batches / accum)
    channels_last = _use_channels_last(config, device)
    amp_dtype = _amp_dtype(config, device)
    out = Path(out_dir) if out_dir is not None else None
    last_path = out / "last.pt" if out else None

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    schedule = build_schedule(optimizer, config, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    run = _Run(
        model, config, optimizer, schedule, scaler,
        AveragedModel(model) if config.swa else None, None,
        History(label=label), list(classes) if classes is not None else None, preprocess, meta,
    )
    history = run.history

    _seed_everything(config.seed)
    start_epoch, partial = 0, None
    best_acc = -1.0
    swa_applied = False
    if resume and last_path is not None and last_path.exists():
        ckpt = _restore(run, last_path, device)
        start_epoch, partial = int(ckpt["epoch"]), ckpt.get("partial")
        swa_applied = bool((ckpt.get("swa") or {}).get("applied", False))
        history = run.history
        history.interrupted = False
        if history.best_epoch is not None:
            best_acc = history.best_val_acc if history.best_val_acc is not None else -1.0
        _set_rng_state(ckpt["rng"] if partial is None else partial["rng_epoch_start"], train_loader)
    elif resume and out is None:
        raise ValueError("resume=True needs out_dir (the folder holding last.pt)")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    def save(path: Path, epoch: int, partial_state: dict[str, Any] | None = None) -> None:
        from .checkpoints import save_checkpoint

        save_checkpoint(run.checkpoint(epoch, _rng_state(train_loader), partial_state, swa_applied), path)

    swa_start = config.swa_start_epoch()
    with _deferred_sigint() as sigint:
        epoch = start_epoch
        try:
            for epoch in range(start_epoch, config.epochs):
                if run.swa_model is not None and epoch >= swa_start:
                    run.start_swa_phase()
                _train_one_epoch(
                    run, train_loader, val_loader, epoch, n_batches, device, channels_last, amp_dtype,
                    criterion, partial, progress, sigint, save, last_path,
                )
                partial = None
                val_acc = history.val_acc[-1]
                improved = val_acc is None or val_acc > best_acc
                if improved:
                    best_acc = -1.0 if val_acc is None else val_acc
                    history.best_epoch = epoch + 1
                if out is not None:
                    save(last_path, epoch + 1)  # type: ignore[arg-type]
                    if improved:
                        save(out / "best.pt", epoch + 1)
                    history.to_json(out / "history.json")
                if progress:
                    tqdm.write(_summary_line(history, config.epochs))
                if callback is not None and callback(history):
                    raise _Stop
            if run.swa_model is not None and not swa_applied and len(history) == config.epochs:
                swa_applied = _finish_swa(run, train_loader, val_loader, device, amp_dtype)
                swa_acc = history.extra["swa"].get("val_acc")
                if out is not None:
                    save(last_path, config.epochs)  # type: ignore[arg-type]
                    if swa_acc is None or swa_acc >= best_acc:
                        history.best_epoch = config.epochs
                        save(out / "best.pt", config.epochs)
                    history.to_json(out / "history.json")
        except (KeyboardInterrupt, _Stop) as stop:
            history.interrupted = True
            if out is not None:
                history.to_json(out / "history.json")
            if isinstance(stop, KeyboardInterrupt):
                where = f" (checkpoint: {last_path}; continue with resume=True)" if last_path else ""
                warnings.warn(f"training interrupted during epoch {epoch + 1}/{config.epochs}{where}",
                              stacklevel=2)
    return history


def _summary_line(history: History, epochs: int) -> str:
    i = -1
    text = (f"epoch {history.epoch[i]:>3}/{epochs}  train loss {history.train_loss[i]:.4f} "
            f"acc {history.train_acc[i]:.2%}")
    if history.val_acc[i] is not None:
        text += f"  val loss {history.val_loss[i]:.4f} acc {history.val_acc[i]:.2%}"
    return text + f"  lr {history.lr[i]:.3g}  {history.seconds[i]:.1f}s"


def _restore(run: _Run, path: Path, device: torch.device) -> dict[str, Any]:
    """Load ``path`` into every stateful object of ``run``; return the checkpoint dict."""
    from .checkpoints import load_weights, read_checkpoint

    ckpt = read_checkpoint(path)
    _check_resume_config(ckpt.get("config") or {}, run.config, path)
    load_weights(run.model, ckpt, path)
    run.schedule.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler") is not None and run.scaler.is_enabled():
        run.scaler.load_state_dict(ckpt["scaler"])
    swa = ckpt.get("swa")
    if run.swa_model is not None and swa is not None:
        run.swa_model.load_state_dict(swa["model"])
        if swa.get("scheduler") is not None:
            run.start_swa_phase()
            run.swa_schedule.load_state_dict(swa["scheduler"])  # type: ignore[union-attr]
    # Last: building the schedulers above changed the learning rates; the saved optimizer state has the
    # exact values (and momentum buffers).
    run.optimizer.load_state_dict(ckpt["optimizer"])
    label = run.history.label
    run.history = History.from_dict(ckpt["history"])
    run.history.label = run.history.label or label
    return ckpt


def _train_one_epoch(
    run: _Run,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    epoch: int,
    n_batches: int,
    device: torch.device,
    channels_last: bool,
    amp_dtype: torch.dtype | None,
    criterion: nn.Module,
    partial: dict[str, Any] | None,
    progress: bool,
    sigint: dict[str, bool],
    save: Callable[..., None],
    last_path: Path | None,
) -> None:
    """One epoch of training then validation; appends to ``run.history``.

    On Ctrl-C (or an exception raised from inside the model, e.g. a hook), the state after the last complete
    optimizer step is saved to ``last_path`` together with the position in the epoch, and ``KeyboardInterrupt``
    propagates to :func:`fit`.
    """
    config, model, optimizer = run.config, run.model, run.optimizer
    accum = config.accum_steps
    if hasattr(train_loader, "set_epoch"):
        train_loader.set_epoch(epoch)  # type: ignore[attr-defined]
    rng_epoch_start = _rng_state(train_loader)
    skip = int(partial["batches"]) if partial else 0
    # Sums as of the last completed optimizer step (what a mid-epoch checkpoint records).
    done = {"batches": skip, "loss": float(partial["loss"]) if partial else 0.0,
            "correct": int(partial["correct"]) if partial else 0, "seen": int(partial["seen"]) if partial else 0,
            "seconds": float(partial["seconds"]) if partial else 0.0}
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    t0 = time.perf_counter()
    check_every = 1 if device.type == "cpu" else 20
    in_swa = run.swa_schedule is not None
    last_lr: float | None = None  # learning rate of the epoch's last optimizer step (what History records)
    # BatchNorm statistics as of the last optimizer step: a forward pass cut short by Ctrl-C has already
    # updated them, and the mid-epoch checkpoint must hold the state *before* the unfinished group.
    buffers = dict(model.named_buffers())
    snapshot = {k: v.clone() for k, v in buffers.items()} if last_path is not None else None
    model.train()
    optimizer.zero_grad(set_to_none=True)
    bar = tqdm(total=n_batches, initial=skip, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
               disable=not progress, dynamic_ncols=True)
    try:
        for b, batch in enumerate(train_loader):
            if b < skip:
                continue
            x, y = _to_device(batch, device, channels_last)
            group = b // accum
            group_size = min(accum, n_batches - group * accum)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x)
                loss = criterion(logits, y)
            run.scaler.scale(loss / group_size).backward()
            loss_sum += loss.detach().double() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if (b + 1) % check_every == 0 or b + 1 == n_batches:
                total_loss = float(loss_sum)
                if not math.isfinite(total_loss):
                    raise TrainingDiverged(_divergence_message(epoch, b, optimizer, last_path))
                bar.set_postfix(loss=f"{(done['loss'] + total_loss) / (done['seen'] + seen):.3f}",
                                acc=f"{(done['correct'] + int(correct)) / (done['seen'] + seen):.3f}",
                                lr=f"{optimizer.param_groups[0]['lr']:.3g}", refresh=False)
            if (b + 1) % accum == 0 or b + 1 == n_batches:
                if config.grad_clip is not None:
                    run.scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                last_lr = float(optimizer.param_groups[0]["lr"])
                run.scaler.step(optimizer)
                run.scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if not in_swa:
                    with warnings.catch_warnings():  # a GradScaler-skipped first step is expected
                        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
                        run.schedule.step()
                done["batches"] = b + 1
                if snapshot is not None:
                    for k, v in buffers.items():
                        snapshot[k].copy_(v)
                done["loss"] += float(loss_sum)
                done["correct"] += int(correct)
                done["seen"] += seen
                loss_sum.zero_()
                correct.zero_()
                seen = 0
                if sigint["stop"]:
                    raise KeyboardInterrupt
            bar.update(1)
    except KeyboardInterrupt:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
        if last_path is not None and snapshot is not None:
            with torch.no_grad():
                for k, v in buffers.items():
                    v.copy_(snapshot[k])
            state = {"batches": done["batches"], "loss": done["loss"], "correct": done["correct"],
                     "seen": done["seen"], "seconds": done["seconds"] + time.perf_counter() - t0,
                     "rng_epoch_start": rng_epoch_start}
            save(last_path, epoch, state)
        raise
    bar.close()
    seconds = done["seconds"] + time.perf_counter() - t0
    if done["seen"] == 0:
        raise ValueError("the training loader yielded no images")
    val_loss = val_acc = None
    if val_loader is not None:
        metrics = evaluate(model, val_loader, amp_dtype=amp_dtype)
        val_loss, val_acc = metrics["loss"], metrics["accuracy"]
    lr = last_lr if last_lr is not None else float(optimizer.param_groups[0]["lr"])
    if in_swa:
        run.swa_model.update_parameters(model)  # type: ignore[union-attr]
        run.swa_schedule.step()  # type: ignore[union-attr]
    else:
        run.schedule.epoch_end(val_loss if val_loss is not None else done["loss"] / done["seen"])
    run.history.append(epoch=epoch + 1, train_loss=done["loss"] / done["seen"],
                       train_acc=done["correct"] / done["seen"], val_loss=val_loss, val_acc=val_acc, lr=lr,
                       seconds=seconds)


def _divergence_message(epoch: int, batch: int, optimizer: torch.optim.Optimizer, last: Path | None) -> str:
    lr = optimizer.param_groups[0]["lr"]
    kept = f"; {last} still holds the last good epoch" if last is not None and last.exists() else ""
    return (
        f"training diverged: the loss became NaN/inf in epoch {epoch + 1}, batch {batch + 1} "
        f"(learning rate {lr:.3g}){kept}. Try a lower learning rate (e.g. half), longer warm-up, gradient "
        "clipping (grad_clip=1.0), and check that the inputs are normalised"
    )


def _finish_swa(
    run: _Run, train_loader: Iterable[Any], val_loader: Iterable[Any] | None, device: torch.device,
    amp_dtype: torch.dtype | None,
) -> bool:
    """Recompute BatchNorm statistics for the averaged weights, copy them into the model, evaluate."""
    assert run.swa_model is not None
    update_bn(train_loader, run.swa_model, device=device)
    run.model.load_state_dict(run.swa_model.module.state_dict())
    metrics: dict[str, Any] = {"n_averaged": int(run.swa_model.n_averaged)}
    if val_loader is not None:
        m = evaluate(run.model, val_loader, amp_dtype=amp_dtype)
        metrics.update(val_loss=m["loss"], val_acc=m["accuracy"])
    run.history.extra["swa"] = metrics
    return True
