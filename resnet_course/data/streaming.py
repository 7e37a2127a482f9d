"""Image folders larger than memory: files listed up front, decoded only when a batch needs them.

:class:`ImageFiles` is the lazy counterpart of :class:`~resnet_course.data.containers.ImageTensors`: file paths,
``labels``, ``classes`` and the size the files are decoded at. Its list comes from torchvision's ``ImageFolder``
(the same listing, hence the same order and labels, as the in-memory path), so splits and subsets work on
``labels`` without decoding anything. :class:`StreamLoader` has :class:`~resnet_course.data.loaders.TensorLoader`'s
interface and gives the same batches: the plan (order, crop offsets, flips; a pure function of
``(seed, epoch)``) and this process's share of each batch are computed exactly as there; ``DataLoader`` workers
only decode the files of each batch through :func:`~resnet_course.data.images.prepare_image` (uint8, collated),
and the main process crops, flips and normalises the batch on the device
(:meth:`~resnet_course.data.loaders.PlannedLoader.finish`).

Memory: at most ``(num_workers × prefetch_factor + 1)`` decoded batches exist at a time, whatever the folder's
size. Unreadable files: :func:`list_image_files` decodes every file once when listing (in worker processes,
nothing kept), so a file the in-memory path would skip — not an image, truncated, too large — is skipped with the
same warning, or refused, before the split: both paths keep the same files, hence the same split and batches. A
file that becomes unreadable after the listing raises :class:`~resnet_course.data.images.ImageError` naming it
when a batch meets it.

:func:`storage_choice` decides between the two paths (``load_data(..., stream=None)``): stream when the decoded
images (``files × 3 × image_size²`` bytes) exceed a memory budget, by default half the memory available now.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnet_course.data.containers import ImageTensors
from resnet_course.data.images import ImageError, prepare_image
from resnet_course.data.loaders import PlannedLoader, TensorLoader

__all__ = [
    "MEMORY_FRACTION",
    "STATS_SAMPLE",
    "ImageFiles",
    "StreamLoader",
    "default_num_workers",
    "list_image_files",
    "make_loader",
    "memory_budget",
    "report_bad_files",
    "storage_choice",
    "stream_mean_std",
]


MEMORY_FRACTION = 0.5  # default memory budget: this share of the memory available when the data is loaded


STATS_SAMPLE = 10_000  # mean/std of a streamed training part: over at most this many images (seeded sample)


def default_num_workers() -> int:
    """Decoding workers per :class:`StreamLoader` unless told otherwise: ``min(4, CPU cores)``."""
    return min(4, os.cpu_count() or 1)


# --------------------------------------------------------------------------------------------------
# Memory budget and the choice of path
# --------------------------------------------------------------------------------------------------


def _available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``, else free pages from ``os.sysconf``)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for pages in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            return int(os.sysconf(pages)) * int(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            continue
    return None


def memory_budget(fraction: float = MEMORY_FRACTION, ceiling: int | None = None) -> int:
    """Bytes of decoded images a dataset may take in memory: ``fraction`` of the memory available now, at most
    ``ceiling`` (the in-memory refusal limit, :data:`~resnet_course.data.imagefolder.MAX_BYTES`, when given);
    ``ceiling`` (else 1 GB) when the available memory cannot be read."""
    available = _available_memory()
    if available is None:
        return ceiling if ceiling is not None else 1024**3
    budget = int(available * fraction)
    return min(budget, ceiling) if ceiling is not None else budget


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def storage_choice(
    n_files: int, image_size: int, stream: bool | None, memory_limit: int | None
) -> tuple[bool, str]:
    """``(stream?, reason)`` for ``n_files`` decoded at ``image_size``: ``stream=True``/``False`` force it;
    ``None`` streams when ``n_files × 3 × image_size²`` bytes exceed ``memory_limit`` (bytes)."""
    size = f"{n_files:,} files × 3×{image_size}×{image_size} = {_bytes(n_files * 3 * image_size**2)}"
    if stream is not None:
        where = "streamed from disk" if stream else "in memory"
        return bool(stream), f"{where}: {size} (stream={bool(stream)})"
    if memory_limit is None:
        raise ValueError("storage_choice needs memory_limit when stream is None")
    if n_files * 3 * image_size**2 > memory_limit:
        return True, f"streamed from disk: {size} > memory budget {_bytes(memory_limit)}"
    return False, f"in memory: {size} ≤ memory budget {_bytes(memory_limit)}"


# --------------------------------------------------------------------------------------------------
# The lazy container and its listing
# --------------------------------------------------------------------------------------------------


@dataclass
class ImageFiles(torch.utils.data.Dataset):
    """A labelled image set on disk: ``paths`` of image files, ``labels`` int64 ``(N,)``, ``classes``, and
    ``size``, the side the files are decoded at. ``files[i]`` is ``(image, label)`` with ``image`` the uint8
    ``(3, size, size)`` tensor of :func:`~resnet_course.data.images.prepare_image` — decoded now, never kept."""

    paths: list[str]
    labels: torch.Tensor
    classes: list[str]
    size: int

    def __post_init__(self) -> None:
        self.paths = [str(p) for p in self.paths]
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.labels.shape != (len(self.paths),):
            raise ValueError(
                f"need one label per file: {len(self.paths)} files, labels {tuple(self.labels.shape)}"
            )
        self.classes = [str(c) for c in self.classes]
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in 0..{len(self.classes) - 1} (one per class name)")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return prepare_image(self.paths[index], self.size), int(self.labels[index])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the decoded images, as :attr:`ImageTensors.image_size`."""
        return self.size, self.size

    @property
    def decoded_bytes(self) -> int:
        """What the decoded images would take in memory: ``N × 3 × size²``."""
        return len(self) * 3 * self.size**2

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageFiles:
        """The files at ``indices``, same classes and size."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageFiles(
            [self.paths[i] for i in idx], self.labels[torch.as_tensor(idx)], list(self.classes), self.size
        )

    def class_counts(self) -> dict[str, int]:
        """Number of files per class name."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))

    def load(self) -> ImageTensors:
        """All images decoded into memory (for small sets: tests, a look at a few images)."""
        images = [prepare_image(p, self.size) for p in self.paths]
        return ImageTensors(torch.stack(images), self.labels.clone(), list(self.classes))


