"""Checks of notebook 04's exercise: per-channel mean and standard deviation of uint8 images."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from resnet_course.checks.framework import Hint, friendly_check, student_call

__all__ = ["check_mean_std"]


# --- notebook 04 ---
# --------------------------------------------------------------------------------------------------
# Notebook 04: per-channel mean and standard deviation of an image set
# --------------------------------------------------------------------------------------------------


def _three_floats(value: Any, what: str) -> tuple[float, ...]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().flatten().tolist()
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        raise Hint(
            f"{what} is a {type(value).__name__}, not 3 numbers", "return one value per channel (R, G, B)"
        ) from None
    if len(out) != 3:
        raise Hint(
            f"{what} has {len(out)} values, expected 3 (one per channel)",
            "reduce over the image, height and width dimensions: images.float().mean(dim=(0, 2, 3))",
        )
    return out


@friendly_check
def check_mean_std(mean_std_fn: Callable[[torch.Tensor], Any], images: Any) -> str:
    """Check ``mean_std_fn(images) -> (mean, std)``: per-channel statistics over all pixels of all images,
    pixel values scaled to [0, 1], for uint8 ``(N, 3, H, W)`` images.

    Compared with :func:`resnet_course.data.statistics.compute_mean_std` on ``images`` (a tensor or ``ImageTensors``)
    and on a second, random image set (so a hard-coded answer fails).
    """
    import math

    from resnet_course.data.statistics import compute_mean_std, mean_per_image_std

    x = images.images if hasattr(images, "images") else images
    if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
        raise Hint("pass the uint8 image tensor (N, 3, H, W), e.g. data.train.images", "")
    g = torch.Generator().manual_seed(0)
    other = (torch.rand(64, 3, 8, 8, generator=g) * torch.tensor([255.0, 120.0, 60.0]).view(1, 3, 1, 1)).to(
        torch.uint8
    )
    for data, label in ((x, "your images"), (other, "a second, random image set")):
        result = student_call(mean_std_fn, data.clone(), what="your function")
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise Hint("return a pair (mean, std)", "e.g. return mean.tolist(), std.tolist()")
        mean, std = _three_floats(result[0], "mean"), _three_floats(result[1], "std")
        want_mean, want_std = compute_mean_std(data)
        if not all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(mean, want_mean, strict=True)):
            if all(
                math.isclose(a, 255 * b, rel_tol=1e-3, abs_tol=0.1)
                for a, b in zip(mean, want_mean, strict=True)
            ):
                hint = "scale the pixels to [0, 1] first: images.float() / 255"
            else:
                hint = "average every pixel of every image per channel: dims (0, 2, 3) of (N, C, H, W)"
            raise Hint(
                f"on {label} your mean is {tuple(round(m, 4) for m in mean)}, expected "
                f"{tuple(round(m, 4) for m in want_mean)}",
                hint,
            )
        if all(math.isclose(a, b, abs_tol=2e-4) for a, b in zip(std, want_std, strict=True)):
            continue
        per_image = mean_per_image_std(data)
        if all(math.isclose(a, b, abs_tol=2e-4) for a, b in zip(std, per_image, strict=True)):
            hint = (
                "that is the mean of per-image stds (the 0.2023-style value); take the std over all pixels of "
                "all images at once: dims (0, 2, 3)"
            )
        elif all(
            math.isclose(a, 255 * b, rel_tol=1e-3, abs_tol=0.1) for a, b in zip(std, want_std, strict=True)
        ):
            hint = "scale the pixels to [0, 1] first: images.float() / 255"
        else:
            hint = "std over all pixels of all images per channel: x.std(dim=(0, 2, 3))"
        raise Hint(
            f"on {label} your std is {tuple(round(s, 4) for s in std)}, expected {tuple(round(s, 4) for s in want_std)}",
            hint,
        )
    return "your per-channel mean and std match compute_mean_std"
