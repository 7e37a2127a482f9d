"""Device selection: auto, explicit names, and clear errors for unavailable or unknown devices."""

from __future__ import annotations

import pytest
import torch

from resnet_course.devices import DEVICE_CHOICES, default_device, resolve_device


def test_auto_and_none_pick_the_default_device() -> None:
    assert resolve_device("auto") == resolve_device(None) == default_device()
    assert default_device().type in DEVICE_CHOICES


def test_explicit_cpu_and_torch_devices_pass_through() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu", "CPU0"])
def test_unknown_names_raise_valueerror_listing_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match=r"unknown device .*choose one of"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_says_what_to_use_instead() -> None:
    with pytest.raises(ValueError, match="CUDA is not available here; use --device auto or cpu"):
        resolve_device("cuda")


def test_cpu_bf16_flags_reads_cpuinfo(tmp_path) -> None:
    from resnet_course.devices import cpu_bf16_flags

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 avx512_bf16\n")
    assert cpu_bf16_flags(info) == "amx_bf16, avx512_bf16"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    assert cpu_bf16_flags(info).startswith("none")
    info.write_text("Processor\t: ARMv8\n")
    assert cpu_bf16_flags(info).startswith("unknown")
    assert cpu_bf16_flags(tmp_path / "missing").startswith("unknown")


def test_native_mixed_precision_follows_the_cpu_flags(tmp_path) -> None:
    from resnet_course.devices import native_mixed_precision

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f amx_bf16 avx512_bf16\n")
    assert native_mixed_precision("cpu", info)
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n")
    assert not native_mixed_precision("cpu", info)
    assert not native_mixed_precision("cpu", tmp_path / "missing")  # unknown: off


def test_avx512_bf16_pays_on_amd_but_not_on_intel_without_amx(tmp_path) -> None:
    from resnet_course.devices import cpu_bf16_support

    info = tmp_path / "cpuinfo"
    info.write_text("vendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_bf16_support(info) == (True, "avx512_bf16")
    info.write_text("vendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_bf16_support(info) == (False, "avx512_bf16 without AMX (slower than fp32 on Intel CPUs)")
    info.write_text("vendor_id\t: GenuineIntel\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert cpu_bf16_support(info) == (True, "amx_bf16, avx512_bf16")
    info.write_text("vendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2\n")
    assert cpu_bf16_support(info)[0] is False
