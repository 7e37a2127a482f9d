"""Datasets in memory as uint8 tensors: CIFAR-10, the generated ``shapes10`` and any ImageFolder.

Every dataset the course uses is small enough to hold as one uint8 tensor ``(N, 3, H, W)`` (CIFAR-10: 60 000
images, 184 MB). :func:`load_data` returns a :class:`DataBundle` with train/val/test parts, class names and
the normalisation statistics computed from the training part; ``bundle.loaders(...)`` turns it into fast
:class:`~resnet_course.loaders.TensorLoader` iterables.

Limit: all images are decoded into memory at ``image_size``. ``N × 3 × image_size²`` bytes must fit in RAM
(e.g. 10 000 images at 224 px take 1.5 GB); :func:`load_data` refuses more than :data:`MAX_BYTES`.
"""

from __future__ import annotations

import pickle
import shutil
import socket
import tarfile
import threading
import urllib.error
import urllib.parse
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import TrainConfig
from .images import ImageError, prepare_image, resize_and_crop

__all__ = [
    "ImageTensors",
    "DataBundle",
    "DataError",
    "DatasetUnavailableError",
    "CorruptDatasetError",
    "load_data",
    "load_profile_data",
    "load_cifar10",
    "cifar10_folder",
    "load_imagefolder",
    "compute_mean_std",
    "mean_per_image_std",
    "stratified_split",
    "stratified_subset",
    "resize_images",
    "write_image_folder",
    "CIFAR10_CLASSES",
    "CIFAR10_PUBLISHED_STATS",
    "MAX_BYTES",
]

