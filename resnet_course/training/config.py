"""Every knob of a training run, in one place: :class:`TrainConfig` and the published :data:`RECIPES`.

The default :class:`TrainConfig` is the classic CIFAR recipe, made short-run friendly:

* SGD, momentum 0.9, Nesterov; learning rate 0.1 per 128 images in a batch (He et al. 2015, Sec. 4.2,
  scaled linearly with the batch size as in Goyal et al. 2017, arXiv:1706.02677);
* weight decay 5e-4 on convolution and linear weights only (kuangliu/pytorch-cifar; Goyal et al. 2017
  and Jia et al. 2018, arXiv:1807.11205, leave BN/bias undecayed);
* one-cycle schedule with 20 % warm-up (Smith & Topin 2017, arXiv:1708.07120; David Page, "How to train
  your ResNet", Myrtle.ai 2018, warms up 5 of 24 epochs);
* label smoothing 0.1 (Szegedy et al. 2016, arXiv:1512.00567);
* ``channels_last`` on CPU and CUDA (faster convolutions with oneDNN and tensor cores).

The config is the single home of every knob: :meth:`resnet_course.data.bundle.DataBundle.loaders` takes the batch size,
seed, device and memory format from it, :func:`resnet_course.training.engine.fit` everything else, and the command line
builds its ``train`` options from its fields. The device is resolved once, when the config is made.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from resnet_course.devices import DEVICE_CHOICES, cpu_bf16_flags, native_mixed_precision, resolve_device

if TYPE_CHECKING:
    from resnet_course.profiles import Profile

__all__ = [
    "TrainConfig",
    "linear_scaled_lr",
    "profile_recipe",
    "recipe",
    "RECIPES",
    "SCHEDULES",
    "OPTIMIZERS",
    "AMP_DTYPES",
]

OPTIMIZERS = ("sgd", "adamw")
AMP_DTYPES = ("auto", "float16", "bfloat16")
#: Learning-rate schedules that :func:`resnet_course.training.schedules.build_schedule` builds.
SCHEDULES = ("constant", "step", "multistep", "cosine", "onecycle", "plateau")


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run. The defaults are a good CIFAR-style recipe (see module doc).

    Args:
        epochs: passes over the training data.
        batch_size: images per mini-batch of the training loader (``DataBundle.loaders(config)`` uses it; a
            hand-made loader is checked against it); the default learning rate scales with it.
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
            with a ``GradScaler``. ``"auto"``: on exactly where the hardware runs it natively (CUDA GPUs, Intel CPUs
            with AMX, AMD CPUs with ``avx512_bf16``: :func:`~resnet_course.devices.native_mixed_precision`), off
            elsewhere (Apple MPS, other CPUs, where autocast was measured slower than fp32); resolved to ``True``/``False``
            when the config is made, and :meth:`amp_choice` says what was chosen and why.
        amp_dtype: ``"auto"``, ``"float16"`` or ``"bfloat16"``.
        channels_last: NHWC memory format; ``None`` = on for CPU and CUDA, off for MPS.
        accum_steps: accumulate gradients over this many batches per optimizer step.
        grad_clip: clip the global gradient norm to this value (``None`` disables).
        swa: stochastic weight averaging (Izmailov et al. 2018, arXiv:1803.05407) from ``swa_start``.
        swa_start: fraction of the epochs after which weights are averaged (once per epoch).
        swa_lr: constant learning rate of the SWA phase; ``None`` = ``lr / 10``.
        sync_bn: under DDP, BatchNorm statistics over the whole global batch (``torch.nn.SyncBatchNorm``; CUDA
            with nccl only); without it each process normalises with its own batch. No effect in one process.
        seed: seeds Python, NumPy and PyTorch at the start of a fresh run, and the loaders' shuffling and
            augmentation.
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"`` or ``"mps"`` (or a
            ``torch.device``); resolved when the config is made, so it always holds the concrete device name
            (e.g. ``"cpu"``): an unavailable device is a ``ValueError`` here.
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
    amp: bool | str = False
    amp_dtype: str = "auto"
    channels_last: bool | None = None
    accum_steps: int = 1
    grad_clip: float | None = None
    swa: bool = False
    swa_start: float = 0.75
    swa_lr: float | None = None
    sync_bn: bool = False
    seed: int = 0
    device: str | torch.device = "auto"

    def __post_init__(self) -> None:
        self.milestones = tuple(float(m) for m in self.milestones)
        if isinstance(self.device, torch.device):
            self.device = str(self.device)
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
            problems.append(
                f"lr_factors must map parameter-name prefixes (str) to factors, got {self.lr_factors!r}"
            )
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
        if not (isinstance(self.amp, bool) or self.amp == "auto"):
            problems.append(f"amp must be True, False or 'auto', got {self.amp!r}")
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
        try:
            self.device = str(resolve_device(self.device))
        except ValueError as e:
            raise ValueError(f"invalid TrainConfig: {e}") from None
        if self.amp == "auto":
            self.amp = native_mixed_precision(self.device)

    def amp_choice(self) -> str:
        """What this run computes in, and why, e.g. "bf16 mixed precision (native on this CPU: amx_bf16, ...)"."""
        dtype = self.autocast_dtype()
        native = native_mixed_precision(self.device)
        where = "this GPU" if self.torch_device.type == "cuda" else f"this {self.torch_device.type.upper()}"
        if dtype is not None:
            name = "bf16" if dtype == torch.bfloat16 else "fp16"
            how = f"native on {where}" if native else f"NOT native on {where}: expect it slower than fp32"
            if self.torch_device.type == "cpu":
                how += f"; bf16 instructions: {cpu_bf16_flags()}"
            return f"{name} mixed precision ({how})"
        if native:
            return f"fp32 (mixed precision is off; {where} would run it natively)"
        return f"fp32 (no native bf16/fp16 arithmetic on {where})"

    @property
    def torch_device(self) -> torch.device:
        """The device to train on, as a ``torch.device``."""
        return torch.device(self.device)

    def autocast_dtype(self) -> torch.dtype | None:
        """The ``torch.autocast`` dtype of this run on its device (``None`` = full precision)."""
        if not self.amp:
            return None
        if self.amp_dtype != "auto":
            return torch.float16 if self.amp_dtype == "float16" else torch.bfloat16
        if self.torch_device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float16 if self.torch_device.type == "mps" else torch.bfloat16

    def uses_channels_last(self) -> bool:
        """Whether the model and batches use the NHWC memory format (``channels_last=None``: on CPU and CUDA)."""
        if self.channels_last is not None:
            return bool(self.channels_last)
        return self.torch_device.type in ("cpu", "cuda")

    def effective_lr(self, processes: int = 1) -> float:
        """The base (peak) learning rate, with the default filled in: for SGD 0.1 per 128 images of the global
        batch (:func:`linear_scaled_lr`), for AdamW 1e-3. ``processes``: of a data-parallel job."""
        if self.lr is not None:
            return float(self.lr)
        return linear_scaled_lr(0.1, 128, self.global_batch_size(processes)) if self.optimizer == "sgd" else 1e-3

    def global_batch_size(self, processes: int = 1) -> int:
        """Images per optimizer step over all ``processes`` of a data-parallel job: ``batch_size`` × processes."""
        return self.batch_size * processes

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

    def summary(self) -> str:
        """One line: the fields that differ from ``TrainConfig()``'s defaults, e.g. ``"TrainConfig(epochs=28,
        batch_size=32, lr=0.05; the rest default)"`` (``repr`` lists all thirty)."""
        defaults = TrainConfig().to_dict()
        changed = [f"{k}={v!r}" for k, v in self.to_dict().items() if v != defaults[k]]
        return f"TrainConfig({', '.join(changed)}; the rest default)" if changed else "TrainConfig() (all default)"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Rebuild from :meth:`to_dict`; unknown keys raise a ``ValueError`` naming them, and so does a stored
        ``device`` that this machine lacks (pass ``{**d, "device": "auto"}`` to train elsewhere)."""
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
        epochs=30,
        batch_size=512,
        optimizer="sgd",
        lr=0.4,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="onecycle",
        warmup_epochs=6.0,
        onecycle_anneal="linear",
        label_smoothing=0.2,
        amp=True,
    ),
    # He et al. 2015, Sec. 4.2: batch 128, lr 0.1, momentum 0.9, weight decay 1e-4 on everything,
    # divide by 10 at 32k and 48k of 64k iterations (50 % and 75 %). The paper trains on all 50k training
    # images (64k iterations ≈ 164 epochs; its 45k/5k split only chose that length); with 5k held out for
    # validation, as the course's data does, 64k iterations are ≈ 182 epochs of 45k images.
    "he2015-cifar": dict(
        epochs=182,
        batch_size=128,
        optimizer="sgd",
        lr=0.1,
        momentum=0.9,
        nesterov=False,
        weight_decay=1e-4,
        decay_norm_and_bias=True,
        schedule="multistep",
        milestones=(0.5, 0.75),
        label_smoothing=0.0,
    ),
}


def linear_scaled_lr(lr: float, batch: int, new_batch: int) -> float:
    """The learning rate for batches of ``new_batch`` images, given ``lr`` for batches of ``batch``: Goyal et al.'s
    linear scaling rule ("Accurate, Large Minibatch SGD", 2017), which needs a warm-up for large batches. The one
    place the course scales a learning rate: the default SGD rate, a profile's rate at another batch size, and
    the global batch of several processes."""
    return lr * new_batch / batch


def profile_recipe(
    profile: Profile | None,
    batch_size: int | None = None,
    lr: float | None = None,
    *,
    optimizer: str = "sgd",
    processes: int = 1,
) -> dict[str, Any]:
    """``{"batch_size", "lr"}`` of a run: the values given, the others from the run ``profile``. The profile's SGD
    learning rate belongs to its batch size on one process; for another batch size, or ``processes`` of a
    data-parallel job, it is scaled linearly (:func:`linear_scaled_lr`). A profile without a learning rate, and
    AdamW, leave ``lr`` to :class:`TrainConfig` (0.1 × global batch / 128 for SGD, 1e-3 for AdamW).
    ``profile`` may be ``None`` only when both values are given."""
    if batch_size is not None and lr is not None:
        return {"batch_size": batch_size, "lr": lr}
    if profile is None:
        raise ValueError("profile_recipe needs a run profile for the batch size or learning rate not given")
    batch = batch_size if batch_size is not None else profile.batch_size
    if lr is None and optimizer == "sgd" and profile.lr is not None:
        lr = linear_scaled_lr(profile.lr, profile.batch_size, batch * processes)
    return {"batch_size": batch, "lr": lr}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A published recipe as a :class:`TrainConfig` (see :data:`RECIPES` for the sources), with overrides."""
    try:
        base = RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}") from None
    return TrainConfig(**{**base, **overrides})
