"""Looking at an architecture: parameters, a layer-by-layer summary, and "why is ResNet-18 called 18".

>>> from resnet_course.models import resnet18
>>> count_weighted_layers(resnet18()).main_path
18
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["count_parameters", "summary", "count_weighted_layers", "LayerCount", "model_device"]

_WEIGHTED = (nn.Conv2d, nn.Linear)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def summary(model: nn.Module, input_size: Sequence[int] = (1, 3, 32, 32), depth: int = 3, **kwargs):
    """A torchinfo table of ``model`` for an input of ``input_size`` (batch included), computed where the model is.

    torchinfo moves a CPU model to CUDA when CUDA exists unless told otherwise; here the device is always
    the model's own, so calling ``summary`` never moves your model. Returns torchinfo's ``ModelStatistics``
    (``print()`` it, or read ``.total_params``, ``.total_mult_adds``).
    """
    import torchinfo

    if len(input_size) != 4:
        raise ValueError(f"input_size must be (N, C, H, W) including the batch dimension, got {tuple(input_size)}")
    kwargs.setdefault("col_names", ("output_size", "num_params", "mult_adds"))
    kwargs.setdefault("row_settings", ("var_names",))
    kwargs.setdefault("verbose", 0)
    return torchinfo.summary(model, input_size=tuple(input_size), depth=depth, device=model_device(model), **kwargs)


@dataclass(frozen=True)
class LayerCount:
    """Weighted layers (convolutions and fully-connected) of a network, counted from the model itself.

    ``main_path`` is the number in a ResNet's name: the convolutions and the linear layer a signal passes
    through on the residual path (He et al. 2015, Table 1). Projection shortcuts (``downsample``) and
    squeeze-and-excitation layers are counted separately, as the paper does not count them.
    """

    main_path: int
    shortcut: int
    other: int
    main_path_names: list[str] = field(default_factory=list, repr=False)
    shortcut_names: list[str] = field(default_factory=list, repr=False)

    @property
    def total(self) -> int:
        return self.main_path + self.shortcut + self.other


def count_weighted_layers(model: nn.Module) -> LayerCount:
    """Count conv + linear layers of ``model``, separating the main path from shortcut projections.

    Works on this package's models and on torchvision's ResNets (modules named ``downsample`` are shortcuts;
    modules inside a squeeze-and-excitation unit named ``se`` are counted as ``other``).
    """
    main: list[str] = []
    short: list[str] = []
    other = 0
    for name, module in model.named_modules():
        if not isinstance(module, _WEIGHTED):
            continue
        parts = name.split(".")
        if "downsample" in parts:
            short.append(name)
        elif "se" in parts:
            other += 1
        else:
            main.append(name)
    return LayerCount(len(main), len(short), other, main, short)
