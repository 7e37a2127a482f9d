"""A desktop app that classifies images with a trained checkpoint, without writing code.

``python -m resnet_course gui [--checkpoint FILE] [--image FILE] [--screenshot PNG]`` (or
``python -m resnet_course.apps.gui ...``) opens a PySide6 window:

* **Open image…** (or drop an image on the window): the image is shown (downscaled for display when it is
  large) next to the model's top-5 classes as probability bars;
* **Open folder…** (or drop a folder, or several files): every image in the folder is classified into a
  table (file, top-1 class, probability, or the error for that file) that **Save CSV…** writes out;
* **Open checkpoint…** (or drop a ``.pt`` file): the model's name, classes, epoch and recorded test accuracy
  are read from the checkpoint and shown above the results.

All loading and inference runs in one Python worker thread, so the window stays responsive; bad
input (a non-image or corrupt file, a missing or corrupt checkpoint) is reported in the window.

The prediction path is :class:`resnet_course.apps.inference.Classifier`; this package only draws:
:mod:`~resnet_course.apps.gui.jobs` (the work done off the GUI thread), :mod:`~resnet_course.apps.gui.window`
(``MainWindow``) and :mod:`~resnet_course.apps.gui.app` (``run_app``, ``main``). PySide6 (Qt's
official LGPL binding) is imported in this package and nowhere else, so ``resnet_course`` imports without
it. Why PySide6 rather than PyQt5: see ``docs/GUI.md``.
"""

try:  # the one place that says what to install when PySide6 is missing
    import PySide6.QtWidgets  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only where PySide6 is absent
    raise ImportError(
        "The desktop app needs PySide6, which is not installed (or fails to load: "
        f'{_exc}). Install it with:  pip install "resnet-course[gui]"   '
        "(or: pip install PySide6-Essentials)"
    ) from _exc
