"""Shared test fixtures: tiny datasets and checkpoints in the real on-disk formats, and a safe environment.

* matplotlib uses the non-interactive Agg backend;
* ``RESNET_COURSE_DATA`` points at a temporary folder for the whole session, so tests never touch (or
  download into) the user's cache.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from notebook_runs import execute_notebook, outputs_text, used_stand_in  # noqa: E402,F401  (shared with tools/)

# Threads that wait for work sleep instead of spinning: the tests, their subprocesses and the background autograding
# share two cores (set before torch is imported, which reads it once).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_SESSION_DATA_DIR = tempfile.mkdtemp(prefix="resnet_course_test_data_")
os.environ["RESNET_COURSE_DATA"] = _SESSION_DATA_DIR
for _name in ("RESNET_COURSE_SEED", "RESNET_COURSE_AMP", "RESNET_COURSE_RESULTS"):  # same results on every machine
    os.environ.pop(_name, None)

TINY_CIFAR_CLASSES = [
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


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module: on a shared 2-core machine oversubscribed OpenMP threads spin for seconds."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests that read the background autograding's results last (after the notebooks), so that it has
    the whole run to finish instead of making the middle of the run wait for it."""
    waiting = [item for item in items if {"graded", "background"} & set(getattr(item, "fixturenames", ()))]
    items[:] = [item for item in items if item not in waiting] + waiting


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start ``test_nbgrader.py``'s autograding in the background as soon as the tests that need it are
    collected: it runs notebooks in subprocesses, mostly while this process leaves a core idle."""
    if session.config.option.collectonly:
        return
    for item in session.items:
        if "graded" in getattr(item, "fixturenames", ()):
            item.module.start_grading()
            return


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_SESSION_DATA_DIR, ignore_errors=True)


@dataclass
class TinyCifar:
    """A CIFAR-10 folder written by :func:`write_tiny_cifar` and the arrays it holds (CHW uint8)."""

    root: Path
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def write_tiny_cifar(
    root: Path, per_class_per_batch: int = 2, test_per_class: int = 3, seed: int = 0
) -> TinyCifar:
    """Write ``root/cifar-10-batches-py`` in CIFAR-10's python-pickle format: five training batches and one
    test batch (dicts with ``data`` uint8 ``(n, 3072)`` and ``labels``) plus ``batches.meta``.

    Images are random, with channel 0 of the top-left pixel set to the label so tests can check pairing.
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.repeat(np.arange(10), n_per_class))
        images = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
        images[:, 0, 0, 0] = labels
        return images, labels

    train_x, train_y = [], []
    for i in range(1, 6):
        x, y = batch(per_class_per_batch)
        train_x.append(x)
        train_y.append(y)
        entry = {
            "batch_label": f"training batch {i} of 5",
            "labels": y.tolist(),
            "data": x.reshape(len(x), -1),
            "filenames": [f"img_{i}_{j}.png" for j in range(len(x))],
        }
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump(entry, f)
    test_x, test_y = batch(test_per_class)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(
            {
                "batch_label": "testing batch 1 of 1",
                "labels": test_y.tolist(),
                "data": test_x.reshape(len(test_x), -1),
            },
            f,
        )
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {
                "label_names": TINY_CIFAR_CLASSES,
                "num_cases_per_batch": 10 * per_class_per_batch,
                "num_vis": 3072,
            },
            f,
        )
    return TinyCifar(root, np.concatenate(train_x), np.concatenate(train_y), test_x, test_y)


@pytest.fixture
def tiny_cifar(tmp_path: Path) -> TinyCifar:
    """A tiny CIFAR-10 (5 batches × 2 training images per class, 3 test images per class) in the real
    on-disk format."""
    return write_tiny_cifar(tmp_path / "cifar")


@pytest.fixture
def tiny_cifar_root(tiny_cifar: TinyCifar) -> Path:
    """The root folder (containing ``cifar-10-batches-py/``) of :func:`tiny_cifar`."""
    return tiny_cifar.root


IMAGEFOLDER_COLOURS = {"blue": (20, 40, 220), "green": (30, 200, 40), "red": (220, 30, 30)}


