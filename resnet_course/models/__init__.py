"""The model zoo, written like torchvision's ``models/resnet.py`` (its state dicts load with ``strict=True``).

* :mod:`~resnet_course.models.blocks` — ``conv3x3``/``conv1x1`` and the blocks: plain, basic, bottleneck,
  pre-activation, the zero-padding shortcut;
* :mod:`~resnet_course.models.resnet` — ``ResNet``: stem, stages, head, initialisation;
* :mod:`~resnet_course.models.registry` — the builders (``resnet18``, ``resnet20``, ``plain32`` …) and
  ``create(name)``, ``list_models()``, ``model_config(model)``, ``create_for_data``;
* :mod:`~resnet_course.models.state` — ``model_mode`` and ``unchanged_state``: leave a model as it was found.
"""
