r"""Figures of training runs: learning curves, top-k prediction bars, a results chart across runs.

Every function returns a :class:`matplotlib.figure.Figure` (notebooks show a returned Figure, the CLI saves
it with ``fig.savefig``, tests inspect it under the Agg backend) and never calls ``plt.show()``. All figure
modules of the package create their figures with :func:`new_figure` / :func:`new_subplots`: the figure is
released from pyplot at once, so a notebook shows it exactly once (when a cell returns or ``display``\ s it)
and a loop that makes hundreds of figures does not accumulate them.

Training histories are duck-typed so that this module does not import :mod:`resnet_course.training.history`:
anything with the attributes (or a mapping with the keys) ``epoch, train_loss, train_acc, val_loss,
val_acc, lr`` works, plus the optional ``label`` and ``best_epoch``. ``best_epoch`` is an epoch *number*,
i.e. one of the values of ``epoch``. Accuracies are fractions in [0, 1] and are drawn as percentages.
Validation lists may be empty or hold ``None``/NaN when a run had no validation split; such a run has no
best epoch (best = the epoch of the highest *validation* accuracy; without held-out data there is none).

:func:`plot_error_curves` is the view of He et al. 2015 (Fig. 1 and 6) used by notebook 01: training and
validation *error* of plain and residual CIFAR nets (named like ``plain56`` / ``resnet110``) against epochs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "new_figure",
    "new_subplots",
    "history_values",
    "best_epoch",
    "plot_training_curves",
    "split_model_name",
    "plot_error_curves",
    "plot_prediction_bars",
    "plot_results",
]


def new_figure(**kwargs: Any) -> Figure:
    """A new Figure owned by the caller: made by pyplot (so Jupyter can render it) and closed there at once.

    Closing only removes it from pyplot's list of open figures; it can still be drawn on, displayed and saved.
    """
    fig = plt.figure(**kwargs)
    plt.close(fig)
    return fig


def new_subplots(
    nrows: int = 1, ncols: int = 1, *, squeeze: bool = True, **kwargs: Any
) -> tuple[Figure, Any]:
    """``plt.subplots`` for a caller-owned figure (see :func:`new_figure`); ``kwargs`` go to the Figure."""
    fig = new_figure(**kwargs)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr")


def _field(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` for mappings, ``getattr(obj, key)`` otherwise, ``default`` when absent."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def history_values(history: Any, key: str) -> np.ndarray:
    """One per-epoch series of a history as a float array, ``None`` turned into NaN.

    Returns an array as long as ``history.epoch`` (missing or empty series become all-NaN), so that
    train and validation series can always be plotted against the same epochs.
    """
    epochs = _field(history, "epoch")
    if epochs is None:
        raise TypeError(
            f"expected a training History (attributes or keys {', '.join(HISTORY_KEYS)}), "
            f"got {type(history).__name__} without 'epoch'"
        )
    n = len(epochs)
    values = _field(history, key)
    if values is None or len(values) == 0:
        return np.full(n, np.nan)
    out = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if len(out) != n:
        raise ValueError(
            f"history series {key!r} has {len(out)} values but 'epoch' has {n}; "
            "every per-epoch list must have one value per epoch (or be empty)"
        )
    return out


def best_epoch(history: Any) -> int | None:
    """The epoch number to mark as best, or ``None`` when there is no best to mark.

    Best means best on held-out data: ``history.best_epoch`` when it is one of the recorded epochs and has a
    validation accuracy, otherwise the epoch of the highest validation accuracy. ``None`` for an empty
    history and for a run without validation data: the training engine then saves ``best.pt`` at the last
    epoch, but that is the *last* epoch, not a best one, and the training accuracy cannot pick one.
    """
    epochs = list(_field(history, "epoch") or [])
    if not epochs:
        return None
    val_acc = history_values(history, "val_acc")
    if not np.isfinite(val_acc).any():
        return None
    given = _field(history, "best_epoch")
    if given is not None and given in epochs and np.isfinite(val_acc[epochs.index(given)]):
        return int(given)
    return int(epochs[int(np.nanargmax(val_acc))])


def _as_runs(histories: Any, labels: Sequence[str] | None) -> list[tuple[str, Any]]:
    """Normalise one history, a sequence of them or a ``{label: history}`` mapping to ``[(label, h)]``."""
    if isinstance(histories, Mapping) and "epoch" not in histories:
        runs = [(str(k), v) for k, v in histories.items()]
    elif isinstance(histories, Sequence) and not isinstance(histories, str | bytes):
        runs = [(str(_field(h, "label") or f"run {i + 1}"), h) for i, h in enumerate(histories)]
    else:
        runs = [(str(_field(histories, "label") or "run"), histories)]
    if not runs:
        raise ValueError("no histories to plot: pass a History, a list of them or a {label: History} dict")
    if labels is not None:
        if len(labels) != len(runs):
            raise ValueError(
                f"got {len(labels)} labels for {len(runs)} histories; pass one label per history"
            )
        runs = [(str(lab), h) for lab, (_, h) in zip(labels, runs, strict=True)]
    return runs


AXIS_SCALES = ("auto", "linear", "log")


def _check_scale(name: str, value: str) -> None:
    if value not in AXIS_SCALES:
        raise ValueError(f"{name} must be one of {AXIS_SCALES}, got {value!r}")


def _positive(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr) & (arr > 0)]


def _loss_wants_log(losses: Sequence[np.ndarray]) -> bool:
    """``loss_scale="auto"``: log when the losses span more than 10x (e.g. one diverging epoch)."""
    allv = np.concatenate([np.asarray(v, dtype=float).ravel() for v in losses]) if losses else np.array([])
    finite = allv[np.isfinite(allv)]
    if finite.size == 0 or (finite <= 0).any():
        return False
    return bool(finite.max() / finite.min() > 10)


def _held_levels(lr: np.ndarray) -> np.ndarray:
    """The learning rates a schedule holds for at least two consecutive epochs (the plateaus of a step schedule)."""
    lr = np.asarray(lr, dtype=float)
    same = np.isfinite(lr[1:]) & np.isclose(lr[1:], lr[:-1], rtol=1e-9, atol=0.0)
    return lr[1:][same]


def _lr_wants_log(schedules: Sequence[np.ndarray]) -> bool:
    """``lr_scale="auto"``: log only when the plateaus of a step schedule span at least 100x.

    A cosine or linear decay holds no value for two epochs, so it stays on a linear axis (on a log axis its
    approach to zero looks like a cliff); ``0.1 -> 0.01 -> 0.001`` steps get a log axis (equal steps).
    """
    levels = _positive(np.concatenate([_held_levels(lr) for lr in schedules])) if schedules else np.array([])
    return bool(levels.size and levels.max() / levels.min() >= 100)


def _same_schedule(runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> bool:
    """True when every run has the same epochs and the same learning rate at each of them."""
    first_epochs, first_lr = runs[0]
    return all(
        epochs.shape == first_epochs.shape
        and np.array_equal(epochs, first_epochs)
        and np.allclose(lr, first_lr, rtol=1e-9, atol=0.0, equal_nan=True)
        for epochs, lr in runs[1:]
    )


def _log_axis(ax: Axes) -> None:
    """A log y axis with plain-number ticks at 1, 2, 5 x 10^k (readable without reading exponents)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def plot_training_curves(
    histories: Any,
    *,
    labels: Sequence[str] | None = None,
    show_lr: bool = True,
    mark_best: bool = True,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    loss_scale: str = "auto",
    lr_scale: str = "auto",
) -> Figure:
    """Loss and accuracy (train solid, validation dashed), and the learning rate, per epoch.

    Args:
        histories: one History, a list of them (labels from ``history.label``) or a ``{label: History}``
            dict — several runs share the panels so they can be compared (plain vs residual, ...).
        labels: override the run labels, one per history.
        show_lr: add a third panel with the learning rate schedule. When every run has the same schedule it
            is drawn once, labelled ``"all runs"``.
        mark_best: mark the best *validation* epoch (:func:`best_epoch`) on the accuracy panel with a star
            and a dotted line. A run without validation data gets no mark: without held-out data there is
            no best epoch.
        title: figure title (e.g. ``"ResNet-20 (offline dataset shapes10, not CIFAR-10)"``).
        figsize: figure size in inches (default 5 x 4 per panel).
        loss_scale: ``"linear"``, ``"log"`` or ``"auto"`` (log when the losses span more than 10x, so that
            one diverging epoch does not flatten every other curve).
        lr_scale: ``"linear"``, ``"log"`` or ``"auto"`` (linear, unless the plateaus of a step schedule span
            at least 100x, like 0.1 -> 0.01 -> 0.001). A log axis says so in its label.

    Each run gets one colour; a run without validation data simply has no dashed line.
    """
    _check_scale("loss_scale", loss_scale)
    _check_scale("lr_scale", lr_scale)
    runs = _as_runs(histories, labels)
    ncols = 3 if show_lr else 2
    fig, axes = new_subplots(1, ncols, figsize=figsize or (5.0 * ncols, 4.0), squeeze=False)
    ax_loss, ax_acc = axes[0, 0], axes[0, 1]
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    losses: list[np.ndarray] = []
    schedules: list[tuple[np.ndarray, np.ndarray]] = []
    for i, (label, h) in enumerate(runs):
        losses += _draw_run_curves(ax_loss, ax_acc, label, h, colors[i % len(colors)], mark_best)
        schedules.append((np.asarray(_field(h, "epoch"), dtype=float), history_values(h, "lr")))
    loss_log = loss_scale == "log" or (loss_scale == "auto" and _loss_wants_log(losses))
    _finish_loss_and_accuracy(ax_loss, ax_acc, loss_log)
    if show_lr:
        _draw_lr_panel(axes[0, 2], [label for label, _ in runs], schedules, colors, lr_scale)
    _epoch_ticks(axes[0], runs)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _draw_run_curves(
    ax_loss: Axes, ax_acc: Axes, label: str, history: Any, color: str, mark_best: bool
) -> list[np.ndarray]:
    """One run's loss and accuracy (train solid, validation dashed) and its best-epoch mark; returns its losses."""
    epochs = np.asarray(_field(history, "epoch"), dtype=float)
    losses: list[np.ndarray] = []
    for key, ax, scale in (("loss", ax_loss, 1.0), ("acc", ax_acc, 100.0)):
        train = history_values(history, f"train_{key}") * scale
        val = history_values(history, f"val_{key}") * scale
        ax.plot(epochs, train, "-", color=color, marker="o", markersize=3, label=f"{label} train")
        if np.isfinite(val).any():
            ax.plot(epochs, val, "--", color=color, marker="s", markersize=3, label=f"{label} val")
        if key == "loss":
            losses += [train, val]
    best = best_epoch(history) if mark_best else None
    if best is not None:
        idx = int(np.flatnonzero(epochs == best)[0])
        ax_acc.axvline(best, color=color, linestyle=":", linewidth=1)
        ax_acc.plot(
            [best],
            [history_values(history, "val_acc")[idx] * 100.0],
            marker="*",
            markersize=14,
            color=color,
            linestyle="none",
            label=f"{label} best (epoch {best})",
        )
    return losses


