"""Any ImageFolder dataset (``root/<class>/<image>``): read into memory through
:func:`~resnet_course.data.images.prepare_image` (the preparation inference uses too), written from tensors,
and whole tensors resized the same way.

Limits: in memory, all images are decoded at ``image_size``; ``N × 3 × image_size²`` bytes must fit in RAM
(e.g. 10 000 images at 224 px take 1.5 GB), and more than :data:`MAX_BYTES` is refused. Larger folders are
streamed instead (``stream=True``; :func:`~resnet_course.data.loading.load_data` chooses by itself from a memory
budget): the files are only listed here (:class:`~resnet_course.data.streaming.ImageFiles`) and decoded batch
by batch during training (:class:`~resnet_course.data.streaming.StreamLoader`), so memory no longer limits the
number of images.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import torch
from PIL import Image

from resnet_course.data.containers import ImageTensors
from resnet_course.data.images import ImageError, prepare_image, resize_and_crop
from resnet_course.data.statistics import stratified_split
from resnet_course.data.streaming import ImageFiles, list_image_files, report_bad_files

__all__ = ["MAX_BYTES", "count_files", "load_imagefolder", "resize_images", "write_image_folder"]

Part = ImageTensors | ImageFiles


MAX_BYTES = 4 * 1024**3  # refuse to decode more than this into memory


def resize_images(images: torch.Tensor, image_size: int, batch_size: int = 1024) -> torch.Tensor:
    """Resize uint8 images ``(N, 3, H, W)`` so the shorter side is ``image_size`` and centre-crop to
    ``image_size × image_size``: :func:`~resnet_course.data.images.resize_and_crop` (the resize every single image
    gets in :func:`~resnet_course.data.images.prepare_image`), ``batch_size`` images at a time."""
    if images.shape[-2:] == (image_size, image_size):
        return images
    return torch.cat(
        [resize_and_crop(images[i : i + batch_size], image_size) for i in range(0, len(images), batch_size)]
    )


# --------------------------------------------------------------------------------------------------
# ImageFolder
# --------------------------------------------------------------------------------------------------


def _read_image_folder(
    folder: Path, image_size: int, on_bad_file: str, classes: list[str] | None = None
) -> ImageTensors:
    """All files of an ImageFolder (one subfolder per class; listed by
    :func:`~resnet_course.data.streaming.list_image_files`) decoded at ``image_size``; unreadable ones are
    reported (warning or error) before anything else happens. ``classes``: the training part's class names
    (labels are mapped by name)."""
    files = list_image_files(folder, image_size, classes, check=False)
    images, labels, bad = [], [], []
    for path, label in zip(files.paths, files.labels.tolist(), strict=True):
        try:
            images.append(prepare_image(path, image_size))
        except ImageError as err:  # names the file and why
            bad.append(str(err))
            continue
        labels.append(label)
    report_bad_files(bad, folder, on_bad_file)
    empty = sorted({files.classes[i] for i in files.labels.tolist()} - {files.classes[i] for i in labels})
    if empty:
        raise ValueError(f"no readable images left for class(es) {', '.join(empty)} in {folder}")
    return ImageTensors(torch.stack(images), torch.as_tensor(labels, dtype=torch.int64), files.classes)


def count_files(root: str | Path) -> int:
    """Number of files under ``root`` (any depth): what :func:`load_imagefolder` would try to decode."""
    return sum(1 for p in Path(root).expanduser().rglob("*") if p.is_file())


def _check_memory(folder: Path, image_size: int) -> None:
    n_files = count_files(folder)
    needed = n_files * 3 * image_size * image_size
    if needed > MAX_BYTES:
        raise ValueError(
            f"{folder} has {n_files} files; at {image_size} px they would take {needed / 1024**3:.1f} GB "
            "in memory "
            f"(limit {MAX_BYTES / 1024**3:.0f} GB). Use a smaller image_size or a smaller dataset, "
            "or stream it from disk (stream=True, CLI --stream)."
        )


def load_imagefolder(
    root: str | Path,
    *,
    image_size: int = 32,
    test_fraction: float = 0.2,
    seed: int = 0,
    on_bad_file: str = "warn",
    stream: bool = False,
    num_workers: int | None = None,
) -> tuple[Part, Part | None, Part]:
    """``(train, val, test)`` from an ImageFolder root, all images decoded to uint8 ``image_size²`` RGB
    (:class:`~resnet_course.data.containers.ImageTensors`), or with ``stream`` only listed
    (:class:`~resnet_course.data.streaming.ImageFiles`, decoded by a
    :class:`~resnet_course.data.streaming.StreamLoader` when a batch needs them).

    Layouts: ``root/train/<class>/…`` and ``root/test/<class>/…`` (optionally ``root/val/<class>/…``, else
    ``val`` is ``None``), or ``root/<class>/…`` split into train/test by a seeded stratified
    ``test_fraction``. Every file goes through :func:`~resnet_course.data.images.prepare_image`, as in inference:
    turned upright (EXIF), made RGB (transparency composited on white), shorter side resized to
    ``image_size``, centre cropped. Unreadable or non-image files are listed in a warning and
    skipped (``on_bad_file="warn"``) or raise ``ValueError`` naming them (``"raise"``); when streaming, the
    same files are found by decoding each once, with ``num_workers`` processes, and nothing is kept (see
    :func:`~resnet_course.data.streaming.list_image_files`).
    """
    root = Path(root).expanduser()
    if on_bad_file not in ("warn", "raise"):
        raise ValueError(f"on_bad_file must be 'warn' or 'raise', got {on_bad_file!r}")
    if not root.is_dir():
        raise ValueError(f"ImageFolder root {root} does not exist or is not a directory")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer ≥ 8, got {image_size!r}")
    if stream:
        read = partial(list_image_files, image_size=image_size, on_bad_file=on_bad_file, num_workers=num_workers)
    else:
        _check_memory(root, image_size)
        read = partial(_read_image_folder, image_size=image_size, on_bad_file=on_bad_file)
    train_dir = root / "train"
    if train_dir.is_dir() and any(p.is_dir() for p in train_dir.iterdir()):
        train = read(train_dir)
        val = read(root / "val", classes=train.classes) if (root / "val").is_dir() else None
        if (root / "test").is_dir():
            test = read(root / "test", classes=train.classes)
        else:
            keep, held = stratified_split(train.labels, test_fraction, seed)
            train, test = train.subset(keep), train.subset(held)
        return train, val, test
    everything = read(root)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1) for a single-folder dataset, got {test_fraction}")
    keep, held = stratified_split(everything.labels, test_fraction, seed)
    return everything.subset(keep), None, everything.subset(held)


def write_image_folder(part: ImageTensors, root: str | Path, image_size: int | None = None) -> Path:
    """Write ``part`` as an ImageFolder — ``root/<class name>/<index>.png`` — and return ``root``.

    ``image_size`` resizes the images first (:func:`resize_images`). The folder is written under
    ``root.partial`` and renamed when complete, so an interrupted run never leaves a half-written ``root``;
    an existing ``root`` is an error (delete it to rewrite).
    """
    root = Path(root).expanduser()
    if root.exists():
        raise FileExistsError(f"{root} already exists; delete it to write the ImageFolder again")
    if any(not c or "/" in c or c in (".", "..") for c in part.classes):
        raise ValueError(f"class names must be usable as folder names, got {part.classes}")
    images = part.images if image_size is None else resize_images(part.images, image_size)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for name in part.classes:
        (tmp / name).mkdir(parents=True)
    width = max(5, len(str(len(part))))
    for i, (image, label) in enumerate(zip(images, part.labels.tolist(), strict=True)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(tmp / part.classes[label] / f"{i:0{width}d}.png")
    tmp.rename(root)
    return root