CIFAR10_CLASSES: list[str] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
# Values quoted in papers and tutorials, kept only to compare with what compute_mean_std /
# mean_per_image_std compute from the files: "std" is the per-pixel std over the whole training set,
# "tutorial_std" the widely copied 0.2023/0.1994/0.2010 (the mean of per-image standard deviations).
CIFAR10_PUBLISHED_STATS: dict[str, tuple[float, float, float]] = {
    "mean": (0.4914, 0.4822, 0.4465),
    "std": (0.2470, 0.2435, 0.2616),
    "tutorial_std": (0.2023, 0.1994, 0.2010),
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_TARBALL = "cifar-10-python.tar.gz"
CIFAR10_TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR10_TEST_FILES = ["test_batch"]
CIFAR10_META_FILE = "batches.meta"
SHAPES10_DEFAULT_SIZES = (10_000, 2_000)  # (train, test) images generated when no size is asked for
SHAPES10_SEEDS = (0, 1)  # generator seeds of the shapes10 train and test parts (fixed: it is one dataset)
SHAPES10_NOTICE = "Using the generated offline dataset 'shapes10' (drawn shapes), not CIFAR-10."
MAX_BYTES = 4 * 1024**3  # refuse to decode more than this into memory


class DataError(RuntimeError):
    """A dataset could not be loaded; the message says why and what to do."""


class DatasetUnavailableError(DataError):
    """The dataset's files are absent and could not be downloaded."""


class CorruptDatasetError(DataError):
    """The dataset's files (or the downloaded archive) are present but damaged."""


# --------------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------------


@dataclass
class ImageTensors(torch.utils.data.Dataset):
    """A labelled image set in memory: ``images`` uint8 ``(N, 3, H, W)`` on CPU, ``labels`` int64 ``(N,)``.

    It is a ``Dataset``: ``ds[i]`` is ``(image, label)`` with the uint8 ``(3, H, W)`` image passed through
    ``transform`` when one is set (e.g. :func:`~resnet_course.transforms.train_transforms`), so the classic
    ``DataLoader`` path works on it as well as :class:`~resnet_course.loaders.TensorLoader`.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    transform: Callable[[torch.Tensor], Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            raise TypeError("images must be a uint8 tensor of shape (N, 3, H, W)")
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(self.images.shape)}")
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must have shape ({self.images.shape[0]},) to match the images, "
                f"got {tuple(self.labels.shape)}"
            )
        self.classes = [str(c) for c in self.classes]
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in 0..{len(self.classes) - 1} (one per class name)")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the images."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageTensors:
        """The images at ``indices`` (a copy), same classes and transform."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return ImageTensors(
            self.images[idx].clone(), self.labels[idx].clone(), list(self.classes), self.transform
        )

    def select_classes(self, class_ids: Sequence[int]) -> ImageTensors:
        """The images of the classes ``class_ids`` (a copy), relabelled ``0 … len(class_ids) - 1`` in that
        order, e.g. to split a dataset into a source and a target task with no class in common."""
        ids = [int(i) for i in class_ids]
        if not ids or len(set(ids)) != len(ids) or not all(0 <= i < len(self.classes) for i in ids):
            raise ValueError(
                f"class_ids must be distinct class indices in 0..{len(self.classes) - 1}, got {list(class_ids)}"
            )
        keep = torch.isin(self.labels, torch.tensor(ids))
        relabel = torch.full((len(self.classes),), -1, dtype=torch.int64)
        relabel[ids] = torch.arange(len(ids))
        return ImageTensors(
            self.images[keep].clone(),
            relabel[self.labels[keep]],
            [self.classes[i] for i in ids],
            self.transform,
        )

    def with_transform(self, transform: Callable[[torch.Tensor], Any] | None) -> ImageTensors:
        """The same images (shared memory) with another ``transform`` for the ``DataLoader`` path."""
        return replace(self, transform=transform)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name."""
        counts = torch.bincount(self.labels, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))


@dataclass
class DataBundle:
    """Train/validation/test parts of one dataset plus what a model needs to know about it.

    ``mean``/``std`` are per-channel statistics of ``train`` (pixel values in [0, 1]); ``notice`` is non-empty
    when a substitute dataset is in use (e.g. ``shapes10`` because CIFAR-10 could not be loaded).
    """

    name: str
    train: ImageTensors
    val: ImageTensors | None
    test: ImageTensors
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size: int
    notice: str = ""
    root: str | None = None

    @property
    def preprocess(self) -> dict[str, Any]:
        """``{"image_size", "mean", "std"}``: what inference needs to prepare an image (in checkpoints)."""
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}

    def loaders(
        self, config: TrainConfig, *, augment: bool = True, eval_batch_size: int | None = None
    ) -> tuple[Any, Any | None, Any]:
        """``(train, val, test)`` :class:`~resnet_course.loaders.TensorLoader` s for a run with ``config`` (``val``:
        ``None`` without a validation split), on ``config.device`` in its memory format; train has
        ``config.batch_size`` images per batch, shuffles with ``config.seed`` and, with ``augment``, pads-crops
        and flips; val/test (``eval_batch_size`` images per batch, default ``config.batch_size``) do neither."""
        from .loaders import TensorLoader

        eval_bs = eval_batch_size or config.batch_size
        common = {"mean": self.mean, "std": self.std, "device": config.device,
                  "channels_last": config.uses_channels_last()}
        train = TensorLoader(self.train, config.batch_size, shuffle=True, augment=augment, seed=config.seed, **common)
        val = TensorLoader(self.val, eval_bs, **common) if self.val is not None and len(self.val) else None
        test = TensorLoader(self.test, eval_bs, **common)
        return train, val, test

    def summary(self) -> str:
        """A few lines describing the parts, sizes and statistics."""
        n_val = len(self.val) if self.val is not None else 0
        lines = [
            f"{self.name}: {len(self.train)} train / {n_val} val / {len(self.test)} test images, "
            f"3×{self.image_size}×{self.image_size}, {len(self.classes)} classes",
            f"classes: {', '.join(self.classes)}",
            "mean = ("
            + ", ".join(f"{m:.4f}" for m in self.mean)
            + "), std = ("
            + ", ".join(f"{s:.4f}" for s in self.std)
            + ")  [from the training part]",
        ]
        if self.notice:
            lines.append(self.notice)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# --------------------------------------------------------------------------------------------------
# Statistics and splits
# --------------------------------------------------------------------------------------------------


def _as_images(images: ImageTensors | torch.Tensor) -> torch.Tensor:
    x = images.images if isinstance(images, ImageTensors) else images
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError("expected ImageTensors or an image tensor of shape (N, C, H, W)")
    if len(x) == 0:
        raise ValueError("cannot compute statistics of an empty image set")
    return x


def _to_unit(chunk: torch.Tensor) -> torch.Tensor:
    return chunk.to(torch.float64) / 255.0 if chunk.dtype == torch.uint8 else chunk.to(torch.float64)


def compute_mean_std(
    images: ImageTensors | torch.Tensor, batch_size: int = 2048
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation over **all pixels of all images** (values scaled to [0, 1]).

    uint8 input is divided by 255; float input is taken as is. This is the ``std`` that makes each
    normalised channel have unit variance over the dataset (CIFAR-10: 0.2470, 0.2435, 0.2616). Accumulated
    in float64, ``batch_size`` images at a time.
    """
    x = _as_images(images)
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        chunk = _to_unit(x[i : i + batch_size])
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += (chunk * chunk).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    var = (total_sq / count - mean * mean).clamp_min(0)
    return tuple(mean.tolist()), tuple(var.sqrt().tolist())


