"""Tests for resnet_course.analysis.plots: figures are built under Agg and the data behind them is checked."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from dataclasses import dataclass, field  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from resnet_course.analysis import plots  # noqa: E402


@dataclass
class FakeHistory:
    epoch: list[int] = field(default_factory=lambda: [1, 2, 3, 4])
    train_loss: list[float] = field(default_factory=lambda: [2.0, 1.5, 1.0, 0.8])
    train_acc: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.7])
    val_loss: list = field(default_factory=lambda: [2.1, 1.6, 1.2, 1.3])
    val_acc: list = field(default_factory=lambda: [0.15, 0.35, 0.55, 0.50])
    lr: list[float] = field(default_factory=lambda: [0.1, 0.1, 0.01, 0.001])
    seconds: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0])
    label: str = "resnet20"
    best_epoch: int | None = 3


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert matches, f"no line labelled {label!r} in {[x.get_label() for x in ax.get_lines()]}"
    return matches[0]


def test_training_curves_single_history_plots_percentages_and_best_marker():
    h = FakeHistory()
    fig = plots.plot_training_curves(h, title="shapes10 (offline dataset, not CIFAR-10)")
    assert isinstance(fig, Figure)
    ax_loss, ax_acc, ax_lr = fig.axes
    np.testing.assert_allclose(_line(ax_loss, "resnet20 train").get_ydata(), h.train_loss)
    np.testing.assert_allclose(_line(ax_acc, "resnet20 val").get_ydata(), np.array(h.val_acc) * 100)
    star = _line(ax_acc, "resnet20 best (epoch 3)")
    assert list(star.get_xdata()) == [3] and star.get_ydata()[0] == pytest.approx(55.0)
    # lr 0.1, 0.1, 0.01, 0.001: one plateau only (the 0.01 and 0.001 are single epochs) -> linear from 0.
    assert ax_lr.get_yscale() == "linear" and ax_lr.get_ylabel() == "learning rate"
    assert ax_lr.get_ylim()[0] == 0
    np.testing.assert_allclose(_line(ax_lr, "resnet20").get_ydata(), h.lr)
    assert ax_lr.get_legend() is None  # one run: nothing to tell apart
    assert ax_loss.get_yscale() == "linear"  # losses span 0.8 .. 2.1, less than 10x
    assert fig._suptitle.get_text().startswith("shapes10")
    fig.canvas.draw()
    for ax in fig.axes:  # epochs are whole numbers: no 1.5 tick
        assert all(float(t).is_integer() for t in ax.get_xticks())


def test_training_curves_without_validation_and_dict_input():
    no_val = FakeHistory(val_loss=[], val_acc=[None, None, None, None], best_epoch=None, label="plain")
    with_nan = FakeHistory(val_acc=[0.1, float("nan"), 0.3, 0.2], label="x")
    fig = plots.plot_training_curves({"plain": no_val, "resnet": with_nan}, show_lr=False)
    assert len(fig.axes) == 2
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert "plain val" not in labels and "plain train" in labels and "resnet val" in labels
    # No validation data: no best epoch, so no star and no dotted line on the training curve.
    assert plots.best_epoch(no_val) is None
    assert not any(label.startswith("plain best") for label in labels)
    assert "resnet best (epoch 3)" in labels
    dotted = [line for line in fig.axes[1].get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and list(dotted[0].get_xdata()) == [3, 3]
    fig.canvas.draw()


def test_best_epoch_rules():
    assert plots.best_epoch(FakeHistory(best_epoch=2)) == 2
    assert plots.best_epoch(FakeHistory(best_epoch=None)) == 3  # argmax of val_acc
    assert plots.best_epoch(FakeHistory(best_epoch=9)) == 3  # not a recorded epoch
    # The given epoch has no validation accuracy: the best validation epoch instead.
    assert plots.best_epoch(FakeHistory(val_acc=[0.1, None, 0.4, 0.2], best_epoch=2)) == 3
    # Without validation there is no best, whatever the run recorded (the engine marks its last epoch).
    assert plots.best_epoch(FakeHistory(val_loss=[], val_acc=[], best_epoch=4)) is None
    assert plots.best_epoch(FakeHistory(epoch=[], train_loss=[], train_acc=[], val_loss=[], val_acc=[], lr=[])) is None
    as_dict = {k: getattr(FakeHistory(), k) for k in plots.HISTORY_KEYS} | {"best_epoch": 1}
    assert plots.best_epoch(as_dict) == 1


def test_training_curves_rejects_bad_input():
    with pytest.raises(ValueError, match="one value per epoch"):
        plots.plot_training_curves(FakeHistory(train_loss=[1.0, 2.0]))
    with pytest.raises(TypeError, match="History"):
        plots.plot_training_curves(object())
    with pytest.raises(ValueError, match="one label per history"):
        plots.plot_training_curves([FakeHistory(), FakeHistory()], labels=["a"])


def test_training_curves_mark_best_false_marks_nothing():
    fig = plots.plot_training_curves(FakeHistory(), mark_best=False, show_lr=False)
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert labels == ["resnet20 train", "resnet20 val"]
    assert not [line for line in fig.axes[1].get_lines() if line.get_linestyle() == ":"]


def test_training_curves_loss_scale():
    spike = FakeHistory(val_loss=[2.6, 17.7, 2.4, 1.3])  # one diverging validation epoch
    ax_loss = plots.plot_training_curves(spike, show_lr=False).axes[0]
    assert ax_loss.get_yscale() == "log" and ax_loss.get_ylabel() == "cross-entropy loss (log scale)"
    np.testing.assert_allclose(_line(ax_loss, "resnet20 val").get_ydata(), spike.val_loss)  # values unchanged
    fig = plots.plot_training_curves(spike, show_lr=False)
    fig.canvas.draw()
    # Plain numbers at 1, 2, 5 x 10^k, not 10^0 / 10^1 only.
    assert fig.axes[0].yaxis.get_major_formatter()(0.5, 0) == "0.5"
    assert {1.0, 2.0, 5.0, 10.0} <= set(np.round(fig.axes[0].get_yticks(), 6))
    linear = plots.plot_training_curves(spike, loss_scale="linear", show_lr=False).axes[0]
    assert linear.get_yscale() == "linear" and linear.get_ylabel() == "cross-entropy loss"
    forced = plots.plot_training_curves(FakeHistory(), loss_scale="log", show_lr=False).axes[0]
    assert forced.get_yscale() == "log"
    # auto never picks log for a zero loss (log cannot draw it).
    zero = FakeHistory(train_loss=[2.0, 1.0, 0.1, 0.0])
    assert plots.plot_training_curves(zero, show_lr=False).axes[0].get_yscale() == "linear"
    with pytest.raises(ValueError, match="loss_scale must be one of"):
        plots.plot_training_curves(FakeHistory(), loss_scale="symlog")
    with pytest.raises(ValueError, match="lr_scale must be one of"):
        plots.plot_training_curves(FakeHistory(), lr_scale="Log")


def _with_lr(lr, label="run", **kwargs):
    n = len(lr)
    return FakeHistory(
        epoch=list(range(1, n + 1)),
        train_loss=[1.0] * n,
        train_acc=[0.5] * n,
        val_loss=[1.0] * n,
        val_acc=[0.5] * n,
        lr=list(lr),
        seconds=[1.0] * n,
        label=label,
        **kwargs,
    )


def test_training_curves_one_lr_line_when_all_runs_share_the_schedule():
    cosine = 0.05 * (1 + np.cos(np.pi * np.arange(1, 9) / 8))
    runs = [_with_lr(cosine, label=name) for name in ("plain20", "plain32", "resnet20")]
    ax_lr = plots.plot_training_curves(runs).axes[2]
    lines = ax_lr.get_lines()
    assert [line.get_label() for line in lines] == ["all runs"]
    np.testing.assert_allclose(lines[0].get_ydata(), cosine)
    assert [t.get_text() for t in ax_lr.get_legend().get_texts()] == ["all runs"]
    # Different schedules: one line per run, labelled with the run.
    runs[1] = _with_lr(cosine * 2, label="plain32")
    ax_lr = plots.plot_training_curves(runs).axes[2]
    assert [line.get_label() for line in ax_lr.get_lines()] == ["plain20", "plain32", "resnet20"]
    # Same values over different epochs are different schedules.
    shorter = [_with_lr(cosine, label="a"), _with_lr(cosine[:4], label="b")]
    assert len(plots.plot_training_curves(shorter).axes[2].get_lines()) == 2


def test_training_curves_lr_axis_linear_for_a_cosine_log_for_step_plateaus():
    cosine = 0.05 * (1 + np.cos(np.pi * np.arange(0, 8) / 7)) + 1e-7  # 0.1 down to ~1e-7: a 1e6 span
    ax_lr = plots.plot_training_curves(_with_lr(cosine)).axes[2]
    assert ax_lr.get_yscale() == "linear" and ax_lr.get_ylabel() == "learning rate"
    assert ax_lr.get_ylim()[0] == 0
    steps = [0.1] * 4 + [0.01] * 2 + [0.001] * 2  # He et al.: divide by 10 twice
    ax_lr = plots.plot_training_curves([_with_lr(steps, label="a"), _with_lr(steps, label="b")]).axes[2]
    assert ax_lr.get_yscale() == "log" and ax_lr.get_ylabel() == "learning rate (log scale)"
    assert [line.get_label() for line in ax_lr.get_lines()] == ["all runs"]
    one_step = [0.1] * 4 + [0.01] * 4  # 10x: readable on a linear axis
    assert plots.plot_training_curves(_with_lr(one_step)).axes[2].get_yscale() == "linear"
    warmup_then_steps = [0.001, 0.05] + steps  # warm-up epochs are no plateaus; the steps still are
    assert plots.plot_training_curves(_with_lr(warmup_then_steps)).axes[2].get_yscale() == "log"
    assert plots.plot_training_curves(_with_lr(cosine), lr_scale="log").axes[2].get_yscale() == "log"
    assert plots.plot_training_curves(_with_lr(steps), lr_scale="linear").axes[2].get_yscale() == "linear"
    no_lr = plots.plot_training_curves(_with_lr([None] * 3))  # a run that recorded no learning rate
    no_lr.canvas.draw()


def test_prediction_bars_order_and_values():
    top = [("cat", 0.7), ("dog", 0.2), ("frog", 0.1)]
    fig = plots.plot_prediction_bars(top, title="top-3")
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    ys = [p.get_y() for p in ax.patches]
    np.testing.assert_allclose(widths, [70, 20, 10])
    assert ys[0] > ys[1] > ys[2]  # most likely class on top
    tick_names = {round(t.get_position()[1]): t.get_text() for t in ax.get_yticklabels()}
    assert tick_names == {2: "cat", 1: "dog", 0: "frog"}
    fig.canvas.draw()


def test_prediction_bars_into_existing_axes_and_errors():
    fig, (a, b) = plt.subplots(1, 2)
    out = plots.plot_prediction_bars([("a", 1.0)], ax=b)
    assert out is fig and len(b.patches) == 1 and len(a.patches) == 0
    with pytest.raises(ValueError, match="empty"):
        plots.plot_prediction_bars([])
    with pytest.raises(ValueError, match="not a percentage"):
        plots.plot_prediction_bars([("cat", 70.0)])


def test_plot_results_from_table():
    table = pd.DataFrame(
        {"accuracy_mean": [0.8, 0.9], "accuracy_std": [0.01, np.nan]}, index=pd.Index(["plain20", "resnet20"])
    )
    fig = plots.plot_results(table, title="runs")
    heights = [p.get_height() for p in fig.axes[0].patches]
    np.testing.assert_allclose(heights, [80, 90])
    with pytest.raises(ValueError, match="results_table"):
        plots.plot_results(table, metric="seconds")


def test_training_curves_accept_the_real_history_without_validation():
    from resnet_course.training.history import History

    h = History(label="resnet20")
    for e in range(1, 4):
        h.append(epoch=e, train_loss=1.0 / e, train_acc=0.3 * e, val_loss=None, val_acc=None, lr=0.1, seconds=1.0)
    h.best_epoch = 3  # the training engine marks the last epoch when there is no validation split
    fig = plots.plot_training_curves(h)
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert labels == ["resnet20 train"]  # no validation line, and no "best" on the training curve
    np.testing.assert_allclose(_line(fig.axes[1], "resnet20 train").get_ydata(), [30, 60, 90])
    assert plots.best_epoch(h) is None


def test_package_figures_are_released_from_pyplot_so_notebooks_show_them_once():
    import matplotlib.pyplot as plt

    from resnet_course.analysis.plots import new_figure, new_subplots

    before = set(plt.get_fignums())
    fig = new_figure(figsize=(2, 2))
    fig2, axes = new_subplots(1, 2, squeeze=False)
    assert set(plt.get_fignums()) == before  # nothing left for the inline backend to show a second time
    assert axes.shape == (1, 2) and fig2.get_size_inches().shape == (2,)
    fig.add_subplot().plot([0, 1])
    from io import BytesIO

    buf = BytesIO()
    fig.savefig(buf, format="png")  # still drawable and renderable after being released
    assert buf.getvalue()[:4] == b"\x89PNG"


def _error_history(train_acc, val_acc=None):
    n = len(train_acc)
    return FakeHistory(
        epoch=list(range(1, n + 1)),
        train_loss=[1.0] * n,
        train_acc=list(train_acc),
        val_loss=[1.0] * n if val_acc else [],
        val_acc=list(val_acc) if val_acc else [None] * n,
        lr=[0.1] * n,
        seconds=[1.0] * n,
        best_epoch=None,
    )


def test_split_model_name():
    assert plots.split_model_name("plain56") == ("plain", 56)
    assert plots.split_model_name("resnet110") == ("resnet", 110)
    for bad in ("wrn16_4", "resnet", "resnet20 (seed 1)", "plain020", "preact_resnet18"):
        with pytest.raises(ValueError, match="like 'plain56' or 'resnet110'"):
            plots.split_model_name(bad)


def test_error_curves_styles_values_and_chance_line():
    histories = {
        "plain20": _error_history([0.3, 0.6, 0.8], [0.25, 0.55, 0.75]),
        "plain56": _error_history([0.2, 0.5, 0.7], [0.2, 0.5, 0.65]),
        "resnet20": _error_history([0.3, 0.65, 0.85], [0.3, 0.6, 0.8]),
        "resnet56": _error_history([0.35, 0.7, 0.9]),  # no validation split
    }
    fig = plots.plot_error_curves(histories, num_classes=10, title="Degradation on shapes10")
    assert isinstance(fig, Figure)
    ax_train, ax_val = fig.axes
    assert fig._suptitle.get_text() == "Degradation on shapes10"
    assert (ax_train.get_xlabel(), ax_train.get_ylabel()) == ("epoch", "training error (%)")
    assert ax_val.get_ylabel() == "validation error (%)"
    assert ax_train.get_shared_y_axes().joined(ax_train, ax_val)

    def curves(ax):
        return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}

    train, val = curves(ax_train), curves(ax_val)
    assert list(train) == ["plain20", "plain56", "resnet20", "resnet56"]
    assert list(val) == ["plain20", "plain56", "resnet20"]  # resnet56 has no validation data
    np.testing.assert_allclose(train["plain56"].get_ydata(), [80, 50, 30])
    np.testing.assert_allclose(train["plain56"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(val["resnet20"].get_ydata(), [70, 40, 20])
    for name, line in train.items():
        assert line.get_linestyle() == ("--" if name.startswith("plain") else "-")
        red, green, blue, _ = line.get_color()
        assert (red > blue) if name.startswith("plain") else (blue > red)
    # Darker (lower luminance) means deeper; plain-N and ResNet-N share the shade.
    assert sum(train["plain56"].get_color()[:3]) < sum(train["plain20"].get_color()[:3])
    assert sum(train["resnet56"].get_color()[:3]) < sum(train["resnet20"].get_color()[:3])
    assert val["plain20"].get_color() == train["plain20"].get_color()
    for ax in (ax_train, ax_val):
        chance = [line for line in ax.get_lines() if line.get_label() == "_chance"]
        assert len(chance) == 1 and chance[0].get_linestyle() == ":"
        np.testing.assert_allclose(chance[0].get_ydata(), [90, 90])
    legend = [t.get_text() for t in ax_train.get_legend().get_texts()]
    assert legend == ["plain20", "plain56", "resnet20", "resnet56"]
    assert ax_val.get_legend() is None
    fig.canvas.draw()


def test_error_curves_reject_bad_input():
    h = _error_history([0.2, 0.4])
    with pytest.raises(ValueError, match="'wrn16_4'"):
        plots.plot_error_curves({"plain20": h, "wrn16_4": h}, num_classes=10)
    with pytest.raises(ValueError, match="num_classes must be an integer of at least 2"):
        plots.plot_error_curves({"plain20": h}, num_classes=1)
    with pytest.raises(ValueError, match="no histories"):
        plots.plot_error_curves({}, num_classes=10)


def test_few_epochs_get_one_tick_each_and_a_single_epoch_is_visible() -> None:
    from resnet_course.analysis.plots import plot_training_curves
    from resnet_course.training.history import History

    h = History(label="one")
    h.append(epoch=1, train_loss=2.0, train_acc=0.2, val_loss=2.1, val_acc=0.2, lr=0.1, seconds=1.0)
    fig = plot_training_curves([h])
    for ax in fig.axes[:3]:
        assert list(ax.get_xticks()) == [1.0]
    lr_line = fig.axes[2].get_lines()[0]
    assert lr_line.get_marker() == "o"  # a one-epoch LR 'line' is a visible point
