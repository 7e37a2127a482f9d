"""Choosing the device to compute on: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = [
    "default_device",
    "resolve_device",
    "accelerator_kind",
    "cpu_bf16_support",
    "cpu_bf16_flags",
    "native_mixed_precision",
    "model_device",
]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def accelerator_kind() -> tuple[str, float | None]:
    """``("cuda", GiB of the first GPU's memory)``, ``("mps", None)`` or ``("cpu", None)``: the kind of
    :func:`default_device`, which :func:`~resnet_course.profiles.get_profile` chooses a profile by."""
    kind = default_device().type
    return kind, torch.cuda.get_device_properties(0).total_memory / 2**30 if kind == "cuda" else None


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


def cpu_bf16_support(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[bool, str]:
    """Whether bf16 autocast pays on this CPU, and its bf16 flags as text (e.g. ``"amx_bf16, avx512_bf16"``).

    bf16 runs natively on Intel CPUs with AMX (``amx_bf16``, Xeons since Sapphire Rapids: measured 1.5-1.7x faster
    per whole run than fp32) and AMD CPUs with ``avx512_bf16`` (Zen 4 and later: 2.2-2.9x faster per training
    step). Everywhere else it only adds casts: 1.6x slower on an Intel CPU with ``avx512_bf16`` but no AMX, up to
    14x on AVX2-only CPUs (``benchmarks/RESULTS.md``).
    """
    try:
        lines = Path(cpuinfo).read_text().splitlines()
        flags = set(next(line for line in lines if line.startswith("flags")).split(":", 1)[-1].split())
    except (OSError, StopIteration):
        return False, f"unknown (no x86 flags in {cpuinfo})"
    amd = any(line.startswith("vendor_id") and "AuthenticAMD" in line for line in lines)
    found = ", ".join(sorted({"avx512_bf16", "amx_bf16"} & flags)) or "none (neither avx512_bf16 nor amx_bf16)"
    if "amx_bf16" in flags or (amd and "avx512_bf16" in flags):
        return True, found
    if "avx512_bf16" in flags:
        return False, "avx512_bf16 without AMX (slower than fp32 on Intel CPUs)"
    return False, found


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The text of :func:`cpu_bf16_support`: this CPU's bf16 flags, or why bf16 autocast would not pay here."""
    return cpu_bf16_support(cpuinfo)[1]


def native_mixed_precision(device: str | torch.device | None = None, cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """True where mixed precision (``TrainConfig(amp=True)``) runs on native low-precision arithmetic, so that it
    pays: every CUDA GPU (bf16 where supported, else fp16 tensor cores), and a CPU on which bf16 autocast was
    measured faster than fp32 — Intel with AMX, AMD with ``avx512_bf16`` (:func:`cpu_bf16_support` gives the
    figures). False on Apple MPS and on every other CPU. ``device=None`` means :func:`default_device`.
    """
    dev = default_device() if device is None else resolve_device(device)
    if dev.type == "cuda":
        return True
    if dev.type == "cpu":
        return cpu_bf16_support(cpuinfo)[0]
    return False


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")