def mean_per_image_std(images: ImageTensors | torch.Tensor, batch_size: int = 2048) -> tuple[float, ...]:
    """Average over images of each image's own per-channel standard deviation (values in [0, 1]).

    This is **not** the dataset's std: it ignores how image means differ from each other, so it is smaller.
    On CIFAR-10 it gives the 0.2023/0.1994/0.2010 that many tutorials quote as "the std".
    """
    x = _as_images(images)
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        chunk = _to_unit(x[i : i + batch_size])
        total += chunk.std(dim=(2, 3), correction=0).sum(dim=0)
    return tuple((total / len(x)).tolist())


def _labels_array(labels: Any) -> np.ndarray:
    if isinstance(labels, ImageTensors):
        labels = labels.labels
    if isinstance(labels, torch.Tensor):
        labels = labels.cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError("labels must be a 1-D sequence of class indices")
    return arr


def _stratified(labels: np.ndarray, n_second: int, seed: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    try:
        first, second = train_test_split(idx, test_size=n_second, stratify=labels, random_state=seed)
    except ValueError as err:
        counts = np.bincount(labels) if len(labels) else np.array([])
        raise ValueError(
            f"cannot make a stratified {what} of {n_second} out of {len(labels)} images "
            f"(smallest class has {int(counts[counts > 0].min()) if counts.size else 0} images; {err}). "
            "Use a larger size/fraction or more images per class."
        ) from None
    return np.sort(first).astype(np.int64), np.sort(second).astype(np.int64)


def stratified_split(labels: Any, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split indices ``0..N-1`` into ``(train_idx, val_idx)`` keeping class proportions (scikit-learn's
    ``train_test_split(stratify=...)``). Deterministic in ``seed``; both index arrays are sorted.

    ``val_fraction=0`` gives all indices for training and an empty validation array.
    """
    y = _labels_array(labels)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0 or len(y) == 0:
        return np.arange(len(y), dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_val = max(1, int(round(val_fraction * len(y))))
    return _stratified(y, n_val, seed, "validation split")


def stratified_subset(labels: Any, size: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-balanced random subset of ``size`` items (all indices when ``size`` is
    ``None`` or not smaller than ``N``). Deterministic in ``seed``."""
    y = _labels_array(labels)
    if size is None or size >= len(y):
        return np.arange(len(y), dtype=np.int64)
    if size < 1:
        raise ValueError(f"subset size must be a positive number of images or None for all, got {size}")
    _, keep = _stratified(y, size, seed, "subset")
    return keep


def resize_images(images: torch.Tensor, image_size: int, batch_size: int = 1024) -> torch.Tensor:
    """Resize uint8 images ``(N, 3, H, W)`` so the shorter side is ``image_size`` and centre-crop to
    ``image_size × image_size``: :func:`~resnet_course.images.resize_and_crop` (the resize every single image
    gets in :func:`~resnet_course.images.prepare_image`), ``batch_size`` images at a time."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    return torch.cat(
        [resize_and_crop(images[i : i + batch_size], image_size) for i in range(0, len(images), batch_size)]
    )


# --------------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------------


def _cifar_help(root: Path) -> str:
    folder = root / CIFAR10_FOLDER
    return (
        f"CIFAR-10 is expected in {folder} (files {', '.join(CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES)}, "
        f"{CIFAR10_META_FILE}).\n"
        f"To get it by hand: download {CIFAR10_URL} (163 MB) on a machine with internet and extract it "
        f"into {root}:  tar -xzf {CIFAR10_TARBALL} -C {root}\n"
        "  (or set RESNET_COURSE_DATA to a folder that already contains cifar-10-batches-py/).\n"
        "To work without it, use the generated offline dataset: load_data('shapes10'), --data shapes10, "
        "or RESNET_COURSE_DATASET=shapes10."
    )


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _check_reachable(url: str, timeout: float) -> None:
    """Resolve and connect to ``url``'s host within ``timeout`` s (DNS included) or raise ``OSError``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except BaseException as err:  # reported to the caller below
            outcome.append(err)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not outcome:
        raise TimeoutError(f"no answer from {host}:{port} within {timeout:g} s")
    if outcome[0] is not None:
        raise OSError(f"cannot reach {host}:{port}: {outcome[0]}")


def _download_cifar10(root: Path, timeout: float) -> None:
    """Download and extract the official tarball into ``root``, failing fast when offline."""
    from torchvision.datasets.utils import check_integrity, download_url, extract_archive

    root.mkdir(parents=True, exist_ok=True)
    tarball = root / CIFAR10_TARBALL
    if not check_integrity(str(tarball), CIFAR10_TARBALL_MD5):
        try:
            _check_reachable(CIFAR10_URL, timeout)
            with _socket_timeout(timeout):
                download_url(CIFAR10_URL, str(root), CIFAR10_TARBALL, CIFAR10_TARBALL_MD5)
        except RuntimeError as err:  # torchvision: "File not found or corrupted." after an md5 mismatch
            raise CorruptDatasetError(
                f"the downloaded CIFAR-10 archive {tarball} is corrupted ({err}). Delete it and run again to "
                f"re-download, or fetch {CIFAR10_URL} by hand.\n" + _cifar_help(root)
            ) from None
        except (urllib.error.URLError, OSError) as err:
            partial = f" (a damaged earlier download is at {tarball}; delete it)" if tarball.exists() else ""
            raise DatasetUnavailableError(
                f"CIFAR-10 is not in {root / CIFAR10_FOLDER} and downloading it failed: {err}{partial}.\n"
                + _cifar_help(root)
            ) from None
    try:
        extract_archive(str(tarball), str(root))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise CorruptDatasetError(
            f"the CIFAR-10 archive {tarball} could not be extracted ({err}): it is corrupted. Delete it and "
            "run again to re-download.\n" + _cifar_help(root)
        ) from None


def _read_pickle(path: Path, root: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        KeyError,
        MemoryError,
    ) as err:
        raise CorruptDatasetError(
            f"CIFAR-10 file {path} is corrupted (cannot unpickle it: {type(err).__name__}: {err}). Delete "
            f"{root / CIFAR10_FOLDER} (and {root / CIFAR10_TARBALL} if present) and run again to "
            "re-download.\n" + _cifar_help(root)
        ) from None


def _read_cifar_batches(root: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    datas, labels = [], []
    for name in files:
        path = root / CIFAR10_FOLDER / name
        entry = _read_pickle(path, root)
        data = entry.get("data") if isinstance(entry, dict) else None
        targets = entry.get("labels", entry.get("fine_labels")) if isinstance(entry, dict) else None
        ok = (
            isinstance(data, np.ndarray)
            and data.dtype == np.uint8
            and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32
            and targets is not None
            and len(targets) == data.shape[0]
        )
        if not ok:
            raise CorruptDatasetError(
                f"CIFAR-10 file {path} is corrupted (no uint8 'data' array of shape (n, 3072) "
                f"with n 'labels'). Delete {root / CIFAR10_FOLDER} and run again to re-download.\n"
                + _cifar_help(root)
            )
        datas.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(np.asarray(targets, dtype=np.int64)))
    return torch.cat(datas), torch.cat(labels)


def _cifar10_root(root: str | Path | None) -> Path:
    from .profiles import data_dir

    return Path(root).expanduser() if root is not None else data_dir()


def _missing_cifar10_files(root: Path) -> list[str]:
    """The names of the batch and meta files :func:`load_cifar10` reads that are not in its folder."""
    folder = root / CIFAR10_FOLDER
    needed = CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES + [CIFAR10_META_FILE]
    return [name for name in needed if not (folder / name).is_file()]


def cifar10_folder(root: str | Path | None = None) -> Path | None:
    """The folder :func:`load_cifar10` reads — ``root/cifar-10-batches-py`` (``root`` defaults to
    :func:`~resnet_course.profiles.data_dir`) — when every file it needs is there, else ``None`` (then
    :func:`load_cifar10` downloads, or fails with ``download=False``). Their content is not checked."""
    base = _cifar10_root(root)
    return None if _missing_cifar10_files(base) else base / CIFAR10_FOLDER


def load_cifar10(
    root: str | Path | None = None, *, download: bool = True, timeout: float = 10.0
) -> tuple[ImageTensors, ImageTensors]:
    """CIFAR-10 ``(train, test)`` (50 000 / 10 000 uint8 images) from ``root/cifar-10-batches-py``.

    ``root`` defaults to :func:`~resnet_course.profiles.data_dir`. When the files are absent and ``download``
    is true, the official tarball is fetched (``timeout`` seconds per network operation, so an offline machine
    fails within seconds). Raises :class:`DatasetUnavailableError` (absent, not downloadable: the message says
    where the files were expected, how to get them by hand and how to use ``shapes10`` instead) or
    :class:`CorruptDatasetError` (a damaged archive or batch file, with how to fix it).
    """
    root = _cifar10_root(root)
    folder = root / CIFAR10_FOLDER
    if cifar10_folder(root) is None:
        missing = _missing_cifar10_files(root)
        if not download:
            raise DatasetUnavailableError(
                f"CIFAR-10 files are missing from {folder} ({', '.join(missing)}) and downloading is "
                "switched off.\n" + _cifar_help(root)
            )
        _download_cifar10(root, timeout)
        missing = _missing_cifar10_files(root)
        if missing:
            raise CorruptDatasetError(
                f"the CIFAR-10 archive was extracted but {', '.join(missing)} are missing from {folder}: the "
                f"archive is damaged. Delete {root / CIFAR10_TARBALL} and run again.\n" + _cifar_help(root)
            )
    meta = _read_pickle(folder / CIFAR10_META_FILE, root)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not names or len(names) != 10:
        raise CorruptDatasetError(
            f"CIFAR-10 file {folder / CIFAR10_META_FILE} is corrupted (no list of 10 'label_names'). Delete "
            f"{folder} and run again to re-download.\n" + _cifar_help(root)
        )
    splits = []
    for files in (CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILES):
        images, labels = _read_cifar_batches(root, files)
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) > 9):
            raise CorruptDatasetError(
                f"CIFAR-10 labels in {folder} are outside 0..9: the files are corrupted."
            )
        splits.append(ImageTensors(images, labels, list(names)))
    return splits[0], splits[1]


