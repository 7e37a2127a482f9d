"""The desktop app's work off the GUI thread: loading a checkpoint, classifying an image or a folder.

Jobs run in one Python worker thread and talk to the window only through Qt signals (:class:`Signals`);
:func:`load_preview` prepares the display copy of an image there (``QImage`` is safe off the GUI thread,
``QPixmap`` is not).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import ExifTags, Image
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from resnet_course.apps.inference import Classifier
from resnet_course.data.images import ImageError, rgb_image
from resnet_course.training.checkpoints import CheckpointError

__all__ = [
    "CheckpointJob",
    "FolderJob",
    "GcPause",
    "IMAGE_SUFFIXES",
    "INFERENCE_THREADS",
    "ImageJob",
    "Job",
    "PREVIEW_MAX_SIDE",
    "Signals",
    "list_images",
    "load_preview",
]


#: File suffixes treated as images in folder mode (others in the folder are skipped and counted).
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)


INFERENCE_THREADS = max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1))


PREVIEW_MAX_SIDE = 1024  # the display copy of an image is at most this many pixels per side


# ----------------------------------------------------------------------------------------------------------
# workers (run in the pool thread; they only talk to the window through signals)
# ----------------------------------------------------------------------------------------------------------


class Signals(QObject):
    """Signals a worker emits; connected to :class:`~resnet_course.apps.gui.window.MainWindow` slots, delivered on the UI thread."""

    done = Signal(int, object)  # job id, result
    failed = Signal(int, str)  # job id, one-line message
    row = Signal(int, int, object)  # job id, row index, row dict (folder mode)


class GcPause:
    """Pause Python's automatic garbage collection while any window has a job in flight.

    A collection runs on whichever thread happens to trigger it. Run on the worker thread, it may destroy Qt
    objects that became garbage on the UI thread (a closed window, a finished job's signals), and Qt objects
    must die on their own thread: that crashed natively, about one test run in ten. Pausing and resuming are
    called on the UI thread only; resuming collects there.
    """

    busy = 0
    was_enabled = True

    @classmethod
    def pause(cls) -> None:
        if cls.busy == 0:
            cls.was_enabled = gc.isenabled()
            gc.disable()
        cls.busy += 1

    @classmethod
    def resume(cls) -> None:
        cls.busy = max(0, cls.busy - 1)
        if cls.busy == 0 and cls.was_enabled:
            gc.enable()
            gc.collect()


class Job:
    """Base class: a job id, a cancel flag and the signals object.

    Jobs run on a Python-created worker thread (a one-thread ``ThreadPoolExecutor``), not on a ``QThreadPool``
    thread: PySide enters and leaves Python on a Qt pool thread for every job, and PyTorch's per-thread state
    did not survive that (``torch.load`` crashed natively, about one run in ten). Results reach the window
    through Qt signals, which Qt queues to the UI thread.
    """

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.signals = Signals()
        self.cancelled = threading.Event()

    def run(self) -> None:
        try:
            result = self.work()
        except (ImageError, CheckpointError) as exc:
            self.signals.failed.emit(self.job_id, str(exc))
        except Exception as exc:  # noqa: BLE001 - anything else must reach the window, not vanish
            self.signals.failed.emit(self.job_id, f"Unexpected {type(exc).__name__}: {exc}")
        else:
            self.signals.done.emit(self.job_id, result)

    def work(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError


class CheckpointJob(Job):
    """Load a checkpoint into a :class:`Classifier`."""

    def __init__(self, job_id: int, path: Path, device: str) -> None:
        super().__init__(job_id)
        self.path = path
        self.device = device

    def work(self) -> Classifier:
        classifier = Classifier.from_checkpoint(self.path, device=self.device)
        # One dummy prediction pays PyTorch's first-call costs here, not on the user's first image.
        size = int(classifier.preprocess.get("image_size", 32))
        classifier.predict([torch.zeros(3, size, size, dtype=torch.uint8)], top_k=1)
        return classifier


class ImageJob(Job):
    """Classify one image (when a classifier is given) and make its display copy."""

    def __init__(self, job_id: int, path: Path, classifier: Classifier | None, top_k: int) -> None:
        super().__init__(job_id)
        self.path = path
        self.classifier = classifier
        self.top_k = top_k

    def work(self) -> dict[str, Any]:
        predictions = None
        seconds = None
        if self.classifier is not None:
            start = time.perf_counter()
            predictions = self.classifier.predict([self.path], top_k=self.top_k)[0]
            seconds = time.perf_counter() - start
        preview, size, mode = load_preview(self.path)
        return {
            "predictions": predictions,
            "seconds": seconds,
            "preview": preview,
            "size": size,
            "mode": mode,
        }


class FolderJob(Job):
    """Classify a list of files one by one; a bad file becomes an error row, not a failed job."""

    def __init__(self, job_id: int, files: Sequence[Path], classifier: Classifier) -> None:
        super().__init__(job_id)
        self.files = list(files)
        self.classifier = classifier

    def work(self) -> int:
        for index, path in enumerate(self.files):
            if self.cancelled.is_set():
                break
            row: dict[str, Any] = {"file": str(path), "class": "", "probability": None, "error": ""}
            try:
                (top1,) = self.classifier.predict([path], top_k=1)[0]
                row["class"], row["probability"] = top1[0], float(top1[1])
            except ValueError as exc:  # ImageError (and any other ValueError about this one file)
                row["error"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - report per file, keep going
                row["error"] = f"Unexpected {type(exc).__name__}: {exc}"
            self.signals.row.emit(self.job_id, index, row)
        return len(self.files)


def load_preview(path: Path) -> tuple[QImage, tuple[int, int], str]:
    """Decode ``path`` with Pillow into a display copy at most ``PREVIEW_MAX_SIDE`` px per side.

    The preview is prepared like the model's input (:func:`~resnet_course.data.images.rgb_image`: turned upright
    by its EXIF orientation, transparency composited on white). Returns ``(QImage, upright (width, height) of
    the original, original PIL mode)``. Runs in the worker thread
    (``QImage`` is safe there, ``QPixmap`` is not). Raises :class:`ImageError` naming the file.
    """
    try:
        with Image.open(path) as img:
            turned = img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)  # quarter turns
            size, mode = (img.height, img.width) if turned else img.size, img.mode
            img.draft("RGB", (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))  # JPEG: decode at reduced scale
            img.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE))
            rgba = rgb_image(img).convert("RGBA")  # as the model sees it: upright, transparency on white
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(
            f"{path}: cannot be read as an image ({exc}); pick a PNG, JPEG, BMP or similar file"
        ) from exc
    data = rgba.tobytes("raw", "RGBA")
    qimage = QImage(data, rgba.width, rgba.height, 4 * rgba.width, QImage.Format.Format_RGBA8888)
    return qimage.copy(), size, mode  # copy: the QImage must own its pixels once `data` is gone


def list_images(folder: Path) -> tuple[list[Path], int]:
    """Image files directly inside ``folder`` (sorted by name) and the number of other files skipped."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    return images, len(files) - len(images)
