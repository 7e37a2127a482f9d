"""Notebook 00's environment check: one row per requirement, each with a fix when it is missing.

CIFAR-10 is looked for exactly where the loader reads it (:func:`resnet_course.data.cifar10.cifar10_folder`).
"""

from __future__ import annotations

import html
import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple

import torch

from resnet_course.checks.framework import describe_error

__all__ = ["EnvRow", "EnvironmentReport", "environment_report"]


# --------------------------------------------------------------------------------------------------
# Environment report (notebook 00)
# --------------------------------------------------------------------------------------------------


class EnvRow(NamedTuple):
    """One line of the environment report."""

    item: str
    value: str
    ok: bool
    fix: str  # how to fix it (empty when nothing needs fixing)


class EnvironmentReport(list):
    """A list of :class:`EnvRow` that Jupyter shows as a table (``print()`` gives a text table)."""

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self)

    @property
    def problems(self) -> list[EnvRow]:
        return [row for row in self if not row.ok]

    def __str__(self) -> str:
        w_item = max(len(r.item) for r in self)
        w_value = min(48, max(len(r.value) for r in self))
        lines = []
        for r in self:
            mark = "✅" if r.ok else "❌"
            line = f"{mark} {r.item:<{w_item}}  {r.value:<{w_value}}"
            if r.fix:
                line += f"  → {r.fix}"
            lines.append(line.rstrip())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td style='text-align:left'>{}</td></tr>".format(
                "✅" if r.ok else "❌", html.escape(r.item), html.escape(r.value), html.escape(r.fix)
            )
            for r in self
        )
        head = "<tr><th></th><th>item</th><th>value</th><th style='text-align:left'>how to fix</th></tr>"
        return f"<table>{head}{rows}</table>"

    def __repr__(self) -> str:
        return str(self)


_TORCH_FIX = "pip install -e .  (installs the pinned pair: torch 2.14 + torchvision 0.29)"


_GRAPHVIZ_FIX = (
    "sudo apt-get install graphviz | brew install graphviz | conda install -c conda-forge graphviz"
)


def _module_version(name: str) -> tuple[str, bool]:
    try:
        module = importlib.import_module(name)
    except Exception as err:  # ImportError, or a broken install raising something else
        return f"not importable ({describe_error(err)})", False
    version = getattr(module, "__version__", None)
    if version is None:  # e.g. torchviz has no __version__; ask the installed distribution
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "installed"
    return str(version), True


def _python_and_torch_rows() -> list[EnvRow]:
    """Python, torch and torchvision (whose compiled operators must match torch)."""
    py_ok = sys.version_info >= (3, 10)
    rows = [EnvRow("Python", platform.python_version(), py_ok, "" if py_ok else "install Python ≥ 3.10")]
    torch_version = torch.__version__
    torch_ok = torch_version.startswith("2.14")
    rows.append(EnvRow("torch", torch_version, torch_ok, "" if torch_ok else _TORCH_FIX))
    tv_version, tv_ok = _module_version("torchvision")
    if tv_ok:
        try:  # a torch/torchvision mismatch shows up as a missing compiled operator
            from torchvision.ops import nms

            nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
        except Exception as err:
            tv_ok, tv_version = False, f"{tv_version}, operators broken ({describe_error(err)})"
        else:
            tv_ok = tv_version.startswith("0.29")
    rows.append(EnvRow("torchvision", tv_version, tv_ok, "" if tv_ok else _TORCH_FIX))
    return rows


def _device_row() -> EnvRow:
    from resnet_course.devices import default_device

    device = default_device()
    device_fix = "" if device.type != "cpu" else "fine: the smoke and cpu profiles are sized for CPUs"
    name = device.type
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(0)})"
    return EnvRow("device", name, True, device_fix)


def _profile_row() -> tuple[EnvRow, Any]:
    """The profile row and the active profile (``None`` when the environment names an invalid one)."""
    from resnet_course.profiles import DATASET_ENV, PROFILE_ENV, get_profile

    try:
        profile = get_profile()
    except ValueError as err:
        fix = f"{err} — fix or unset {PROFILE_ENV} / {DATASET_ENV}"
        return EnvRow("profile", "invalid", False, fix), None
    return EnvRow("profile", f"{profile.name} ({profile.chosen_by})", True, ""), profile


