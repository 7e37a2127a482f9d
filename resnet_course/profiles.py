"""Size profiles: one object holding every size knob the notebooks use.

Three profiles cover the settings the course runs in:

* ``smoke`` — CI and offline classrooms: the generated ``shapes10`` dataset, tiny sizes, notebooks in seconds;
* ``cpu`` — a 2–4 core laptop: real CIFAR-10 subsets and small models, each notebook within about 5 minutes;
* ``gpu`` — the full recipes (full CIFAR-10, ResNet-18, long enough runs to reproduce the papers' curves).

:func:`get_profile` picks one from the ``RESNET_COURSE_PROFILE`` environment variable, otherwise ``gpu`` when
CUDA or Apple MPS is available and ``cpu`` otherwise. ``RESNET_COURSE_DATASET`` switches the dataset of every
profile at once (``cifar10``, ``shapes10`` or the path of an ImageFolder root): the one place where a teacher
points the whole course at their own images. ``RESNET_COURSE_SEED`` replaces the base seed (to repeat a lesson
with another seed), and ``RESNET_COURSE_AMP`` (``auto``/``on``/``off``) decides mixed precision: ``auto`` turns
it on in the cpu and gpu profiles where the hardware runs it natively. :func:`data_dir` is the one directory where
datasets are kept.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resnet_course.devices import accelerator_kind, native_mixed_precision

__all__ = [
    "Profile",
    "PROFILES",
    "PROFILE_ENV",
    "DATASET_ENV",
    "DATA_ENV",
    "AMP_ENV",
    "SEED_ENV",
    "get_profile",
    "data_dir",
    "resolve_dataset_spec",
    "profiles_table",
    "resolve_amp",
]

PROFILE_ENV = "RESNET_COURSE_PROFILE"
DATASET_ENV = "RESNET_COURSE_DATASET"
DATA_ENV = "RESNET_COURSE_DATA"
AMP_ENV = "RESNET_COURSE_AMP"
SEED_ENV = "RESNET_COURSE_SEED"
AMP_CHOICES = ("auto", "on", "off")
DATASET_NAMES = ("cifar10", "shapes10")


@dataclass(frozen=True)
class Profile:
    """Every size knob of the course in one place. ``print(profile)`` sums it up in two lines, ``profile.table()``
    lists every knob."""

    name: str  # smoke / cpu / gpu
    dataset: str  # "cifar10", "shapes10" or the path of an ImageFolder root (see load_data)
    train_size: int | None  # training images used (stratified subset); None = all
    test_size: int | None  # test images used (stratified subset); None = all
    val_fraction: float  # share of the training images held out for validation (model selection)
    batch_size: int  # mini-batch size of the main trainings
    epochs: int  # epochs of the main ResNet training (notebook 05)
    lr: float | None  # peak learning rate of the main training and short runs; None = 0.1 × batch_size / 128
    model: str  # main model, a name for resnet_course.models.registry.create
    degradation_models: tuple[str, ...]  # plain vs residual nets compared in the degradation experiment
    degradation_epochs: int  # epochs of each degradation run
    degradation_train_size: int | None  # training images of each degradation run; None = all
    degradation_batch_size: int  # mini-batch of each degradation run (small batches: more steps on few images)
    degradation_lr: float  # peak learning rate of each degradation run (He et al.: 0.1 for batch 128)
    degradation_schedule: str  # "multistep" (He et al.'s drops at 50 % and 75 %) or "onecycle" (short budgets)
    degradation_augment: bool  # crop + flip in the degradation runs; off, the task is to fit the training set
    gradient_depths: tuple[int, ...]  # depths of plainN/resnetN in the gradient-norm-at-init plot
    transfer_image_size: int  # input size for transfer learning from ImageNet weights
    transfer_train_size: int | None  # training images for transfer learning; None = all
    transfer_epochs: int  # fine-tuning epochs in the transfer-learning notebook
    transfer_source_epochs: int  # epochs of the offline source model (when the ImageNet weights are missing)
    transfer_resnet50: bool  # also fine-tune the bottleneck ResNet-50 (2.25x ResNet-18's compute)
    download_weights: bool  # may the notebooks download pretrained weights (~45-100 MB each)?
    tricks_epochs: int  # epochs of each run in the training-tricks comparison
    tricks_lr: float | None  # peak learning rate of the training-tricks runs; None = 0.1 × batch_size / 128
    tricks_train_size: int | None  # training images of each training-tricks run; None = all
    tricks_noise_seeds: int  # seeds of the repeated baseline that measures run-to-run noise
    short_epochs: int  # epochs of a short run (the fallback model of notebooks 06/07/10 without 05's checkpoint)
    short_train_size: int | None  # training images of a short run (stratified subset); None = all
    n_seeds: int  # repetitions with different seeds where a notebook reports mean ± spread
    num_workers: int  # DataLoader worker processes for the classic (PIL/transforms) path
    seed: int  # base random seed (data split, subsets, initialisation)
    eval_batch_size: int = 1000  # batch size for evaluation and prediction (no gradients, so larger)
    preview_images: int = 32  # images shown in image grids of the data notebook
    benchmark_images: int = 2000  # images timed when the data notebook compares input pipelines
    amp: bool = False  # mixed precision in the trainings; get_profile turns it on where it is native (see AMP_ENV)
    chosen_by: str = field(default="", compare=False)  # how this profile was selected (for display)

    def replace(self, **changes: Any) -> Profile:
        """A copy with some knobs changed, e.g. ``profile.replace(epochs=3)``."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The knobs as a plain dict (for logging or JSON)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "chosen_by"}

    @property
    def uses_substitute_data(self) -> bool:
        """True when the profile trains on the generated ``shapes10`` dataset instead of CIFAR-10."""
        return self.dataset == "shapes10"

    def __str__(self) -> str:
        """Two lines: which profile and why, then the main run's data, model and budget (:meth:`table`: all)."""
        title = f"Profile {self.name!r}" + (f" ({self.chosen_by})" if self.chosen_by else "")
        data = Path(self.dataset).name if self.dataset not in ("cifar10", "shapes10") else self.dataset
        sizes = f"{_fmt(self.train_size)} training / {_fmt(self.test_size)} test images"
        lr = "0.1 × batch/128" if self.lr is None else f"{self.lr:g}"
        budget = f"{self.epochs} epochs, batch {self.batch_size}, peak lr {lr}, {'bf16 mixed precision' if self.amp else 'fp32'}"
        return f"{title}\n{data}: {sizes}; {self.model}, {budget}; seed {self.seed}"

    def table(self) -> str:
        """Every knob, one per line (``print(profile.table())``; notebook 00 shows all profiles side by side)."""
        rows = [(k, _fmt(v)) for k, v in self.as_dict().items()]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython shows the two lines
        printer.text(str(self))


