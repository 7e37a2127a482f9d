"""``python -m resnet_course.apps.gui``: the desktop app (see :func:`resnet_course.apps.gui.app.main`)."""

from resnet_course.apps.gui.app import main

if __name__ == "__main__":
    raise SystemExit(main())
