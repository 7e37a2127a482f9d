"""Several processes: everything the course does differently when ``torchrun`` starts more than one.

The rest of the package never asks how many processes there are; ``fit`` and the command line meet this
subpackage at named points.

* :mod:`~resnet_course.parallel.group` — the process group ``torchrun`` describes: join it (``init_from_env``),
  this process's place in it (``world``), the few collectives the course needs;
* :mod:`~resnet_course.parallel.ddp` — ``processes()``: ``OneProcess``, where every point is the identity, or
  ``DataParallel`` (``DistributedDataParallel``, sharded loaders, metrics summed over the processes).
"""
