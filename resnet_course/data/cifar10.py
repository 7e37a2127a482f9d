"""CIFAR-10 in its own python-pickle format: from a local ``cifar-10-batches-py`` folder, or the official
download (which fails fast, with a message saying what to do, when the network is unreachable). The files are
unpickled by a restricted unpickler that admits only what the official format holds, so a crafted file in a
shared or downloaded folder cannot run code (``pickle.load``, which torchvision uses, would run it).

:func:`cifar10_folder` is the one answer to "where is CIFAR-10?": :func:`load_cifar10` reads that folder and
the environment report of notebook 00 looks there.
"""

from __future__ import annotations

import pickle
import tarfile
import urllib.error
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from resnet_course.data.containers import CorruptDatasetError, DatasetUnavailableError, ImageTensors
from resnet_course.downloads import check_reachable, socket_timeout

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_FOLDER",
    "CIFAR10_META_FILE",
    "CIFAR10_PUBLISHED_STATS",
    "CIFAR10_TARBALL",
    "CIFAR10_TARBALL_MD5",
    "CIFAR10_TEST_FILES",
    "CIFAR10_TRAIN_FILES",
    "CIFAR10_URL",
    "cifar10_folder",
    "cifar10_root",
    "load_cifar10",
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


def _download_cifar10(root: Path, timeout: float) -> None:
    """Download and extract the official tarball into ``root``, failing fast when offline."""
    from torchvision.datasets.utils import check_integrity, download_url, extract_archive

    root.mkdir(parents=True, exist_ok=True)
    tarball = root / CIFAR10_TARBALL
    if not check_integrity(str(tarball), CIFAR10_TARBALL_MD5):
        try:
            check_reachable(CIFAR10_URL, timeout)
            with socket_timeout(timeout):
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


try:  # NumPy 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - NumPy 1
    from numpy.core.multiarray import _reconstruct


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """How Python 3 writes bytes into a protocol-2 pickle (``_codecs.encode(text, "latin1")``), that codec only."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"it asks to encode with {encoding!r}, which no CIFAR-10 file does")
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles what the official files hold — dicts, lists, strings, numbers and NumPy arrays — and nothing else:
    a pickle can name any function to call while it loads (``os.system`` ...), and this one refuses every name but
    those that rebuild an array (and Python 3's way of writing bytes in protocol 2), before anything runs."""

    ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # written by NumPy 1 (the official files)
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # written by NumPy 2
        ("_codecs", "encode"): _latin1_bytes,  # bytes in a protocol-2 pickle written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        found = self.ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(
                f"it asks to run {module}.{name}, which no CIFAR-10 file contains; refused without running it "
                "(the file was made by someone else, perhaps to run code on this machine)"
            )
        return found


def _read_pickle(path: Path, root: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="latin1").load()
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
            f"CIFAR-10 file {path} is corrupted or not genuine (cannot unpickle it: {type(err).__name__}: {err}). Delete "
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


def cifar10_root(root: str | Path | None) -> Path:
    from resnet_course.profiles import data_dir

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
    base = cifar10_root(root)
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
    root = cifar10_root(root)
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
