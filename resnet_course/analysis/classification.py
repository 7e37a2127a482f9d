"""Analysing predictions: confusion matrix, per-class report, most-confused pairs, mistakes, run tables.

The degradation verdict of notebook 01 lives in :mod:`resnet_course.analysis.degradation`.

Predictions are duck-typed so that this module does not import :mod:`resnet_course.training.predictions`: anything
with the attributes (or a mapping with the keys) ``labels`` (true classes, ``(N,)``), ``preds``
(predicted classes, ``(N,)``) and ``probs`` (softmax probabilities, ``(N, C)``) works, like the
``Predictions`` returned by ``resnet_course.training.predictions.predict``.

Metrics come from scikit-learn (``confusion_matrix``, ``precision_recall_fscore_support``); figures are
drawn with seaborn / matplotlib and returned as :class:`matplotlib.figure.Figure` (never shown here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from resnet_course.analysis.plots import new_subplots

__all__ = [
    "confusion",
    "plot_confusion_matrix",
    "classification_report",
    "per_class_accuracy",
    "most_confused",
    "mistake_indices",
    "to_display_images",
    "plot_mistakes",
    "plot_confusion_pair",
    "results_table",
]


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def _as_int_array(values: Any, name: str) -> np.ndarray:
    """A 1-D int64 NumPy array from a list, array or tensor; raise a ``ValueError`` naming ``name``."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer class indices, got values like {arr[:3].tolist()}")
    return arr.astype(np.int64)


def _class_names(classes: int | Sequence[str]) -> list[str]:
    """Class names from a list of names, or ``["0", "1", ...]`` from a number of classes."""
    if isinstance(classes, int | np.integer):
        if classes < 1:
            raise ValueError(f"number of classes must be positive, got {classes}")
        return [str(i) for i in range(int(classes))]
    names = [str(c) for c in classes]
    if not names:
        raise ValueError("classes is empty: pass the list of class names or the number of classes")
    return names


def _check_pair(
    labels: Any, preds: Any, classes: int | Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y_true = _as_int_array(labels, "labels")
    y_pred = _as_int_array(preds, "preds")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"labels and preds must have the same length, got {len(y_true)} and {len(y_pred)}")
    names = _class_names(classes)
    for arr, what in ((y_true, "labels"), (y_pred, "preds")):
        bad = arr[(arr < 0) | (arr >= len(names))]
        if bad.size:
            raise ValueError(
                f"{what} contain class index {int(bad[0])}, outside 0..{len(names) - 1} for "
                f"{len(names)} classes; pass the full class list (or the right number of classes)"
            )
    return y_true, y_pred, names


def _field(obj: Any, key: str) -> Any:
    value = obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)
    if value is None:
        raise TypeError(
            f"expected Predictions with labels, preds and probs (from resnet_course.training.predictions.predict), "
            f"got {type(obj).__name__} without {key!r}"
        )
    return value