def _data_dir_row(root: Path) -> EnvRow:
    from resnet_course.profiles import DATA_ENV

    if root.is_dir():
        writable = os.access(root, os.W_OK)
        return EnvRow(
            "data directory", str(root), writable, "" if writable else f"make it writable or set {DATA_ENV}"
        )
    parent = next((p for p in root.parents if p.exists()), None)
    creatable = parent is not None and os.access(parent, os.W_OK)
    return EnvRow(
        "data directory",
        f"{root} (created on first use)",
        creatable,
        "" if creatable else f"set {DATA_ENV} to a writable folder",
    )


def _cifar10_row(root: Path, wants_cifar: bool) -> EnvRow:
    """CIFAR-10 found exactly where :func:`~resnet_course.data.cifar10.load_cifar10` reads it
    (:func:`~resnet_course.data.cifar10.cifar10_folder`, the function the loader uses)."""
    from resnet_course.data.cifar10 import cifar10_folder

    cifar = cifar10_folder(root)
    if cifar is not None:
        return EnvRow("CIFAR-10", f"found in {cifar}", True, "")
    return EnvRow(
        "CIFAR-10",
        "not found",
        not wants_cifar,
        "downloaded on first use when online; offline: extract cifar-10-python.tar.gz "
        f"(https://www.cs.toronto.edu/~kriz/cifar.html) into {root}. "
        + (
            "Until then the notebooks use shapes10 and say so."
            if wants_cifar
            else "Not needed by this profile."
        ),
    )


def _custom_dataset_row(dataset: str) -> EnvRow:
    folder = Path(dataset)
    sub = folder / "train" if (folder / "train").is_dir() else folder
    classes = sorted(p.name for p in sub.iterdir() if p.is_dir() and not p.name.startswith("."))
    ok = len(classes) >= 2
    return EnvRow(
        "your dataset",
        f"{folder}: {len(classes)} classes"
        + (f" ({', '.join(classes[:5])}{', …' if len(classes) > 5 else ''})" if classes else ""),
        ok,
        ""
        if ok
        else "an ImageFolder needs one subfolder per class (at least two), optionally under train/ and test/",
    )


def _tool_rows() -> list[EnvRow]:
    """torchinfo, torchviz and Graphviz's ``dot``."""
    rows = []
    for module in ("torchinfo", "torchviz"):
        version, ok = _module_version(module)
        rows.append(EnvRow(module, version, ok, "" if ok else f"pip install {module}"))
    dot = shutil.which("dot")
    fix = "" if dot else f"only needed to draw computation graphs (notebooks 03, 07): {_GRAPHVIZ_FIX}"
    rows.append(EnvRow("Graphviz dot", dot or "not found", dot is not None, fix))
    return rows


def environment_report() -> EnvironmentReport:
    """Check what the course needs; one :class:`EnvRow` (item, value, ok, how to fix) per item.

    Items: Python, torch, torchvision (and that their compiled operators match), the device, the profile,
    the data directory, CIFAR-10 (where :func:`~resnet_course.data.cifar10.load_cifar10` reads it), a custom dataset
    when ``RESNET_COURSE_DATASET`` names a folder, torchinfo, torchviz and Graphviz's ``dot``.
    """
    from resnet_course.profiles import data_dir

    rows = EnvironmentReport(_python_and_torch_rows())
    rows.append(_device_row())
    profile_row, profile = _profile_row()
    rows.append(profile_row)
    root = data_dir()
    rows.append(_data_dir_row(root))
    rows.append(_cifar10_row(root, wants_cifar=profile is not None and profile.dataset == "cifar10"))
    if profile is not None and profile.dataset not in ("cifar10", "shapes10"):
        rows.append(_custom_dataset_row(profile.dataset))
    rows.extend(_tool_rows())
    return rows
