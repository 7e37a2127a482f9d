"""How fast: images per second of an input pipeline and of training steps.

Two measurements the course makes more than once:

* :func:`loader_images_per_second` — how many images a data loader delivers per second, optionally after untimed
  warm-up batches (notebook 04 compares the classic ``DataLoader`` with the in-memory ``TensorLoader``);
* :func:`training_images_per_second` — how many images a model can train on per second, measured as forward +
  cross-entropy + backward on random images (notebook 05 uses it to estimate the length of an epoch).

GPUs run asynchronously: a CUDA (or MPS) call returns before the work is done, so both functions wait for the
device before they read the clock. Numbers from a shared or busy machine are noisy; the training measurement
therefore keeps the best of several tries, the least disturbed one.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from resnet_course.devices import resolve_device
from resnet_course.models.state import unchanged_state

__all__ = ["loader_images_per_second", "training_images_per_second"]

_MIN_SECONDS = 1e-9  # a floor for the measured time, so that the result is always finite


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _synchronize(device: torch.device) -> None:
    """Wait until all queued work on ``device`` has finished (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _batch_images_and_devices(batch: Any) -> tuple[int, set[torch.device]]:
    """The number of images in ``batch`` and the devices its tensors live on.

    A batch is a tensor whose first dimension counts the images, or a tuple/list/dict whose first item is such a
    tensor (``(images, labels)``, as data loaders yield).
    """
    if isinstance(batch, torch.Tensor):
        items = [batch]
    elif isinstance(batch, (tuple, list)):
        items = list(batch)
    elif isinstance(batch, Mapping):
        items = list(batch.values())
    else:
        items = []
    if not items or not isinstance(items[0], torch.Tensor) or items[0].dim() == 0:
        raise ValueError(
            f"cannot count the images of a batch of type {type(batch).__name__}: expected a tensor with a batch "
            "dimension, or a tuple/list/dict whose first item is one, such as (images, labels)"
        )
    devices = {item.device for item in items if isinstance(item, torch.Tensor) and item.device.type != "cpu"}
    return items[0].shape[0], devices


def loader_images_per_second(
    loader: Iterable[Any], *, max_batches: int | None = None, warmup_batches: int = 0
) -> float:
    """Images per second that ``loader`` delivers: iterate over it once and divide the images by the time taken.

    ``loader``: any iterable of batches — a ``DataLoader``, a ``TensorLoader`` or a generator. A batch is a tensor
    whose first dimension counts the images, or a tuple/list/dict whose first item is one (``(images, labels)``).
    ``max_batches``: stop after this many batches (``None``: the whole pass).
    ``warmup_batches``: before the clock starts, take this many batches from a separate, untimed iterator over
    ``loader`` (0: no warm-up). This measures the steady state of a loader that is reused epoch after epoch: a
    ``DataLoader`` with ``persistent_workers=True`` starts its worker processes during the warm-up and keeps
    them for the timed pass, and first-call costs (memory allocation, GPU initialisation) fall into it too. A
    ``DataLoader`` without persistent workers starts new workers for every pass, so the timed pass still pays
    for them. An iterator that can be iterated only once (a generator) continues after the warm-up batches.

    Without a warm-up, the clock starts before the iterator is created, so the start-up of a pass (e.g.
    launching worker processes) counts. When batches live on a GPU, the device is synchronised before the clock
    stops, so work still queued (e.g. on-device augmentation) is included.

    Raises ``ValueError`` for a ``max_batches`` that is not a positive int, a ``warmup_batches`` that is not a
    non-negative int, a batch whose images cannot be counted, or a timed pass that yields no images.
    """
    if max_batches is not None:
        _check_positive_int("max_batches", max_batches)
    if isinstance(warmup_batches, bool) or not isinstance(warmup_batches, int) or warmup_batches < 0:
        raise ValueError(f"warmup_batches must be a non-negative int, got {warmup_batches!r}")
    devices: set[torch.device] = set()
    if warmup_batches:
        warm = iter(loader)
        for batch in itertools.islice(warm, warmup_batches):  # islice takes no batch beyond the warm-up
            devices |= _batch_images_and_devices(batch)[1]
        del warm
    for device in devices:
        _synchronize(device)  # the warm-up's queued work must not be billed to the timed pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()  # earlier GPU work must not be billed to this loader
    images, batches, devices = 0, 0, set()
    start = time.perf_counter()
    for batch in loader:
        n, batch_devices = _batch_images_and_devices(batch)
        images += n
        batches += 1
        devices |= batch_devices
        if max_batches is not None and batches >= max_batches:
            break
    for device in devices:
        _synchronize(device)
    seconds = time.perf_counter() - start
    if images == 0:
        raise ValueError(f"the loader yielded no images ({batches} batches); nothing to time")
    return images / max(seconds, _MIN_SECONDS)


def _image_shape(image_size: object) -> tuple[int, int]:
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        height = _check_positive_int("image_size[0]", image_size[0])
        return height, _check_positive_int("image_size[1]", image_size[1])
    if isinstance(image_size, (tuple, list)):
        raise ValueError(f"image_size must be an int or a pair (height, width), got {image_size!r}")
    size = _check_positive_int("image_size", image_size)
    return size, size


def training_images_per_second(
    model: nn.Module,
    *,
    image_size: int | tuple[int, int] = 32,
    channels: int = 3,
    num_classes: int | None = None,
    batch_size: int = 32,
    repeats: int = 2,
    device: str | torch.device | None = None,
) -> float:
    """Images per second of one training step of ``model``: forward + cross-entropy + backward on a batch of
    random images, the best of ``repeats`` timed steps after one untimed warm-up step.

    The optimizer step is not included, so this is what the network itself costs; a full training loop is a
    little slower. The random batch has ``batch_size`` images of ``channels × image_size`` (an int for square
    images, or ``(height, width)``) and labels in ``0..num_classes - 1`` (default: the width of the model's
    output).

    ``device``: where to run (``"cpu"``, ``"cuda"``, ``"auto"`` or a ``torch.device``); the model is moved there
    and **stays there**. ``None``: where the model's parameters already are.

    The model is otherwise left as it was: its weights are untouched (there is no optimizer step), BatchNorm
    running statistics and other buffers are restored, its train/eval mode is restored, and its gradients are
    cleared (set to ``None``). The global random-number generator is not used.

    Raises ``ValueError`` when an argument is not a positive int (``image_size``, ``channels``, ``num_classes``,
    ``batch_size``, ``repeats``), the device is unavailable, the model has no trainable parameters, its output is
    not ``(batch_size, classes)`` logits, or ``num_classes`` exceeds the output width.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    height, width = _image_shape(image_size)
    _check_positive_int("channels", channels)
    if num_classes is not None:
        _check_positive_int("num_classes", num_classes)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("repeats", repeats)
    parameters = list(model.parameters())
    if not any(p.requires_grad for p in parameters):
        raise ValueError("model has no trainable parameters: a training step needs at least one")
    target = parameters[0].device if device is None else resolve_device(device)

    model.to(target)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, channels, height, width, generator=generator).to(target)
    with unchanged_state(model):  # buffers and train/eval mode come back afterwards
        try:
            model.train()
            model.zero_grad(set_to_none=True)
            logits = model(x)  # warm-up step (first calls allocate memory and pick kernels)
            if logits.dim() != 2 or logits.shape[0] != batch_size:
                raise ValueError(
                    f"model output has shape {tuple(logits.shape)}; expected ({batch_size}, classes) logits for a "
                    f"batch of {batch_size} images of {channels}×{height}×{width}"
                )
            if num_classes is None:
                num_classes = logits.shape[1]
            elif num_classes > logits.shape[1]:
                raise ValueError(f"num_classes={num_classes} exceeds the model's {logits.shape[1]} outputs")
            y = torch.randint(0, num_classes, (batch_size,), generator=generator).to(target)
            F.cross_entropy(logits, y).backward()
            del logits
            best = math.inf
            for _ in range(repeats):
                model.zero_grad(set_to_none=True)
                _synchronize(target)
                start = time.perf_counter()
                F.cross_entropy(model(x), y).backward()
                _synchronize(target)
                best = min(best, time.perf_counter() - start)
        finally:
            model.zero_grad(set_to_none=True)
    return batch_size / max(best, _MIN_SECONDS)