def _unpack_predictions(predictions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = _as_int_array(_field(predictions, "labels"), "labels")
    preds = _as_int_array(_field(predictions, "preds"), "preds")
    probs = _field(predictions, "probs")
    probs = np.asarray(
        probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else probs, dtype=float
    )
    if probs.ndim != 2 or probs.shape[0] != len(labels) or len(preds) != len(labels):
        raise ValueError(
            f"Predictions must have labels (N,), preds (N,) and probs (N, C); got {labels.shape}, "
            f"{preds.shape} and {probs.shape}"
        )
    return labels, preds, probs


# --------------------------------------------------------------------------------------------------
# Confusion matrix and per-class metrics
# --------------------------------------------------------------------------------------------------


def confusion(
    labels: Any, preds: Any, classes: int | Sequence[str], normalize: str | None = None
) -> np.ndarray:
    """The ``C×C`` confusion matrix: row = true class, column = predicted class (scikit-learn convention).

    Args:
        labels, preds: true and predicted class indices (lists, arrays or tensors of equal length).
        classes: the number of classes or the list of class names; every class gets a row and a column
            even when it never occurs.
        normalize: ``None`` for counts (the matrix sums to the number of samples) or ``"true"`` to divide
            each row by its class's support (rows sum to 1; classes absent from ``labels`` get a row of 0).
    """
    if normalize not in (None, "true"):
        raise ValueError(f"normalize must be None (counts) or 'true' (row-normalised), got {normalize!r}")
    y_true, y_pred, names = _check_pair(labels, preds, classes)
    return confusion_matrix(y_true, y_pred, labels=np.arange(len(names)), normalize=normalize)


def plot_confusion_matrix(
    labels: Any,
    preds: Any,
    classes: int | Sequence[str],
    normalize: str | None = None,
    *,
    annotate: bool | None = None,
    title: str | None = None,
    ax: Axes | None = None,
    cmap: str = "Blues",
) -> Figure:
    """Heat map of :func:`confusion` with class names on both axes (seaborn ``heatmap``).

    Readable for 10 classes (each cell annotated with its count or percentage) and for 100 (no cell
    annotations, small tick labels, every k-th name so that at most ~50 are written per axis).

    Args:
        normalize: ``None`` (counts) or ``"true"`` (each row divided by its support, shown in %).
        annotate: write the value in each cell; by default only when there are at most 20 classes.
    """
    cm = confusion(labels, preds, classes, normalize=normalize)
    names = _class_names(classes)
    n = len(names)
    if annotate is None:
        annotate = n <= 20
    size = min(max(5.0, 0.55 * n + 2.0), 18.0)
    if ax is None:
        fig, ax = new_subplots(figsize=(size + 1.5, size))
    else:
        fig = ax.figure
    values = cm * 100.0 if normalize else cm
    step = max(1, math.ceil(n / 50))
    tick_labels = [name if i % step == 0 else "" for i, name in enumerate(names)]
    sns.heatmap(
        values,
        ax=ax,
        cmap=cmap,
        annot=annotate,
        fmt=".0f" if normalize else "d",
        xticklabels=tick_labels,
        yticklabels=tick_labels,
        square=n <= 20,
        cbar_kws={"label": "% of true class" if normalize else "count"},
        annot_kws={"fontsize": 8 if n > 10 else 10},
    )
    fontsize = 10 if n <= 10 else (8 if n <= 30 else 7)
    ax.tick_params(axis="x", labelrotation=90, labelsize=fontsize)
    ax.tick_params(axis="y", labelrotation=0, labelsize=fontsize)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total = int(confusion(labels, preds, classes).sum())
    ax.set_title(
        title or f"Confusion matrix ({'row-normalised, %' if normalize else 'counts'}; {total} images)"
    )
    fig.tight_layout()
    return fig


def per_class_accuracy(labels: Any, preds: Any, classes: int | Sequence[str]) -> np.ndarray:
    """Per-class accuracy: the fraction of each true class predicted correctly (= recall), NaN if absent."""
    cm = confusion(labels, preds, classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def classification_report(labels: Any, preds: Any, classes: int | Sequence[str]) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support (scikit-learn), plus per-class accuracy.

    One row per class (index = class name) with columns ``precision, recall, f1, support, accuracy``;
    ``accuracy`` is correct / support for that class (equal to recall, NaN for a class with no samples).
    Precision of a class that is never predicted is reported as 0 (``zero_division=0``). The ``attrs``
    of the frame hold the overall ``accuracy`` and the ``macro_f1``.
    """
    y_true, y_pred, names = _check_pair(labels, preds, classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(names)), zero_division=0
    )
    report = pd.DataFrame(
        {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support.astype(int),
            "accuracy": per_class_accuracy(y_true, y_pred, names),
        },
        index=pd.Index(names, name="class"),
    )
    report.attrs["accuracy"] = float((y_true == y_pred).mean()) if len(y_true) else float("nan")
    report.attrs["macro_f1"] = float(f1.mean())
    return report


def most_confused(labels: Any, preds: Any, classes: int | Sequence[str], k: int | None = 10) -> pd.DataFrame:
    """The off-diagonal cells of the confusion matrix, largest first: which true class is taken for which.

    Columns: ``true``, ``predicted`` (names), ``true_index``, ``pred_index``, ``count`` and
    ``fraction`` (count / support of the true class). Only pairs with ``count > 0``; the top ``k``
    (all when ``k`` is ``None``). Ties are broken by fraction, then by class order.
    """
    cm = confusion(labels, preds, classes)
    names = _class_names(classes)
    support = cm.sum(axis=1)
    rows = [
        {
            "true": names[i],
            "predicted": names[j],
            "true_index": i,
            "pred_index": j,
            "count": int(cm[i, j]),
            "fraction": float(cm[i, j] / support[i]),
        }
        for i in range(len(names))
        for j in range(len(names))
        if i != j and cm[i, j] > 0
    ]
    columns = ["true", "predicted", "true_index", "pred_index", "count", "fraction"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.sort_values(
        ["count", "fraction", "true_index", "pred_index"], ascending=[False, False, True, True], kind="stable"
    ).reset_index(drop=True)
    return table if k is None else table.head(k)


# --------------------------------------------------------------------------------------------------
# Mistakes galleries
# --------------------------------------------------------------------------------------------------


def _class_index(cls: int | str, names: list[str], what: str) -> int:
    if isinstance(cls, str):
        if cls not in names:
            raise ValueError(f"{what} {cls!r} is not a class name; classes are {names}")
        return names.index(cls)
    if not 0 <= int(cls) < len(names):
        raise ValueError(f"{what} index {cls} is outside 0..{len(names) - 1}")
    return int(cls)


def mistake_indices(
    predictions: Any,
    *,
    true_class: int | None = None,
    pred_class: int | None = None,
    k: int | None = None,
) -> np.ndarray:
    """Indices of misclassified samples, the most confident mistakes first.

    Confidence is the probability the model gave to its (wrong) prediction, ``probs[i, preds[i]]``.
    ``true_class`` / ``pred_class`` keep only mistakes of that true or predicted class index, ``k`` keeps
    the first ``k``.
    """
    labels, preds, probs = _unpack_predictions(predictions)
    mask = labels != preds
    if true_class is not None:
        mask &= labels == true_class
    if pred_class is not None:
        mask &= preds == pred_class
    idx = np.flatnonzero(mask)
    confidence = probs[idx, preds[idx]]
    idx = idx[np.argsort(-confidence, kind="stable")]
    return idx if k is None else idx[:k]


def to_display_images(
    images: Any, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> np.ndarray:
    """Images ``(N, 3, H, W)`` → float ``(N, H, W, 3)`` in [0, 1] for ``imshow``.

    Accepts uint8 tensors/arrays (the data contract's ``ImageTensors.images``; divided by 255) or float
    tensors normalised with ``mean``/``std`` (un-normalised as ``x * std + mean``, then clipped). A float
    input without ``mean``/``std`` must already be in [0, 1]. A single image ``(3, H, W)`` is accepted too.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"expected images of shape (N, 3, H, W) (channels first), got {arr.shape}")
    if (mean is None) != (std is None):
        raise ValueError("pass both mean and std (the dataset's normalisation), or neither")
    if arr.dtype == np.uint8:
        if mean is not None:
            raise ValueError("uint8 images are not normalised; do not pass mean/std with them")
        out = arr.astype(np.float32) / 255.0
    else:
        out = arr.astype(np.float32)
        if mean is not None:
            m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
            s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
            if m.shape[1] != out.shape[1] or s.shape[1] != out.shape[1]:
                raise ValueError(
                    f"mean/std need one value per channel ({out.shape[1]}), got {len(mean)}/{len(std)}"
                )
            out = out * s + m
        elif out.size and (out.min() < -1e-3 or out.max() > 1 + 1e-3):
            raise ValueError(
                f"float images with values in [{out.min():.2f}, {out.max():.2f}] look normalised; "
                "pass the dataset's mean and std to un-normalise them (or pass the uint8 images)"
            )
        out = np.clip(out, 0.0, 1.0)
    out = out.transpose(0, 2, 3, 1)
    return np.repeat(out, 3, axis=3) if out.shape[3] == 1 else out


def _gallery(
    images: np.ndarray,
    indices: np.ndarray,
    captions: list[str],
    *,
    ncols: int,
    title: str | None,
    empty_message: str,
) -> Figure:
    n = len(indices)
    if n == 0:
        fig, ax = new_subplots(figsize=(4.0, 1.5))
        ax.text(0.5, 0.5, empty_message, ha="center", va="center")
        ax.set_axis_off()
    else:
        ncols = max(1, min(ncols, n))
        nrows = math.ceil(n / ncols)
        fig, axes = new_subplots(nrows, ncols, figsize=(1.9 * ncols, 2.2 * nrows), squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, i, caption in zip(axes.flat, indices, captions, strict=False):
            ax.imshow(images[i], interpolation="nearest")
            ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_mistakes(
    images: Any,
    predictions: Any,
    classes: Sequence[str],
    *,
    k: int = 16,
    true_class: int | str | None = None,
    pred_class: int | str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    ncols: int = 8,
    title: str | None = None,
) -> Figure:
    """Gallery of the ``k`` most confident mistakes: each image with its true class, predicted class and
    the predicted class's probability.

    Args:
        images: the evaluated images in the same order as ``predictions`` — uint8 ``(N, 3, H, W)`` or
            normalised floats with ``mean``/``std`` (see :func:`to_display_images`).
        predictions: ``Predictions(labels, preds, probs)`` from ``resnet_course.training.predictions.predict`` (or a dict).
        true_class, pred_class: restrict to one true and/or predicted class (index or name).

    The indices shown are ``fig.mistake_indices`` (into ``images``), so tests and notebooks can use them.
    """
    labels, preds, probs = _unpack_predictions(predictions)
    names = _class_names(classes)
    n_images = len(images)
    if n_images != len(labels):
        raise ValueError(
            f"got {n_images} images for {len(labels)} predictions; pass the evaluated images in order"
        )
    t = None if true_class is None else _class_index(true_class, names, "true_class")
    p = None if pred_class is None else _class_index(pred_class, names, "pred_class")
    idx = mistake_indices(predictions, true_class=t, pred_class=p, k=k)
    shown = to_display_images(_take(images, idx), mean, std)
    captions = [
        f"true: {names[labels[i]]}\npred: {names[preds[i]]} ({probs[i, preds[i]] * 100:.0f}%)" for i in idx
    ]
    what = (
        ""
        if t is None and p is None
        else (f" ({names[t] if t is not None else 'any'} → {names[p] if p is not None else 'any'})")
    )
    fig = _gallery(
        shown,
        np.arange(len(idx)),
        captions,
        ncols=ncols,
        title=title or f"Most confident mistakes{what}",
        empty_message=f"no mistakes{what}",
    )
    fig.mistake_indices = idx  # type: ignore[attr-defined]
    return fig


def _take(images: Any, idx: np.ndarray) -> Any:
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(idx, dtype=torch.long)]
    return np.asarray(images)[idx]


def plot_confusion_pair(
    images: Any,
    predictions: Any,
    classes: Sequence[str],
    true_class: int | str,
    pred_class: int | str,
    *,
    k: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    ncols: int = 8,
    title: str | None = None,
) -> Figure:
    """Gallery of the images of one true class predicted as one other class (e.g. ``"cat"`` → ``"dog"``),
    most confident first — pick the pair from :func:`most_confused`."""
    return plot_mistakes(
        images,
        predictions,
        classes,
        k=k,
        true_class=true_class,
        pred_class=pred_class,
        mean=mean,
        std=std,
        ncols=ncols,
        title=title,
    )


# --------------------------------------------------------------------------------------------------
# Results across runs and seeds
# --------------------------------------------------------------------------------------------------


def results_table(
    runs: Iterable[Mapping[str, Any]] | pd.DataFrame,
    *,
    name: str = "name",
    metrics: Sequence[str] = ("accuracy", "params", "seconds"),
) -> pd.DataFrame:
    """Mean ± standard deviation of each metric over the seeds of every run, one row per run name.

    Args:
        runs: one record per (run, seed), e.g. ``{"name": "resnet20", "seed": 0, "accuracy": 0.91,
            "params": 272474, "seconds": 95.0}`` (a list of dicts or a DataFrame). ``accuracy`` is a
            fraction in [0, 1].
        name: the column that identifies a run (records with the same name are seeds of one run).
        metrics: numeric columns to summarise.

    Returns a DataFrame indexed by run name (in first-seen order) with ``seeds`` (number of records) and,
    for each metric, ``{metric}_mean`` and ``{metric}_std`` (sample std, ddof=1; NaN for a single seed),
    plus a text column ``accuracy`` like ``"91.23 ± 0.45 %"`` when accuracy is summarised.
    """
    frame = runs.copy() if isinstance(runs, pd.DataFrame) else pd.DataFrame(list(runs))
    if frame.empty:
        raise ValueError(
            "no runs given: pass a list of dicts like {'name': ..., 'accuracy': ..., 'seed': ...}"
        )
    missing = [c for c in (name, *metrics) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"run records lack {missing}; each needs {name!r} and {list(metrics)} (got {list(frame.columns)})"
        )
    for m in metrics:
        try:
            frame[m] = pd.to_numeric(frame[m])
        except (TypeError, ValueError) as err:
            raise ValueError(f"metric {m!r} must be numeric in every run record: {err}") from None
    grouped = frame.groupby(name, sort=False)
    table = pd.DataFrame({"seeds": grouped.size()})
    for m in metrics:
        table[f"{m}_mean"] = grouped[m].mean()
        table[f"{m}_std"] = grouped[m].std(ddof=1)
    if "accuracy" in metrics:
        table["accuracy"] = [
            f"{mu * 100:.2f} %" if np.isnan(sd) else f"{mu * 100:.2f} ± {sd * 100:.2f} %"
            for mu, sd in zip(table["accuracy_mean"], table["accuracy_std"], strict=True)
        ]
    table.index.name = name
    return table
