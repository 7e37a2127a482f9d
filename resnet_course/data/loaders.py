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

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from resnet_course.data.containers import ImageTensors
from resnet_course.devices import resolve_device

__all__ = ["PlannedLoader", "TensorLoader", "batch_positions", "crop_and_flip", "epoch_generator"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU ``torch.Generator`` whose state is a pure function of ``(seed, epoch)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch) & 0xFFFFFFFF]).generate_state(
        2, np.uint32
    )
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def batch_positions(
    n: int,
    batch_size: int,
    *,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    equal_batches: bool = True,
) -> list[torch.Tensor]:
    """The positions (into an epoch's sample order) of each batch this process takes, for ``n`` images.

    One process (``world_size=1``): consecutive batches of ``batch_size`` (the last one smaller unless
    ``drop_last``). Several processes with ``equal_batches`` (training): the epoch is cut into *global* batches
    of ``batch_size × world_size`` and process ``rank`` takes the ``rank``-th of ``world_size`` equal slices of
    each, so one step of N processes sees the same images as one step of a single process with an N-times
    larger batch, and every process has the same number of batches (DDP needs that). A last global batch with
    fewer images than processes is filled up with the epoch's first images (as ``DistributedSampler`` pads);
    its slices differ by at most one image. Without ``equal_batches`` (evaluation): the ``n`` images are split
    into ``world_size`` contiguous shards, each image counted exactly once, then batched.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if world_size == 1 or not equal_batches:
        mine = torch.arange(n).tensor_split(world_size)[rank]
        stop = (len(mine) // batch_size) * batch_size if drop_last else len(mine)
        return [mine[s : s + batch_size] for s in range(0, stop, batch_size)]
    step = batch_size * world_size
    stop = (n // step) * step if drop_last else n
    batches = []
    for start in range(0, stop, step):
        positions = torch.arange(start, min(start + step, n))
        if len(positions) < world_size:  # pad with the first images so that no process gets an empty batch
            positions = torch.cat([positions, torch.arange(world_size - len(positions)) % n])
        batches.append(positions.tensor_split(world_size)[rank])
    return batches


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


class PlannedLoader:
    """What :class:`TensorLoader` and :class:`~resnet_course.data.streaming.StreamLoader` share: argument checks,
    the epoch plan (order and augmentation offsets, a pure function of ``(seed, epoch)``), this process's
    batches (:func:`batch_positions`) and the per-batch crop/flip/normalise on the device (:meth:`finish`).

    A subclass only gathers the uint8 images of a batch — from a tensor already on the device, or decoded from
    files — and hands them to :meth:`finish` with the batch's rows of the plan, so both give identical batches.
    """

    def __init__(
        self,
        data: Any,
        batch_size: int,
        *,
        channels: int,
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
        rank: int = 0,
        world_size: int = 1,
        equal_batches: bool | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if len(mean) != channels or len(std) != channels:
            raise ValueError(
                f"mean and std need {channels} values (one per channel), got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be positive, got {tuple(std)}")
        if padding < 0:
            raise ValueError(f"padding must be ≥ 0, got {padding}")
        if not (
            isinstance(world_size, int)
            and world_size >= 1
            and isinstance(rank, int)
            and 0 <= rank < world_size
        ):
            raise ValueError(f"need 0 ≤ rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        self.rank = rank
        self.world_size = world_size
        self.equal_batches = shuffle if equal_batches is None else bool(equal_batches)
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
        # x_norm = (x/255 - mean)/std = x * scale + shift, fused into one multiply-add per batch
        std_t = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        mean_t = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)
        self._shift = -mean_t / std_t
        self._next_epoch = 0
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.batches())

    def batches(self) -> list[torch.Tensor]:
        """This process's batches as positions into an epoch's order (:func:`batch_positions`)."""
        return batch_positions(
            len(self.dataset),
            self.batch_size,
            drop_last=self.drop_last,
            rank=self.rank,
            world_size=self.world_size,
            equal_batches=self.equal_batches,
        )

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use ``epoch``: its order and augmentation depend only on ``(seed, epoch)``."""
        self._next_epoch = int(epoch)

    def epoch_plan(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(order, offsets)`` of a pass: sample order ``(N,)`` and, with ``augment``, ``(N, 3)`` rows of
        ``(top, left, flip)`` per position in that order. Computed on the CPU."""
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

    def begin_pass(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Start a pass: take the epoch chosen by :meth:`set_epoch` (else the next one) and return its plan."""
        epoch = self._next_epoch
        self.epoch = epoch
        self._next_epoch = epoch + 1
        return self.epoch_plan(epoch)

    def finish(self, x: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        """A batch of uint8 images ``x`` (on the device) with its rows of the plan's ``offsets`` (or ``None``):
        padded-cropped and flipped (:func:`crop_and_flip`), then float32 normalised, in the memory format."""
        if offsets is not None:
            x = crop_and_flip(x, offsets[:, 0], offsets[:, 1], offsets[:, 2].bool(), self.padding)
        x = x.float().mul_(self._scale).add_(self._shift)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    _item = "images"  # what the dataset holds, in repr: images (in memory) or files (streamed)

    def _repr_extra(self) -> str:
        return ""

    def __repr__(self) -> str:
        shard = f", rank={self.rank}/{self.world_size}" if self.world_size > 1 else ""
        return (
            f"{type(self).__name__}({len(self.dataset)} {self._item}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment}, device={self.device}{self._repr_extra()}{shard})"
        )


class TensorLoader(PlannedLoader):
    """Batches ``(x, y)`` from :class:`~resnet_course.data.containers.ImageTensors` kept on ``device``.

    ``x`` is float32 ``(B, 3, H, W)`` normalised with ``mean``/``std`` (pixel values in [0, 1]), ``y`` int64,
    both on ``device`` (``None``: the best available device, see
    :func:`~resnet_course.devices.resolve_device`). With ``shuffle`` the order is a random permutation per
    epoch; with ``augment`` each image gets a random crop from its ``padding``-zero-padded version and
    (``flip``) a horizontal flip with probability ½.

    Randomness is a pure function of ``(seed, epoch)``: :meth:`set_epoch` chooses the epoch of the next pass;
    without it each pass uses the next epoch (0, 1, 2, …). ``len()`` is the number of batches per pass.

    Data parallelism: with ``world_size > 1`` this process yields only its share of each batch
    (:func:`batch_positions`; ``equal_batches`` defaults to ``shuffle``, i.e. training loaders cut global
    batches, evaluation loaders split the images once so each is counted once over all processes).
    The plan, the batches and the per-batch steps are :class:`PlannedLoader`'s, shared with
    :class:`~resnet_course.data.streaming.StreamLoader` (images decoded from files as they are needed).
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
        rank: int = 0,
        world_size: int = 1,
        equal_batches: bool | None = None,
    ) -> None:
        if not isinstance(data, ImageTensors):
            raise TypeError(
                f"TensorLoader needs ImageTensors (from resnet_course.data), got {type(data).__name__}"
            )
        super().__init__(
            data,
            batch_size,
            channels=data.images.shape[1],
            mean=mean,
            std=std,
            shuffle=shuffle,
            augment=augment,
            device=device,
            seed=seed,
            drop_last=drop_last,
            channels_last=channels_last,
            padding=padding,
            flip=flip,
            rank=rank,
            world_size=world_size,
            equal_batches=equal_batches,
        )
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order, offsets = self.begin_pass()
        order = order.to(self.device)
        if offsets is not None:
            offsets = offsets.to(self.device)
        for positions in self.batches():
            if self.world_size == 1:  # a contiguous slice: a view, no index tensor
                start, stop = int(positions[0]), int(positions[-1]) + 1
                idx = order[start:stop]
                off = offsets[start:stop] if offsets is not None else None
            else:
                positions = positions.to(self.device)
                idx = order[positions]
                off = offsets[positions] if offsets is not None else None
            yield self.finish(self.images[idx], off), self.labels[idx]