def _finish_loss_and_accuracy(ax_loss: Axes, ax_acc: Axes, loss_log: bool) -> None:
    """Scales, labels, grids and legends of the loss and accuracy panels."""
    if loss_log:
        _log_axis(ax_loss)
    ax_loss.set(
        xlabel="epoch", ylabel="cross-entropy loss" + (" (log scale)" if loss_log else ""), title="Loss"
    )
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")


def _draw_lr_panel(
    ax_lr: Axes,
    labels: Sequence[str],
    schedules: Sequence[tuple[np.ndarray, np.ndarray]],
    colors: Sequence[str],
    lr_scale: str,
) -> None:
    """The learning-rate panel: one line per run, or one ``"all runs"`` line when the schedules agree."""
    if len(labels) > 1 and _same_schedule(schedules):
        ax_lr.plot(*schedules[0], "-", color="0.2", marker="o", markersize=3, label="all runs")
    else:
        for i, (label, (epochs, lr)) in enumerate(zip(labels, schedules, strict=True)):
            ax_lr.plot(epochs, lr, "-", color=colors[i % len(colors)], marker="o", markersize=3, label=label)
    lr_log = lr_scale == "log" or (lr_scale == "auto" and _lr_wants_log([lr for _, lr in schedules]))
    if lr_log:
        _log_axis(ax_lr)
    else:
        ax_lr.set_ylim(bottom=0)
    ax_lr.set(
        xlabel="epoch", ylabel="learning rate" + (" (log scale)" if lr_log else ""), title="Learning rate"
    )
    ax_lr.grid(True, alpha=0.3)
    if len(labels) > 1:
        ax_lr.legend(fontsize="small")


