"""The fast tensor pipeline: a whole dataset as one uint8 tensor on the training device.

The classic pipeline decodes, augments and converts every image separately on the CPU (``DataLoader`` + PIL +
transforms), which on small 32×32 images costs more than the network. :class:`TensorLoader` keeps all images
as a uint8 tensor on the device and, per batch, indexes, pads-and-crops, flips and normalises the whole batch
at once — the trick behind the fastest CIFAR-10 training scripts.

The augmentation has the same semantics as ``torchvision.transforms.v2``'s
``RandomCrop(size, padding=4)`` + ``RandomHorizontalFlip()`` on the raw image: zero padding of the uint8
pixels (before normalisation), a crop offset drawn uniformly from ``0..2·padding`` on each axis, then a
flip with probability ½. :func:`crop_and_flip` is the deterministic core, tested against torchvision.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from resnet_course.data.containers import ImageTensors
from resnet_course.devices import resolve_device

__all__ = ["TensorLoader", "crop_and_flip", "epoch_generator"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU ``torch.Generator`` whose state is a pure function of ``(seed, epoch)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF]).generate_state(
        2, np.uint32
    )
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def crop_and_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int = 4
) -> torch.Tensor:
    """Zero-pad each image by ``padding`` pixels, crop back to its size at ``(top[i], left[i])`` of the padded
    image, and mirror it left–right where ``flip[i]`` is true.

    ``images``: ``(B, C, H, W)`` of any dtype (pad with 0 on raw uint8 pixels to match torchvision);
    ``top``/``left``: integer tensors ``(B,)`` in ``0..2·padding``; ``flip``: bool ``(B,)``. Equivalent to
    ``horizontal_flip(crop(pad(img, padding), top, left, H, W))`` of ``torchvision.transforms.v2.functional``.
    """
    b, c, h, w = images.shape
    dev = images.device
    if padding > 0:
        images = F.pad(images, (padding, padding, padding, padding))
    top, left = top.to(dev, torch.int64), left.to(dev, torch.int64)
    # two gathers (rows, then columns) with broadcast index tensors: cheaper than one 4-D advanced index
    rows = (top[:, None] + torch.arange(h, device=dev)).view(b, 1, h, 1)
    images = images.gather(2, rows.expand(b, c, h, images.shape[3]))
    cols = left[:, None] + torch.arange(w, device=dev)
    cols = torch.where(flip.to(dev).view(b, 1), cols.flip(1), cols)  # flipping = reading columns backwards
    return images.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


class TensorLoader:
    """Batches ``(x, y)`` from :class:`~resnet_course.data.containers.ImageTensors` kept on ``device``.

    ``x`` is float32 ``(B, 3, H, W)`` normalised with ``mean``/``std`` (pixel values in [0, 1]), ``y`` int64,
    both on ``device`` (``None``: the best available device, see
    :func:`~resnet_course.devices.resolve_device`). With ``shuffle`` the order is a random permutation per
    epoch; with ``augment`` each image gets a random crop from its ``padding``-zero-padded version and
    (``flip``) a horizontal flip with probability ½.

    Randomness is a pure function of ``(seed, epoch)``: :meth:`set_epoch` chooses the epoch of the next pass;
    without it each pass uses the next epoch (0, 1, 2, …). ``len()`` is the number of batches per pass.
    """

    def __init__(
        self,
        data: ImageTensors,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        shuffle: bool = False,
        augment: bool = False,
        device: torch.device | str | None = None,
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        padding: int = 4,
        flip: bool = True,
    ) -> None:
        if not isinstance(data, ImageTensors):
            raise TypeError(
                f"TensorLoader needs ImageTensors (from resnet_course.data), got {type(data).__name__}"
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        channels = data.images.shape[1]
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need {channels} values (one per channel), got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be positive, got {tuple(std)}")
        if padding < 0:
            raise ValueError(f"padding must be ≥ 0, got {padding}")
        self.dataset = data
        self.classes = list(data.classes)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = int(seed)
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.padding = padding
        self.flip = flip
        self.device = resolve_device(device)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        # x_norm = (x/255 - mean)/std = x * scale + shift, fused into one multiply-add per batch
        std_t = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        mean_t = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self._next_epoch = 0
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use ``epoch``: its order and augmentation depend only on ``(seed, epoch)``."""
        self._next_epoch = int(epoch)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(order, offsets)`` of a pass: sample order ``(N,)`` and, with ``augment``, ``(N, 3)`` rows of
        ``(top, left, flip)`` per position in that order. Computed on the CPU, then moved to the device."""
        n = len(self.dataset)
        g = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        offsets = None
        if self.augment:
            span = 2 * self.padding + 1
            tops = torch.randint(0, span, (n,), generator=g)
            lefts = torch.randint(0, span, (n,), generator=g)
            flips = (torch.rand(n, generator=g) < 0.5) if self.flip else torch.zeros(n, dtype=torch.bool)
            offsets = torch.stack([tops, lefts, flips.long()], dim=1)
        return order, offsets

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().mul_(self._scale).add_(self._shift)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._next_epoch
        self.epoch = epoch
        self._next_epoch = epoch + 1
        order, offsets = self.epoch_plan(epoch)
        order = order.to(self.device)
        if offsets is not None:
            offsets = offsets.to(self.device)
        n = len(self.dataset)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start : start + self.batch_size]
            x = self.images[idx]
            if offsets is not None:
                off = offsets[start : start + self.batch_size]
                x = crop_and_flip(x, off[:, 0], off[:, 1], off[:, 2].bool(), self.padding)
            yield self._prepare(x), self.labels[idx]

    def __repr__(self) -> str:
        return (
            f"TensorLoader({len(self.dataset)} images, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"augment={self.augment}, device={self.device})"
        )