# --------------------------------------------------------------------------------------------------
# ImageFolder
# --------------------------------------------------------------------------------------------------


def _read_image_folder(
    folder: Path, image_size: int, on_bad_file: str, classes: list[str] | None = None
) -> ImageTensors:
    """All files of an ImageFolder (one subfolder per class) decoded at ``image_size``; unreadable ones are
    reported (warning or error) before anything else happens. ``classes``: the training part's class names
    (labels are mapped by name)."""
    from torchvision.datasets import ImageFolder

    try:
        discovered = ImageFolder(str(folder), is_valid_file=lambda p: not Path(p).name.startswith("."))
    except FileNotFoundError as err:
        raise ValueError(
            f"{folder} is not a usable ImageFolder (one subfolder per class with images): {err}"
        ) from None
    names = classes if classes is not None else list(discovered.classes)
    unknown = sorted(set(discovered.classes) - set(names))
    if unknown:
        raise ValueError(
            f"{folder} has class folders that the training part does not have: {', '.join(unknown)}"
        )
    remap = {i: names.index(c) for i, c in enumerate(discovered.classes)}
    images, labels, bad = [], [], []
    for path, label in discovered.samples:
        try:
            images.append(prepare_image(path, image_size))
        except ImageError as err:  # names the file and why
            bad.append(str(err))
            continue
        labels.append(remap[label])
    if bad:
        listing = "\n  ".join(bad[:20]) + (f"\n  … and {len(bad) - 20} more" if len(bad) > 20 else "")
        message = f"{len(bad)} file(s) in {folder} are not readable images:\n  {listing}"
        if on_bad_file == "raise":
            raise ValueError(message + "\nRemove or fix them (or pass on_bad_file='warn' to skip them).")
        warnings.warn(message + "\nThey are skipped.", stacklevel=3)
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(names))
    empty = [c for c in discovered.classes if counts[names.index(c)] == 0]
    if empty:
        raise ValueError(f"no readable images left for class(es) {', '.join(empty)} in {folder}")
    return ImageTensors(torch.stack(images), torch.as_tensor(labels, dtype=torch.int64), names)


