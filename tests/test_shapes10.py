"""Tests of the generated offline dataset shapes10."""

from __future__ import annotations

import time

import pytest
import torch

from resnet_course.data.shapes10 import SHAPES10_CLASSES, make_shapes10


def test_shape_dtype_classes_and_balance():
    data = make_shapes10(300, seed=0)
    assert data.images.shape == (300, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64
    assert data.classes == SHAPES10_CLASSES and len(set(data.classes)) == 10
    assert set(data.class_counts().values()) == {30}


def test_deterministic_in_seed():
    a, b, c = make_shapes10(64, seed=3), make_shapes10(64, seed=3), make_shapes10(64, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)


def test_generation_is_fast():
    start = time.perf_counter()
    make_shapes10(2000, seed=0)
    assert time.perf_counter() - start < 10  # ~0.3 s on an idle laptop core; generous for a busy CI machine


def test_images_vary_within_a_class_and_use_the_full_range():
    data = make_shapes10(500, seed=0)
    x = data.images.float() / 255
    assert x.min() < 0.05 and x.max() > 0.95
    for k in range(10):
        members = x[data.labels == k]
        # nuisance variation: images of one class differ a lot from each other
        assert members.std(dim=0).mean() > 0.15, SHAPES10_CLASSES[k]


def test_not_solvable_by_mean_colour_or_class_template():
    """Colour and position are nuisances: a nearest-class-mean classifier on raw pixels stays near chance."""
    train, test = make_shapes10(2000, seed=0), make_shapes10(500, seed=1)
    xtr, xte = train.images.float().flatten(1) / 255, test.images.float().flatten(1) / 255
    templates = torch.stack([xtr[train.labels == k].mean(0) for k in range(10)])
    pred = torch.cdist(xte, templates).argmin(1)
    assert (pred == test.labels).float().mean() < 0.3


def test_rejects_bad_size():
    with pytest.raises(ValueError, match="positive"):
        make_shapes10(0)
