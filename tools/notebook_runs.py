"""What the maintainer tools share: running a course notebook, reading its outputs, describing the machine and the
data. Used by ``tools/render_notebooks.py``, ``benchmarks/lessons.py`` and the tests (``tests/conftest.py``).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def outputs_text(nb: Any) -> str:
    """The text of a notebook's outputs: stream text, plain-text results and Markdown."""
    return "\n".join(
        "".join(out.get("text", ""))
        + "".join(out.get("data", {}).get("text/markdown", ""))
        + "".join(out.get("data", {}).get("text/plain", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def used_stand_in(text: str) -> bool:
    """True when notebook output shows the shapes10 fallback: its loud notice, or a data summary line of shapes10
    (a mere mention of the name, e.g. in a caption or the profiles table, does not count)."""
    return "offline dataset 'shapes10'" in text or re.search(r"^shapes10[:-]", text, flags=re.M) is not None


# What ``--isa avx2`` sets: oneDNN (convolutions) and ATen's vectorised kernels use AVX2 at most, so that a CPU with
# AVX-512/AMX computes like the AVX2-only kind of machine students have (its instructions, not its clock or caches).
ISA_CAPS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def add_isa_option(parser: Any) -> None:
    """``--isa``, for :func:`cap_isa`: the option the render tool and the benchmarks share."""
    parser.add_argument(
        "--isa",
        choices=sorted(ISA_CAPS),
        help="compute like a CPU with only this instruction set (avx2: the AVX2-only kind of machine), "
        "by capping oneDNN and ATen in every process",
    )


def cap_isa(isa: str | None) -> None:
    """Cap the instruction set of this process and of every process it starts (``None`` leaves it as it is). Call it
    before the first convolution: oneDNN and ATen read these variables once. Mixed precision is turned off too
    (``RESNET_COURSE_AMP=off``): without AVX-512 no CPU runs bf16 natively."""
    if isa is not None:
        os.environ.update(ISA_CAPS[isa], RESNET_COURSE_AMP="off")


def machine() -> str:
    """CPU model, logical CPUs, the flags that decide training speed (as lscpu reports them) and the GPU if any."""
    import torch

    from resnet_course.devices import cpu_bf16_support

    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        flags = set(fields.get("Flags", "").split())
        name = fields.get("Model name", platform.machine()).strip()
    except (OSError, subprocess.CalledProcessError):
        flags, name = set(), platform.processor() or platform.machine()
    fast, native = cpu_bf16_support()
    if fast:
        kind = "with " + " and ".join(native.split(", "))
    elif native.startswith("avx512_bf16"):
        kind = "with avx512_bf16 but no AMX: fp32 is faster"
    else:
        kind = "AVX2, no native bf16" if "avx2" in flags else "no bf16"
    caps = [f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if os.environ.get(k)]
    if caps:
        kind += f"; instruction set capped: {', '.join(caps)}"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core {name} ({kind}), {gpu}"


def describe_data() -> str:
    """The CIFAR-10 the course reads from ``RESNET_COURSE_DATA``; raises the loader's error when it is absent."""
    from resnet_course.data.cifar10 import load_cifar10

    train, test = load_cifar10(download=False)
    kind = "the real CIFAR-10" if len(train) == 50_000 else "a real subset of CIFAR-10"
    return f"{kind} ({len(train):,} training / {len(test):,} test images)"


def execute_notebook(path: Path, env: Mapping[str, str | None], timeout: int = 1200) -> tuple[Any, float]:
    """Run the notebook ``path`` top to bottom in a fresh ``python3`` kernel with the environment changed by ``env``
    (``None`` removes a variable); returns the executed notebook and its wall seconds. Widget state saved by an
    earlier run is dropped first (this run saves its own)."""
    import nbclient
    import nbformat

    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    client = nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - start