def _check_memory(folder: Path, image_size: int) -> None:
    n_files = sum(1 for p in folder.rglob("*") if p.is_file())
    needed = n_files * 3 * image_size * image_size
    if needed > MAX_BYTES:
        raise ValueError(
            f"{folder} has {n_files} files; at {image_size} px they would take {needed / 1024**3:.1f} GB "
            "in memory "
            f"(limit {MAX_BYTES / 1024**3:.0f} GB). Use a smaller image_size or a smaller dataset."
        )


def load_imagefolder(
    root: str | Path,
    *,
    image_size: int = 32,
    test_fraction: float = 0.2,
    seed: int = 0,
    on_bad_file: str = "warn",
) -> tuple[ImageTensors, ImageTensors | None, ImageTensors]:
    """``(train, val, test)`` from an ImageFolder root, all images decoded to uint8 ``image_size²`` RGB.

    Layouts: ``root/train/<class>/…`` and ``root/test/<class>/…`` (optionally ``root/val/<class>/…``, else
    ``val`` is ``None``), or ``root/<class>/…`` split into train/test by a seeded stratified
    ``test_fraction``. Every file goes through :func:`~resnet_course.images.prepare_image`, as in inference:
    turned upright (EXIF), made RGB (transparency composited on white), shorter side resized to
    ``image_size``, centre cropped. Unreadable or non-image files are listed in a warning and
    skipped (``on_bad_file="warn"``) or raise ``ValueError`` naming them (``"raise"``).
    """
    root = Path(root).expanduser()
    if on_bad_file not in ("warn", "raise"):
        raise ValueError(f"on_bad_file must be 'warn' or 'raise', got {on_bad_file!r}")
    if not root.is_dir():
        raise ValueError(f"ImageFolder root {root} does not exist or is not a directory")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer ≥ 8, got {image_size!r}")
    _check_memory(root, image_size)
    train_dir = root / "train"
    if train_dir.is_dir() and any(p.is_dir() for p in train_dir.iterdir()):
        train = _read_image_folder(train_dir, image_size, on_bad_file)
        val = (
            _read_image_folder(root / "val", image_size, on_bad_file, train.classes)
            if (root / "val").is_dir()
            else None
        )
        if (root / "test").is_dir():
            test = _read_image_folder(root / "test", image_size, on_bad_file, train.classes)
        else:
            keep, held = stratified_split(train.labels, test_fraction, seed)
            train, test = train.subset(keep), train.subset(held)
        return train, val, test
    everything = _read_image_folder(root, image_size, on_bad_file)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1) for a single-folder dataset, got {test_fraction}")
    keep, held = stratified_split(everything.labels, test_fraction, seed)
    return everything.subset(keep), None, everything.subset(held)


