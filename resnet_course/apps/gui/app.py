"""Starting the desktop app: :func:`run_app` (optionally with a checkpoint and an image, or to save a
screenshot and exit) and :func:`main`, the command line behind ``python -m resnet_course gui``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import (
    QApplication,
)

from resnet_course.apps.gui.jobs import INFERENCE_THREADS
from resnet_course.apps.gui.window import MainWindow

__all__ = ["main", "run_app"]


_OPEN_WINDOWS: list[Any] = []  # windows opened by run_app inside an application that someone else runs


# ----------------------------------------------------------------------------------------------------------
# entry points
# ----------------------------------------------------------------------------------------------------------


def run_app(
    checkpoint: str | os.PathLike[str] | None = None,
    image: str | os.PathLike[str] | None = None,
    screenshot: str | os.PathLike[str] | None = None,
    *,
    device: str = "cpu",
    timeout_s: float = 120.0,
) -> int:
    """Open the window, optionally load ``checkpoint`` and ``image``; return the exit code.

    With ``screenshot=PATH`` nothing waits for a person: once loading and classification have finished the
    window is grabbed into ``PATH`` (PNG) and the app exits with 0 (1 when saving fails or the work takes
    longer than ``timeout_s``). Works headless with ``QT_QPA_PLATFORM=offscreen``.
    """
    app = QApplication.instance()
    created = app is None
    if app is None:
        app = QApplication(sys.argv[:1])
        app.setStyle("Fusion")
        # Leave one core to the UI thread: with every core busy, PyTorch's thread team waits on its slowest
        # member, and on a loaded 2-core machine one small image took ~2 s instead of ~20 ms.
        torch.set_num_threads(INFERENCE_THREADS)
    window = MainWindow(device=device)
    window.show()
    if checkpoint is not None:
        window.load_checkpoint(checkpoint)
    if image is not None:
        window.open_image(image)
    if screenshot is None:
        if created:
            return app.exec()
        _OPEN_WINDOWS.append(window)  # an outside event loop (e.g. IPython's %gui qt) shows it; keep it alive
        return 0

    target = Path(screenshot)
    outcome = {"code": 1}

    def grab() -> None:
        QApplication.processEvents()
        target.parent.mkdir(parents=True, exist_ok=True)
        ok = window.grab().save(str(target), "PNG")
        if not ok:
            print(f"error: could not write the screenshot to {target}", file=sys.stderr)
        outcome["code"] = 0 if ok else 1
        window.close()
        loop_quit()

    def too_slow() -> None:
        print(f"error: the work took longer than {timeout_s:.0f} s; no screenshot taken", file=sys.stderr)
        window.close()
        loop_quit()

    def loop_quit() -> None:
        timer.stop()
        local_loop.quit()

    local_loop = QEventLoop()
    timer = QTimer()
    timer.setSingleShot(True)
    timer.timeout.connect(too_slow)
    timer.start(int(timeout_s * 1000))
    if window.is_busy():
        window.idle.connect(lambda: QTimer.singleShot(100, grab))
    else:
        QTimer.singleShot(100, grab)
    local_loop.exec()
    return outcome["code"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m resnet_course.apps.gui [--checkpoint FILE] [--image FILE] [--screenshot PNG] [--device D]``."""
    parser = argparse.ArgumentParser(
        prog="python -m resnet_course gui",
        description="A desktop app that classifies images with a trained checkpoint.",
    )
    parser.add_argument("--checkpoint", help="checkpoint (.pt) to load at start")
    parser.add_argument("--image", help="image to classify at start")
    parser.add_argument("--screenshot", help="save a PNG of the window once the work is done, then exit")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    args = parser.parse_args(argv)
    return run_app(args.checkpoint, args.image, args.screenshot, device=args.device)
