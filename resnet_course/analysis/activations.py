"""Feature maps and dead-ReLU fractions: what a layer outputs for a batch.

All functions leave the model as they found it: forward hooks are removed in ``finally`` blocks (even when
the forward pass raises) and the train/eval mode of every sub-module is restored (:func:`~resnet_course.models.state.model_mode`).
Figures are returned as :class:`matplotlib.figure.Figure`, never shown here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from resnet_course.analysis.plots import new_subplots
from resnet_course.devices import model_device
from resnet_course.models.resnet import ResNet
from resnet_course.models.state import model_mode

__all__ = ["as_batch", "feature_maps", "plot_feature_maps", "submodule", "zero_fractions"]


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def submodule(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name`` (as in ``model.named_modules()``), or a ``ValueError`` listing options."""
    modules = dict(model.named_modules())
    if name not in modules:
        top = [n for n in modules if n and "." not in n]
        raise ValueError(
            f"model has no layer named {name!r}; use a name from model.named_modules(), "
            f"e.g. one of the top-level layers {top} or a nested one like 'layer1.0.conv1'"
        )
    return modules[name]


def as_batch(x: Tensor, model: nn.Module) -> Tensor:
    """``x`` as a float batch ``(N, C, H, W)`` on the model's device (a single image gets a batch dim)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor image batch (N, C, H, W), got {type(x).__name__}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if not torch.is_floating_point(x):
        raise ValueError(
            f"expected a normalised float tensor, got dtype {x.dtype}; convert uint8 images with the "
            "test transforms (or x.float() / 255 and normalise with the dataset's mean/std) first"
        )
    if isinstance(model, ResNet):
        model.check_input(x)  # ResNet.forward does not check its input
    return x.to(model_device(model))


# --------------------------------------------------------------------------------------------------
# Feature maps
# --------------------------------------------------------------------------------------------------


def feature_maps(model: nn.Module, x: Tensor, layer_names: str | Sequence[str]) -> dict[str, Tensor]:
    """Activations (outputs) of the named layers for input ``x``, captured with forward hooks.

    Args:
        model: any ``nn.Module``; it is run in eval mode under ``torch.no_grad()`` (its mode is restored).
        x: a normalised float batch ``(N, C, H, W)`` or one image ``(C, H, W)``.
        layer_names: names from ``model.named_modules()``, e.g. ``["conv1", "layer1", "layer3.2.conv2"]``.

    Returns ``{name: tensor}`` in the order given, each a CPU copy of the layer's output (cloned, so that
    in-place operations later in the forward pass, such as ``ReLU(inplace=True)`` after a BatchNorm, do not
    change it). The hooks are removed afterwards, also when the forward pass raises.
    """
    names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    if not names:
        raise ValueError("layer_names is empty: name at least one layer, e.g. 'layer1'")
    modules = {name: submodule(model, name) for name in names}
    x = as_batch(x, model)
    captured: dict[str, Tensor] = {}

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(submodule: nn.Module, _inputs: Any, output: Any) -> None:
            if name not in captured:  # a module called twice keeps its first output
                out = output[0] if isinstance(output, tuple | list) else output
                captured[name] = out.detach().clone().cpu()

        return hook

    handles = [m.register_forward_hook(make_hook(name)) for name, m in modules.items()]
    try:
        with model_mode(model, train=False), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in captured]
    if missing:
        raise ValueError(f"layers {missing} were not called during the forward pass, so they have no output")
    return {n: captured[n] for n in names}


def zero_fractions(
    model: nn.Module, x: Tensor, layer_names: str | Sequence[str], *, batch_size: int = 100
) -> dict[str, Tensor]:
    """Fraction of exactly-zero values in each named layer's output, per image.

    Runs :func:`feature_maps` on ``x`` in chunks of ``batch_size`` images (so a large batch never holds
    every activation in memory at once) and returns ``{name: tensor (N,)}``, one fraction in [0, 1] per
    image, in the order given. After a ReLU (the stem, and the output of every residual stage) a zero is
    a unit switched off for that image; average over many images before reading a trend into the numbers,
    since one image can be far from typical.
    """
    names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    x = x.unsqueeze(0) if isinstance(x, Tensor) and x.ndim == 3 else x
    if not isinstance(x, Tensor) or x.shape[0] == 0:
        raise ValueError("x must be a non-empty image batch (N, C, H, W)")
    parts: dict[str, list[Tensor]] = {name: [] for name in names}
    for start in range(0, x.shape[0], batch_size):
        maps = feature_maps(model, x[start : start + batch_size], names)
        for name, t in maps.items():
            parts[name].append((t == 0).flatten(1).float().mean(dim=1))
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


def plot_feature_maps(
    maps: Mapping[str, Tensor],
    *,
    index: int = 0,
    max_channels: int = 16,
    ncols: int = 8,
    cmap: str = "viridis",
    title: str | None = None,
) -> Figure:
    """Grid of the first ``max_channels`` channels of each layer's activation for sample ``index``.

    ``maps`` is the dict from :func:`feature_maps`; each layer gets its own rows, labelled with the layer
    name, channel number and the map's spatial size. Each channel is scaled to its own colour range.
    """
    if not maps:
        raise ValueError("maps is empty: pass the dict returned by feature_maps(model, x, layer_names)")
    layers: list[tuple[str, Tensor]] = []
    for name, t in maps.items():
        if t.ndim != 4:
            raise ValueError(
                f"feature map {name!r} has shape {tuple(t.shape)}; expected (N, C, H, W) (a conv layer)"
            )
        if not 0 <= index < t.shape[0]:
            raise ValueError(f"index {index} is outside the batch of {t.shape[0]} for {name!r}")
        layers.append((name, t[index, :max_channels].float()))
    ncols = max(1, min(ncols, max(t.shape[0] for _, t in layers)))
    rows_per_layer = [math.ceil(t.shape[0] / ncols) for _, t in layers]
    nrows = sum(rows_per_layer)
    fig, axes = new_subplots(nrows, ncols, figsize=(1.4 * ncols, 1.5 * nrows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    row = 0
    for (name, t), n_rows in zip(layers, rows_per_layer, strict=True):
        for c in range(t.shape[0]):
            ax = axes[row + c // ncols, c % ncols]
            ax.imshow(t[c].numpy(), cmap=cmap, interpolation="nearest")
            label = f"{name} ch{c}" if c == 0 else f"ch{c}"
            if c == 0:
                label += f"\n{t.shape[1]}×{t.shape[2]}"
            ax.set_title(label, fontsize=7)
        row += n_rows
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
