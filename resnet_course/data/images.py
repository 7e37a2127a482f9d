"""One way to turn an image into what a model sees: :func:`prepare_image`.

Training data read from an ImageFolder (:func:`~resnet_course.data.imagefolder.load_imagefolder`), inference
(:class:`~resnet_course.apps.inference.Classifier`, hence the CLI's ``predict``), the desktop GUI and the notebook
widget all call :func:`prepare_image`, so one file becomes one and the same uint8 tensor everywhere. Steps:

1. decode (files) and turn the picture upright with its EXIF orientation (``PIL.ImageOps.exif_transpose``);
2. make it RGB: 16-bit (and 32-bit integer) grayscale is scaled to 8 bits (65535 → 255; PIL's own conversion
   would clip it, making a 16-bit photo nearly all white); anything with transparency (RGBA, LA, a palette or
   RGB/grayscale PNG with a transparent colour) is composited onto :data:`BACKGROUND` (white); other modes
   (grayscale, CMYK, …) are converted;
3. resize the shorter side to ``image_size`` and crop the centre square (:func:`resize_and_crop`). An image so
   elongated that the resized copy would exceed :data:`MAX_RESIZED_BYTES` is refused before it is resized.

The result is a uint8 ``(3, image_size, image_size)`` tensor, the convention of
:class:`~resnet_course.data.containers.ImageTensors`; normalisation with a dataset's mean/std happens later.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

__all__ = [
    "BACKGROUND",
    "ImageError",
    "ImageLike",
    "MAX_RESIZED_BYTES",
    "load_image",
    "prepare_image",
    "resize_and_crop",
    "rgb_image",
]

ImageLike = str | os.PathLike | Image.Image | Tensor | np.ndarray
BACKGROUND = (255, 255, 255)  # transparent pixels are composited onto white
MAX_RESIZED_BYTES = 64 * 2**20  # one image resized on its shorter side, as uint8 RGB (resizing needs about 4×)
_HIGH_DEPTH = {"I", "I;16", "I;16L", "I;16B", "I;16N"}  # integer grayscale, read as 16-bit values
_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageError(ValueError):
    """An input could not be used as an image; the message names the file (or the argument) and why."""


def rgb_image(image: Image.Image) -> Image.Image:
    """An upright RGB copy of ``image``: EXIF orientation applied, transparency composited onto
    :data:`BACKGROUND`, every other mode converted to RGB.

    Compositing (rather than dropping the alpha channel) makes the result depend only on what is visible:
    the colour a file stores under fully transparent pixels is arbitrary (black, white, leftovers).
    """
    upright = ImageOps.exif_transpose(image)
    if upright.mode in _HIGH_DEPTH:
        values = np.asarray(upright, dtype=np.float64)
        upright = Image.fromarray(np.clip(np.rint(values / 257), 0, 255).astype(np.uint8), "L")
    if not upright.has_transparency_data:
        return upright.convert("RGB")
    rgba = upright.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _pil_tensor(image: Image.Image) -> Tensor:
    """uint8 ``(3, H, W)`` of an RGB PIL image."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def _read_file(path: Path) -> Tensor:
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    try:
        with Image.open(path) as img:
            img.load()
            return _pil_tensor(rgb_image(img))
    except _DECODE_ERRORS as err:
        raise ImageError(
            f"{path}: cannot be read as an image ({err}); use a PNG, JPEG, BMP, GIF or WebP file"
        ) from None


def _from_channels_first(x: Tensor, name: str, kind: str) -> Tensor:
    """uint8 RGB ``(3, H, W)`` from a ``(C, H, W)`` uint8 or [0, 1] float tensor with C in 1/3/4."""
    if x.dtype.is_floating_point:
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ImageError(
                f"{name}: a float {kind} image must hold values in [0, 1] (or pass uint8 0..255)"
            )
        x = (x * 255).round().to(torch.uint8)
    elif x.dtype != torch.uint8:
        raise ImageError(f"{name}: a {kind} image must be uint8 (0..255) or float in [0, 1], got {x.dtype}")
    if x.shape[0] == 3:
        return x.contiguous()
    if x.shape[0] == 1:
        return x.expand(3, -1, -1).contiguous()
    return _pil_tensor(rgb_image(Image.fromarray(x.permute(1, 2, 0).numpy())))


