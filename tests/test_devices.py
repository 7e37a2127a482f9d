"""Device selection: auto, explicit names, and clear errors for unavailable or unknown devices."""

from __future__ import annotations

import sys

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


def test_avx512_bf16_pays_on_amd_but_not_on_intel_without_amx(tmp_path, monkeypatch) -> None:
    from resnet_course.devices import cpu_bf16_support

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    info = tmp_path / "cpuinfo"
    flags = "flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_fp16\n"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n" + flags)
    assert cpu_bf16_support(info) == (True, "avx512_bf16")
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n" + flags)  # measured 1.6x slower than fp32
    assert cpu_bf16_support(info) == (False, "avx512_bf16 without AMX (slower than fp32 on Intel CPUs)")
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n" + flags.replace("avx512f", "avx512f amx_bf16"))
    assert cpu_bf16_support(info) == (True, "amx_bf16, avx512_bf16")
    for cap in ("AVX512_CORE_BF16", "AVX10_1_512"):  # below AMX: the AVX-512 bf16 kernels only
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        fast, text = cpu_bf16_support(info)
        assert not fast and text.endswith(f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN below AVX512_CORE_AMX)")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX10_1_512_AMX")  # the AVX10 name of AVX512_CORE_AMX
    assert cpu_bf16_support(info)[0]
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n" + flags)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # enough on AMD
    assert cpu_bf16_support(info)[0]
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_VNNI")
    assert not cpu_bf16_support(info)[0]


def test_a_onednn_isa_cap_below_bf16_turns_native_bf16_off(tmp_path, monkeypatch) -> None:
    from resnet_course.devices import cpu_bf16_flags, native_mixed_precision, onednn_isa_cap

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 avx512_bf16\n")
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    assert onednn_isa_cap() == "ONEDNN_MAX_CPU_ISA=avx2"
    assert (
        cpu_bf16_flags(info)
        == "none (amx_bf16, avx512_bf16 present, but ONEDNN_MAX_CPU_ISA=avx2 keeps oneDNN below AVX512_CORE_AMX)"
    )
    assert not native_mixed_precision("cpu", info)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")  # a cap above bf16 changes nothing
    assert cpu_bf16_flags(info) == "amx_bf16, avx512_bf16"
    assert native_mixed_precision("cpu", info)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")
    assert onednn_isa_cap() is None
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE")  # the older name
    assert not native_mixed_precision("cpu", info)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_reuse_freed_memory_stops_page_faults_of_repeated_large_allocations() -> None:
    import resource

    from resnet_course.devices import reuse_freed_memory

    def faults_of_allocations() -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(20):
            torch.ones(64 << 20, dtype=torch.uint8)  # 64 MB: above glibc's largest automatic mmap threshold
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    assert reuse_freed_memory()
    assert reuse_freed_memory()  # once per process; later calls say it is applied
    faults_of_allocations()  # the heap grows once
    assert faults_of_allocations() < 1000  # 20 × 16,384 pages without it