def _fmt(value: Any) -> str:
    if value is None:
        return "all"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        dataset="shapes10",
        train_size=500,
        test_size=200,
        val_fraction=0.1,
        batch_size=128,
        epochs=2,
        lr=None,
        model="resnet20",
        degradation_models=("plain20", "resnet20"),
        degradation_epochs=1,
        degradation_train_size=256,
        degradation_batch_size=64,
        degradation_lr=0.05,
        degradation_schedule="onecycle",
        degradation_augment=False,
        gradient_depths=(20, 32),
        transfer_image_size=32,
        transfer_train_size=100,
        transfer_epochs=1,
        transfer_source_epochs=1,
        transfer_resnet50=False,
        download_weights=False,
        tricks_epochs=1,
        tricks_lr=None,
        tricks_train_size=256,
        tricks_noise_seeds=2,
        short_epochs=1,
        short_train_size=256,
        n_seeds=1,
        num_workers=0,
        seed=0,
        eval_batch_size=500,
        preview_images=16,
        benchmark_images=128,
    ),
    "cpu": Profile(
        name="cpu",
        dataset="cifar10",
        train_size=5_000,
        test_size=2_000,
        val_fraction=0.1,
        batch_size=64,
        epochs=20,  # validation 70.2 % (3 seeds); 17 epochs: test 68 % in 1 seed of 3 only (RESULTS, "budget")
        lr=0.15,  # chosen on the validation split of the real subset: 67.3 % vs 65.3 % (lr 0.1), 66.3 % (0.2), 3 seeds
        model="resnet20",
        degradation_models=("plain20", "plain32", "resnet20", "resnet32"),
        degradation_epochs=28,
        degradation_train_size=560,
        degradation_batch_size=32,
        degradation_lr=0.05,
        degradation_schedule="onecycle",
        degradation_augment=False,
        gradient_depths=(20, 32, 56),
        transfer_image_size=64,
        transfer_train_size=1_000,
        transfer_epochs=6,
        transfer_source_epochs=15,
        transfer_resnet50=False,
        download_weights=True,
        tricks_epochs=3,
        tricks_lr=0.1,  # 3 epochs: the baseline fell to 20–36 % (3 seeds) at notebook 05's 0.15, 26–35 % at 0.1
        tricks_train_size=2_000,
        tricks_noise_seeds=3,
        short_epochs=6,
        short_train_size=5_000,
        n_seeds=1,
        num_workers=2,
        seed=0,
        eval_batch_size=500,
        preview_images=32,
        benchmark_images=2_000,
    ),
    "gpu": Profile(
        name="gpu",
        dataset="cifar10",
        train_size=None,
        test_size=None,
        val_fraction=0.1,
        batch_size=512,
        epochs=35,
        lr=None,
        model="resnet18",
        degradation_models=("plain20", "plain56", "resnet20", "resnet56"),
        degradation_epochs=40,
        degradation_train_size=None,
        degradation_batch_size=128,
        degradation_lr=0.1,
        degradation_schedule="multistep",
        degradation_augment=True,
        gradient_depths=(20, 32, 44, 56, 110),
        transfer_image_size=128,
        transfer_train_size=10_000,
        transfer_epochs=6,
        transfer_source_epochs=15,
        transfer_resnet50=True,
        download_weights=True,
        tricks_epochs=15,
        tricks_lr=None,
        tricks_train_size=None,
        tricks_noise_seeds=3,
        short_epochs=15,
        short_train_size=None,
        n_seeds=3,
        num_workers=4,
        seed=0,
        eval_batch_size=1000,
        preview_images=32,
        benchmark_images=10_000,
    ),
}