def write_image_folder(part: ImageTensors, root: str | Path, image_size: int | None = None) -> Path:
    """Write ``part`` as an ImageFolder — ``root/<class name>/<index>.png`` — and return ``root``.

    ``image_size`` resizes the images first (:func:`resize_images`). The folder is written under
    ``root.partial`` and renamed when complete, so an interrupted run never leaves a half-written ``root``;
    an existing ``root`` is an error (delete it to rewrite).
    """
    root = Path(root).expanduser()
    if root.exists():
        raise FileExistsError(f"{root} already exists; delete it to write the ImageFolder again")
    if any(not c or "/" in c or c in (".", "..") for c in part.classes):
        raise ValueError(f"class names must be usable as folder names, got {part.classes}")
    images = part.images if image_size is None else resize_images(part.images, image_size)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in part.classes:
        (tmp / name).mkdir(parents=True)
    width = max(5, len(str(len(part))))
    for i, (image, label) in enumerate(zip(images, part.labels.tolist(), strict=True)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp / part.classes[label] / f"{i:0{width}d}.png")
    tmp.rename(root)
    return root


# --------------------------------------------------------------------------------------------------
# load_data
# --------------------------------------------------------------------------------------------------


def _shapes10(train_size: int | None, test_size: int | None) -> tuple[ImageTensors, ImageTensors]:
    from .shapes import make_shapes10

    n_train = train_size or SHAPES10_DEFAULT_SIZES[0]
    n_test = test_size or SHAPES10_DEFAULT_SIZES[1]
    return make_shapes10(n_train, SHAPES10_SEEDS[0]), make_shapes10(n_test, SHAPES10_SEEDS[1])


