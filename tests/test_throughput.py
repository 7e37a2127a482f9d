"""Tests of the throughput measurements: finite positive results, batches counted and limited, warm-up kept off
the clock (with a fake clock), the model left as it was, and precise errors for bad arguments. (How fast anything is, is for the benchmark scripts to say.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_course.data.containers import ImageTensors
from resnet_course.data.loaders import TensorLoader
from resnet_course.training import throughput
from resnet_course.training.throughput import loader_images_per_second, training_images_per_second


def _tiny_model(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, num_classes),
    )


class _CountingLoader:
    """Yields ``batches`` batches of ``(images, labels)`` and records how many were taken."""

    def __init__(self, batches: int, batch_size: int = 3) -> None:
        self.batches, self.batch_size, self.taken = batches, batch_size, 0

    def __iter__(self):
        for _ in range(self.batches):
            self.taken += 1
            yield torch.zeros(self.batch_size, 3, 4, 4), torch.zeros(self.batch_size, dtype=torch.long)


def _finite_positive(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


# --- loader_images_per_second ---


def test_loader_images_per_second_on_a_tensor_loader():
    data = ImageTensors(torch.zeros(10, 3, 8, 8, dtype=torch.uint8), torch.arange(10) % 2, ["a", "b"])
    loader = TensorLoader(data, 4, mean=(0.5,) * 3, std=(0.25,) * 3, shuffle=True, augment=True, device="cpu")
    assert _finite_positive(loader_images_per_second(loader))


@pytest.mark.parametrize(
    "batch",
    [
        torch.zeros(3, 2),
        (torch.zeros(3, 2), torch.zeros(3)),
        [torch.zeros(3, 2), torch.zeros(3)],
        {"image": torch.zeros(3, 2), "label": torch.zeros(3)},
    ],
    ids=["tensor", "tuple", "list", "dict"],
)
def test_loader_images_per_second_accepts_usual_batch_forms(batch):
    assert _finite_positive(loader_images_per_second([batch, batch]))


def test_loader_images_per_second_stops_after_max_batches():
    loader = _CountingLoader(batches=5)
    assert _finite_positive(loader_images_per_second(loader, max_batches=2))
    assert loader.taken == 2
    loader = _CountingLoader(batches=3)
    loader_images_per_second(loader, max_batches=10)  # more than there are: the whole pass
    assert loader.taken == 3
    loader = _CountingLoader(batches=4)
    loader_images_per_second(loader)
    assert loader.taken == 4


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_loader_images_per_second_rejects_bad_max_batches(bad):
    with pytest.raises(ValueError, match="max_batches"):
        loader_images_per_second(_CountingLoader(2), max_batches=bad)


def test_loader_images_per_second_rejects_an_empty_loader():
    with pytest.raises(ValueError, match="no images"):
        loader_images_per_second([])
    with pytest.raises(ValueError, match="no images"):
        loader_images_per_second([torch.zeros(0, 3)])


@pytest.mark.parametrize(
    "batch", [3, (1, 2), torch.tensor(1.0), ()], ids=["int", "tuple-of-ints", "0-dim", "empty"]
)
def test_loader_images_per_second_rejects_batches_it_cannot_count(batch):
    with pytest.raises(ValueError, match="cannot count the images"):
        loader_images_per_second([batch])


class _FakeClock:
    """A ``time.perf_counter`` that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _StartUpLoader:
    """A reusable loader like a ``DataLoader`` with persistent workers: its first pass costs ``startup`` seconds
    before the first batch (once per loader), every batch of ``images`` images costs one second."""

    def __init__(
        self, clock: _FakeClock, *, batches: int = 3, images: int = 10, startup: float = 10.0
    ) -> None:
        self.clock, self.batches, self.images, self.startup = clock, batches, images, startup
        self.started, self.taken = False, 0

    def __iter__(self):
        if not self.started:
            self.clock.now += self.startup
            self.started = True
        for _ in range(self.batches):
            self.clock.now += 1.0
            self.taken += 1
            yield torch.zeros(self.images, 3, 2, 2), torch.zeros(self.images, dtype=torch.long)