def profiles_table(names: list[str] | None = None) -> Any:
    """The knobs of several profiles side by side: a ``pandas.DataFrame`` with one row per knob and one column
    per profile (all of :data:`PROFILES` by default), values written as :meth:`Profile.table` writes them
    (``None`` as "all")."""
    import pandas as pd

    names = list(PROFILES) if names is None else list(names)
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        raise ValueError(f"unknown profile(s) {unknown}; valid profiles are: {', '.join(PROFILES)}")
    table = pd.DataFrame({n: {k: _fmt(v) for k, v in PROFILES[n].as_dict().items()} for n in names})
    for n in names:  # knobs whose None / stored value means something else than "all"
        for knob in ("lr", "tricks_lr"):
            if getattr(PROFILES[n], knob) is None:
                table.loc[knob, n] = "0.1 × batch/128"
        table.loc["amp", n] = "off (fp32)" if n == "smoke" else "auto: on where native"
    return table.drop(index="name")


def resolve_dataset_spec(spec: str) -> str:
    """Check a dataset spec: ``"cifar10"``, ``"shapes10"`` or an existing ImageFolder directory (absolute)."""
    spec = spec.strip()
    if spec.lower() in DATASET_NAMES:
        return spec.lower()
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    raise ValueError(
        f"dataset {spec!r} is neither one of {', '.join(DATASET_NAMES)} nor an existing directory; "
        "give 'cifar10', 'shapes10' or the path of an ImageFolder root (one subfolder per class)"
    )


GPU_PROFILE_MIN_GIB = 8  # the gpu profile (ResNet-18, full CIFAR-10, batch 512, 35 epochs) is sized for this or more


