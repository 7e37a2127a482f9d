"""resnet_course: the tested package behind the residual-networks notebook course.

Subpackages by concept, one module per concept (see ``docs/ARCHITECTURE.md``): ``models`` (blocks, the
``ResNet`` class, the registry), ``data`` (datasets in memory and their loaders), ``training`` (config, engine,
checkpoints, runs, transfer learning), ``analysis`` (metrics, verdicts, figures, probes), ``checks`` (the
exercises' checks, the environment report) and ``apps`` (inference, the command line ``python -m resnet_course
--help``, the desktop app, the notebook widget); at the top ``devices``, ``downloads``, ``profiles`` and
``results``.
"""

__version__ = "0.1.0"
