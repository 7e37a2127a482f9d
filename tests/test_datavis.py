"""Tests of the visual checks: they return Figures with one titled panel per image."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from resnet_course.analysis.datavis import show_augmentations, show_images
from resnet_course.data.containers import ImageTensors
from resnet_course.data.transforms import test_transforms


def _data() -> ImageTensors:
    images = torch.randint(
        0, 256, (12, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    return ImageTensors(images, torch.arange(12) % 3, ["cat", "dog", "ship"])


def _titled(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_show_images_titles_with_class_names():
    fig = show_images(_data(), n=7, ncols=4)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 8  # 2 rows × 4 columns, the last one empty
    assert _titled(fig) == ["cat", "dog", "ship", "cat", "dog", "ship", "cat"]


def test_show_images_unnormalises_a_loader_batch():
    data = _data()
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    x = torch.stack([test_transforms(mean, std)(img) for img in data.images[:4]])
    fig = show_images(x, data.labels[:4], data.classes, mean=mean, std=std, predictions=[0, 0, 2, 0])
    shown = fig.axes[0].images[0].get_array()
    expected = data.images[0].permute(1, 2, 0).float().numpy() / 255
    assert abs(shown - expected).max() < 1e-5
    assert fig.axes[1].title.get_color() == "red" and fig.axes[0].title.get_text() == "cat\n(cat)"


def test_show_images_rejects_bad_input():
    with pytest.raises(TypeError):
        show_images([1, 2, 3])
    with pytest.raises(ValueError, match="labels"):
        show_images(_data().images, labels=[0, 1])


def test_show_augmentations_shows_original_and_variants():
    data = _data()
    fig = show_augmentations(data, n=5, mean=(0.5,) * 3, std=(0.25,) * 3, index=1)
    assert isinstance(fig, Figure)
    assert _titled(fig)[0] == "original" and len(_titled(fig)) == 6
    assert "dog" in fig.get_suptitle()
    original = fig.axes[0].images[0].get_array()
    assert abs(original - data.images[1].permute(1, 2, 0).numpy() / 255).max() < 1e-6
    # seeded: the same call draws the same augmentations
    again = show_augmentations(data, n=5, mean=(0.5,) * 3, std=(0.25,) * 3, index=1)
    assert all(
        (a.images[0].get_array() == b.images[0].get_array()).all()
        for a, b in zip(fig.axes[:6], again.axes[:6], strict=True)
    )
    pil = Image.fromarray(data.images[2].permute(1, 2, 0).numpy())
    assert isinstance(show_augmentations(pil, n=2), Figure)
