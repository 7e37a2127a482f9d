"""The desktop app's window: image and folder tabs, probability bars, model information, drag and drop."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from resnet_course.apps.gui.jobs import (
    IMAGE_SUFFIXES,
    PREVIEW_MAX_SIDE,
    CheckpointJob,
    FolderJob,
    GcPause,
    ImageJob,
    Job,
    list_images,
)
from resnet_course.apps.inference import Classifier

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "MainWindow",
    "NO_CHECKPOINT_HINT",
    "ProbabilityRow",
    "TABLE_HEADERS",
    "TOP_K",
    "format_accuracy",
]


#: File suffixes treated as checkpoints when dropped on the window.
CHECKPOINT_SUFFIXES: frozenset[str] = frozenset({".pt", ".pth", ".ckpt"})


#: Shown when no model is loaded: how to get a checkpoint.
NO_CHECKPOINT_HINT = (
    "No model loaded. Open a checkpoint (.pt) with “Open checkpoint…” or drop it on the window. "
    "To get one, run the training notebook notebooks/05_training_resnet18.ipynb, or in a terminal: "
    "python -m resnet_course train --model resnet20 --data shapes10 --epochs 5 --out runs/demo "
    "— then open runs/demo/best.pt."
)


TOP_K = 5


TABLE_HEADERS = ("file", "top-1 class", "probability", "error")


def format_accuracy(value: Any) -> str:
    """``0.9132`` → ``"91.32 %"``; ``None`` → ``"not recorded"``."""
    if value is None:
        return "not recorded in this checkpoint"
    return f"{100.0 * float(value):.2f} %"


# ----------------------------------------------------------------------------------------------------------
# the window
# ----------------------------------------------------------------------------------------------------------


class ProbabilityRow(QWidget):
    """One class of the top-k: name, a bar, and the percentage written on the bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.name = QLabel()
        self.name.setMinimumWidth(120)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setMinimumWidth(160)
        layout.addWidget(self.name, 2)
        layout.addWidget(self.bar, 3)

    def set_value(self, name: str, probability: float) -> None:
        """Show ``name`` with ``probability`` in [0, 1]."""
        self.name.setText(name)
        self.bar.setValue(round(1000 * probability))
        self.bar.setFormat(f"{100.0 * probability:.1f} %")


