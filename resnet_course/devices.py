"""Choosing the device to compute on: CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "default_device",
    "resolve_device",
    "accelerator_available",
    "cpu_bf16_support",
    "cpu_bf16_flags",
    "onednn_isa_cap",
    "reuse_freed_memory",
    "native_mixed_precision",
    "model_device",
]

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


def cpu_bf16_support(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[bool, str]:
    """Whether bf16 autocast (``TrainConfig(amp=True)`` on a CPU) pays on this CPU, and its bf16 flags as text.

    Measured for this course, 2-core machines, whole training runs against fp32:

    * Intel with AMX (``amx_bf16``: Sapphire Rapids and newer Xeons): 1.5-1.7x faster → True;
    * AMD with ``avx512_bf16`` (a Zen 4 EPYC): 2.2-2.9x faster per training step → True;
    * Intel with ``avx512_bf16`` but no AMX (an Emerald Rapids VM that hides AMX; Cooper Lake has the same
      instructions): 1.6x *slower* — oneDNN's avx512_core_bf16 kernels gain no arithmetic there and the casts
      cost → False;
    * neither flag (most laptops, AVX2-only servers): up to 14x slower → False.

    The text is e.g. ``"amx_bf16, avx512_bf16"``; it starts with "none" when the CPU has no bf16 instructions or
    :func:`onednn_isa_cap` keeps oneDNN below the ones that pay, with "unknown" where ``cpuinfo`` is unreadable or
    lists no flags (not Linux, or not x86), and with "avx512_bf16 without AMX" on such an Intel CPU.
    """
    try:
        lines = Path(cpuinfo).read_text().splitlines()
        flags = next(line for line in lines if line.startswith("flags"))
    except (OSError, StopIteration):
        return False, f"unknown (no x86 flags in {cpuinfo})"
    vendor = next((line.split(":", 1)[-1].strip() for line in lines if line.startswith("vendor_id")), "")
    found = sorted({"avx512_bf16", "amx_bf16"} & set(flags.split(":", 1)[-1].split()))
    if not found:
        return False, "none (neither avx512_bf16 nor amx_bf16)"
    avx512_pays = vendor == "AuthenticAMD" and "amx_bf16" not in found  # AMD: the AVX-512 bf16 kernels suffice
    needed = "AVX512_CORE_BF16" if avx512_pays else "AVX512_CORE_AMX"
    cap = onednn_isa_cap()
    if cap is not None and _ISA_RANK.get(cap.split("=", 1)[1].upper(), 99) < _ISA_RANK[needed]:
        return False, f"none ({', '.join(found)} present, but {cap} keeps oneDNN below {needed})"
    if "amx_bf16" not in found and not avx512_pays:
        return False, "avx512_bf16 without AMX (slower than fp32 on Intel CPUs)"
    return True, ", ".join(found)


def cpu_bf16_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The text of :func:`cpu_bf16_support`: this CPU's bf16 flags (``avx512_bf16``, ``amx_bf16``), or why bf16
    autocast would not pay here."""
    return cpu_bf16_support(cpuinfo)[1]


# oneDNN's ISA names (``ONEDNN_MAX_CPU_ISA``), ranked: a cap at one keeps oneDNN from every higher rank. The
# AVX10 names are aliases of the AVX-512 ones of the same rank.
_ISA_RANK = {
    **{name: rank for rank, name in enumerate(("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE"))},
    "AVX512_CORE_VNNI": 6,
    "AVX512_CORE_BF16": 7,
    "AVX512_CORE_FP16": 8,
    "AVX10_1_512": 8,
    "AVX512_CORE_AMX": 9,
    "AVX10_1_512_AMX": 9,
    "AVX512_CORE_AMX_FP16": 10,
    "AVX10_1_512_AMX_FP16": 10,
    "AVX10_2_512": 11,
    "AVX10_2_512_AMX_2": 12,
}


def onednn_isa_cap() -> str | None:
    """``"ONEDNN_MAX_CPU_ISA=AVX2"`` (or the older ``DNNL_MAX_CPU_ISA``) where that variable caps the instruction
    set oneDNN, which runs PyTorch's CPU convolutions, may use; None where nothing caps it.

    Setting it together with ``ATEN_CPU_CAPABILITY=avx2`` makes a newer CPU compute like an AVX2-only one (the same
    instructions, not the same clock or caches): the benchmarks' ``--isa avx2`` uses this to measure the AVX2 kind of
    machine on a CPU with AVX-512/AMX.
    """
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "").strip()
        if value and value.upper() not in {"ALL", "DEFAULT"}:
            return f"{name}={value}"
    return None


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


_MEMORY_REUSED = False


def reuse_freed_memory() -> bool:
    """Linux with glibc: let ``malloc`` keep freed blocks of up to 1 GiB for reuse instead of handing them back to the
    system, so that a CPU training step stops paying page faults for the activations the step before freed
    (measured on a 2-core CPU: no page faults instead of about 20,000 per ResNet-18 step, 3-4 % more images/s;
    the usual advice is a different allocator, jemalloc or tcmalloc, which must be chosen before Python starts).

    The process then keeps its peak memory reserved until it exits. Called by ``fit`` when it trains on the CPU;
    once per process. Returns whether it applied (False elsewhere: macOS, Windows, musl, or a failed call).
    """
    global _MEMORY_REUSED
    if _MEMORY_REUSED or not sys.platform.startswith("linux"):
        return _MEMORY_REUSED
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    _MEMORY_REUSED = bool(mallopt(m_mmap_threshold, 1 << 30)) and bool(mallopt(m_trim_threshold, 1 << 30))
    return _MEMORY_REUSED