def test_loader_images_per_second_warmup_keeps_start_up_and_warmup_batches_off_the_clock(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(throughput.time, "perf_counter", clock)
    # no warm-up: the start-up (10 s) is billed to the 3 batches (3 s) of 10 images
    assert loader_images_per_second(_StartUpLoader(clock)) == pytest.approx(30 / 13)
    # one warm-up batch from a separate pass: start-up and that batch are not timed; a fresh pass of 3 batches is
    loader = _StartUpLoader(clock)
    assert loader_images_per_second(loader, warmup_batches=1) == pytest.approx(10.0)
    assert loader.taken == 1 + 3
    # warm-up and max_batches together; more warm-up batches than a pass has is fine
    loader = _StartUpLoader(clock, batches=5)
    assert loader_images_per_second(loader, warmup_batches=2, max_batches=3) == pytest.approx(10.0)
    assert loader.taken == 2 + 3
    loader = _StartUpLoader(clock, batches=2)
    assert loader_images_per_second(loader, warmup_batches=7) == pytest.approx(10.0)
    assert loader.taken == 2 + 2


def test_loader_images_per_second_warmup_on_a_one_shot_iterator_times_the_rest():
    # a generator: the warm-up consumes its first batch, the timed pass the other three
    loader = _CountingLoader(batches=4)
    batches = iter(loader)
    assert _finite_positive(loader_images_per_second(batches, warmup_batches=1))
    assert loader.taken == 4
    with pytest.raises(ValueError, match="no images"):  # nothing left to time after the warm-up
        loader_images_per_second(iter(_CountingLoader(batches=2)), warmup_batches=2)


def test_loader_images_per_second_warmup_with_a_persistent_worker_dataloader():
    data = torch.utils.data.TensorDataset(torch.zeros(12, 3, 4, 4), torch.zeros(12, dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=4, num_workers=1, persistent_workers=True)
    assert _finite_positive(loader_images_per_second(loader, warmup_batches=1))
    assert _finite_positive(loader_images_per_second(loader, warmup_batches=1, max_batches=2))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1", None])
def test_loader_images_per_second_rejects_bad_warmup_batches(bad):
    with pytest.raises(ValueError, match="warmup_batches"):
        loader_images_per_second(_CountingLoader(2), warmup_batches=bad)


# --- training_images_per_second ---


def test_training_images_per_second_is_finite_and_positive():
    model = _tiny_model()
    assert _finite_positive(training_images_per_second(model, image_size=8, batch_size=4, repeats=2))
    assert _finite_positive(training_images_per_second(model, image_size=(6, 10), batch_size=2, repeats=1))


def test_training_images_per_second_leaves_the_model_as_it_was():
    model = _tiny_model()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}  # weights and BatchNorm running statistics
    rng_before = torch.get_rng_state()
    training_images_per_second(model, image_size=8, num_classes=3, batch_size=4, repeats=3)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert not model.training  # eval mode restored
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng_before)
    model.train()
    training_images_per_second(model, image_size=8, batch_size=4)
    assert model.training  # train mode restored too


def test_training_images_per_second_clears_existing_gradients():
    model = _tiny_model()
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert any(p.grad is not None for p in model.parameters())
    training_images_per_second(model, image_size=8, batch_size=2, repeats=1)
    assert all(p.grad is None for p in model.parameters())


def test_training_images_per_second_keeps_the_model_on_the_requested_device():
    model = _tiny_model()
    training_images_per_second(model, image_size=8, batch_size=2, repeats=1, device="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    training_images_per_second(model, image_size=8, batch_size=2, repeats=1, device=torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_training_images_per_second_leaves_the_model_on_cuda():
    model = _tiny_model()
    assert _finite_positive(training_images_per_second(model, image_size=8, batch_size=2, device="cuda"))
    assert all(p.device.type == "cuda" for p in model.parameters())
    # device=None: where the model already is
    assert _finite_positive(training_images_per_second(model, image_size=8, batch_size=2))
    assert all(p.device.type == "cuda" for p in model.parameters())


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("image_size", 0),
        ("image_size", 2.5),
        ("image_size", (8, 0)),
        ("image_size", (8, 8, 8)),
        ("channels", 0),
        ("num_classes", 0),
        ("num_classes", -2),
        ("batch_size", 0),
        ("batch_size", 4.0),
        ("batch_size", True),
        ("repeats", 0),
        ("repeats", "2"),
    ],
)
def test_training_images_per_second_rejects_bad_arguments(argument, value):
    kwargs = {"image_size": 8, "batch_size": 2, "repeats": 1, argument: value}
    with pytest.raises(ValueError, match=argument):
        training_images_per_second(_tiny_model(), **kwargs)


@pytest.mark.parametrize("device", ["tpu", "xla"])
def test_training_images_per_second_rejects_an_unknown_device(device):
    with pytest.raises(ValueError, match="device"):
        training_images_per_second(_tiny_model(), image_size=8, batch_size=2, device=device)


def test_training_images_per_second_rejects_more_classes_than_outputs():
    with pytest.raises(ValueError, match="num_classes=5 exceeds the model's 4 outputs"):
        training_images_per_second(_tiny_model(4), image_size=8, batch_size=2, num_classes=5)


def test_training_images_per_second_rejects_models_it_cannot_train():
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        training_images_per_second(lambda x: x, image_size=8)
    with pytest.raises(ValueError, match="no trainable parameters"):
        training_images_per_second(nn.Flatten(), image_size=8)
    frozen = _tiny_model()
    frozen.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        training_images_per_second(frozen, image_size=8)
    with pytest.raises(ValueError, match="expected \\(2, classes\\) logits"):
        training_images_per_second(nn.Conv2d(3, 4, 3), image_size=8, batch_size=2)
