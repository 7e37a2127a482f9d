"""Training: the knobs, the engine, checkpoints and the course's ready-made runs.

Modules (import from them directly; this package re-exports nothing):

* :mod:`~resnet_course.training.loop` — ``train_one_epoch`` and ``evaluate``: the loop of notebook 05;
* :mod:`~resnet_course.training.steps` — ``CourseStep``: what the course adds at the loop's four points;
* :mod:`~resnet_course.training.config` — ``TrainConfig`` (every knob of a run) and named recipes;
* :mod:`~resnet_course.training.schedules` — learning-rate schedules;
* :mod:`~resnet_course.training.optimizers` — SGD/AdamW with per-layer learning rates;
* :mod:`~resnet_course.training.history` — ``History``, per-epoch metrics;
* :mod:`~resnet_course.training.engine` — ``fit``: the course's runs, epochs of the loop with files and resume;
* :mod:`~resnet_course.training.runstate` — what a run carries from epoch to epoch, saved and resumed;
* :mod:`~resnet_course.training.runlock` — one training per run folder;
* :mod:`~resnet_course.training.predictions` — ``predict``;
* :mod:`~resnet_course.training.checkpoints` — atomic save, load and rebuild;
* :mod:`~resnet_course.training.runs` — the course's short runs and its shared checkpoint;
* :mod:`~resnet_course.training.transfer` — pretrained weights, new heads, frozen layers;
* :mod:`~resnet_course.training.throughput` — images per second.
"""
