"""Tests of the tensor pipeline: same augmentation as torchvision, determinism in (seed, epoch)."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from resnet_course.data.containers import ImageTensors
from resnet_course.data.loaders import TensorLoader, crop_and_flip

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _data(n: int = 40, size: int = 32, seed: int = 0) -> ImageTensors:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(
        1, 256, (n, 3, size, size), generator=g, dtype=torch.uint8
    )  # no zeros: padding shows
    return ImageTensors(images, torch.arange(n) % 10, [str(i) for i in range(10)])


def _reference(image: torch.Tensor, top: int, left: int, flip: bool, padding: int = 4) -> torch.Tensor:
    h, w = image.shape[-2:]
    out = TF.crop(TF.pad(image, [padding]), top, left, h, w)
    return TF.horizontal_flip(out) if flip else out


@pytest.mark.parametrize("padding", [4, 2])
def test_crop_and_flip_matches_torchvision_functional(padding):
    images = _data(12).images
    span = 2 * padding
    tops = torch.tensor([0, span, 0, span, 3 % (span + 1), 1, 2, span // 2, 0, span, 1, 2])
    lefts = torch.tensor([0, 0, span, span, 1, 3 % (span + 1), span // 2, 2, span, 1, 0, 2])
    flips = torch.tensor([False, True] * 6)
    out = crop_and_flip(images, tops, lefts, flips, padding)
    for i in range(len(images)):
        expected = _reference(images[i], int(tops[i]), int(lefts[i]), bool(flips[i]), padding)
        assert torch.equal(out[i], expected), f"image {i}: offsets ({tops[i]}, {lefts[i]}), flip {flips[i]}"


def test_augmented_batch_equals_torchvision_crop_of_the_padded_raw_image_then_normalised():
    data = _data(16)
    loader = TensorLoader(data, 16, mean=MEAN, std=STD, augment=True, device="cpu", seed=5)
    order, offsets = loader.epoch_plan(0)
    x, y = next(iter(loader))
    normalise = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(MEAN), list(STD))])
    for i in range(16):
        top, left, flip = offsets[i].tolist()
        expected = normalise(_reference(data.images[order[i]], top, left, bool(flip)))
        assert torch.allclose(x[i], expected, atol=1e-5)
    # padded pixels are raw 0, i.e. -mean/std after normalisation
    corner = offsets[:, 0].eq(0) & offsets[:, 1].eq(0) & offsets[:, 2].eq(0)
    if corner.any():
        i = int(corner.nonzero()[0])
        assert torch.allclose(x[i, :, 0, 0], -torch.tensor(MEAN) / torch.tensor(STD))


def test_offsets_cover_the_full_range_uniformly_and_flip_half():
    loader = TensorLoader(_data(4000), 100, mean=MEAN, std=STD, augment=True, shuffle=True, device="cpu")
    _, offsets = loader.epoch_plan(0)
    for axis in (0, 1):
        counts = torch.bincount(offsets[:, axis], minlength=9)
        assert len(counts) == 9 and counts.min() > 4000 / 9 * 0.75  # 0..8 all occur, roughly uniformly
    assert 0.45 < offsets[:, 2].float().mean() < 0.55


def test_without_augmentation_batches_are_the_normalised_images_in_order():
    data = _data(10)
    loader = TensorLoader(data, 4, mean=MEAN, std=STD, device="cpu")
    assert len(loader) == 3
    xs, ys = zip(*loader, strict=True)
    assert [len(y) for y in ys] == [4, 4, 2]
    x = torch.cat(xs)
    assert x.dtype == torch.float32
    restored = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert torch.allclose(restored, data.images.float() / 255, atol=1e-5)
    assert torch.equal(torch.cat(ys), data.labels)


def test_drop_last_and_shuffle_visit_each_image_once():
    data = _data(10)
    loader = TensorLoader(data, 4, mean=MEAN, std=STD, shuffle=True, drop_last=True, device="cpu")
    assert len(loader) == 2
    assert sum(len(y) for _, y in loader) == 8
    full = TensorLoader(data, 3, mean=MEAN, std=STD, shuffle=True, device="cpu")
    first_pixels = torch.cat([x[:, 0, 0, 0] for x, _ in full])
    expected = (data.images[:, 0, 0, 0].float() / 255 - MEAN[0]) / STD[0]
    assert torch.allclose(first_pixels.sort().values, expected.sort().values, atol=1e-5)


def _epoch(loader: TensorLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def test_set_epoch_makes_batches_a_pure_function_of_seed_and_epoch():
    data = _data(30)
    kwargs = {"mean": MEAN, "std": STD, "shuffle": True, "augment": True, "device": "cpu"}
    a = TensorLoader(data, 8, seed=1, **kwargs)
    b = TensorLoader(data, 8, seed=1, **kwargs)
    epoch0, epoch1 = _epoch(a), _epoch(a)  # without set_epoch each pass is the next epoch
    b.set_epoch(1)
    resumed = _epoch(b)  # a fresh loader told "epoch 1" reproduces epoch 1 exactly (exact resume)
    assert all(
        torch.equal(x, rx) and torch.equal(y, ry) for (x, y), (rx, ry) in zip(epoch1, resumed, strict=True)
    )
    assert not torch.equal(epoch0[0][1], epoch1[0][1])
    a.set_epoch(0)
    assert all(torch.equal(x, rx) for (x, _), (rx, _) in zip(_epoch(a), epoch0, strict=True))
    other_seed = TensorLoader(data, 8, seed=2, **kwargs)
    assert not torch.equal(_epoch(other_seed)[0][0], epoch0[0][0])


def test_channels_last_and_validation():
    data = _data(8)
    x, _ = next(iter(TensorLoader(data, 8, mean=MEAN, std=STD, channels_last=True, device="cpu")))
    assert x.is_contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(data, 0, mean=MEAN, std=STD)
    with pytest.raises(ValueError, match="one per channel"):
        TensorLoader(data, 4, mean=(0.5,), std=(0.2,))
    with pytest.raises(TypeError, match="ImageTensors"):
        TensorLoader(torch.zeros(2, 3, 4, 4), 4, mean=MEAN, std=STD)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_match_cpu_batches():
    data = _data(20)
    kwargs = {"mean": MEAN, "std": STD, "shuffle": True, "augment": True, "seed": 3}
    cpu = _epoch(TensorLoader(data, 8, device="cpu", **kwargs))
    gpu = _epoch(TensorLoader(data, 8, device="cuda", **kwargs))
    for (x, y), (gx, gy) in zip(cpu, gpu, strict=True):
        assert gx.device.type == "cuda"
        assert torch.allclose(x, gx.cpu(), atol=1e-5) and torch.equal(y, gy.cpu())


def test_bundle_loaders_take_batch_size_seed_device_and_memory_format_from_the_config():
    from resnet_course.data.bundle import DataBundle
    from resnet_course.data.statistics import compute_mean_std
    from resnet_course.training.config import TrainConfig

    train, val, test = _data(40), _data(10, seed=1), _data(12, seed=2)
    mean, std = compute_mean_std(train)
    bundle = DataBundle(
        name="tiny", train=train, val=val, test=test, classes=train.classes, mean=mean, std=std, image_size=32
    )
    config = TrainConfig(batch_size=16, seed=7, device="cpu", channels_last=True)
    tl, vl, te = bundle.loaders(config, eval_batch_size=5)
    assert (tl.batch_size, tl.seed, tl.shuffle, tl.augment) == (16, 7, True, True)
    assert (vl.batch_size, te.batch_size) == (5, 5) and not vl.shuffle and not te.augment
    assert {str(tl.device), str(vl.device), str(te.device)} == {"cpu"}
    x, _ = next(iter(tl))
    assert x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    plain, _, _ = bundle.loaders(config.replace(channels_last=False, seed=8), augment=False)
    assert plain.seed == 8 and not plain.augment and next(iter(plain))[0].is_contiguous()
    assert bundle.loaders(config)[2].batch_size == 16  # evaluation batches default to the config's
