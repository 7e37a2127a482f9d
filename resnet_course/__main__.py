"""``python -m resnet_course``: see :mod:`resnet_course.cli`."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