class MainWindow(QMainWindow):
    """The classifier window. Public methods are what the buttons and drops call (and what tests drive).

    Args:
        device: where the model runs (``"cpu"`` by default; ``"cuda"``/``"mps"`` work when available).
        top_k: how many classes to show for one image.
    """

    #: Emitted whenever the last pending job has finished (the window shows its final state).
    idle = Signal()

    def __init__(self, device: str = "cpu", top_k: int = TOP_K) -> None:
        super().__init__()
        self.device = device
        self.top_k = top_k
        self.classifier: Classifier | None = None
        self.checkpoint_path: Path | None = None
        self.image_path: Path | None = None
        self.predictions: list[tuple[str, float]] | None = None
        self.folder_rows: list[dict[str, Any]] = []
        # One worker: jobs run in submission order and one model is never used by two threads at once.
        self._executor: ThreadPoolExecutor | None = None
        self._jobs: dict[int, Job] = {}
        self._next_id = 0
        self._checkpoint_job = -1
        self._image_job = -1
        self._folder_job = -1
        self._pixmap: QPixmap | None = None
        self._pending_checkpoint: Path | None = None
        self._folder_total = 0
        self.message_is_error = False

        self.setWindowTitle("ResNet classifier — resnet_course")
        self.setAcceptDrops(True)
        self.resize(980, 640)
        self._build()
        self._show_model_info()
        self.show_message(NO_CHECKPOINT_HINT, error=False)

    # ---- layout ------------------------------------------------------------------------------------------

    def _build(self) -> None:
        central = QWidget()
        root = QVBoxLayout(central)

        buttons = QHBoxLayout()
        self.open_image_button = QPushButton("Open image…")
        self.open_folder_button = QPushButton("Open folder…")
        self.open_checkpoint_button = QPushButton("Open checkpoint…")
        self.open_image_button.clicked.connect(self._choose_image)
        self.open_folder_button.clicked.connect(self._choose_folder)
        self.open_checkpoint_button.clicked.connect(self._choose_checkpoint)
        for button in (self.open_image_button, self.open_folder_button, self.open_checkpoint_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        hint = QLabel("…or drop an image, a folder or a checkpoint on the window")
        hint.setStyleSheet("color: gray;")
        buttons.addWidget(hint)
        root.addLayout(buttons)

        model_box = QGroupBox("Model")
        model_layout = QVBoxLayout(model_box)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        model_layout.addWidget(self.model_label)
        root.addWidget(model_box)

        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.message_label)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_image_tab(), "Image")
        self.tabs.addTab(self._build_folder_tab(), "Folder")
        root.addWidget(self.tabs, 1)

        self.setCentralWidget(central)
        self.statusBar().showMessage("Ready")

    def _build_image_tab(self) -> QWidget:
        tab = QWidget()
        layout = QHBoxLayout(tab)
        self.image_label = QLabel("Drop an image here\nor use “Open image…”")
        self.image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image_label.setMinimumSize(360, 300)
        self.image_label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.image_label.setStyleSheet("QLabel { border: 1px dashed #999; background: #fafafa; }")
        layout.addWidget(self.image_label, 3)

        right = QVBoxLayout()
        self.image_caption = QLabel("No image")
        self.image_caption.setWordWrap(True)
        right.addWidget(self.image_caption)
        self.top1_label = QLabel()
        self.top1_label.setStyleSheet("QLabel { font-size: 18pt; font-weight: bold; }")
        right.addWidget(self.top1_label)
        top_box = QGroupBox(f"Top-{self.top_k} classes")
        grid = QGridLayout(top_box)
        self.probability_rows = [ProbabilityRow() for _ in range(self.top_k)]
        for i, row in enumerate(self.probability_rows):
            grid.addWidget(row, i, 0)
            row.setVisible(False)
        right.addWidget(top_box)
        right.addStretch(1)
        layout.addLayout(right, 2)
        return tab

    def _build_folder_tab(self) -> QWidget:
        tab = QWidget()
        layout = QVBoxLayout(tab)
        self.folder_caption = QLabel(
            "Open a folder (or drop one, or several images) to classify every image in it."
        )
        self.folder_caption.setWordWrap(True)
        layout.addWidget(self.folder_caption)
        self.table = QTableWidget(0, len(TABLE_HEADERS))
        self.table.setHorizontalHeaderLabels(list(TABLE_HEADERS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.save_csv_button = QPushButton("Save CSV…")
        self.save_csv_button.setEnabled(False)
        self.save_csv_button.clicked.connect(self._choose_csv)
        row.addWidget(self.save_csv_button)
        layout.addLayout(row)
        return tab

    # ---- messages ----------------------------------------------------------------------------------------

    def show_message(self, text: str, *, error: bool) -> None:
        """Show ``text`` above the results: red for an error, neutral otherwise; empty text hides it."""
        self.message_label.setText(text)
        self.message_label.setVisible(bool(text))
        if error:
            style = "QLabel { color: #8b0000; background: #fde8e8; border: 1px solid #e0a0a0; padding: 6px; }"
        else:
            style = "QLabel { color: #333; background: #eef4fb; border: 1px solid #b8cde6; padding: 6px; }"
        self.message_label.setStyleSheet(style)
        self.message_is_error = error

    def message(self) -> str:
        """The text currently shown in the message area."""
        return self.message_label.text()

    def _show_model_info(self) -> None:
        if self.classifier is None:
            self.model_label.setText("<i>none loaded</i>")
            return
        info = self.classifier.info
        classes = [str(c) for c in info.get("classes", [])]
        shown = ", ".join(classes[:20]) + (f", … ({len(classes)} in all)" if len(classes) > 20 else "")
        epoch = info.get("epoch")
        text = (
            f"<b>{info.get('model', '?')}</b> from <code>{self.checkpoint_path}</code><br>"
            f"{len(classes)} classes: {shown}<br>"
            f"epoch: {epoch if epoch is not None else 'unknown'} · "
            f"test accuracy: {format_accuracy(info.get('test_accuracy'))}"
        )
        self.model_label.setText(text)

    # ---- jobs --------------------------------------------------------------------------------------------

    def is_busy(self) -> bool:
        """Whether a load or classification is still pending."""
        return bool(self._jobs)

    def _submit(self, job: Job) -> None:
        job.signals.done.connect(self._on_done)
        job.signals.failed.connect(self._on_failed)
        job.signals.row.connect(self._on_row)
        GcPause.pause()
        self._jobs[job.job_id] = job
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="resnet-course-gui")
        self._executor.submit(job.run)  # the future holds the job until run() has returned

    def _retire(self, job_id: int) -> None:
        """Forget a job whose result arrived."""
        if self._jobs.pop(job_id, None) is not None:
            GcPause.resume()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _finish(self) -> None:
        """Called after a result was handled (which may have started new jobs): report idleness."""
        if not self._jobs:
            self.idle.emit()

    @Slot(int, object)
    def _on_done(self, job_id: int, result: Any) -> None:
        self._retire(job_id)
        try:
            if job_id == self._checkpoint_job:
                self._checkpoint_loaded(result)
            elif job_id == self._image_job:
                self._image_classified(result)
            elif job_id == self._folder_job:
                self._folder_finished()
            # any other id is a superseded job: its result is dropped
        finally:
            self._finish()

    @Slot(int, str)
    def _on_failed(self, job_id: int, text: str) -> None:
        self._retire(job_id)
        try:
            if job_id == self._checkpoint_job:
                kept = ""
                if self.classifier is not None:
                    kept = f" The previous model ({self.checkpoint_path}) is still loaded."
                self.show_message(f"Could not load the checkpoint: {text}{kept}", error=True)
            elif job_id == self._image_job:
                self.predictions = None
                self._clear_bars()
                self._set_pixmap(None, "No preview")
                self.image_caption.setText(str(self.image_path))
                self.show_message(f"Could not classify the image: {text}", error=True)
            elif job_id == self._folder_job:
                self.show_message(f"Folder classification stopped: {text}", error=True)
            if job_id in (self._checkpoint_job, self._image_job, self._folder_job):
                self.statusBar().showMessage("Failed — see the message above")
        finally:
            self._finish()

    @Slot(int, int, object)
    def _on_row(self, job_id: int, index: int, row: dict[str, Any]) -> None:
        if job_id != self._folder_job:
            return
        self.folder_rows.append(row)
        r = self.table.rowCount()
        self.table.insertRow(r)
        probability = "" if row["probability"] is None else f"{100.0 * row['probability']:.1f} %"
        for c, value in enumerate((Path(row["file"]).name, row["class"], probability, row["error"])):
            item = QTableWidgetItem(value)
            if c == 0:
                item.setToolTip(row["file"])
            self.table.setItem(r, c, item)
        self.statusBar().showMessage(f"Classifying {index + 1}/{self._folder_total}…")

    # ---- checkpoint --------------------------------------------------------------------------------------

    def load_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Load a checkpoint in the background; the current image is re-classified with it once loaded."""
        path = Path(path)
        job = CheckpointJob(self._new_id(), path, self.device)
        self._checkpoint_job = job.job_id
        self._pending_checkpoint = path
        self.statusBar().showMessage(f"Loading checkpoint {path.name}…")
        self.show_message(f"Loading checkpoint {path}…", error=False)
        self._submit(job)

    def _checkpoint_loaded(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.checkpoint_path = self._pending_checkpoint
        self._show_model_info()
        name = classifier.info.get("model", "model")
        self.show_message(f"Loaded {name} from {self.checkpoint_path}.", error=False)
        self.statusBar().showMessage(f"Model {name} ready")
        if self.image_path is not None:
            self.open_image(self.image_path)

    # ---- one image ---------------------------------------------------------------------------------------

    def open_image(self, path: str | os.PathLike[str]) -> None:
        """Show and classify one image in the background (only show it when no model is loaded)."""
        path = Path(path)
        self.image_path = path
        self.tabs.setCurrentIndex(0)
        if not path.is_file():
            self._image_job = -1
            self.predictions = None
            self._clear_bars()
            self._set_pixmap(None, "No preview")
            what = "is a folder — use “Open folder…”" if path.is_dir() else "does not exist"
            self.show_message(f"Could not open the image: {path} {what}.", error=True)
            return
        loading_model = self._checkpoint_job in self._jobs
        classifier = None if loading_model else self.classifier
        top_k = self.top_k
        if classifier is not None:
            top_k = min(self.top_k, len(classifier.info.get("classes", [])) or self.top_k)
        job = ImageJob(self._new_id(), path, classifier, top_k)
        self._image_job = job.job_id
        self._clear_bars()
        self.image_caption.setText(f"{path.name}: classifying…" if classifier else path.name)
        self.statusBar().showMessage(f"Classifying {path.name}…" if classifier else f"Opening {path.name}…")
        if classifier is not None:
            self.show_message("", error=False)
        elif not loading_model:
            self.show_message(NO_CHECKPOINT_HINT, error=False)
        self._submit(job)

    def _image_classified(self, result: dict[str, Any]) -> None:
        path = self.image_path
        assert path is not None
        width, height = result["size"]
        self._set_pixmap(QPixmap.fromImage(result["preview"]), "")
        notes = [f"{path.name} — {width}×{height} px, {result['mode']}"]
        if result["mode"] not in ("RGB",):
            notes.append(f"converted from {result['mode']} to RGB for the model")
        if max(width, height) > PREVIEW_MAX_SIDE:
            notes.append("downscaled for display")
        self.predictions = result["predictions"]
        if self.predictions is None:
            self._clear_bars()
            self.image_caption.setText("; ".join(notes))
            self.statusBar().showMessage(f"{path.name}: no model loaded")
            if self._checkpoint_job not in self._jobs and not self.message_is_error:
                self.show_message(NO_CHECKPOINT_HINT, error=False)
            return
        preprocess = getattr(self.classifier, "preprocess", None) or {}
        size = preprocess.get("image_size")
        if isinstance(size, int):
            notes.append(f"resized to {size}×{size} for the model")
        elif isinstance(size, (tuple, list)) and len(size) == 2:
            notes.append(f"resized to {size[1]}×{size[0]} for the model")
        notes.append(f"classified in {1000 * result['seconds']:.0f} ms")
        self.image_caption.setText("; ".join(notes))
        for row, (name, probability) in zip(self.probability_rows, self.predictions, strict=False):
            row.set_value(str(name), float(probability))
            row.setVisible(True)
        top_name, top_p = self.predictions[0]
        self.top1_label.setText(f"{top_name} — {100 * top_p:.1f} %")
        self.statusBar().showMessage(f"{path.name}: {top_name} ({100 * top_p:.1f} %)")

    def _clear_bars(self) -> None:
        self.top1_label.setText("")
        for row in self.probability_rows:
            row.setVisible(False)

    def _set_pixmap(self, pixmap: QPixmap | None, placeholder: str) -> None:
        self._pixmap = pixmap
        if pixmap is None:
            self.image_label.setPixmap(QPixmap())
            self.image_label.setText(placeholder)
        else:
            self._rescale_pixmap()

    def _rescale_pixmap(self) -> None:
        if self._pixmap is None:
            return
        target = self.image_label.contentsRect().size()
        scaled = self._pixmap.scaled(
            target, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        if self._pixmap.width() < target.width() // 2 and self._pixmap.height() < target.height() // 2:
            # tiny images (e.g. 32×32 CIFAR) are enlarged without smoothing so their pixels stay visible
            scaled = self._pixmap.scaled(
                target, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
            )
        self.image_label.setPixmap(scaled)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        self._rescale_pixmap()

    def displayed_pixmap_size(self) -> tuple[int, int]:
        """Size of the pixmap held for display (before fitting to the label); ``(0, 0)`` when none."""
        if self._pixmap is None:
            return (0, 0)
        return (self._pixmap.width(), self._pixmap.height())

    # ---- folder ------------------------------------------------------------------------------------------

    def open_folder(self, path: str | os.PathLike[str]) -> None:
        """Classify every image directly inside ``path`` into the table (in the background)."""
        folder = Path(path)
        if not folder.is_dir():
            self.show_message(f"Could not open the folder: {folder} is not a folder.", error=True)
            return
        try:
            files, skipped = list_images(folder)
        except OSError as exc:
            self.show_message(f"Could not read the folder {folder}: {exc}", error=True)
            return
        if not files:
            self.show_message(
                f"{folder} holds no image files (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).", error=True
            )
            return
        note = f" ({skipped} other file{'s' if skipped != 1 else ''} skipped)" if skipped else ""
        self.classify_files(files, title=f"{folder}: {len(files)} images{note}")

    def classify_files(self, files: Sequence[str | os.PathLike[str]], title: str | None = None) -> None:
        """Classify ``files`` into the folder table, replacing what it showed (and stopping a running job)."""
        self.tabs.setCurrentIndex(1)
        if self.classifier is None or self._checkpoint_job in self._jobs:
            self.show_message(
                "Load a checkpoint before classifying a folder. " + NO_CHECKPOINT_HINT, error=True
            )
            return
        old = self._jobs.get(self._folder_job)
        if old is not None:
            old.cancelled.set()
        paths = [Path(f) for f in files]
        self.folder_rows = []
        self.table.setRowCount(0)
        self.save_csv_button.setEnabled(False)
        self.folder_caption.setText(title or f"{len(paths)} files")
        job = FolderJob(self._new_id(), paths, self.classifier)
        self._folder_job = job.job_id
        self._folder_total = len(paths)
        self.show_message("", error=False)
        self.statusBar().showMessage(f"Classifying {len(paths)} files…")
        self._submit(job)

    def _folder_finished(self) -> None:
        errors = sum(1 for r in self.folder_rows if r["error"])
        self.save_csv_button.setEnabled(bool(self.folder_rows))
        text = f"Classified {len(self.folder_rows) - errors} of {len(self.folder_rows)} files"
        if errors:
            text += f"; {errors} could not be read (see the error column)"
        self.show_message(text + ".", error=False)
        self.statusBar().showMessage(text)

    def save_csv(self, path: str | os.PathLike[str]) -> bool:
        """Write the folder table to ``path`` as CSV (``file,top1_class,probability,error``).

        Returns whether it worked; a failure is reported in the window.
        """
        path = Path(path)
        try:
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["file", "top1_class", "probability", "error"])
                for row in self.folder_rows:
                    p = "" if row["probability"] is None else f"{row['probability']:.6f}"
                    writer.writerow([row["file"], row["class"], p, row["error"]])
        except OSError as exc:
            reason = exc.strerror or exc
            self.show_message(f"Could not save the CSV to {path}: {reason}. Pick another place.", error=True)
            return False
        self.show_message(f"Saved {len(self.folder_rows)} rows to {path}.", error=False)
        return True

    # ---- dialogs -----------------------------------------------------------------------------------------

    def _choose_image(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(IMAGE_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", f"Images ({patterns});;All files (*)")
        if path:
            self.open_image(path)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open folder of images")
        if path:
            self.open_folder(path)

    def _choose_checkpoint(self) -> None:
        patterns = " ".join(f"*{s}" for s in sorted(CHECKPOINT_SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(
            self, "Open checkpoint", "", f"Checkpoints ({patterns});;All files (*)"
        )
        if path:
            self.load_checkpoint(path)

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save results as CSV", "predictions.csv", "CSV (*.csv)")
        if path:
            self.save_csv(path)

    # ---- drag and drop -----------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            self.show_message("Only local files and folders can be dropped here.", error=True)
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)

    def open_paths(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """What a drop does: load a checkpoint, classify one image, or table a folder / several files."""
        items = [Path(p) for p in paths]
        checkpoints = [p for p in items if p.suffix.lower() in CHECKPOINT_SUFFIXES]
        others = [p for p in items if p.suffix.lower() not in CHECKPOINT_SUFFIXES]
        if checkpoints:
            self.load_checkpoint(checkpoints[0])
        if not others:
            return
        if len(others) == 1 and others[0].is_dir():
            self.open_folder(others[0])
        elif len(others) == 1:
            self.open_image(others[0])
        else:
            files: list[Path] = []
            for p in others:
                files.extend(list_images(p)[0] if p.is_dir() else [p])
            self.classify_files(files, title=f"{len(files)} dropped files")

    # ---- closing -----------------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt override
        for job in self._jobs.values():
            job.cancelled.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        for _ in range(len(self._jobs)):
            GcPause.resume()
        self._jobs.clear()
        super().closeEvent(event)