def write_imagefolder(folder: Path, per_class: int = 6, seed: int = 0) -> list[Path]:
    """Class subfolders ``blue/ green/ red/`` of ``per_class`` images each, coloured by class, assorted sizes,
    formats and modes (RGB PNG, JPEG, grayscale, RGBA, palette). Returns the written paths."""
    rng = np.random.default_rng(seed)
    written = []
    sizes = [(40, 30), (64, 64), (32, 32), (100, 50), (20, 20), (48, 72)]
    for name, colour in IMAGEFOLDER_COLOURS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            arr = np.clip(np.array(colour)[None, None, :] + rng.integers(-15, 16, size=(h, w, 3)), 0, 255)
            img = Image.fromarray(arr.astype(np.uint8), "RGB")
            kind = i % 5
            if kind == 0:
                path = folder / name / f"{i}.png"
                img.save(path)
            elif kind == 1:
                path = folder / name / f"{i}.jpg"
                img.save(path, quality=95)
            elif kind == 2:
                path = folder / name / f"{i}_gray.png"
                img.convert("L").save(path)
            elif kind == 3:
                path = folder / name / f"{i}_rgba.png"
                rgba = img.convert("RGBA")
                rgba.putalpha(255)
                rgba.save(path)
            else:
                path = folder / name / f"{i}_palette.png"
                img.convert("P").save(path)
            written.append(path)
    return written


@pytest.fixture
def make_imagefolder() -> Callable[..., list[Path]]:
    """The :func:`write_imagefolder` helper, for tests that build their own layouts."""
    return write_imagefolder


@pytest.fixture
def imagefolder_root(tmp_path: Path) -> Path:
    """A single-folder ImageFolder (3 classes × 6 images of mixed size/format/mode) plus one corrupt JPEG
    (``red/broken.jpg``) and one non-image file (``green/notes.txt``)."""
    root = tmp_path / "folder"
    write_imagefolder(root)
    (root / "red" / "broken.jpg").write_bytes(
        b"\xff\xd8\xff\xe0 this is not really a jpeg" + bytes(range(64))
    )
    (root / "green" / "notes.txt").write_text("not an image\n")
    return root


def write_tiny_checkpoint(path: Path, *, classes: list[str], metrics: dict[str, Any], epoch: int = 0) -> Path:
    """Save an untrained ``resnet20`` (seeded, so always the same weights) with one output per class through
    :func:`resnet_course.training.checkpoints.save_checkpoint`: 32-px preprocessing (mean 0.5, std 0.25), the given
    ``metrics`` and ``epoch``. Returns ``path``."""
    import torch

    from resnet_course.models.registry import create
    from resnet_course.training.checkpoints import save_checkpoint

    torch.manual_seed(0)
    model = create("resnet20", num_classes=len(classes)).eval()
    return save_checkpoint(
        model,
        path,
        classes=classes,
        preprocess={"image_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        metrics=metrics,
        epoch=epoch,
    )


@pytest.fixture(scope="session")
def make_tiny_checkpoint() -> Callable[..., Path]:
    """The :func:`write_tiny_checkpoint` helper (session-scoped, so module-scoped fixtures can use it):
    ``make_tiny_checkpoint(path, classes=[...], metrics={"test_accuracy": 0.5}, epoch=3)``."""
    return write_tiny_checkpoint


def run_notebook(path: Path, env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> str:
    """Execute the notebook ``path`` in a ``python3`` kernel with ``env`` set (``None`` removes a variable; the
    kernel inherits the environment) and return the text of its outputs (stream text and Markdown).
    Raises nbclient's ``CellExecutionError``, naming the cell, when a cell fails."""
    for key, value in env.items():  # through monkeypatch, so that the test's environment is restored afterwards
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    nb, _ = execute_notebook(path, {}, timeout=600)
    return outputs_text(nb)


TEACHER_FOLDER_CLASSES = ["Circle", "Triangle", "Star", "Diamond", "Checker board"]


def write_teacher_folder(root: Path) -> Path:
    """A teacher's own ImageFolder, as unlike CIFAR-10 as a class would bring: 5 classes, not 10; 48-px images,
    not 32; a class name with a space (``TEACHER_FOLDER_CLASSES``). Returns the folder."""
    from resnet_course.data.imagefolder import write_image_folder
    from resnet_course.data.shapes10 import make_shapes10

    images = make_shapes10(300, seed=7).select_classes([0, 2, 5, 7, 9])
    images.classes = list(TEACHER_FOLDER_CLASSES)
    return write_image_folder(images, root / "my_images", image_size=48)
