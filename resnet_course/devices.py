"""Choosing the device to compute on: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import torch

__all__ = ["default_device", "resolve_device", "accelerator_available"]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def accelerator_available() -> bool:
    """True when CUDA or Apple's MPS backend can be used."""
    return torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available())


def default_device() -> torch.device:
    """The best available device: ``cuda`` if present, else ``mps``, else ``cpu``."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``None``/a name/a ``torch.device`` into a usable ``torch.device``.

    Raises ``ValueError`` with the available choices when the requested device is not present.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return default_device()
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):  # a name torch does not know, e.g. "tpu" or "gpu"
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but CUDA is not available here; use --device auto or cpu")
    if dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but Apple MPS is not available here; use --device auto or cpu")
    if dev.type not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    return dev
