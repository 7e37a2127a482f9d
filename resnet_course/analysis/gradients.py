"""Gradients inside a network: per-layer gradient norms and their flow with depth, per-parameter gradient
listings for debugging, and the autograd graph (torchviz).

No ``.grad`` of a parameter is written where a function only measures (gradients are taken with
:func:`torch.autograd.grad`); modes are restored. Sources: He et al., *Deep Residual Learning for Image
Recognition*, CVPR 2016 (arXiv:1512.03385), Sec. 4.1 on gradient norms in plain networks; torchviz
``make_dot`` (https://github.com/szagoruyko/pytorchviz).
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
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

from resnet_course.analysis.activations import as_batch
from resnet_course.analysis.plots import new_subplots
from resnet_course.devices import model_device
from resnet_course.models.state import model_mode

__all__ = [
    "GRAPHVIZ_INSTALL_HINT",
    "GraphvizNotFoundError",
    "WEIGHTED_LAYER_TYPES",
    "compare_gradient_flow",
    "computation_graph",
    "gradient_norms",
    "parameter_grad_norms",
    "plot_gradient_flow",
    "render_graph",
    "weighted_layers",
]


WEIGHTED_LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


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
    x = as_batch(x, model)
    y = torch.as_tensor(y, device=x.device)
    order: list[str] = []

    def make_hook(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(submodule: nn.Module, _inputs: Any, _output: Any) -> None:
            if name not in order:
                order.append(name)

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in layers]
    try:
        with model_mode(model, train=train_mode), torch.enable_grad():
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
    """:func:`gradient_norms` for freshly initialised models from ``resnet_course.models.registry.create``.

    E.g. ``compare_gradient_flow(["plain20", "plain56", "resnet20", "resnet56"], x, y, num_classes=10)``;
    each model is built after ``torch.manual_seed(seed)`` so the comparison is reproducible. Feed the
    result to :func:`plot_gradient_flow`.
    """
    from resnet_course.models.registry import create

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
    from resnet_course.models.registry import list_models

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
    with model_mode(model, train=False), torch.enable_grad():
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