def load_image(item: ImageLike, name: str = "image") -> Tensor:
    """A uint8 RGB ``(3, H, W)`` tensor at the input's own size (steps 1 and 2 of the module docstring).

    ``item``: a file path, a PIL image, an ``(H, W)`` / ``(H, W, C)`` NumPy array or a ``(C, H, W)`` /
    ``(H, W)`` tensor (C in 1/3/4; uint8, or float in [0, 1]). Raises :class:`ImageError` naming ``name``
    (or the file).
    """
    if isinstance(item, str | os.PathLike):
        return _read_file(Path(item))
    if isinstance(item, Image.Image):
        return _pil_tensor(rgb_image(item))
    if isinstance(item, np.ndarray):
        if not (item.ndim == 2 or (item.ndim == 3 and item.shape[-1] in (1, 3, 4))):
            raise ImageError(
                f"{name}: a NumPy image must have shape (H, W) or (H, W, C) with C in 1/3/4, got {item.shape}"
            )
        if item.dtype != np.uint8 and not np.issubdtype(item.dtype, np.floating):
            raise ImageError(
                f"{name}: a NumPy image must be uint8 (0..255) or float in [0, 1], got {item.dtype}"
            )
        x = torch.from_numpy(np.array(item))  # a writable copy
        return _from_channels_first(x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1), name, "NumPy")
    if isinstance(item, Tensor):
        x = item.detach().cpu()
        x = x.unsqueeze(0) if x.ndim == 2 else x
        if x.ndim != 3 or x.shape[0] not in (1, 3, 4):
            channels_last = x.ndim == 3 and x.shape[-1] in (1, 3, 4)
            raise ImageError(
                f"{name}: a tensor image must have shape (C, H, W) with C in 1/3/4, got {tuple(item.shape)}"
                + (" (channels last? use x.permute(2, 0, 1))" if channels_last else "")
            )
        return _from_channels_first(x, name, "tensor")
    raise ImageError(
        f"{name}: expected a file path, PIL image, NumPy array or tensor, got {type(item).__name__}"
    )


def resize_and_crop(images: Tensor, image_size: int) -> Tensor:
    """Resize uint8 ``(3, H, W)`` or ``(N, 3, H, W)`` images so the shorter side is ``image_size``
    (bilinear, antialiased) and crop the centre ``image_size × image_size`` square (step 3).

    Why this policy: the course's models take square inputs, and a CIFAR-like model is trained on whole,
    undistorted objects; scaling the shorter side keeps the aspect ratio (no stretching) and loses only the
    edges of the longer side. Resizing the uint8 tensor (not the PIL image) makes a single image and a whole
    dataset tensor (:func:`~resnet_course.data.imagefolder.resize_images`) go through the same kernel.
    """
    from torchvision.transforms.v2 import functional as TF

    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if images.shape[-2:] == (image_size, image_size):
        return images
    resized = TF.resize(images, [image_size], antialias=True)
    return TF.center_crop(resized, [image_size, image_size])


def prepare_image(item: ImageLike, image_size: int, name: str | None = None) -> Tensor:
    """THE way an image becomes model input: uint8 ``(3, image_size, image_size)``, upright, RGB (transparency
    on :data:`BACKGROUND`), shorter side resized and centre cropped (see :func:`resize_and_crop` for why).

    ``item`` is anything :func:`load_image` takes; ``name`` names it in errors (default: the path, or
    ``"image"``). Raises :class:`ImageError` for unusable inputs, including empty images.
    """
    label = name if name is not None else (str(item) if isinstance(item, str | os.PathLike) else "image")
    x = load_image(item, label)
    height, width = x.shape[1:]
    if min(height, width) < 1:
        raise ImageError(f"{label}: the image is empty ({tuple(x.shape[1:])} pixels)")
    longer = max(height, width) * image_size / min(height, width)
    if 3 * image_size * longer > MAX_RESIZED_BYTES:
        raise ImageError(
            f"{label}: {width}×{height} pixels is too elongated: resized to {image_size} px on its shorter side it "
            f"would take {3 * image_size * longer / 2**20:,.0f} MiB, over the limit of {MAX_RESIZED_BYTES / 2**20:.0f} "
            "MiB per image (resnet_course.data.images.MAX_RESIZED_BYTES); crop it first"
        )
    return resize_and_crop(x, image_size)
