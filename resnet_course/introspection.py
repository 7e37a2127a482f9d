"""Looking inside a network: feature maps, gradient flow, per-parameter gradients, the autograd graph,
Grad-CAM.

All functions leave the model as they found it: forward hooks are removed in ``finally`` blocks (even when
the forward pass raises), the train/eval mode of every sub-module is restored, and no ``.grad`` of a
parameter is written (gradients are taken with :func:`torch.autograd.grad`). Figures are returned as
:class:`matplotlib.figure.Figure`, never shown here.

Sources: Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization*, ICCV 2017 (arXiv:1610.02391); He et al., *Deep Residual Learning for Image Recognition*,
CVPR 2016 (arXiv:1512.03385), Sec. 4.1 on gradient norms in plain networks; torchviz ``make_dot``
(https://github.com/szagoruyko/pytorchviz).
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import offset_copy
from torch import Tensor, nn

from .inspection import model_device
from .models import ResNet
from .plots import new_subplots

__all__ = [
    "GraphvizNotFoundError",
    "GRAPHVIZ_INSTALL_HINT",
    "feature_maps",
    "zero_fractions",
    "plot_feature_maps",
    "weighted_layers",
    "gradient_norms",
    "compare_gradient_flow",
    "plot_gradient_flow",
    "parameter_grad_norms",
    "computation_graph",
    "render_graph",
    "grad_cam",
    "plot_grad_cam",
]

WEIGHTED_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _mode(model: nn.Module, train: bool) -> Iterator[None]:
    """Put ``model`` in train/eval mode for the block and restore every sub-module's own mode after."""
    saved = {m: m.training for m in model.modules()}
    model.train(train)
    try:
        yield
    finally:
        for m, was_training in saved.items():
            m.training = was_training


