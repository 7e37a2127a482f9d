"""The desktop app, driven with pytest-qt on Qt's offscreen platform (no display needed)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before PySide6 is imported

import csv
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytest.importorskip("PySide6", reason="the GUI tests need PySide6: pip install 'resnet-course[gui]'")

import torch
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QThread, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QFileDialog

from resnet_course.apps.gui.app import main, run_app
from resnet_course.apps.gui.jobs import PREVIEW_MAX_SIDE
from resnet_course.apps.gui.window import MainWindow
from resnet_course.apps.inference import Classifier

CLASSES = ["circle", "square", "triangle"]
WAIT_MS = 30_000


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, make_tiny_checkpoint) -> dict[str, Path]:
    """A tiny untrained checkpoint (3 classes, test accuracy 0.5, epoch 3), good and bad images, and a folder
    of images."""
    root = tmp_path_factory.mktemp("gui")
    ckpt = make_tiny_checkpoint(root / "tiny.pt", classes=CLASSES, metrics={"test_accuracy": 0.5}, epoch=3)
    gen = torch.Generator().manual_seed(1)

    def noise(w: int, h: int) -> Image.Image:
        array = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy()
        return Image.fromarray(array)

    out = {"ckpt": ckpt}
    out["rgb"] = root / "rgb.png"
    noise(40, 30).save(out["rgb"])
    out["gray"] = root / "gray.png"
    noise(33, 33).convert("L").save(out["gray"])
    out["rgba"] = root / "rgba.png"
    noise(20, 24).convert("RGBA").save(out["rgba"])
    out["huge"] = root / "huge.jpg"
    noise(64, 48).resize((3000, 2250)).save(out["huge"], quality=70)
    out["text"] = root / "notes.png"
    out["text"].write_text("this is text, not a PNG\n")
    out["corrupt"] = root / "broken.jpg"
    out["corrupt"].write_bytes(out["huge"].read_bytes()[:300])  # a JPEG cut off inside its header
    out["bad_ckpt"] = root / "garbage.pt"
    out["bad_ckpt"].write_bytes(b"not a checkpoint at all")
    nan = torch.load(ckpt, weights_only=True)
    next(v for v in nan["state_dict"].values() if v.is_floating_point()).fill_(float("nan"))
    out["nan_ckpt"] = root / "nan.pt"
    torch.save(nan, out["nan_ckpt"])
    folder = root / "folder"
    folder.mkdir()
    for name in ("rgb", "gray", "rgba"):
        (folder / out[name].name).write_bytes(out[name].read_bytes())
    (folder / "zz_broken.jpg").write_bytes(out["corrupt"].read_bytes())
    (folder / "readme.txt").write_text("not an image, skipped")
    out["folder"] = folder
    return out


@pytest.fixture(scope="module")
def classifier(files: dict[str, Path]) -> Classifier:
    return Classifier.from_checkpoint(files["ckpt"], device="cpu")


@pytest.fixture
def window(qtbot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    return w


def load(qtbot, window: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        window.load_checkpoint(path)


def open_image(qtbot, window: MainWindow, path: Path) -> None:
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        window.open_image(path)


def shown_bars(window: MainWindow) -> list[tuple[str, float]]:
    """(class, probability) as the visible bars show them."""
    return [(row.name.text(), row.bar.value() / 1000) for row in window.probability_rows if row.isVisible()]


# ---- no model -------------------------------------------------------------------------------------------


def test_without_checkpoint_the_window_says_how_to_get_one(window: MainWindow) -> None:
    text = window.message()
    assert "notebooks/05_training_resnet18.ipynb" in text
    assert "python -m resnet_course train --model resnet20 --data shapes10 --epochs 5 --out runs/demo" in text
    assert not window.message_is_error
    assert window.classifier is None


def test_image_without_model_is_shown_with_the_hint(qtbot, window: MainWindow, files) -> None:
    open_image(qtbot, window, files["rgb"])
    assert window.displayed_pixmap_size() == (40, 30)
    assert window.predictions is None
    assert shown_bars(window) == []
    assert "05_training_resnet18" in window.message()


def test_folder_without_model_is_refused_with_a_message(window: MainWindow, files) -> None:
    window.open_folder(files["folder"])
    assert window.message_is_error
    assert "Load a checkpoint" in window.message()
    assert window.table.rowCount() == 0


# ---- checkpoint -----------------------------------------------------------------------------------------


def test_checkpoint_button_loads_and_shows_model_info(qtbot, window, files, monkeypatch) -> None:
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(files["ckpt"]), ""))
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        window.open_checkpoint_button.click()
    assert window.classifier is not None
    info = window.model_label.text()
    assert "resnet20" in info
    for name in CLASSES:
        assert name in info
    assert "50.00 %" in info  # the recorded test accuracy
    assert "epoch: 3" in info
    assert not window.message_is_error


@pytest.mark.parametrize("key", ["missing", "bad_ckpt", "nan_ckpt"])
def test_missing_or_corrupt_checkpoint_is_reported(qtbot, window, files, key) -> None:
    path = files["ckpt"].with_name("nowhere.pt") if key == "missing" else files[key]
    load(qtbot, window, path)
    assert window.classifier is None
    assert window.message_is_error
    assert window.message().startswith("Could not load the checkpoint:")
    assert path.name in window.message()


def test_failed_checkpoint_keeps_the_previous_model(qtbot, window, files) -> None:
    load(qtbot, window, files["ckpt"])
    first = window.classifier
    load(qtbot, window, files["bad_ckpt"])
    assert window.classifier is first
    assert window.message_is_error and "still loaded" in window.message()


def test_run_app_with_a_bad_checkpoint_keeps_the_error_visible(qtbot, window, files) -> None:
    window.load_checkpoint(files["bad_ckpt"])
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        window.open_image(files["rgb"])  # opened while the checkpoint is still loading
    assert window.classifier is None
    assert window.displayed_pixmap_size() == (40, 30)
    assert window.message_is_error and files["bad_ckpt"].name in window.message()


# ---- one image ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["rgb", "gray", "rgba"])
def test_top_classes_equal_classifier_predict(qtbot, window, files, classifier, key) -> None:
    load(qtbot, window, files["ckpt"])
    open_image(qtbot, window, files[key])
    expected = classifier.predict([files[key]], top_k=5)[0]
    shown = shown_bars(window)
    assert [name for name, _ in shown] == [name for name, _ in expected]
    assert [p for _, p in shown] == pytest.approx([p for _, p in expected], abs=1e-3)
    assert [n for n, _ in window.predictions] == [n for n, _ in expected]
    assert window.top1_label.text().startswith(expected[0][0])
    assert not window.message_is_error
    if key != "rgb":
        assert f"converted from {Image.open(files[key]).mode} to RGB" in window.image_caption.text()


def test_loading_a_checkpoint_reclassifies_the_current_image(qtbot, window, files, classifier) -> None:
    open_image(qtbot, window, files["rgb"])
    assert window.predictions is None
    load(qtbot, window, files["ckpt"])
    assert [n for n, _ in shown_bars(window)] == [n for n, _ in classifier.predict([files["rgb"]])[0]]


def test_huge_image_is_downscaled_for_display(qtbot, window, files, classifier) -> None:
    load(qtbot, window, files["ckpt"])
    open_image(qtbot, window, files["huge"])
    width, height = window.displayed_pixmap_size()
    assert max(width, height) <= PREVIEW_MAX_SIDE
    assert width / height == pytest.approx(3000 / 2250, rel=0.02)
    assert "3000×2250" in window.image_caption.text() and "downscaled" in window.image_caption.text()
    assert [n for n, _ in shown_bars(window)] == [n for n, _ in classifier.predict([files["huge"]])[0]]


def test_exif_rotated_photo_is_shown_upright_as_the_model_sees_it(qtbot, window, tmp_path) -> None:
    photo = Image.new("RGB", (60, 40), (220, 30, 30))
    photo.paste((20, 40, 220), (0, 20, 60, 40))  # stored: red top, blue bottom
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90° clockwise: 40 wide, 60 high
    photo.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    open_image(qtbot, window, tmp_path / "phone.jpg")
    assert "40×60 px" in window.image_caption.text()
    width, height = window.displayed_pixmap_size()
    assert width / height == pytest.approx(40 / 60, rel=0.05)


@pytest.mark.parametrize("key", ["text", "corrupt"])
def test_non_image_or_corrupt_file_gives_a_message(qtbot, window, files, key) -> None:
    load(qtbot, window, files["ckpt"])
    open_image(qtbot, window, files["rgb"])
    open_image(qtbot, window, files[key])
    assert window.message_is_error
    assert window.message().startswith("Could not classify the image:")
    assert files[key].name in window.message()
    assert window.predictions is None
    assert shown_bars(window) == []
    assert window.displayed_pixmap_size() == (0, 0)


def test_missing_image_or_folder_given_as_image(window, files) -> None:
    window.open_image(files["rgb"].with_name("nope.png"))
    assert window.message_is_error and "does not exist" in window.message()
    window.open_image(files["folder"])
    assert window.message_is_error and "is a folder" in window.message()


def test_inference_runs_off_the_ui_thread(qtbot, window, files) -> None:
    load(qtbot, window, files["ckpt"])
    real_predict = window.classifier.predict
    release = threading.Event()
    threads: list[object] = []

    def slow_predict(images, top_k=5):
        threads.append(QThread.currentThread())
        assert release.wait(20), "the test never released the worker"
        return real_predict(images, top_k=top_k)

    window.classifier.predict = slow_predict  # instance attribute: only this window's classifier
    try:
        ticks: list[int] = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(1))
        timer.start(10)
        window.open_image(files["rgb"])  # returns at once although predict blocks
        assert "classifying" in window.image_caption.text()
        qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=5000)  # the event loop keeps running
        assert window.is_busy()
        with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
            release.set()
        timer.stop()
    finally:
        release.set()
        del window.classifier.predict
    assert threads and threads[0] is not QThread.currentThread()
    assert len(shown_bars(window)) == len(CLASSES)


# ---- folder mode ----------------------------------------------------------------------------------------


def test_folder_table_and_csv(qtbot, window, files, classifier, tmp_path) -> None:
    load(qtbot, window, files["ckpt"])
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        window.open_folder(files["folder"])
    table = window.table
    assert table.rowCount() == 4  # readme.txt skipped
    assert "1 other file skipped" in window.folder_caption.text()
    names = [table.item(r, 0).text() for r in range(4)]
    assert names == ["gray.png", "rgb.png", "rgba.png", "zz_broken.jpg"]
    for r, name in enumerate(names[:3]):
        (top1, p), *_ = classifier.predict([files["folder"] / name])[0]
        assert table.item(r, 1).text() == top1
        assert table.item(r, 2).text() == f"{100 * p:.1f} %"
        assert table.item(r, 3).text() == ""
    assert "zz_broken.jpg" in table.item(3, 3).text()
    assert table.item(3, 1).text() == ""
    assert "1 could not be read" in window.message()
    assert window.save_csv_button.isEnabled()

    out = tmp_path / "results.csv"
    assert window.save_csv(out)
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["file"]).name for r in rows] == names
    assert rows[1]["top1_class"] == table.item(1, 1).text()
    assert float(rows[1]["probability"]) == pytest.approx(window.folder_rows[1]["probability"], abs=1e-6)
    assert rows[3]["probability"] == "" and "zz_broken.jpg" in rows[3]["error"]


def test_csv_that_cannot_be_written_is_reported(qtbot, window, files, tmp_path) -> None:
    load(qtbot, window, files["ckpt"])
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        window.open_folder(files["folder"])
    assert not window.save_csv(tmp_path)  # a folder, not a file
    assert window.message_is_error and "Could not save the CSV" in window.message()


def test_folder_without_images_is_reported(qtbot, window, files, tmp_path) -> None:
    load(qtbot, window, files["ckpt"])
    (tmp_path / "a.txt").write_text("x")
    window.open_folder(tmp_path)
    assert window.message_is_error and "holds no image files" in window.message()


# ---- drag and drop --------------------------------------------------------------------------------------


def drop(window: MainWindow, *paths: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(
        QPointF(20, 20),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)


def test_drop_checkpoint_then_image_then_folder(qtbot, window, files, classifier) -> None:
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        drop(window, files["ckpt"])
    assert window.classifier is not None
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        drop(window, files["gray"])
    assert [n for n, _ in shown_bars(window)] == [n for n, _ in classifier.predict([files["gray"]])[0]]
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        drop(window, files["folder"])
    assert window.tabs.currentIndex() == 1 and window.table.rowCount() == 4
    with qtbot.waitSignal(window.idle, timeout=WAIT_MS):
        drop(window, files["rgb"], files["text"])
    assert window.table.rowCount() == 2
    assert window.table.item(1, 3).text() != ""  # the text file is an error row, not a crash


# ---- entry points ---------------------------------------------------------------------------------------


def test_run_app_screenshot(qapp, files, tmp_path) -> None:
    shot = tmp_path / "shot.png"
    assert run_app(checkpoint=files["ckpt"], image=files["rgb"], screenshot=shot) == 0
    img = Image.open(shot)
    assert img.size[0] >= 600 and img.size[1] >= 400
    low, high = img.convert("L").getextrema()
    assert high - low > 100  # not a blank frame


def test_main_parses_arguments(qapp, files, tmp_path) -> None:
    shot = tmp_path / "main.png"
    assert main(["--checkpoint", str(files["ckpt"]), "--screenshot", str(shot)]) == 0
    assert shot.is_file()


def test_missing_pyside6_gives_install_hint() -> None:
    code = "import sys; sys.modules['PySide6'] = None; import resnet_course.apps.gui"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'pip install "resnet-course[gui]"' in proc.stderr
    assert "PySide6-Essentials" in proc.stderr
