"""``python -m resnet_course``: see :mod:`resnet_course.apps.cli`."""

import sys

from resnet_course.apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