def report_bad_files(bad: list[str], folder: Path, on_bad_file: str) -> None:
    """Warn about (``"warn"``) or raise ``ValueError`` for (``"raise"``) the unreadable files ``bad``
    (messages naming each file), at most 20 listed."""
    if not bad:
        return
    listing = "\n  ".join(bad[:20]) + (f"\n  … and {len(bad) - 20} more" if len(bad) > 20 else "")
    message = f"{len(bad)} file(s) in {folder} are not readable images:\n  {listing}"
    if on_bad_file == "raise":
        raise ValueError(message + "\nRemove or fix them (or pass on_bad_file='warn' to skip them).")
    warnings.warn(message + "\nThey are skipped.", stacklevel=4)


class _Problems(torch.utils.data.Dataset):
    """Item ``i``: why file ``i`` cannot be decoded at ``size`` (the message of
    :func:`~resnet_course.data.images.prepare_image`, as the in-memory path reports it), or ``""``."""

    def __init__(self, paths: list[str], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> str:
        try:
            prepare_image(self.paths[index], self.size)
        except ImageError as err:
            return str(err)
        return ""


def _decoding_problems(paths: list[str], size: int, num_workers: int) -> list[str]:
    """:class:`_Problems` of every file, decoded by ``num_workers`` processes (0: in this one)."""
    loader = torch.utils.data.DataLoader(
        _Problems(paths, size), batch_size=64, num_workers=num_workers, collate_fn=list
    )
    return [problem for batch in loader for problem in batch]


def list_image_files(
    folder: str | Path,
    image_size: int,
    classes: list[str] | None = None,
    *,
    on_bad_file: str = "warn",
    check: bool = True,
    num_workers: int | None = None,
) -> ImageFiles:
    """The files of an ImageFolder (``folder/<class>/<file>``, hidden files ignored), listed by torchvision's
    ``ImageFolder``: sorted class folders, sorted files. ``classes``: the training part's class names (labels
    are mapped by name; a class folder outside them is an error).

    ``check``: decode each file once (``num_workers`` processes, default :func:`default_num_workers`; nothing
    is kept) and skip (``on_bad_file="warn"``) or refuse (``"raise"``) those that cannot be decoded, exactly
    as the in-memory path does; a class left without files is an error. Without ``check`` every file is
    listed.
    """
    from torchvision.datasets import ImageFolder

    folder = Path(folder)
    try:
        found = ImageFolder(str(folder), is_valid_file=lambda p: not Path(p).name.startswith("."))
    except FileNotFoundError as err:
        raise ValueError(
            f"{folder} is not a usable ImageFolder (one subfolder per class with images): {err}"
        ) from None
    names = classes if classes is not None else list(found.classes)
    unknown = sorted(set(found.classes) - set(names))
    if unknown:
        raise ValueError(
            f"{folder} has class folders that the training part does not have: {', '.join(unknown)}"
        )
    remap = [names.index(c) for c in found.classes]
    paths = [p for p, _ in found.samples]
    labels = [remap[label] for _, label in found.samples]
    if check:
        workers = default_num_workers() if num_workers is None else num_workers
        problems = _decoding_problems(paths, image_size, workers)
        report_bad_files([p for p in problems if p], folder, on_bad_file)
        kept = [i for i, p in enumerate(problems) if not p]
        empty = sorted({names[labels[i]] for i in range(len(paths))} - {names[labels[i]] for i in kept})
        if empty:
            raise ValueError(f"no readable images left for class(es) {', '.join(empty)} in {folder}")
        paths, labels = [paths[i] for i in kept], [labels[i] for i in kept]
    return ImageFiles(paths, torch.as_tensor(labels, dtype=torch.int64), list(names), image_size)


# --------------------------------------------------------------------------------------------------
# Statistics and the loader
# --------------------------------------------------------------------------------------------------


def _decoding_loader(files: ImageFiles, batches: list[list[int]], num_workers: int, pin: bool) -> Any:
    """A ``DataLoader`` that decodes the files of each of ``batches`` (lists of indices), in that order."""
    return torch.utils.data.DataLoader(
        files,
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=pin,
        prefetch_factor=2 if num_workers > 0 else None,
    )


def _reraise_clean(err: ImageError) -> ImageError:
    """The worker's :class:`ImageError` (which names the file) without the worker's traceback."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else str(err)
    return ImageError(
        last.removeprefix("resnet_course.data.images.ImageError: ").removeprefix("ImageError: ")
    )


def stream_mean_std(
    files: ImageFiles,
    *,
    sample: int | None = STATS_SAMPLE,
    seed: int = 0,
    num_workers: int | None = None,
    batch_size: int = 64,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (values in [0, 1], over all pixels) of ``files``, decoded ``batch_size`` at a
    time by ``num_workers`` processes (default :func:`default_num_workers`).

    Over **all** images when there are at most ``sample`` (``None``: always all), else over a seeded uniform
    sample of ``sample`` images (sorted indices, deterministic in ``seed``). Same definition as
    :func:`~resnet_course.data.statistics.compute_mean_std`; the pixel sums are exact (integers), so a part
    taken whole gives the in-memory path's values up to float64 rounding. Memory: a few batches, whatever
    the number of files.
    """
    if len(files) == 0:
        raise ValueError("cannot compute statistics of an empty image set")
    idx = np.arange(len(files))
    if sample is not None and len(files) > sample:
        idx = np.sort(np.random.default_rng(seed).choice(len(files), size=sample, replace=False))
    batches = [idx[i : i + batch_size].tolist() for i in range(0, len(idx), batch_size)]
    workers = default_num_workers() if num_workers is None else num_workers
    total = torch.zeros(3, dtype=torch.int64)
    total_sq = torch.zeros(3, dtype=torch.int64)
    try:
        for x, _ in _decoding_loader(files, batches, workers, pin=False):
            for part in x.split(4):  # small int64 temporaries
                v = part.to(torch.int64)
                total += v.sum(dim=(0, 2, 3))
                total_sq += (v * v).sum(dim=(0, 2, 3))
    except ImageError as err:
        raise _reraise_clean(err) from None
    count = len(idx) * files.size * files.size
    mean = total.double() / (255.0 * count)
    var = (total_sq.double() / (255.0**2 * count) - mean * mean).clamp_min(0)
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


class StreamLoader(PlannedLoader):
    """Batches ``(x, y)`` of :class:`ImageFiles`, decoded as they are needed; the same batches as a
    :class:`~resnet_course.data.loaders.TensorLoader` of the decoded images with the same arguments.

    ``options``: TensorLoader's (``mean``, ``std``, ``shuffle``, ``augment``, ``device``, ``seed``,
    ``drop_last``, ``channels_last``, ``padding``, ``flip``, ``rank``, ``world_size``, ``equal_batches``),
    with the same meaning. ``num_workers`` decoding processes (default :func:`default_num_workers`; 0 decodes
    in this process), each holding at most ``prefetch_factor`` batches ahead. A ``DataLoader`` is made per
    pass, its batch sampler being this pass's batches of the plan, so order and sharding are TensorLoader's.
    """

    def __init__(
        self,
        data: ImageFiles,
        batch_size: int,
        *,
        num_workers: int | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(data, ImageFiles):
            raise TypeError(
                f"StreamLoader needs ImageFiles (from resnet_course.data), got {type(data).__name__}"
            )
        super().__init__(data, batch_size, channels=3, **options)
        workers = default_num_workers() if num_workers is None else num_workers
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"num_workers must be an integer ≥ 0, got {num_workers!r}")
        self.num_workers = workers
        self.labels = data.labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, offsets = self.begin_pass()
        batches = self.batches()
        indices = [order[p].tolist() for p in batches]
        pin = self.device.type == "cuda"
        try:
            for positions, (x, y) in zip(
                batches, _decoding_loader(self.dataset, indices, self.num_workers, pin), strict=True
            ):
                off = offsets[positions].to(self.device) if offsets is not None else None
                x = x.to(self.device, non_blocking=True)
                yield self.finish(x, off), y.to(self.device, non_blocking=True)
        except ImageError as err:
            raise _reraise_clean(err) from None

    _item = "files"

    def _repr_extra(self) -> str:
        return f", num_workers={self.num_workers}"


def make_loader(
    part: ImageTensors | ImageFiles, batch_size: int, *, num_workers: int | None = None, **options: Any
) -> TensorLoader | StreamLoader:
    """A :class:`StreamLoader` for :class:`ImageFiles`, a :class:`~resnet_course.data.loaders.TensorLoader`
    for :class:`~resnet_course.data.containers.ImageTensors` (``num_workers`` only matters for the first)."""
    if isinstance(part, ImageFiles):
        return StreamLoader(part, batch_size, num_workers=num_workers, **options)
    return TensorLoader(part, batch_size, **options)
