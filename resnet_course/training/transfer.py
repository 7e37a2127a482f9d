"""Transfer learning: pretrained torchvision weights, a new head, a frozen backbone, per-layer learning rates.

* :func:`find_weights` looks for a weights file of torchvision's weights API (``ResNet18_Weights.IMAGENET1K_V1``
  …) in torch hub's cache and downloads it only when allowed and the server answers within a timeout — an
  offline machine gets ``None`` and the reason in seconds, never a hang. :func:`weights_help` says how to
  install the file by hand; :func:`load_pretrained` builds the course model of the same architecture and
  loads the file with ``strict=True``.
* :func:`replace_head` gives a network a new ``fc`` for another number of classes; :func:`feature_extractor`
  also freezes everything else, BatchNorm statistics included (:func:`freeze_batchnorm`).
* :func:`fine_tuning_factors` is the ``TrainConfig.lr_factors`` of discriminative fine-tuning (a smaller learning
  rate for the backbone than for the new head), which :func:`resnet_course.training.engine.fit` turns into optimizer
  parameter groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.ops.misc import FrozenBatchNorm2d

from resnet_course.models.registry import create

__all__ = [
    "WeightsStatus",
    "WeightsUnavailableError",
    "weights_file",
    "find_weights",
    "weights_help",
    "load_pretrained",
    "replace_head",
    "feature_extractor",
    "freeze_batchnorm",
    "fine_tuning_factors",
]

DOWNLOAD_TIMEOUT = 5.0  # seconds without an answer after which the weights server counts as unreachable


class WeightsUnavailableError(RuntimeError):
    """The pretrained weights file is not cached and could not be downloaded; the message says how to get it."""


class WeightsStatus(NamedTuple):
    """Where a weights file is (``path``, ``None`` when unavailable) and why (``message``)."""

    path: Path | None
    message: str


def _as_weights(weights: WeightsEnum | str) -> WeightsEnum:
    if isinstance(weights, WeightsEnum):
        return weights
    from torchvision.models import get_weight

    try:
        return get_weight(weights)
    except (ValueError, KeyError, AttributeError):
        raise ValueError(
            f"unknown weights {weights!r}; give an enum such as ResNet18_Weights.IMAGENET1K_V1 or its name "
            "'ResNet18_Weights.IMAGENET1K_V1'"
        ) from None


def weights_file(weights: WeightsEnum | str) -> Path:
    """The path torchvision keeps ``weights`` at: ``torch.hub.get_dir()/checkpoints/<file name>``."""
    weights = _as_weights(weights)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def weights_help(weights: WeightsEnum | str) -> str:
    """How to install ``weights`` by hand (for a machine without internet)."""
    weights = _as_weights(weights)
    file = weights_file(weights)
    size = weights.meta.get("_file_size")
    return (
        f"On a machine with internet, download {weights.url}"
        + (f" ({size:.1f} MB)" if size else "")
        + f" and copy the file into {file.parent} (set TORCH_HOME to move that folder), or there run once: "
        f"python -c \"import torch; torch.hub.load_state_dict_from_url('{weights.url}')\"."
    )


def find_weights(
    weights: WeightsEnum | str, *, allow_download: bool = True, timeout: float = DOWNLOAD_TIMEOUT
) -> WeightsStatus:
    """The cached file of ``weights``, downloading it first when ``allow_download`` and the server answers.

    Never hangs: the server must accept a connection within ``timeout`` seconds and every later read too.
    Returns ``WeightsStatus(path, message)``, with ``path=None`` and the reason when the file is unavailable.
    A download that fails half-way leaves no file behind (``torch.hub`` writes to a temporary file first).
    """
    from resnet_course.downloads import check_reachable, socket_timeout

    weights = _as_weights(weights)
    file = weights_file(weights)
    if file.is_file():
        return WeightsStatus(file, f"found in the cache: {file}")
    if not allow_download:
        return WeightsStatus(None, f"not in the cache ({file}), and downloading is switched off")
    try:
        check_reachable(weights.url, timeout)
        with socket_timeout(timeout):
            torch.hub.load_state_dict_from_url(
                weights.url, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
    except (OSError, RuntimeError) as err:  # URLError and timeouts are OSErrors; a bad hash is a RuntimeError
        return WeightsStatus(None, f"not in the cache ({file}), and the download failed: {err}")
    return WeightsStatus(file, f"downloaded to {file}")


def load_pretrained(
    weights: WeightsEnum | str, *, allow_download: bool = True, timeout: float = DOWNLOAD_TIMEOUT, **kwargs: Any
) -> nn.Module:
    """The course model of ``weights``' architecture (e.g. ``resnet18`` for ``ResNet18_Weights``) with the
    pretrained weights loaded (``strict=True``), in eval mode on the CPU.

    Raises :class:`WeightsUnavailableError` (with :func:`weights_help`'s advice) when the file is neither cached
    nor downloadable, ``ValueError`` for weights of an architecture the course does not build.
    """
    weights = _as_weights(weights)
    arch = type(weights).__name__.removesuffix("_Weights").lower()
    try:
        model = create(arch, num_classes=len(weights.meta["categories"]), **kwargs)
    except ValueError as err:
        raise ValueError(f"{type(weights).__name__}: the course has no matching model ({err})") from None
    status = find_weights(weights, allow_download=allow_download, timeout=timeout)
    if status.path is None:
        raise WeightsUnavailableError(f"{weights}: {status.message}.\n{weights_help(weights)}")
    model.load_state_dict(torch.load(status.path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace ``model.fc`` by a new ``nn.Linear(model.fc.in_features, num_classes)`` (in place; returned).

    The new layer is initialised like PyTorch's default ``nn.Linear`` and placed on the old head's device.
    """
    fc = getattr(model, "fc", None)
    if not isinstance(fc, nn.Linear):
        raise ValueError(f"the model has no nn.Linear head called fc (found {type(fc).__name__}); "
                         "replace_head works on ResNet-style models")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    model.fc = nn.Linear(fc.in_features, num_classes).to(fc.weight.device)
    return model


def freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` (in place; returned) by a ``FrozenBatchNorm2d`` holding the
    same statistics and affine weights as constants.

    ``requires_grad=False`` does not freeze BatchNorm: its running statistics are buffers that every forward
    pass in training mode updates. ``FrozenBatchNorm2d`` (torchvision's detection models use it) never changes,
    in either mode. It also has no trainable parameters.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps).to(child.running_mean.device)
            with torch.no_grad():
                if child.affine:
                    frozen.weight.copy_(child.weight)
                    frozen.bias.copy_(child.bias)
                if child.track_running_stats:
                    frozen.running_mean.copy_(child.running_mean)
                    frozen.running_var.copy_(child.running_var)
                else:
                    raise ValueError(f"{name}: a BatchNorm without running statistics cannot be frozen")
            setattr(module, name, frozen)
        else:
            freeze_batchnorm(child)
    return module


def feature_extractor(model: nn.Module, num_classes: int, *, freeze_bn: bool = True) -> nn.Module:
    """``model`` as a fixed feature extractor with a new trainable head for ``num_classes`` (in place).

    Every existing parameter gets ``requires_grad=False``, ``fc`` is replaced (:func:`replace_head`) and, with
    ``freeze_bn``, BatchNorm statistics are frozen too (:func:`freeze_batchnorm`).
    """
    for p in model.parameters():
        p.requires_grad_(False)
    replace_head(model, num_classes)
    return freeze_batchnorm(model) if freeze_bn else model


def fine_tuning_factors(backbone_factor: float, head: str = "fc.") -> dict[str, float]:
    """``TrainConfig.lr_factors`` for discriminative fine-tuning: the head (parameters named ``head…``) at the
    base learning rate, everything else at ``backbone_factor`` times it (Howard & Ruder 2018)."""
    if not backbone_factor > 0:
        raise ValueError(f"backbone_factor must be positive, got {backbone_factor!r}; to keep the backbone "
                         "fixed use feature_extractor() instead")
    return {"": float(backbone_factor), head: 1.0}
