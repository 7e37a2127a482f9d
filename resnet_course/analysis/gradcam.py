"""Grad-CAM: which parts of an image a class score depends on, from the last convolutional stage.

Source: Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization*,
ICCV 2017 (arXiv:1610.02391).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from resnet_course.analysis.activations import as_batch, submodule
from resnet_course.analysis.plots import new_subplots
from resnet_course.models.state import model_mode

__all__ = ["grad_cam", "plot_grad_cam"]


# --------------------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------------------


def _default_cam_layer(model: nn.Module) -> str:
    stages = getattr(model, "num_stages", None)
    if isinstance(stages, int) and stages > 0:
        return f"layer{stages}"
    raise ValueError("pass layer=... (the name of the last convolutional stage) for this model")


def grad_cam(
    model: nn.Module,
    x: Tensor,
    target_class: int | None = None,
    layer: str | None = None,
    *,
    normalize: bool = True,
) -> Tensor:
    """Grad-CAM heat map (Selvaraju et al. 2017) of ``target_class`` at ``layer``, at the input's size.

    With ``A`` the layer's activation ``(K, h, w)`` and ``y_c`` the class score (logit), the map is
    ``ReLU(Σ_k α_k A_k)`` with ``α_k = mean_{i,j} ∂y_c/∂A_k[i, j]`` (Eq. 1–2 of the paper), bilinearly
    upsampled to the input's ``(H, W)``. By default it is then scaled to [0, 1] by its own maximum (all
    zeros if the map is zero everywhere), which hides how strong the evidence is: the maps of a class with
    p = 0.9 and of one with p = 0.01 can look alike. ``normalize=False`` returns the raw map instead, in
    units of the class score; compare the raw maps' maxima (peaks) of several classes to see which map
    carries more evidence. When the layer feeds global average pooling and a linear head directly (the
    last stage of a post-activation ResNet; a pre-activation one puts a BatchNorm and a ReLU in between),
    the map before the ReLU and the upsampling sums over the layer's ``h × w`` positions to the logit
    minus its bias: each of its values is one position's share of the logit.

    The map has the layer's resolution, ``8 × 8`` for the last stage of a CIFAR ResNet on 32×32 images:
    it is coarse by construction, and the maps of different classes often cover the same region.

    Args:
        model: a classifier returning logits; run in eval mode (restored afterwards), hooks removed.
        x: one normalised image ``(C, H, W)`` or a batch of one ``(1, C, H, W)``.
        target_class: the class to explain; the predicted class (arg-max logit) when ``None``.
        layer: a name from ``model.named_modules()``; by default the last residual stage of a
            :class:`~resnet_course.models.resnet.ResNet` (``layer4`` for ImageNet-style nets, ``layer3`` for the
            CIFAR 6n+2 family).
        normalize: scale the map to [0, 1] by its maximum (default), or return it unscaled.

    Returns a float CPU tensor ``(H, W)``: values in [0, 1] when ``normalize``, otherwise ≥ 0 in the units
    of the class score (``cam.max()`` is the map's peak).
    """
    x = as_batch(x, model)
    if x.shape[0] != 1:
        raise ValueError(f"grad_cam explains one image; got a batch of {x.shape[0]} (pass x[i:i+1])")
    target_layer = submodule(model, layer if layer is not None else _default_cam_layer(model))
    captured: list[Tensor] = []

    def hook(submodule: nn.Module, _inputs: Any, output: Any) -> None:
        if not captured:
            captured.append(output[0] if isinstance(output, tuple | list) else output)

    handle = target_layer.register_forward_hook(hook)
    try:
        with model_mode(model, train=False), torch.enable_grad():
            logits = model(x.detach().clone().requires_grad_(True))
    finally:
        handle.remove()
    if not captured or captured[0].ndim != 4:
        raise ValueError(
            "the chosen layer must output a feature map (1, K, h, w); pick a convolutional stage"
        )
    if logits.ndim != 2:
        raise ValueError(
            f"expected the model to return logits (1, num_classes), got shape {tuple(logits.shape)}"
        )
    num_classes = logits.shape[1]
    cls = int(logits.argmax(dim=1)) if target_class is None else int(target_class)
    if not 0 <= cls < num_classes:
        raise ValueError(f"target_class {cls} is outside 0..{num_classes - 1}")
    activation = captured[0]
    (grads,) = torch.autograd.grad(logits[0, cls], activation)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # α_k
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    if not normalize:
        return cam.clamp_(min=0.0).cpu()
    peak = cam.max()
    cam = cam / peak if peak > 0 else torch.zeros_like(cam)
    return cam.clamp_(0.0, 1.0).cpu()


def plot_grad_cam(
    image: Any,
    cam: Tensor | np.ndarray,
    title: str | None = None,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Figure:
    """Three panels: the image, the Grad-CAM map, and the map overlaid on the image.

    ``image`` is uint8 ``(3, H, W)`` or a normalised float ``(3, H, W)`` with ``mean``/``std`` (see
    :func:`resnet_course.analysis.classification.to_display_images`); ``cam`` is the ``(H, W)`` map from :func:`grad_cam`,
    normalised or raw (``normalize=False``). Either way it is drawn relative to its own maximum (the colour
    bar says so), and the map panel's title gives that maximum: 1 for a normalised map, the peak in units of
    the class score for a raw one. Colours therefore cannot be compared between two figures; the peaks can.
    """
    from resnet_course.analysis.classification import to_display_images

    if isinstance(image, Tensor) and image.ndim == 4:
        image = image[0]
    shown = to_display_images(image, mean, std)[0]
    heat = cam.detach().cpu().float().numpy() if isinstance(cam, Tensor) else np.asarray(cam, dtype=float)
    if heat.shape != shown.shape[:2]:
        raise ValueError(
            f"cam has shape {heat.shape} but the image is {shown.shape[:2]}; use grad_cam's output"
        )
    if not np.isfinite(heat).all() or (heat < 0).any():
        raise ValueError("cam must be finite and non-negative, as grad_cam returns it")
    peak = float(heat.max())
    heat = heat / peak if peak > 0 else np.zeros_like(heat)
    fig, axes = new_subplots(1, 3, figsize=(9.0, 3.4))
    axes[0].imshow(shown)
    axes[0].set_title("image")
    im = axes[1].imshow(heat, cmap=cmap, vmin=0, vmax=1)
    axes[1].set_title(f"Grad-CAM (max {peak:.3g})")
    bar = fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
    bar.set_label("relative to this map's maximum", fontsize="small")
    axes[2].imshow(shown)
    axes[2].imshow(heat, cmap=cmap, alpha=alpha, vmin=0, vmax=1)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