def _profile_for_hardware() -> tuple[str, str]:
    """The profile that fits this machine, and why (shown as the profile's ``chosen_by``)."""
    kind, gib = accelerator_kind()
    if kind == "cuda" and gib is not None and gib >= GPU_PROFILE_MIN_GIB:
        return "gpu", f"auto: CUDA GPU with {gib:.0f} GiB"
    if kind == "cuda":
        return "cpu", (
            f"auto: CUDA GPU with {gib:.1f} GiB, under the {GPU_PROFILE_MIN_GIB} GiB the gpu profile is sized for: "
            "the cpu profile's sizes, run on the GPU"
        )
    if kind == "mps":
        return "cpu", (
            "auto: Apple GPU (MPS): the gpu profile's full recipes take hours per notebook on a laptop GPU, so the "
            "cpu profile's sizes, run on MPS"
        )
    return "cpu", "auto: no GPU found"


def get_profile(name: str | None = None) -> Profile:
    """The profile ``name``; by default from ``RESNET_COURSE_PROFILE``, else by hardware: ``gpu`` on a CUDA GPU
    with at least :data:`GPU_PROFILE_MIN_GIB` GiB, ``cpu`` elsewhere (a smaller GPU and Apple's MPS run the cpu
    profile's sizes on the GPU: minutes per notebook, not hours).

    ``RESNET_COURSE_DATASET``, when set, replaces the dataset of the returned profile. Raises ``ValueError``
    naming the valid profiles for an unknown name.
    """
    if name is not None:
        chosen_by = "requested"
    elif os.environ.get(PROFILE_ENV, "").strip():
        name = os.environ[PROFILE_ENV].strip()
        chosen_by = f"{PROFILE_ENV}={name}"
    else:
        name, chosen_by = _profile_for_hardware()
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles are: {', '.join(PROFILES)}")
    profile = PROFILES[key]
    dataset_override = os.environ.get(DATASET_ENV, "").strip()
    if dataset_override:
        try:
            dataset = resolve_dataset_spec(dataset_override)
        except ValueError as err:
            raise ValueError(f"{DATASET_ENV}: {err}") from None
        profile = profile.replace(dataset=dataset)
        chosen_by += f", {DATASET_ENV}={dataset_override}"
    seed_override = os.environ.get(SEED_ENV, "").strip()
    if seed_override:
        seed = int(seed_override) if seed_override.isascii() and seed_override.isdecimal() else -1
        if not 0 <= seed < 2**31 - 16:  # notebooks add small offsets (SEED + 1, ...); NumPy/sklearn take < 2**32
            raise ValueError(f"{SEED_ENV}={seed_override!r}: the seed must be a non-negative integer below 2**31, "
                             "e.g. 1")
        profile = profile.replace(seed=seed)
        chosen_by += f", {SEED_ENV}={seed_override}"
    amp, why = resolve_amp(profile.name)
    if why:
        chosen_by += f", {why}"
    return profile.replace(amp=amp, chosen_by=chosen_by)


def resolve_amp(profile_name: str) -> tuple[bool, str]:
    """Whether a profile's trainings use mixed precision, and why (for ``chosen_by``; empty when off by default).

    ``RESNET_COURSE_AMP`` = ``on`` / ``off`` decides; unset or ``auto``: on in the cpu and gpu profiles exactly
    where the hardware runs it natively (:func:`~resnet_course.devices.native_mixed_precision`: CUDA, an Intel CPU
    with AMX or an AMD CPU with avx512_bf16), off in smoke (CI results stay the same on every machine).
    """
    setting = os.environ.get(AMP_ENV, "").strip().lower() or "auto"
    if setting not in AMP_CHOICES:
        raise ValueError(f"{AMP_ENV}={setting!r}: choose one of {', '.join(AMP_CHOICES)}")
    if setting != "auto":
        return setting == "on", f"{AMP_ENV}={setting}"
    if profile_name == "smoke":
        return False, ""
    if native_mixed_precision():
        return True, "mixed precision on (native on this hardware)"
    return False, ""


def data_dir() -> Path:
    """Where datasets live: ``RESNET_COURSE_DATA`` if set, else ``$XDG_CACHE_HOME/resnet_course``
    (``~/.cache/resnet_course`` when ``XDG_CACHE_HOME`` is unset). Shared by all notebooks; not created."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "resnet_course"
