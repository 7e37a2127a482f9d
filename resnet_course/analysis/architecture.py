"""Looking at an architecture: parameters, a layer-by-layer summary, "why is ResNet-18 called 18", the memory
autograd keeps for the backward pass, and BatchNorm layers filled with random values for comparing two models.

>>> from resnet_course.models.registry import resnet18
>>> count_weighted_layers(resnet18()).main_path
18
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from resnet_course.devices import model_device
from resnet_course.models.state import unchanged_state

__all__ = [
    "count_parameters",
    "summary",
    "count_weighted_layers",
    "LayerCount",
    "saved_activation_bytes",
    "randomize_batchnorm",
]

_WEIGHTED = (nn.Conv2d, nn.Linear)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)  # the lazy variants subclass these
_AMP_DTYPES = (torch.float16, torch.bfloat16)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


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


def saved_activation_bytes(model: nn.Module, x: torch.Tensor, amp_dtype: torch.dtype | None = None) -> int:
    """Bytes of the tensors autograd saves for the backward pass during one forward pass of ``model`` on ``x``.

    Every tensor packed by :func:`torch.autograd.graph.saved_tensors_hooks` is counted through its storage,
    each storage once (an activation saved by two operations, e.g. a ReLU output read by the next convolution,
    counts once). The count includes the copies of the weights that backward needs, small next to the
    activations for a batch of images. It works on any device, without a memory allocator counter.

    ``amp_dtype`` (``torch.float16`` or ``torch.bfloat16``) runs the forward pass under :func:`torch.autocast`
    on ``x``'s device; ``None`` measures the plain (fp32) pass. The model is measured in its current mode
    (call ``model.train()`` first to measure a training step) and gradient recording is switched on for the
    measurement even inside ``torch.no_grad()``.

    The model is left as it was: its mode and parameters are untouched, buffers a training-mode forward pass
    updates (BatchNorm running statistics) are restored, no backward pass runs (no ``.grad`` appears) and the
    graph is freed before returning.

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    >>> saved_activation_bytes(net, torch.zeros(2, 3, 4, 4))  # input (384 B) + weights (864 B) + ReLU output (1 KiB)
    2272
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a tensor (the input batch), got {type(x).__name__}")
    if amp_dtype is not None and amp_dtype not in _AMP_DTYPES:
        raise ValueError(f"amp_dtype must be None, torch.float16 or torch.bfloat16, got {amp_dtype!r}")

    storages: dict[tuple[torch.device, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[(tensor.device, storage.data_ptr())] = storage.nbytes()
        return tensor

    def unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    autocast = (
        torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    )
    with unchanged_state(model), torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        with autocast:
            model(x)  # the output, and with it the graph and the saved tensors, is dropped at once
    return sum(storages.values())


def randomize_batchnorm(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Fill every BatchNorm layer's affine parameters and running statistics of ``model`` with random values.

    At their default initialisation (weight 1, bias 0, mean 0, variance 1) BatchNorm layers in eval mode are
    almost the identity, so two models can agree on an input while one of them misplaces or forgets a
    BatchNorm. After this call such a mistake changes the output, and comparing two models' outputs becomes
    a meaningful test. Per layer, in ``model.modules()`` order:

    * ``weight`` ~ U[0.5, 1.5) and ``bias`` ~ N(0, 0.5²) (when the layer is ``affine``),
    * ``running_mean`` ~ N(0, 0.1²) and ``running_var`` ~ U[0.5, 1.5) (when it tracks running statistics).

    Values are drawn in float32 on the generator's device (the CPU and the global RNG when ``generator`` is
    ``None``) and then copied into the layer, so a seeded generator gives the same values wherever the model
    lives. ``num_batches_tracked`` and every other layer are left alone; a model without BatchNorm is returned
    unchanged. The model is modified in place and returned.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    device = generator.device if generator is not None else torch.device("cpu")

    def draw(like: torch.Tensor, normal: bool) -> torch.Tensor:
        sample = torch.randn if normal else torch.rand
        return sample(like.shape, generator=generator, device=device)

    with torch.no_grad():
        for m in model.modules():
            if not isinstance(m, _BATCHNORM):
                continue
            if m.weight is not None:
                m.weight.copy_(draw(m.weight, normal=False) + 0.5)
            if m.bias is not None:
                m.bias.copy_(draw(m.bias, normal=True) * 0.5)
            if m.running_mean is not None:
                m.running_mean.copy_(draw(m.running_mean, normal=True) * 0.1)
            if m.running_var is not None:
                m.running_var.copy_(draw(m.running_var, normal=False) + 0.5)
    return model