def _epoch_ticks(axes: Sequence[Axes], runs: Sequence[tuple[str, Any]]) -> None:
    """One tick per epoch for runs of at most 12 epochs, integer ticks otherwise."""
    n_epochs = int(max((np.nanmax(e) for _, h in runs if len(e := history_values(h, "epoch"))), default=0))
    for ax in axes:
        if 0 < n_epochs <= 12:  # few epochs: one tick per epoch (a locator would add fractional ticks)
            ax.set_xticks(range(1, n_epochs + 1))
        else:
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))


_MODEL_NAME = re.compile(r"(plain|resnet)([1-9][0-9]*)")


def split_model_name(name: str) -> tuple[str, int]:
    """``("plain", 56)`` for ``"plain56"``, ``("resnet", 110)`` for ``"resnet110"``.

    The family is ``"plain"`` (no shortcuts) or ``"resnet"`` (residual); the depth is the number of weighted
    layers in the name. Any other name (``"wrn16_4"``, ``"resnet20 (seed 1)"``, ``"plain"``) is a
    ``ValueError``: the family and depth of such a run cannot be told from its name.
    """
    match = _MODEL_NAME.fullmatch(str(name))
    if match is None:
        raise ValueError(
            f"cannot tell family and depth from the model name {name!r}: expected 'plain' or 'resnet' "
            "followed by the number of layers, like 'plain56' or 'resnet110'"
        )
    return match.group(1), int(match.group(2))