@dataclass
class _Parts:
    """What one ``spec`` gives before subsets, the validation split and resizing."""

    name: str
    train: ImageTensors
    test: ImageTensors
    val: ImageTensors | None = None
    notice: str = ""
    root: str | None = None


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
    return _Parts("cifar10", train, test, root=str(_cifar10_root(root)))


def _imagefolder_parts(
    spec: str | Path, key: str, *, image_size: int | None, test_fraction: float, seed: int, on_bad_file: str
) -> _Parts:
    path = Path(key).expanduser()
    if not path.is_dir():
        raise ValueError(
            f"unknown dataset {spec!r}: give 'cifar10', 'shapes10' or the path of an existing "
            "ImageFolder root"
        )
    train, val, test = load_imagefolder(
        path, image_size=image_size or 32, test_fraction=test_fraction, seed=seed, on_bad_file=on_bad_file
    )
    return _Parts(path.name or str(path), train, test, val=val, root=str(path.resolve()))


def _resize_parts(parts: _Parts, image_size: int) -> _Parts:
    """All parts resized (shorter side) and centre-cropped to ``image_size`` by :func:`resize_images`."""
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
) -> DataBundle:
    """Load a dataset into a :class:`DataBundle`.

    ``spec``: ``"cifar10"`` (from ``root`` or :func:`~resnet_course.profiles.data_dir`; downloaded if allowed)
    ``"shapes10"`` (generated; ``train_size``/``test_size`` images, default 10 000/2 000) or the path of an
    ImageFolder root (see :func:`load_imagefolder`).

    ``train_size``/``test_size`` take seeded stratified subsets of the training/test parts (``None``: all);
    the validation part is then carved out of the training part by :func:`stratified_split` with
    ``val_fraction`` (``0``: no validation part, unless the ImageFolder has a ``val/`` folder). ``image_size``
    resizes the images (shorter side, then centre crop: :func:`~resnet_course.images.resize_and_crop`;
    default: 32 for CIFAR-10/shapes10 and ImageFolders). ``mean``/``std`` are computed
    from the final training part.

    With ``fallback=True``, a CIFAR-10 that is absent and cannot be downloaded, or corrupted, is replaced by
    ``shapes10`` and ``notice`` says so loudly; otherwise a :class:`DataError` explains what to do.
    """
    key = str(spec).strip()
    if key.lower() == "cifar10":
        sizes = (train_size, test_size)
        parts = _cifar10_parts(root, download=download, timeout=timeout, fallback=fallback, sizes=sizes)
    elif key.lower() == "shapes10":
        train, test = _shapes10(train_size, test_size)
        parts = _Parts("shapes10", train, test, notice=SHAPES10_NOTICE)
    else:
        parts = _imagefolder_parts(
            spec, key, image_size=image_size, test_fraction=test_fraction, seed=seed, on_bad_file=on_bad_file
        )
    if train_size:
        parts.train = parts.train.subset(stratified_subset(parts.train.labels, train_size, seed))
    if test_size:
        parts.test = parts.test.subset(stratified_subset(parts.test.labels, test_size, seed))
    if parts.val is None and val_fraction > 0:
        keep, held = stratified_split(parts.train.labels, val_fraction, seed)
        parts.train, parts.val = parts.train.subset(keep), parts.train.subset(held)
    if image_size is not None:
        parts = _resize_parts(parts, image_size)
    mean, std = compute_mean_std(parts.train)
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
    )


def load_profile_data(profile: Any = None, *, fallback: bool = True, **overrides: Any) -> DataBundle:
    """:func:`load_data` with the sizes of a :class:`~resnet_course.profiles.Profile` (default: the active
    one from :func:`~resnet_course.profiles.get_profile`): its ``dataset``, ``train_size``, ``test_size``,
    ``val_fraction`` and ``seed``. ``overrides`` replace any :func:`load_data` argument, e.g.
    ``train_size=profile.degradation_train_size``. Notebooks use this with ``fallback=True``."""
    from .profiles import get_profile

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
