"""Tests for resnet_course.analysis.classification: metrics against hand-computed values, figures under Agg."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from dataclasses import dataclass  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from resnet_course.analysis import classification as ev  # noqa: E402

CLASSES = ["cat", "dog", "frog"]
# 8 samples: cat 3 (1 taken for dog), dog 3 (2 taken for cat), frog 2 (all right).
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
PREDS = np.array([0, 0, 1, 0, 0, 1, 2, 2])


@dataclass
class FakePredictions:
    labels: np.ndarray
    preds: np.ndarray
    probs: np.ndarray


def _fake_predictions() -> FakePredictions:
    probs = np.full((8, 3), 0.05)
    conf = [0.9, 0.8, 0.6, 0.95, 0.7, 0.5, 0.9, 0.9]
    for i, (p, c) in enumerate(zip(PREDS, conf, strict=True)):
        probs[i] = (1 - c) / 2
        probs[i, p] = c
    return FakePredictions(LABELS, PREDS, probs)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_confusion_counts_and_normalised_rows():
    cm = ev.confusion(LABELS, PREDS, CLASSES)
    np.testing.assert_array_equal(cm, [[2, 1, 0], [2, 1, 0], [0, 0, 2]])
    assert cm.sum() == len(LABELS)
    cmn = ev.confusion(torch.tensor(LABELS), torch.tensor(PREDS), 3, normalize="true")
    np.testing.assert_allclose(cmn.sum(axis=1), 1.0)
    assert cmn[1, 0] == pytest.approx(2 / 3)


def test_confusion_keeps_absent_classes_and_validates():
    cm = ev.confusion([0, 1], [0, 1], 4)
    assert cm.shape == (4, 4) and cm.sum() == 2
    with pytest.raises(ValueError, match="outside 0..2"):
        ev.confusion([0, 3], [0, 1], CLASSES)
    with pytest.raises(ValueError, match="same length"):
        ev.confusion([0, 1], [0], CLASSES)
    with pytest.raises(ValueError, match="normalize"):
        ev.confusion(LABELS, PREDS, CLASSES, normalize="all")


@pytest.mark.parametrize("normalize", [None, "true"])
def test_plot_confusion_matrix_10_classes_annotated(normalize):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 200)
    preds = np.where(rng.random(200) < 0.7, labels, rng.integers(0, 10, 200))
    names = [f"class{i}" for i in range(10)]
    fig = ev.plot_confusion_matrix(labels, preds, names, normalize=normalize, title="t")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    mesh = ax.collections[0]
    data = np.asarray(mesh.get_array()).reshape(10, 10)
    if normalize:
        np.testing.assert_allclose(data.sum(axis=1), 100.0)
    else:
        assert data.sum() == 200
    assert len(ax.texts) == 100  # one annotation per cell
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    assert ax.get_title() == "t"
    fig.canvas.draw()


def test_plot_confusion_matrix_100_classes_stays_readable():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 100, 1000)
    preds = rng.integers(0, 100, 1000)
    names = [f"c{i}" for i in range(100)]
    fig = ev.plot_confusion_matrix(labels, preds, names)
    ax = fig.axes[0]
    assert len(ax.texts) == 0  # no per-cell annotations
    shown = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert 0 < len(shown) <= 50 and shown[0] == "c0"
    assert "1000 images" in ax.get_title()


def test_classification_report_matches_hand_computation():
    report = ev.classification_report(LABELS, PREDS, CLASSES)
    assert list(report.index) == CLASSES
    np.testing.assert_allclose(report["precision"], [2 / 4, 1 / 2, 1.0])
    np.testing.assert_allclose(report["recall"], [2 / 3, 1 / 3, 1.0])
    np.testing.assert_allclose(report["accuracy"], report["recall"])
    assert report["support"].tolist() == [3, 3, 2]
    assert report.attrs["accuracy"] == pytest.approx(5 / 8)
    acc = ev.per_class_accuracy([0, 0], [0, 1], 3)
    assert acc[0] == 0.5 and np.isnan(acc[1])


def test_most_confused_ranking():
    table = ev.most_confused(LABELS, PREDS, CLASSES)
    assert list(zip(table["true"], table["predicted"], table["count"], strict=True)) == [
        ("dog", "cat", 2),
        ("cat", "dog", 1),
    ]
    assert table["fraction"].iloc[0] == pytest.approx(2 / 3)
    assert len(ev.most_confused(LABELS, PREDS, CLASSES, k=1)) == 1
    assert ev.most_confused([0, 1], [0, 1], 2).empty


def test_mistake_indices_most_confident_first():
    p = _fake_predictions()
    # Mistakes: index 2 (cat->dog, 0.6), 3 (dog->cat, 0.95), 4 (dog->cat, 0.7).
    assert ev.mistake_indices(p).tolist() == [3, 4, 2]
    assert ev.mistake_indices(p, true_class=0).tolist() == [2]
    assert ev.mistake_indices(p, pred_class=0, k=1).tolist() == [3]
    as_dict = {"labels": p.labels, "preds": p.preds, "probs": p.probs}
    assert ev.mistake_indices(as_dict).tolist() == [3, 4, 2]
    with pytest.raises(TypeError, match="probs"):
        ev.mistake_indices({"labels": p.labels, "preds": p.preds})


def test_to_display_images_uint8_and_normalised_agree():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    direct = ev.to_display_images(images)
    assert direct.shape == (4, 8, 8, 3) and direct.min() >= 0 and direct.max() <= 1
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    normalised = (images.float() / 255 - m) / s
    np.testing.assert_allclose(ev.to_display_images(normalised, mean, std), direct, atol=1e-5)
    with pytest.raises(ValueError, match="mean and std"):
        ev.to_display_images(normalised)
    with pytest.raises(ValueError, match="channels first"):
        ev.to_display_images(np.zeros((2, 8, 8, 3), dtype=np.uint8))


def test_plot_mistakes_gallery_and_pair():
    p = _fake_predictions()
    images = torch.randint(0, 256, (8, 3, 8, 8), dtype=torch.uint8)
    fig = ev.plot_mistakes(images, p, CLASSES, title="mistakes")
    assert fig.mistake_indices.tolist() == [3, 4, 2]
    titles = [ax.get_title() for ax in fig.axes if ax.get_images()]
    assert titles[0] == "true: dog\npred: cat (95%)"
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), images[3].permute(1, 2, 0) / 255)
    pair = ev.plot_confusion_pair(images, p, CLASSES, "dog", "cat")
    assert pair.mistake_indices.tolist() == [3, 4]
    none = ev.plot_confusion_pair(images, p, CLASSES, "frog", "cat")
    assert none.mistake_indices.size == 0 and "no mistakes" in none.axes[0].texts[0].get_text()
    with pytest.raises(ValueError, match="not a class name"):
        ev.plot_confusion_pair(images, p, CLASSES, "horse", "cat")
    with pytest.raises(ValueError, match="8 predictions"):
        ev.plot_mistakes(images[:4], p, CLASSES)
    fig.canvas.draw()


def test_results_table_mean_std_over_seeds():
    runs = [
        {"name": "plain20", "seed": 0, "accuracy": 0.80, "params": 100, "seconds": 10.0},
        {"name": "plain20", "seed": 1, "accuracy": 0.84, "params": 100, "seconds": 12.0},
        {"name": "resnet20", "seed": 0, "accuracy": 0.90, "params": 100, "seconds": 11.0},
    ]
    table = ev.results_table(runs)
    assert list(table.index) == ["plain20", "resnet20"]
    assert table.loc["plain20", "seeds"] == 2
    assert table.loc["plain20", "accuracy_mean"] == pytest.approx(0.82)
    assert table.loc["plain20", "accuracy_std"] == pytest.approx(np.std([0.80, 0.84], ddof=1))
    assert np.isnan(table.loc["resnet20", "accuracy_std"])
    assert table.loc["plain20", "accuracy"] == "82.00 ± 2.83 %"
    assert table.loc["resnet20", "accuracy"] == "90.00 %"
    with pytest.raises(ValueError, match="lack"):
        ev.results_table([{"name": "x", "accuracy": 0.5}])
    with pytest.raises(ValueError, match="no runs"):
        ev.results_table([])


def test_real_predictions_object_is_accepted():
    from resnet_course.training.predictions import Predictions

    fake = _fake_predictions()
    real = Predictions(fake.labels, fake.preds, fake.probs)
    assert ev.mistake_indices(real).tolist() == [3, 4, 2]
