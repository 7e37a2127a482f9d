"""Images per second of two input pipelines producing the same augmented, normalised training batches.

* ``DataLoader + PIL/v2``: the classic path — a ``DataLoader`` over a dataset that returns PIL images (as
  ``torchvision.datasets.CIFAR10`` does), each passed through ``transforms.v2`` (``RandomCrop(32,
  padding=4)``, ``RandomHorizontalFlip``, ``ToImage``, ``ToDtype``, ``Normalize``) and collated.
* ``TensorLoader``: the whole dataset as one uint8 tensor on the device, augmented per batch on the device.

Only the data pipeline is timed (no model). Runs on CPU, and on CUDA too when it is available.

    python benchmarks/data_pipeline.py [--images 5000] [--batch-size 256] [--workers 0] [--threads N]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator

import torch
from PIL import Image
from torchvision.transforms import v2

from resnet_course.data.containers import ImageTensors
from resnet_course.data.loaders import TensorLoader
from resnet_course.data.loading import load_data
from resnet_course.data.statistics import compute_mean_std
from resnet_course.training.throughput import loader_images_per_second


class PILDataset(torch.utils.data.Dataset):
    """Returns ``(transform(PIL image), label)`` like ``torchvision.datasets.CIFAR10`` does."""

    def __init__(self, data: ImageTensors, transform: v2.Transform) -> None:
        self.arrays = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # HWC uint8, as CIFAR10 keeps them
        self.labels = data.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.arrays[i])), self.labels[i]


def _on_device(loader: Iterable, device: torch.device, epochs: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of ``epochs`` passes over ``loader``, each copied to ``device``."""
    for _ in range(epochs):
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def time_pipeline(loader: Iterable, device: torch.device, epochs: int = 1) -> float:
    """Images per second over ``epochs`` passes, including the copy to ``device``; one warm-up batch first.

    :func:`loader_images_per_second` waits for a GPU to finish before it stops the clock.
    """
    next(iter(loader))
    return loader_images_per_second(_on_device(loader, device, epochs))


def main(argv: list[str] | None = None) -> list[tuple[str, str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="shapes10", help="cifar10, shapes10 or an ImageFolder path")
    parser.add_argument("--images", type=int, default=5000, help="training images to push through")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (classic path)")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the images per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = load_data(args.dataset, train_size=args.images, test_size=100, val_fraction=0)
    data = bundle.train
    mean, std = compute_mean_std(data)
    size = data.image_size[0]
    transform = v2.Compose(
        [
            v2.RandomCrop(size, padding=4),
            v2.RandomHorizontalFlip(),
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows: list[tuple[str, str, float]] = []
    for device in devices:
        classic = torch.utils.data.DataLoader(
            PILDataset(data, transform),
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=args.workers > 0,
        )
        rows.append(
            (
                f"DataLoader + PIL/v2 ({args.workers} workers)",
                device.type,
                time_pipeline(classic, device, args.epochs),
            )
        )
        tensor = TensorLoader(
            data, args.batch_size, mean=mean, std=std, shuffle=True, augment=True, device=device
        )
        rows.append(("TensorLoader", device.type, time_pipeline(tensor, device, args.epochs)))

    print(
        f"{bundle.name}: {len(data)} images of 3×{size}×{size}, batch {args.batch_size}, "
        f"torch threads {torch.get_num_threads()}"
    )
    baseline = rows[0][2]
    print(f"{'pipeline':<34} {'device':<6} {'images/s':>10} {'ratio':>7}")
    for name, device_name, speed in rows:
        print(f"{name:<34} {device_name:<6} {speed:>10.0f} {speed / baseline:>6.1f}x")
    return rows


if __name__ == "__main__":
    main()
