"""Using a trained model: inference, the command line, the desktop app and the notebook widget.

* :mod:`~resnet_course.apps.inference` — ``Classifier``: images → top-k classes;
* :mod:`~resnet_course.apps.cli` — ``python -m resnet_course train|evaluate|predict|gui``, its options in
  :mod:`~resnet_course.apps.cli_options`;
* :mod:`~resnet_course.apps.gui` — the PySide6 desktop app (``python -m resnet_course.apps.gui``);
* :mod:`~resnet_course.apps.widgets` — the ipywidgets app of notebook 10.
"""