def plot_error_curves(
    histories: Any,
    num_classes: int,
    title: str = "",
    *,
    figsize: tuple[float, float] = (11.0, 4.0),
) -> Figure:
    """Training error (left) and validation error (right), in %, against epochs; He et al. 2015, Fig. 1 / 6.

    Args:
        histories: ``{model name: History}`` (or a list of Histories labelled with the model name); every
            name must be a plain or residual net like ``"plain56"`` / ``"resnet56"`` (see
            :func:`split_model_name`), since the family and depth pick the line's style.
        num_classes: number of classes, for the dotted chance line at ``1 - 1/num_classes`` error.
        title: figure title.

    Error is ``1 - accuracy`` of each epoch (``train_acc`` is measured on the augmented training batches).
    Plain nets are dashed in reds, residual nets solid in blues; within a family, the deeper the net, the
    darker its colour (shades are spread over all depths present, so plain-N and ResNet-N share a shade).
    A run without validation data has no line in the right panel. Each line is labelled with its model name;
    the legend is in the left panel. The two panels share the y axis.
    """
    runs = _as_runs(histories, None)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer of at least 2, got {num_classes!r}")
    parsed = {label: split_model_name(label) for label, _ in runs}
    depths = sorted({depth for _, depth in parsed.values()})
    shades = {d: 0.45 + 0.55 * i / max(1, len(depths) - 1) for i, d in enumerate(depths)}
    colormaps = {"plain": matplotlib.colormaps["Reds"], "resnet": matplotlib.colormaps["Blues"]}

    fig = new_figure(figsize=figsize)
    ax_train, ax_val = fig.subplots(1, 2, sharey=True)
    for label, h in runs:
        family, depth = parsed[label]
        epochs = history_values(h, "epoch")
        style: dict[str, Any] = {
            "color": colormaps[family](shades[depth]),
            "linestyle": "--" if family == "plain" else "-",
            "marker": "o",
            "markersize": 3,
            "label": label,
        }
        ax_train.plot(epochs, 100.0 * (1.0 - history_values(h, "train_acc")), **style)
        val_error = 100.0 * (1.0 - history_values(h, "val_acc"))
        if np.isfinite(val_error).any():
            ax_val.plot(epochs, val_error, **style)
    chance = 100.0 * (1.0 - 1.0 / num_classes)
    for ax, what in ((ax_train, "training error"), (ax_val, "validation error")):
        ax.axhline(chance, color="grey", linewidth=0.8, linestyle=":", label="_chance")
        ax.set(xlabel="epoch", ylabel=f"{what} (%)", title=what.capitalize())
        ax.grid(True, alpha=0.3)
    ax_train.legend()
    ax_train.annotate(
        "chance",
        (ax_train.get_xlim()[0], chance),
        fontsize="small",
        color="grey",
        xytext=(4, -12),
        textcoords="offset points",
    )
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_prediction_bars(
    top_k: Sequence[tuple[str, float]],
    ax: Axes | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Horizontal bars of one image's top-k class probabilities, the most likely class on top.

    Args:
        top_k: ``[(class_name, probability), ...]`` as returned by ``Classifier.predict`` (probabilities
            in [0, 1]); drawn in the given order from top to bottom, each bar labelled with its percentage.
        ax: draw into this Axes (e.g. one panel of a larger figure) instead of a new figure.
        title: Axes title.

    Returns the Figure that holds the bars (``ax.figure`` when ``ax`` is given).
    """
    pairs = [(str(name), float(p)) for name, p in top_k]
    if not pairs:
        raise ValueError("top_k is empty: pass a list of (class_name, probability) pairs")
    for name, p in pairs:
        if not (0.0 <= p <= 1.0) or math.isnan(p):
            raise ValueError(f"probability of {name!r} is {p}, expected a value in [0, 1] (not a percentage)")
    if ax is None:
        fig, ax = new_subplots(figsize=(5.0, 0.45 * len(pairs) + 1.0))
    else:
        fig = ax.figure
    names = [n for n, _ in pairs]
    probs = np.array([p for _, p in pairs]) * 100.0
    positions = np.arange(len(pairs))[::-1]
    colors = ["C0"] + ["C7"] * (len(pairs) - 1)
    bars = ax.barh(positions, probs, color=colors)
    ax.bar_label(bars, labels=[f"{p:.1f}%" for p in probs], padding=3, fontsize="small")
    ax.set_yticks(positions, labels=names)
    ax.set_xlim(0, 110)
    ax.set_xlabel("probability (%)")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_results(
    table: Any,
    *,
    metric: str = "accuracy",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Bar chart of mean ± std of ``metric`` per run, from :func:`resnet_course.analysis.classification.results_table`.

    ``table`` is the DataFrame that function returns (columns ``{metric}_mean``, ``{metric}_std``, index =
    run name). Accuracy-like metrics (values in [0, 1]) are drawn as percentages.
    """
    mean_col, std_col = f"{metric}_mean", f"{metric}_std"
    missing = [c for c in (mean_col, std_col) if c not in getattr(table, "columns", [])]
    if missing:
        raise ValueError(
            f"table has no column(s) {missing}; pass the DataFrame from resnet_course.analysis.classification.results_table(runs) "
            f"and a metric it summarises"
        )
    means = table[mean_col].to_numpy(dtype=float)
    stds = np.nan_to_num(table[std_col].to_numpy(dtype=float))
    percent = "acc" in metric and np.nanmax(means) <= 1.0
    scale = 100.0 if percent else 1.0
    if ax is None:
        fig, ax = new_subplots(figsize=(max(4.0, 1.1 * len(means) + 2), 4.0))
    else:
        fig = ax.figure
    names = [str(n) for n in table.index]
    bars = ax.bar(names, means * scale, yerr=stds * scale, capsize=4, color="C0")
    fmt = "{:.1f}%" if percent else "{:.3g}"
    ax.bar_label(bars, labels=[fmt.format(m * scale) for m in means], padding=3, fontsize="small")
    ax.set_ylabel(f"{metric} (%)" if percent else metric)
    ax.tick_params(axis="x", labelrotation=30)
    ax.grid(True, axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