def _module(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name`` (as in ``model.named_modules()``), or a ``ValueError`` listing options."""
    modules = dict(model.named_modules())
    if name not in modules:
        top = [n for n in modules if n and "." not in n]
        raise ValueError(
            f"model has no layer named {name!r}; use a name from model.named_modules(), "
            f"e.g. one of the top-level layers {top} or a nested one like 'layer1.0.conv1'"
        )
    return modules[name]


def _batch(x: Tensor, model: nn.Module) -> Tensor:
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
    modules = {name: _module(model, name) for name in names}
    x = _batch(x, model)
    captured: dict[str, Tensor] = {}

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if name not in captured:  # a module called twice keeps its first output
                out = output[0] if isinstance(output, tuple | list) else output
                captured[name] = out.detach().clone().cpu()

        return hook

    handles = [m.register_forward_hook(make_hook(name)) for name, m in modules.items()]
    try:
        with _mode(model, train=False), torch.no_grad():
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


# --------------------------------------------------------------------------------------------------
# Gradient flow
# --------------------------------------------------------------------------------------------------


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every convolution and linear layer, in registration order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHTED_LAYER_TYPES)]


def gradient_norms(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    train_mode: bool = True,
) -> list[tuple[str, float]]:
    """L2 norm of the loss gradient w.r.t. each weighted layer's weight, after one backward pass.

    One ``(layer name, ‖∂L/∂W‖₂)`` entry per convolution / linear layer, in the order the layers run in
    the forward pass (recorded with forward hooks, which are removed afterwards). The loss is
    ``loss_fn(model(x), y)``, cross-entropy by default; the model runs in train mode (BatchNorm uses batch
    statistics, as during training) unless ``train_mode=False``, and its mode is restored. Gradients are
    computed with :func:`torch.autograd.grad`, so the parameters' ``.grad`` are left untouched, but note
    that a train-mode pass updates BatchNorm running statistics, as any training step would.

    Comparing plain and residual networks of several depths with this (He et al. 2016, Sec. 4.1) shows
    how the gradient reaching the first layers depends on depth and on the shortcuts.
    """
    layers = weighted_layers(model)
    if not layers:
        raise ValueError("model has no Conv or Linear layers, so there are no layer gradients to measure")
    x = _batch(x, model)
    y = torch.as_tensor(y, device=x.device)
    order: list[str] = []

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(_module: nn.Module, _inputs: Any, _output: Any) -> None:
            if name not in order:
                order.append(name)

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in layers]
    try:
        with _mode(model, train=train_mode), torch.enable_grad():
            loss = (loss_fn or F.cross_entropy)(model(x), y)
    finally:
        for h in handles:
            h.remove()
    by_name = dict(layers)
    ran = [n for n in order if by_name[n].weight.requires_grad]
    if not ran:
        raise ValueError("no weighted layer with requires_grad=True took part in the forward pass")
    grads = torch.autograd.grad(loss, [by_name[n].weight for n in ran], allow_unused=True)
    return [(n, 0.0 if g is None else float(g.detach().norm())) for n, g in zip(ran, grads, strict=True)]


def compare_gradient_flow(
    model_names: Sequence[str],
    x: Tensor,
    y: Tensor,
    *,
    seed: int = 0,
    **create_kwargs: Any,
) -> dict[str, list[tuple[str, float]]]:
    """:func:`gradient_norms` for freshly initialised models from ``resnet_course.models.create``.

    E.g. ``compare_gradient_flow(["plain20", "plain56", "resnet20", "resnet56"], x, y, num_classes=10)``;
    each model is built after ``torch.manual_seed(seed)`` so the comparison is reproducible. Feed the
    result to :func:`plot_gradient_flow`.
    """
    from resnet_course.models import create

    results: dict[str, list[tuple[str, float]]] = {}
    for name in model_names:
        torch.manual_seed(seed)
        model = create(name, **create_kwargs).to(x.device)
        results[name] = gradient_norms(model, x, y)
    return results


# Colour of a network's depth in every gradient-flow figure, so that e.g. the 56-layer nets share a colour
# across figures and panels; depths not listed continue the cycle.
_DEPTH_COLOUR_ORDER: tuple[int, ...] = (20, 32, 56, 44, 110, 14, 8, 18, 34, 50)
_FIRST_NUMBER = re.compile(r"[0-9]+")


def _depth_colour(depth: int) -> str:
    """Matplotlib's default-cycle colour (``"C0"`` …) for a network depth, the same in every figure."""
    if depth in _DEPTH_COLOUR_ORDER:
        return f"C{_DEPTH_COLOUR_ORDER.index(depth) % 10}"
    return f"C{(len(_DEPTH_COLOUR_ORDER) + depth) % 10}"


def _gradient_flow_depth(label: str, num_layers: int) -> int:
    """The depth a line is coloured by: the first number in its label (56 in ``"plain56, no BN"``),
    else the number of weighted layers measured."""
    match = _FIRST_NUMBER.search(label)
    return int(match.group()) if match else num_layers


def _legend_grid(groups: list[list[Any]]) -> tuple[list[Any], int]:
    """Legend handles and column count: one column per depth (up to 4 depths), or one per variant.

    ``groups`` holds the lines of each depth. When every depth has the same number of lines (variants such
    as "with BN" / "no BN"), the legend is a grid with one depth per column and one variant per row (one
    variant per column and one depth per row for more than 4 depths); otherwise the lines in the order
    drawn, 3 per row. A legend fills its columns top to bottom, hence the ordering.
    """
    flat = [h for group in groups for h in group]
    sizes = {len(group) for group in groups}
    if len(sizes) == 1:
        per_depth = sizes.pop()
        if len(groups) <= 4:
            return flat, len(groups)
        if 1 < per_depth <= 4:
            return [group[j] for j in range(per_depth) for group in groups], per_depth
    return flat, min(3, len(flat))


def plot_gradient_flow(
    results: Mapping[str, Sequence[tuple[str, float]]],
    *,
    relative_depth: bool = False,
    title: str | None = None,
    ax: Axes | None = None,
    linestyles: Mapping[str, str] | None = None,
) -> Figure:
    """Gradient norm per weighted layer (log scale), one line per model.

    ``results`` maps a label (e.g. ``"plain56"``) to the output of :func:`gradient_norms`. The x axis is
    the layer's position in the forward pass (1 = first convolution), or its position divided by the
    number of layers when ``relative_depth`` (to overlay networks of different depth). Zero norms cannot
    be drawn on a log axis and are left out of the line.

    Styles are chosen so that several figures can be read together: a line's **colour** is its network's
    depth (the first number in the label, e.g. 56 for ``"plain56, no BN"``; the same depth has the same
    colour in every figure), and its **line style** tells variants apart: solid for a label that is a model
    name of :mod:`resnet_course.models` (as :func:`compare_gradient_flow` returns them), dashed for any
    other label (a variant such as ``"plain56, no BN"``). ``linestyles`` (``{label: "-" | "--" | ":" |
    "-."}``) overrides the style of the labels it names. The legend sits below the plot, where it hides no
    line.

    With ``ax``, draws into that Axes (e.g. one panel of a larger figure) and returns its figure; a figure
    without a layout engine is switched to matplotlib's constrained layout, which places the panels,
    labels and legends when the figure is drawn (so changes the caller makes afterwards, such as showing
    tick labels again on a ``sharey`` panel, are laid out too).
    """
    from resnet_course.models import list_models

    if not results:
        raise ValueError("results is empty: pass {label: gradient_norms(model, x, y)} for one or more models")
    styles = dict(linestyles or {})
    unknown = sorted(set(styles) - set(results))
    if unknown:
        raise ValueError(f"linestyles names labels that are not in results: {unknown}")
    if ax is None:
        fig, ax = new_subplots(figsize=(8.0, 4.5), layout="constrained")
    else:
        fig = ax.figure
        if fig.get_layout_engine() is None:
            fig.set_layout_engine("constrained")
    lines = _draw_gradient_lines(ax, results, relative_depth, styles, set(list_models()))
    ax.set_yscale("log")
    ax.set_xlabel(
        "relative depth (layer / number of layers)" if relative_depth else "weighted layer (forward order)"
    )
    ax.set_ylabel("gradient norm ‖∂L/∂W‖₂")
    ax.grid(True, which="both", alpha=0.3)
    _legend_below(ax, fig, lines)
    ax.set_title(title or "Gradient flow after one backward pass")
    return fig


def _draw_gradient_lines(
    ax: Axes,
    results: Mapping[str, Sequence[tuple[str, float]]],
    relative_depth: bool,
    styles: Mapping[str, str],
    model_names: set[str],
) -> dict[int, list[Any]]:
    """One line per label (colour = network depth, style = model or variant); ``{depth: its lines}``."""
    lines: dict[int, list[Any]] = {}  # depth -> its lines, in the order given
    for label, norms in results.items():
        values = np.array([float(v) for _, v in norms])
        if values.size == 0:
            raise ValueError(f"no gradient norms for {label!r}")
        net_depth = _gradient_flow_depth(str(label), len(values))
        depth = np.arange(1, len(values) + 1, dtype=float)
        if relative_depth:
            depth /= len(values)
        shown = np.where(values > 0, values, np.nan)
        (line,) = ax.plot(
            depth,
            shown,
            color=_depth_colour(net_depth),
            linestyle=styles.get(label, "-" if label in model_names else "--"),
            marker="o",
            markersize=3,
            label=f"{label} ({len(values)} layers)",
        )
        lines.setdefault(net_depth, []).append(line)
    return lines


def _legend_below(ax: Axes, fig: Figure, lines: dict[int, list[Any]]) -> None:
    """The legend below the x label (an offset in points, so it does not depend on the Axes' height)."""
    handles, ncol = _legend_grid(list(lines.values()))
    below = offset_copy(ax.transAxes, fig=fig, y=-34, units="points")
    ax.legend(
        handles=handles,
        fontsize="small",
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        bbox_transform=below,
        ncol=ncol,
        frameon=False,
    )


def parameter_grad_norms(model: nn.Module) -> pd.DataFrame:
    """One row per parameter with its current ``.grad`` (call after ``loss.backward()``), for debugging.

    Columns: ``name``, ``shape``, ``numel``, ``requires_grad``, ``grad_norm`` (L2, NaN when there is no
    gradient), and flags ``grad_is_none`` (no gradient reached it: unused or frozen parameter, or
    ``backward`` not called yet), ``grad_is_zero`` and ``grad_non_finite`` (NaN/Inf inside: exploding or
    a bad input/loss).
    """
    rows = []
    for name, p in model.named_parameters():
        g = p.grad
        finite = None if g is None else bool(torch.isfinite(g).all())
        rows.append(
            {
                "name": name,
                "shape": tuple(p.shape),
                "numel": p.numel(),
                "requires_grad": p.requires_grad,
                "grad_norm": float("nan") if g is None else float(g.detach().float().norm()),
                "grad_is_none": g is None,
                "grad_is_zero": False if g is None else bool((g == 0).all()),
                "grad_non_finite": False if g is None else not finite,
            }
        )
    columns = [
        "name",
        "shape",
        "numel",
        "requires_grad",
        "grad_norm",
        "grad_is_none",
        "grad_is_zero",
        "grad_non_finite",
    ]
    return pd.DataFrame(rows, columns=columns)


# --------------------------------------------------------------------------------------------------
# Computation graph (torchviz)
# --------------------------------------------------------------------------------------------------

GRAPHVIZ_INSTALL_HINT = (
    "Graphviz's 'dot' program is needed to draw the computation graph but was not found on PATH. "
    "Install Graphviz and restart the kernel: 'sudo apt-get install graphviz' (Debian/Ubuntu), "
    "'brew install graphviz' (macOS), 'conda install graphviz' (conda), or the installer from "
    "https://graphviz.org/download/ (Windows; tick 'add to PATH'). The Python package 'graphviz' alone "
    "is not enough."
)


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's ``dot`` executable is missing; the message says how to install it."""

    def __init__(self, message: str = GRAPHVIZ_INSTALL_HINT) -> None:
        super().__init__(message)


def computation_graph(
    model: nn.Module,
    input_size: Sequence[int] = (1, 3, 32, 32),
    *,
    show_attrs: bool = False,
    show_saved: bool = False,
    require_dot: bool = True,
) -> Any:
    """The autograd graph of ``model(x)`` for a random input, drawn by torchviz ``make_dot``.

    Parameters are labelled with their names from ``model.named_parameters()``. The default view is the
    small one (no op attributes, no saved tensors, batch of 1); a whole ResNet-20 is already tall, so to
    show one block pass the block itself, e.g. ``computation_graph(model.layer1[0], (1, 16, 32, 32))``.
    The model runs in eval mode (BatchNorm statistics untouched), and its mode is restored.

    Returns a ``graphviz.Digraph`` (notebooks display it; save it with :func:`render_graph`). Raises
    :class:`GraphvizNotFoundError` with installation instructions when Graphviz's ``dot`` program is
    missing, unless ``require_dot=False`` (then the Digraph is returned and its ``.source`` can be read).
    """
    if require_dot and shutil.which("dot") is None:
        raise GraphvizNotFoundError()
    from torchviz import make_dot

    x = torch.randn(*input_size, device=model_device(model))
    with _mode(model, train=False), torch.enable_grad():
        out = model(x)
    if isinstance(out, tuple | list):
        out = out[0]
    if not isinstance(out, Tensor) or out.grad_fn is None:
        raise ValueError(
            "the model's output does not depend on any parameter that requires grad; nothing to draw"
        )
    with warnings.catch_warnings():  # torchviz compares versions with the deprecated distutils LooseVersion
        warnings.simplefilter("ignore", DeprecationWarning)
        return make_dot(
            out, params=dict(model.named_parameters()), show_attrs=show_attrs, show_saved=show_saved
        )


def render_graph(graph: Any, path: str | Path, *, format: str = "svg") -> Path:
    """Write ``graph`` (a ``graphviz.Digraph``) to ``path`` with the given suffix; return the file's path.

    Graphviz's ``ExecutableNotFound`` is turned into :class:`GraphvizNotFoundError` with install steps.
    """
    import graphviz

    path = Path(path)
    try:
        out = graph.render(outfile=path.with_suffix(f".{format}"), format=format, cleanup=True)
    except graphviz.ExecutableNotFound as err:
        raise GraphvizNotFoundError() from err
    return Path(out)


# --------------------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------------------


def _default_cam_layer(model: nn.Module) -> str:
    stages = getattr(model, "num_stages", None)
    if isinstance(stages, int) and stages > 0:
        return f"layer{stages}"
    raise ValueError("pass layer=... (the name of the last convolutional stage) for this model")


def grad_cam(
    model: nn.Module,
    x: Tensor,
    target_class: int | None = None,
    layer: str | None = None,
    *,
    normalize: bool = True,
) -> Tensor:
    """Grad-CAM heat map (Selvaraju et al. 2017) of ``target_class`` at ``layer``, at the input's size.

    With ``A`` the layer's activation ``(K, h, w)`` and ``y_c`` the class score (logit), the map is
    ``ReLU(Σ_k α_k A_k)`` with ``α_k = mean_{i,j} ∂y_c/∂A_k[i, j]`` (Eq. 1–2 of the paper), bilinearly
    upsampled to the input's ``(H, W)``. By default it is then scaled to [0, 1] by its own maximum (all
    zeros if the map is zero everywhere), which hides how strong the evidence is: the maps of a class with
    p = 0.9 and of one with p = 0.01 can look alike. ``normalize=False`` returns the raw map instead, in
    units of the class score; compare the raw maps' maxima (peaks) of several classes to see which map
    carries more evidence. When the layer feeds global average pooling and a linear head directly (the
    last stage of a post-activation ResNet; a pre-activation one puts a BatchNorm and a ReLU in between),
    the map before the ReLU and the upsampling sums over the layer's ``h × w`` positions to the logit
    minus its bias: each of its values is one position's share of the logit.

    The map has the layer's resolution, ``8 × 8`` for the last stage of a CIFAR ResNet on 32×32 images:
    it is coarse by construction, and the maps of different classes often cover the same region.

    Args:
        model: a classifier returning logits; run in eval mode (restored afterwards), hooks removed.
        x: one normalised image ``(C, H, W)`` or a batch of one ``(1, C, H, W)``.
        target_class: the class to explain; the predicted class (arg-max logit) when ``None``.
        layer: a name from ``model.named_modules()``; by default the last residual stage of a
            :class:`~resnet_course.models.ResNet` (``layer4`` for ImageNet-style nets, ``layer3`` for the
            CIFAR 6n+2 family).
        normalize: scale the map to [0, 1] by its maximum (default), or return it unscaled.

    Returns a float CPU tensor ``(H, W)``: values in [0, 1] when ``normalize``, otherwise ≥ 0 in the units
    of the class score (``cam.max()`` is the map's peak).
    """
    x = _batch(x, model)
    if x.shape[0] != 1:
        raise ValueError(f"grad_cam explains one image; got a batch of {x.shape[0]} (pass x[i:i+1])")
    target_layer = _module(model, layer if layer is not None else _default_cam_layer(model))
    captured: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if not captured:
            captured.append(output[0] if isinstance(output, tuple | list) else output)

    handle = target_layer.register_forward_hook(hook)
    try:
        with _mode(model, train=False), torch.enable_grad():
            logits = model(x.detach().clone().requires_grad_(True))
    finally:
        handle.remove()
    if not captured or captured[0].ndim != 4:
        raise ValueError(
            "the chosen layer must output a feature map (1, K, h, w); pick a convolutional stage"
        )
    if logits.ndim != 2:
        raise ValueError(
            f"expected the model to return logits (1, num_classes), got shape {tuple(logits.shape)}"
        )
    num_classes = logits.shape[1]
    cls = int(logits.argmax(dim=1)) if target_class is None else int(target_class)
    if not 0 <= cls < num_classes:
        raise ValueError(f"target_class {cls} is outside 0..{num_classes - 1}")
    activation = captured[0]
    (grads,) = torch.autograd.grad(logits[0, cls], activation)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # α_k
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    if not normalize:
        return cam.clamp_(min=0.0).cpu()
    peak = cam.max()
    cam = cam / peak if peak > 0 else torch.zeros_like(cam)
    return cam.clamp_(0.0, 1.0).cpu()


def plot_grad_cam(
    image: Any,
    cam: Tensor | np.ndarray,
    title: str | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Figure:
    """Three panels: the image, the Grad-CAM map, and the map overlaid on the image.

    ``image`` is uint8 ``(3, H, W)`` or a normalised float ``(3, H, W)`` with ``mean``/``std`` (see
    :func:`resnet_course.evaluation.to_display_images`); ``cam`` is the ``(H, W)`` map from :func:`grad_cam`,
    normalised or raw (``normalize=False``). Either way it is drawn relative to its own maximum (the colour
    bar says so), and the map panel's title gives that maximum: 1 for a normalised map, the peak in units of
    the class score for a raw one. Colours therefore cannot be compared between two figures; the peaks can.
    """
    from resnet_course.evaluation import to_display_images

    if isinstance(image, Tensor) and image.ndim == 4:
        image = image[0]
    shown = to_display_images(image, mean, std)[0]
    heat = cam.detach().cpu().float().numpy() if isinstance(cam, Tensor) else np.asarray(cam, dtype=float)
    if heat.shape != shown.shape[:2]:
        raise ValueError(
            f"cam has shape {heat.shape} but the image is {shown.shape[:2]}; use grad_cam's output"
        )
    if not np.isfinite(heat).all() or (heat < 0).any():
        raise ValueError("cam must be finite and non-negative, as grad_cam returns it")
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else np.zeros_like(heat)
    fig, axes = new_subplots(1, 3, figsize=(9.0, 3.4))
    axes[0].imshow(shown)
    axes[0].set_title("image")
    im = axes[1].imshow(heat, cmap=cmap, vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM (max {peak:.3g})")
    bar = fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
    bar.set_label("relative to this map's maximum", fontsize="small")
    axes[2].imshow(shown)
    axes[2].imshow(heat, cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
