"""resnet_course: the tested package behind the residual-networks notebook course.

One module per concept (see ``docs/ARCHITECTURE.md``): ``models``, ``inspection``, ``profiles``, ``data``,
``shapes``, ``transforms``, ``loaders``, ``datavis``, ``training``, ``checkpoints``, ``inference``,
``plots``, ``evaluation``, ``degradation``, ``introspection``, ``checks``, ``widgets``, ``gui`` and the
command line in ``cli`` (``python -m resnet_course --help``).
"""

__version__ = "0.1.0"
