"""Counting parameters and layers, and the torchinfo summary."""

from __future__ import annotations

import pytest
import torch
import torchvision

from resnet_course import models
from resnet_course.inspection import count_parameters, count_weighted_layers, model_device, summary


@pytest.mark.parametrize(
    ("name", "main", "shortcut"),
    [("resnet18", 18, 3), ("resnet34", 34, 3), ("resnet50", 50, 4), ("resnet101", 101, 4), ("resnet152", 152, 4)],
)
def test_why_resnet18_is_called_18(name, main, shortcut):
    count = count_weighted_layers(models.create(name))
    assert (count.main_path, count.shortcut) == (main, shortcut)
    assert count.total == main + shortcut


def test_counts_torchvision_models_too():
    assert count_weighted_layers(torchvision.models.resnet18()).main_path == 18


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_family_depths(depth):
    assert count_weighted_layers(models.create(f"resnet{depth}")).main_path == depth
    assert count_weighted_layers(models.create(f"resnet{depth}")).shortcut == 0  # option A has no weights
    assert count_weighted_layers(models.create(f"plain{depth}")).main_path == depth


def test_se_layers_counted_apart():
    count = count_weighted_layers(models.create("se_resnet20"))
    assert count.main_path == 20 and count.other == 2 * 9


def test_count_parameters_trainable_only():
    net = models.resnet20()
    total = count_parameters(net)
    for p in net.fc.parameters():
        p.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == total - (64 * 10 + 10)
    assert count_parameters(net) == total


def test_summary_does_not_move_model_and_reports_totals():
    net = models.resnet20()
    stats = summary(net, (1, 3, 32, 32))
    assert stats.total_params == count_parameters(net)
    assert model_device(net) == torch.device("cpu")
    assert "layer3" in str(stats)
    with pytest.raises(ValueError, match="batch"):
        summary(net, (3, 32, 32))
