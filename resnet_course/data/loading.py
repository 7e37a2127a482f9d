"""``load_data(spec)``: one entry point for CIFAR-10, ``shapes10`` and any ImageFolder, returning a
:class:`~resnet_course.data.bundle.DataBundle`; ``load_profile_data`` does the same with a profile's knobs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from resnet_course.data.bundle import DataBundle
from resnet_course.data.cifar10 import cifar10_root, load_cifar10
from resnet_course.data.containers import DataError, ImageTensors
from resnet_course.data.imagefolder import MAX_BYTES, count_files, load_imagefolder, resize_images
from resnet_course.data.statistics import compute_mean_std, stratified_split, stratified_subset
from resnet_course.data.streaming import ImageFiles, memory_budget, storage_choice, stream_mean_std

__all__ = ["SHAPES10_DEFAULT_SIZES", "SHAPES10_NOTICE", "SHAPES10_SEEDS", "load_data", "load_profile_data"]


SHAPES10_DEFAULT_SIZES = (10_000, 2_000)  # (train, test) images generated when no size is asked for


SHAPES10_SEEDS = (0, 1)  # generator seeds of the shapes10 train and test parts (fixed: it is one dataset)


SHAPES10_NOTICE = "Using the generated offline dataset 'shapes10' (drawn shapes), not CIFAR-10."


# --------------------------------------------------------------------------------------------------
# load_data
# --------------------------------------------------------------------------------------------------


def _shapes10(train_size: int | None, test_size: int | None) -> tuple[ImageTensors, ImageTensors]:
    from resnet_course.data.shapes10 import make_shapes10

    n_train = train_size or SHAPES10_DEFAULT_SIZES[0]
    n_test = test_size or SHAPES10_DEFAULT_SIZES[1]
    return make_shapes10(n_train, SHAPES10_SEEDS[0]), make_shapes10(n_test, SHAPES10_SEEDS[1])


@dataclass
class _Parts:
    """What one ``spec`` gives before subsets, the validation split and resizing."""

    name: str
    train: ImageTensors | ImageFiles
    test: ImageTensors | ImageFiles
    val: ImageTensors | ImageFiles | None = None
    notice: str = ""
    root: str | None = None
    storage: str = ""


def _cifar10_parts(
    root: str | Path | None,
    *,
    download: bool,
    timeout: float,
    fallback: bool,
    sizes: tuple[int | None, int | None],
) -> _Parts:
    """CIFAR-10, or (``fallback``) shapes10 with a loud notice saying why; ``sizes``: shapes10's
    ``(train_size, test_size)``."""
    try:
        train, test = load_cifar10(root, download=download, timeout=timeout)
    except DataError as err:
        if not fallback:
            raise
        train, test = _shapes10(*sizes)
        first_line = str(err).splitlines()[0]
        notice = (
            "NOTICE: CIFAR-10 could not be loaded, so this run uses the generated offline dataset 'shapes10' "
            "(10 classes of drawn shapes) instead. Accuracies are NOT comparable to CIFAR-10 results.\n"
            f"Reason: {first_line}\n" + "\n".join(str(err).splitlines()[1:])
        ).rstrip()
        return _Parts("shapes10", train, test, notice=notice)
    return _Parts("cifar10", train, test, root=str(cifar10_root(root)))


def _imagefolder_parts(
    spec: str | Path,
    key: str,
    *,
    image_size: int | None,
    test_fraction: float,
    seed: int,
    on_bad_file: str,
    stream: bool | None,
    memory_limit: int | None,
    num_workers: int | None,
) -> _Parts:
    path = Path(key).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"unknown dataset {spec!r}: give 'cifar10', 'shapes10' or the path of an existing "
            "ImageFolder root"
        )
    size = image_size or 32
    if stream is None and memory_limit is None:
        memory_limit = memory_budget(ceiling=MAX_BYTES)
    n_files = count_files(path)
    streamed, storage = storage_choice(n_files, size, stream, memory_limit)
    train, val, test = load_imagefolder(
        path,
        image_size=size,
        test_fraction=test_fraction,
        seed=seed,
        on_bad_file=on_bad_file,
        stream=streamed,
        num_workers=num_workers,
    )
    skipped = n_files - sum(len(p) for p in (train, val, test) if p is not None)
    if skipped:
        storage += f"; {skipped:,} of the {n_files:,} files are not usable images (skipped)"
    return _Parts(path.name or str(path), train, test, val=val, root=str(path.resolve()), storage=storage)


def _subsets_and_split(
    parts: _Parts, train_size: int | None, test_size: int | None, val_fraction: float, seed: int
) -> _Parts:
    """Seeded stratified subsets of the train/test parts, then the validation part carved out of train
    (unless there is one already); works on the labels only, so streamed parts are not decoded."""
    if train_size:
        parts.train = parts.train.subset(stratified_subset(parts.train.labels, train_size, seed))
    if test_size:
        parts.test = parts.test.subset(stratified_subset(parts.test.labels, test_size, seed))
    if parts.val is None and val_fraction > 0:
        keep, held = stratified_split(parts.train.labels, val_fraction, seed)
        parts.train, parts.val = parts.train.subset(keep), parts.train.subset(held)
    return parts


def _mean_std(
    train: ImageTensors | ImageFiles, seed: int, num_workers: int | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if isinstance(train, ImageFiles):  # decoded batch by batch: all images up to 10 000, else a seeded sample
        return stream_mean_std(train, seed=seed, num_workers=num_workers)
    return compute_mean_std(train)


def _resize_parts(parts: _Parts, image_size: int) -> _Parts:
    """All parts resized (shorter side) and centre-cropped to ``image_size`` by :func:`resize_images`; streamed
    parts (:class:`ImageFiles`) are listed at ``image_size`` already."""
    if isinstance(parts.train, ImageFiles):
        return parts
    present = [p for p in (parts.train, parts.test, parts.val) if p is not None]
    for part in present:
        if len(part) * 3 * image_size**2 > MAX_BYTES:
            raise ValueError(
                f"{len(part)} images at {image_size} px exceed the in-memory limit of "
                f"{MAX_BYTES / 1024**3:.0f} GB; use train_size/test_size or a smaller image_size"
            )
    resized = [
        replace(p, images=resize_images(p.images, image_size)) if p is not None else None
        for p in (parts.train, parts.test, parts.val)
    ]
    return replace(parts, train=resized[0], test=resized[1], val=resized[2])


def load_data(
    spec: str | Path,
    root: str | Path | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_size: int | None = None,
    test_size: int | None = None,
    image_size: int | None = None,
    download: bool = True,
    fallback: bool = False,
    test_fraction: float = 0.2,
    on_bad_file: str = "warn",
    timeout: float = 10.0,
    stream: bool | None = None,
    memory_limit: int | None = None,
    num_workers: int | None = None,
) -> DataBundle:
    """Load a dataset into a :class:`DataBundle`.

    ``spec``: ``"cifar10"`` (from ``root`` or :func:`~resnet_course.profiles.data_dir`; downloaded if allowed)
    ``"shapes10"`` (generated; ``train_size``/``test_size`` images, default 10 000/2 000) or the path of an
    ImageFolder root (see :func:`load_imagefolder`).

    ``train_size``/``test_size`` take seeded stratified subsets of the training/test parts (``None``: all);
    the validation part is then carved out of the training part by :func:`stratified_split` with
    ``val_fraction`` (``0``: no validation part, unless the ImageFolder has a ``val/`` folder). ``image_size``
    resizes the images (shorter side, then centre crop: :func:`~resnet_course.data.images.resize_and_crop`;
    default: 32 for CIFAR-10/shapes10 and ImageFolders). ``mean``/``std`` are computed
    from the final training part.

    Large ImageFolders are streamed: only listed here (:class:`~resnet_course.data.streaming.ImageFiles`,
    split by their labels) and decoded batch by batch by the loaders (:meth:`DataBundle.loaders`). ``stream=None`` chooses
    (:func:`~resnet_course.data.streaming.storage_choice`): stream when ``files × 3 × image_size²`` bytes exceed
    ``memory_limit`` (default: :func:`~resnet_course.data.streaming.memory_budget`, half the memory available,
    at most :data:`~resnet_course.data.imagefolder.MAX_BYTES`); ``True``/``False`` force it (in memory, more
    than ``MAX_BYTES`` is refused). ``storage`` says which path was taken and why. ``num_workers`` processes
    decode a streamed folder once when listing it (to skip what the in-memory path skips) and its training part's
    ``mean``/``std`` (:func:`~resnet_course.data.streaming.stream_mean_std`: up to 10 000 images, else a sample).

    With ``fallback=True``, a CIFAR-10 that is absent and cannot be downloaded, or corrupted, is replaced by
    ``shapes10`` and ``notice`` says so loudly; otherwise a :class:`DataError` explains what to do.
    """
    key = str(spec).strip()
    if stream and key.lower() in ("cifar10", "shapes10"):
        raise ValueError(f"only an ImageFolder can be streamed from disk; {key} is always held in memory")
    if key.lower() == "cifar10":
        sizes = (train_size, test_size)
        parts = _cifar10_parts(root, download=download, timeout=timeout, fallback=fallback, sizes=sizes)
    elif key.lower() == "shapes10":
        train, test = _shapes10(train_size, test_size)
        parts = _Parts("shapes10", train, test, notice=SHAPES10_NOTICE)
    else:
        parts = _imagefolder_parts(
            spec, key, image_size=image_size, test_fraction=test_fraction, seed=seed, on_bad_file=on_bad_file,
            stream=stream, memory_limit=memory_limit, num_workers=num_workers,
        )  # fmt: skip
    parts = _subsets_and_split(parts, train_size, test_size, val_fraction, seed)
    if image_size is not None:
        parts = _resize_parts(parts, image_size)
    mean, std = _mean_std(parts.train, seed, num_workers)
    return DataBundle(
        name=parts.name,
        train=parts.train,
        val=parts.val,
        test=parts.test,
        classes=list(parts.train.classes),
        mean=mean,
        std=std,
        image_size=parts.train.image_size[0],
        notice=parts.notice,
        root=parts.root,
        storage=parts.storage,
    )


def load_profile_data(profile: Any = None, *, fallback: bool = True, **overrides: Any) -> DataBundle:
    """:func:`load_data` with the sizes of a :class:`~resnet_course.profiles.Profile` (default: the active
    one from :func:`~resnet_course.profiles.get_profile`): its ``dataset``, ``train_size``, ``test_size``,
    ``val_fraction`` and ``seed``. ``overrides`` replace any :func:`load_data` argument, e.g.
    ``train_size=profile.degradation_train_size``. Notebooks use this with ``fallback=True``."""
    from resnet_course.profiles import get_profile

    profile = get_profile(profile) if profile is None or isinstance(profile, str) else profile
    kwargs: dict[str, Any] = {
        "val_fraction": profile.val_fraction,
        "seed": profile.seed,
        "train_size": profile.train_size,
        "test_size": profile.test_size,
        "fallback": fallback,
    }
    kwargs.update(overrides)
    spec = kwargs.pop("spec", profile.dataset)
    return load_data(spec, **kwargs)
