"""Datasets in memory as uint8 tensors (or, too large for memory, streamed from disk), and the fast pipeline
that feeds them to a model.

Modules (import from them directly; this package re-exports nothing):

* :mod:`~resnet_course.data.containers` — ``ImageTensors`` and the data errors;
* :mod:`~resnet_course.data.bundle` — ``DataBundle``: train/val/test parts, statistics, loaders;
* :mod:`~resnet_course.data.statistics` — channel mean/std, stratified splits and subsets;
* :mod:`~resnet_course.data.cifar10` — CIFAR-10 from its python-format folder or the official download;
* :mod:`~resnet_course.data.imagefolder` — any ``root/class/image`` folder, read and written;
* :mod:`~resnet_course.data.images` — the one function that prepares an image file for a model;
* :mod:`~resnet_course.data.shapes10` — the generated offline stand-in;
* :mod:`~resnet_course.data.loading` — ``load_data(spec)``: one entry point for all of the above;
* :mod:`~resnet_course.data.transforms` — torchvision ``transforms.v2`` pipelines;
* :mod:`~resnet_course.data.loaders` — ``TensorLoader``, batches made on the tensors directly;
* :mod:`~resnet_course.data.streaming` — ``ImageFiles``/``StreamLoader``: folders larger than memory, decoded
  batch by batch with the same batches as ``TensorLoader``.
"""
