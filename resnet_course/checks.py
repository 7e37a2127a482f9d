"""Self-checks for the notebooks' exercises, and the environment check of notebook 00.

Every ``check_*`` function prints one friendly line — ``✅ ...`` when the answer is right, ``❌ ...`` followed
by a ``Hint:`` when it is not. A right answer returns a :class:`CheckResult` (truthy; a notebook shows nothing
more for it). A wrong answer, after the message, raises :class:`ExerciseFailed` (an ``AssertionError``), so the
check cell fails: that is what nbgrader's autograder scores as zero points (docs/TEACHING.md). Exceptions raised
by the student's code are caught and turned into hints first, so the message always comes before the error.

Writing a new check (other notebooks append theirs here):

* decorate it with :func:`friendly_check`; return the success message (a string);
* raise :class:`Hint` (``Hint("what is wrong", "what to try")``) to fail;
* run the student's code through :func:`student_call`, which turns any exception into a :class:`Hint`.

>>> @friendly_check
... def check_answer(x):
...     if x != 42:
...         raise Hint(f"got {x}", "the answer is 6 × 7")
...     return "42 is right"
>>> check_answer(41)  # prints the result, then fails the cell
❌ got 41
   Hint: the answer is 6 × 7
Traceback (most recent call last):
  ...
ExerciseFailed: ❌ got 41
   Hint: the answer is 6 × 7
"""

from __future__ import annotations

import copy
import functools
import html
import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from .inspection import randomize_batchnorm

__all__ = [
    "CheckResult",
    "ExerciseFailed",
    "Hint",
    "friendly_check",
    "student_call",
    "EnvRow",
    "EnvironmentReport",
    "environment_report",
    "check_basic_block",
    "check_resnet34",
]


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check: ``passed``, a one-line ``message`` and, on failure, a ``hint``."""

    passed: bool
    message: str
    hint: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        if self.passed:
            return f"✅ {self.message}"
        text = f"❌ {self.message}"
        if self.hint:
            text += f"\n   Hint: {self.hint}"
        return text

    def show(self) -> CheckResult:
        """Print the result and return it."""
        print(self)
        return self

    def _ipython_display_(self) -> None:
        """Shown by :meth:`show` already: as a cell's last value, display nothing more."""


class Hint(Exception):
    """Raised inside a check to fail it: ``Hint(message, hint)``."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ExerciseFailed(AssertionError):
    """Raised by a check after it has printed a failed :class:`CheckResult` (kept as ``.result``).

    An ``AssertionError``, like the ``assert`` lines of nbgrader's own test cells: the check cell fails, and
    nbgrader's autograder gives the exercise zero points.
    """

    def __init__(self, result: CheckResult) -> None:
        super().__init__(str(result))
        self.result = result


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def student_call(
    fn: Callable[..., Any], *args: Any, what: str = "your code", hint: str = "", **kwargs: Any
) -> Any:
    """Call the student's ``fn``; any exception becomes a :class:`Hint` saying ``what`` raised it."""
    try:
        return fn(*args, **kwargs)
    except Hint:
        raise
    except NotImplementedError:
        raise Hint(
            f"{what} raised NotImplementedError", "replace the stub with your solution and run its cell again"
        ) from None
    except Exception as err:  # the student's code may raise anything
        raise Hint(
            f"{what} raised {_describe(err)}", hint or "read the error above and fix your code"
        ) from None


def friendly_check(fn: Callable[..., str]) -> Callable[..., CheckResult]:
    """Turn a check body (returns a success message or raises :class:`Hint`) into a check that prints its
    :class:`CheckResult`, returns it when passed and raises :class:`ExerciseFailed` when not.

    Any other exception inside the check is reported as a failed check with a message, never as a bare
    traceback from the check's own code.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> CheckResult:
        __tracebackhide__ = True  # IPython and pytest show the message, not this frame
        try:
            message = fn(*args, **kwargs)
            result = CheckResult(True, message or "correct")
        except Hint as h:
            result = CheckResult(False, h.message, h.hint)
        except Exception as err:  # the check's own failure is reported like a wrong answer
            result = CheckResult(
                False, f"the check could not run: {_describe(err)}", "check the object you passed in"
            )
        result.show()
        if not result.passed:
            raise ExerciseFailed(result) from None
        return result

    return wrapper


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
        return f"not importable ({_describe(err)})", False
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
            tv_ok, tv_version = False, f"{tv_version}, operators broken ({_describe(err)})"
        else:
            tv_ok = tv_version.startswith("0.29")
    rows.append(EnvRow("torchvision", tv_version, tv_ok, "" if tv_ok else _TORCH_FIX))
    return rows


def _device_row() -> EnvRow:
    from .devices import default_device

    device = default_device()
    device_fix = "" if device.type != "cpu" else "fine: the smoke and cpu profiles are sized for CPUs"
    name = device.type
    if device.type == "cuda":
        name += f" ({torch.cuda.get_device_name(0)})"
    return EnvRow("device", name, True, device_fix)


def _profile_row() -> tuple[EnvRow, Any]:
    """The profile row and the active profile (``None`` when the environment names an invalid one)."""
    from .profiles import DATASET_ENV, PROFILE_ENV, get_profile

    try:
        profile = get_profile()
    except ValueError as err:
        fix = f"{err} — fix or unset {PROFILE_ENV} / {DATASET_ENV}"
        return EnvRow("profile", "invalid", False, fix), None
    return EnvRow("profile", f"{profile.name} ({profile.chosen_by})", True, ""), profile


def _data_dir_row(root: Path) -> EnvRow:
    from .profiles import DATA_ENV

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
    """CIFAR-10 found exactly where :func:`~resnet_course.data.load_cifar10` reads it
    (:func:`~resnet_course.data.cifar10_folder`, the function the loader uses)."""
    from .data import cifar10_folder

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
    the data directory, CIFAR-10 (where :func:`~resnet_course.data.load_cifar10` reads it), a custom dataset
    when ``RESNET_COURSE_DATASET`` names a folder, torchinfo, torchviz and Graphviz's ``dot``.
    """
    from .profiles import data_dir

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


# --------------------------------------------------------------------------------------------------
# Notebook 02: implement a BasicBlock
# --------------------------------------------------------------------------------------------------


def _state_dict_diff(student: nn.Module, reference: nn.Module) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong-shape) keys of the student's state dict compared with the reference's."""
    s = {k: tuple(v.shape) for k, v in student.state_dict().items()}
    r = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    missing = [k for k in r if k not in s]
    unexpected = [k for k in s if k not in r]
    wrong = [f"{k}: yours {s[k]}, expected {r[k]}" for k in r if k in s and s[k] != r[k]]
    return missing, unexpected, wrong


def _first(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def _state_dict_diff_text(missing: list[str], unexpected: list[str], wrong: list[str], keys: int = 4) -> str:
    """What :func:`_state_dict_diff` found, in one line for a hint: ``missing a, b; unexpected c; wrong shape
    d: yours (…), expected (…)``. Only the kinds that occur; at most ``keys`` names of each kind and two
    shapes, then "(+N more)"."""
    parts = []
    if missing:
        parts.append(f"missing {_first(missing, keys)}")
    if unexpected:
        parts.append(f"unexpected {_first(unexpected, keys)}")
    if wrong:
        parts.append(f"wrong shape {_first(wrong, 2)}")
    return "; ".join(parts)


def _basic_block_variants(ref: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reference output and the outputs of typical mistakes, computed from the reference's layers."""
    with torch.no_grad():
        f = ref.bn2(ref.conv2(torch.relu(ref.bn1(ref.conv1(x)))))
        f_no_inner_relu = ref.bn2(ref.conv2(ref.bn1(ref.conv1(x))))
        identity = x if ref.downsample is None else ref.downsample(x)
        return {
            "correct": torch.relu(f + identity),
            "no ReLU after the addition": f + identity,
            "ReLU before the addition": torch.relu(f) + identity,
            "no shortcut": torch.relu(f),
            "no ReLU between the two convolutions": torch.relu(f_no_inner_relu + identity),
        }


_BASIC_BLOCK_HINTS = {
    "no ReLU after the addition": "apply ReLU *after* adding the shortcut: out = relu(F(x) + identity)",
    "ReLU before the addition": "the ReLU comes after the addition, not on F(x) before it: relu(bn2(conv2(...)) + identity)",
    "no shortcut": "add the shortcut: out = relu(bn2(conv2(...)) + identity), identity = x or downsample(x)",
    "no ReLU between the two convolutions": "put a ReLU between bn1 and conv2: relu(bn1(conv1(x)))",
}


def _projection(inplanes: int, planes: int, stride: int) -> nn.Module | None:
    """The shortcut of a block: ``None`` (identity) or a 1×1 convolution + BatchNorm projection."""
    from .models import conv1x1

    if stride == 1 and inplanes == planes:
        return None
    return nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))


def _student_block(student_cls: type, inplanes: int, planes: int, stride: int, case: str) -> nn.Module:
    """The student's block built with a fresh shortcut like the reference's; a :class:`Hint` if not a module."""
    block = student_call(
        student_cls,
        inplanes,
        planes,
        stride,
        _projection(inplanes, planes, stride),
        what=case,
        hint="the constructor takes (inplanes, planes, stride=1, downsample=None), like torchvision's BasicBlock",
    )
    if not isinstance(block, nn.Module):
        raise Hint(
            f"{case} is a {type(block).__name__}, not an nn.Module",
            "subclass torch.nn.Module and call super().__init__()",
        )
    return block


def _check_block_parameters(block: nn.Module, ref: nn.Module, case: str) -> None:
    """A :class:`Hint` when the student's parameter names or shapes differ from the reference's."""
    missing, unexpected, wrong = _state_dict_diff(block, ref)
    if any(k.endswith(".bias") and k.startswith("conv") for k in unexpected):
        raise Hint(
            f"{case}: your convolutions have a bias ({_first([k for k in unexpected if k.startswith('conv')])})",
            "use bias=False: the BatchNorm right after each convolution has its own shift (beta), "
            "so a conv bias would be redundant",
        )
    if missing or unexpected:
        raise Hint(
            f"{case}: the parameter names differ from the reference "
            f"({_state_dict_diff_text(missing, unexpected, wrong)})",
            "name the layers conv1, bn1, conv2, bn2 and keep the shortcut module in self.downsample",
        )
    if wrong:
        raise Hint(
            f"{case}: the parameter shapes differ from the reference ({_state_dict_diff_text([], [], wrong)})",
            "conv1 maps inplanes → planes (3×3), conv2 maps planes → planes (3×3); bn1 and bn2 have planes channels",
        )


def _student_block_output(
    block: nn.Module, x: torch.Tensor, case: str, expected_shape: tuple[int, ...]
) -> torch.Tensor:
    """The student's forward pass on ``x``; a :class:`Hint` if it changes ``x`` or returns a wrong shape."""
    x_copy = x.clone()
    with torch.no_grad():
        out = student_call(
            block,
            x,
            what=f"the forward pass of {case}",
            hint="identity = x if self.downsample is None else self.downsample(x); the shapes of F(x) and identity must match",
        )
    if not torch.equal(x, x_copy):
        raise Hint(
            f"{case} changed its input tensor in place",
            "keep the input intact: compute identity before modifying anything, and don't apply an in-place ReLU to x",
        )
    if not isinstance(out, torch.Tensor):
        raise Hint(
            f"{case} returned a {type(out).__name__}, not a tensor", "forward must return the output tensor"
        )
    if tuple(out.shape) != expected_shape:
        hint = "the stride goes on conv1 (the first 3×3 convolution); conv2 always has stride 1"
        if out.shape[1] != expected_shape[1]:
            hint = "conv1 maps inplanes → planes channels and conv2 planes → planes"
        raise Hint(f"{case}: output shape {tuple(out.shape)}, expected {expected_shape}", hint)
    return out


def _compare_block_output(out: torch.Tensor, ref: nn.Module, x: torch.Tensor, case: str) -> None:
    """Nothing when ``out`` is the reference's output; else a :class:`Hint` naming the mistake it matches."""
    variants = _basic_block_variants(ref, x)
    if torch.allclose(out, variants["correct"], atol=1e-5, rtol=1e-4):
        return
    for mistake, value in variants.items():
        if mistake != "correct" and torch.allclose(out, value, atol=1e-5, rtol=1e-4):
            raise Hint(f"{case}: the output matches a block with {mistake}", _BASIC_BLOCK_HINTS[mistake])
    diff = (out - variants["correct"]).abs().max().item()
    raise Hint(
        f"{case}: the output differs from the reference (max abs difference {diff:.3g})",
        "check the order: conv1 → bn1 → ReLU → conv2 → bn2, then + identity, then ReLU "
        "(with identity = self.downsample(x) when downsample is given)",
    )


def _check_one_block(
    student_cls: type, inplanes: int, planes: int, stride: int, generator: torch.Generator
) -> None:
    """Check one configuration of the student's block against the reference; a :class:`Hint` on a mistake."""
    from .models import BasicBlock

    downsample = _projection(inplanes, planes, stride)
    case = f"StudentBlock({inplanes}, {planes}, stride={stride}" + (
        ", downsample=...)" if downsample else ")"
    )
    ref = BasicBlock(inplanes, planes, stride, downsample)
    randomize_batchnorm(ref, generator)
    ref.eval()

    block = _student_block(student_cls, inplanes, planes, stride, case)
    _check_block_parameters(block, ref, case)
    block.load_state_dict(ref.state_dict())
    block.eval()

    x = torch.randn(2, inplanes, 8, 8, generator=generator)
    out = _student_block_output(block, x, case, (2, planes, 8 // stride, 8 // stride))
    _compare_block_output(out, ref, x, case)


@friendly_check
def check_basic_block(student_cls: type) -> str:
    """Check a student's BasicBlock class against :class:`resnet_course.models.BasicBlock`.

    The student's class must take ``(inplanes, planes, stride=1, downsample=None)`` and name its layers like
    torchvision (``conv1, bn1, conv2, bn2, downsample``). The reference weights (with random BatchNorm
    statistics) are loaded into it and the outputs compared, for stride 1 and for stride 2 with a 1×1
    projection shortcut.
    """
    if not isinstance(student_cls, type):
        raise Hint(
            f"expected a class, got {type(student_cls).__name__}",
            "pass the class itself: check_basic_block(StudentBlock), not an instance",
        )
    generator = torch.Generator().manual_seed(0)
    _check_one_block(student_cls, 16, 16, 1, generator)
    _check_one_block(student_cls, 16, 32, 2, generator)
    return (
        f"{student_cls.__name__} matches the reference BasicBlock "
        "(stride 1, and stride 2 with a projection shortcut)"
    )


# --------------------------------------------------------------------------------------------------
# Notebook 03: assemble ResNet-34
# --------------------------------------------------------------------------------------------------


def _blocks_per_stage(model: nn.Module) -> list[int] | None:
    stages = []
    for i in range(1, 10):
        stage = getattr(model, f"layer{i}", None)
        if stage is None:
            break
        stages.append(len(stage) if isinstance(stage, nn.Sequential) else -1)
    return stages or None


@friendly_check
def check_resnet34(model: nn.Module) -> str:
    """Check a student's ResNet-34 (ImageNet layout, 1000 classes) against :func:`resnet_course.models.resnet34`.

    ``model`` is an instance, or an ``nn.Module`` subclass that builds one without arguments (then errors in
    its constructor become hints). Compares the parameter count, the state-dict keys and shapes, and — after
    loading the reference's weights into a copy — the outputs on a random batch.
    """
    from .inspection import count_parameters
    from .models import resnet34

    if isinstance(model, type) and issubclass(model, nn.Module):  # a class: build it, catching its errors
        model = student_call(
            model,
            what=f"{model.__name__}()",
            hint="the class should build ResNet-34 without arguments (num_classes=1000 by default), "
            "or pass an instance: check_resnet34(MyResNet34())",
        )
    if not isinstance(model, nn.Module):
        raise Hint(
            f"expected an nn.Module, got {type(model).__name__}",
            "pass the model (or its class), e.g. check_resnet34(my_resnet34), not a function or its output",
        )
    torch.manual_seed(0)
    ref = resnet34()
    expected = count_parameters(ref)
    got = count_parameters(model)
    if got != expected:
        hint = "ResNet-34 is BasicBlock × [3, 4, 6, 3] at widths 64/128/256/512, with the ImageNet stem and 1000 classes"
        fc = getattr(model, "fc", None)
        stages = _blocks_per_stage(model)
        if isinstance(fc, nn.Linear) and fc.out_features != 1000:
            hint = f"your head has {fc.out_features} outputs; build it for ImageNet's 1000 classes (num_classes=1000)"
        elif stages is not None and stages != [3, 4, 6, 3]:
            hint = f"your stages have {stages} blocks; ResNet-34 has [3, 4, 6, 3] (Table 1 of He et al. 2015)"
        elif isinstance(getattr(model, "conv1", None), nn.Conv2d) and model.conv1.kernel_size != (7, 7):
            hint = "use the ImageNet stem (7×7 convolution, stride 2, then a 3×3 max-pool)"
        raise Hint(f"your model has {got:,} parameters; ResNet-34 has {expected:,}", hint)

    diff = _state_dict_diff(model, ref)
    if any(diff):
        raise Hint(
            f"the parameter count is right but the state dicts differ: {_state_dict_diff_text(*diff, keys=3)}",
            "use the package's blocks and torchvision's names (conv1, bn1, layer1…layer4, fc; downsample for projections)",
        )

    model = copy.deepcopy(model)  # loading the reference weights must not overwrite the student's model
    randomize_batchnorm(ref, torch.Generator().manual_seed(1))
    student_call(model.load_state_dict, ref.state_dict(), what="load_state_dict")
    ref.eval()
    model.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected_out = ref(x)
        out = student_call(model, x, what="your model's forward pass")
    if not isinstance(out, torch.Tensor) or out.shape != expected_out.shape:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Hint(
            f"output {shape}, expected {tuple(expected_out.shape)}",
            "the model should return the logits (N, 1000)",
        )
    diff = (out - expected_out).abs().max().item()
    if diff > 1e-4:
        raise Hint(
            f"same parameters, but the outputs differ (max abs difference {diff:.3g})",
            "check the forward order: stem (conv1, bn1, relu, maxpool) → layer1…layer4 → avgpool → flatten → fc",
        )
    return f"your ResNet-34 matches the reference: {got:,} parameters, same state dict, same outputs"


# --- notebook 06 ---
# --------------------------------------------------------------------------------------------------
# Notebook 06: per-class recall from a confusion matrix
# --------------------------------------------------------------------------------------------------


def _labels_from_confusion(cm: Any) -> tuple[Any, Any]:
    """``(labels, preds)`` arrays whose confusion matrix is ``cm`` (rows = true, columns = predicted)."""
    import numpy as np

    cm = np.asarray(cm, dtype=int)
    labels, preds = [], []
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            labels += [i] * int(cm[i, j])
            preds += [j] * int(cm[i, j])
    return np.array(labels, dtype=np.int64), np.array(preds, dtype=np.int64)


@friendly_check
def check_recall_from_confusion(recall_fn: Callable[[Any], Any]) -> str:
    """Notebook 06: ``recall_fn(cm)`` must return each class's recall (diagonal / row sum), NaN for an empty class.

    The reference is :func:`resnet_course.evaluation.per_class_accuracy` on labels and predictions that
    produce the same matrix.
    """
    import numpy as np

    from .evaluation import per_class_accuracy

    rng = np.random.default_rng(6)
    cases = [
        np.array([[5, 1], [3, 1]]),
        rng.integers(0, 20, size=(4, 4)) + np.diag(rng.integers(10, 40, size=4)),
        np.array([[7, 2, 1], [0, 0, 0], [4, 0, 9]]),  # class 1 has no test images
        rng.integers(0, 8, size=(10, 10)) + np.diag(rng.integers(20, 60, size=10)),
    ]
    for cm in cases:
        n = cm.shape[0]
        labels, preds = _labels_from_confusion(cm)
        expected = per_class_accuracy(labels, preds, n)
        got = student_call(recall_fn, cm.copy(), what="recall_from_confusion(cm)")
        try:
            got = np.asarray(got.detach().cpu() if isinstance(got, torch.Tensor) else got, dtype=float)
        except (TypeError, ValueError):
            raise Hint(
                f"recall_from_confusion returned {type(got).__name__}", "return a 1-D NumPy array"
            ) from None
        if got.shape != (n,):
            raise Hint(
                f"for a {n}×{n} matrix your function returned shape {got.shape}",
                f"return one recall per class: a 1-D array of length {n}",
            )
        empty = np.isnan(expected)
        if np.allclose(got[~empty], expected[~empty], atol=1e-9) and not np.array_equal(np.isnan(got), empty):
            raise Hint(
                "the recalls are right, but a class with no images should give NaN",
                "an all-zero row has no recall (0 / 0); return np.nan there, e.g. with np.where(support > 0, ..., np.nan)",
            )
        if not np.allclose(got, expected, atol=1e-9, equal_nan=True):
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = np.diag(cm) / cm.sum(axis=0)
            if np.allclose(got[~empty], precision[~empty], atol=1e-9, equal_nan=True):
                raise Hint(
                    "you computed precision (diagonal / column sums)",
                    "recall divides by the row sums: rows are the true classes, cm.sum(axis=1)",
                )
            raise Hint(
                f"for cm = {cm.tolist()} you returned {np.round(got, 4).tolist()}, "
                f"expected {np.round(expected, 4).tolist()}",
                "recall of class i = cm[i, i] / (sum of row i)",
            )
    return "recall_from_confusion matches the package on 4 matrices, including one with an empty class"


# --- notebook 07 ---
# --------------------------------------------------------------------------------------------------
# Notebook 07: find the parameter that gets no gradient
# --------------------------------------------------------------------------------------------------

_BUG_ATTRIBUTE = "_gradient_bug_parameter"


def gradient_bug_model(seed: int = 0, num_classes: int = 10) -> nn.Module:
    """Notebook 07's exercise: a ResNet-20 with one hidden bug that stops one weight from learning.

    Inside one residual block, the output of the first convolution is detached from the autograd graph
    (a forward hook returns ``output.detach()`` — the effect of a stray ``.detach()``, ``.item()``, NumPy
    round trip or ``torch.no_grad()`` block in a ``forward``). No gradient reaches that convolution's weight;
    every other parameter still gets one (the shortcut carries the gradient past the cut). Which block is
    chosen depends on ``seed``.
    """
    from .models import create

    torch.manual_seed(seed)
    model = create("resnet20", num_classes=num_classes)
    candidates = [
        f"{name}.conv1" for name, m in model.named_modules() if name.count(".") == 1 and hasattr(m, "conv1")
    ]
    chosen = candidates[
        int(torch.randint(len(candidates), (1,), generator=torch.Generator().manual_seed(seed)))
    ]
    dict(model.named_modules())[chosen].register_forward_hook(lambda _m, _inputs, output: output.detach())
    setattr(model, _BUG_ATTRIBUTE, f"{chosen}.weight")
    return model


@friendly_check
def check_gradient_bug(answer: Any, model: nn.Module) -> str:
    """Notebook 07: ``answer`` names the parameter of :func:`gradient_bug_model` that gets no gradient.

    The parameter's name (``"layer2.1.conv1.weight"``) and its module's name (``"layer2.1.conv1"``) are
    both accepted.
    """
    truth = getattr(model, _BUG_ATTRIBUTE, None)
    if truth is None:
        raise Hint("this is not the exercise's model", "pass the model from checks.gradient_bug_model(...)")
    if not isinstance(answer, str):
        raise Hint(
            f"your answer is a {type(answer).__name__}",
            "answer with a name string such as 'layer1.0.conv2.weight'",
        )
    name = answer.strip()
    if name in (truth, truth.removesuffix(".weight")):
        return f"right: {truth} gets no gradient (its output is detached from the graph), so it never learns"
    params = dict(model.named_parameters())
    if name not in params and f"{name}.weight" not in params:
        raise Hint(
            f"{name!r} is not a parameter or layer of this model",
            "use a name from the 'name' column of parameter_grad_norms(model), e.g. 'layer1.0.conv1.weight'",
        )
    p = params.get(name, params.get(f"{name}.weight"))
    if p.grad is None:
        raise Hint(
            f"{name!r} has no gradient yet — did you run loss.backward() on this model?",
            "run one forward and backward pass, then read parameter_grad_norms(model)",
        )
    raise Hint(
        f"{name!r} does get a gradient (norm {float(p.grad.norm()):.3g})",
        "look for the row with grad_is_none = True (or grad_norm NaN) although requires_grad is True",
    )


# --- notebook 10 ---
# --------------------------------------------------------------------------------------------------
# Notebook 10: top-k classes from logits
# --------------------------------------------------------------------------------------------------


def _tiny_classifier() -> Any:
    """A small random :class:`~resnet_course.inference.Classifier` (7 classes, 8×8 images) to check against."""
    from .inference import Classifier

    torch.manual_seed(10)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 7))
    with torch.no_grad():
        model[1].weight.mul_(20.0)  # spread the logits so that no two probabilities tie
    classes = ["apple", "bee", "cloud", "dune", "elm", "fern", "gull"]
    return Classifier(model, classes, {"image_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3})


@friendly_check
def check_top_k(top_k_fn: Callable[..., Any]) -> str:
    """Notebook 10: ``top_k_fn(logits, classes, k)`` must equal ``Classifier.predict(image, top_k=k)[0]``.

    ``logits`` is the model's 1-D output for one image; the answer is ``[(class name, probability), ...]``,
    most probable first, ``min(k, number of classes)`` pairs, probabilities from the softmax.
    """
    clf = _tiny_classifier()
    gen = torch.Generator().manual_seed(11)
    images = [torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8, generator=gen) for _ in range(3)]
    for image, k in zip(images, (5, 1, 7), strict=True):
        expected = clf.predict(image, top_k=k)[0]
        with torch.no_grad():
            logits = clf.model(clf.prepare(image))[0]
        got = student_call(
            top_k_fn, logits.clone(), list(clf.classes), k, what=f"top_k(logits, classes, k={k})"
        )
        try:
            pairs = [(str(name), float(p)) for name, p in got]
        except (TypeError, ValueError):
            raise Hint(
                f"top_k returned {type(got).__name__} that is not a list of (name, probability) pairs",
                "return e.g. [('cat', 0.71), ('dog', 0.20), ...]",
            ) from None
        if len(pairs) != len(expected):
            raise Hint(
                f"for k={k} you returned {len(pairs)} pairs, expected {len(expected)}",
                "return exactly k pairs (k ≤ number of classes here)",
            )
        names = [n for n, _ in pairs]
        if names == [n for n, _ in reversed(expected)] and k > 1:
            raise Hint(
                "the classes are in ascending order", "put the most probable class first (sort descending)"
            )
        if names != [n for n, _ in expected]:
            if all(n.lstrip("-").isdigit() for n in names):
                raise Hint("you returned class indices, not names", "look the names up: classes[i]")
            raise Hint(
                f"for k={k} your classes are {names}, expected {[n for n, _ in expected]}",
                "take the k largest entries (torch.topk or argsort), best first",
            )
        probs = [p for _, p in pairs]
        want = [p for _, p in expected]
        if any(abs(a - b) > 1e-5 for a, b in zip(probs, want, strict=True)):
            if any(p < 0 or p > 1 for p in probs) or abs(sum(probs) - sum(want)) > 1e-3:
                raise Hint(
                    "the classes are right but the numbers are not probabilities",
                    "apply the softmax to the logits first: logits.softmax(0)",
                )
            raise Hint(
                f"probabilities {probs} differ from {want}",
                "use the softmax over all classes, then take the top k",
            )
    return "top_k agrees with Classifier.predict (names and probabilities) for k = 5, 1 and all 7 classes"


# --- notebook 01 ---
# --------------------------------------------------------------------------------------------------
# Notebook 01: final-epoch training error from training histories
# --------------------------------------------------------------------------------------------------


def _series(history: Any, key: str) -> list[Any]:
    values = history.get(key) if isinstance(history, dict) else getattr(history, key, None)
    return list(values or [])


@friendly_check
def check_final_train_errors(errors_fn: Callable[[Any], Any], histories: dict[str, Any]) -> str:
    """Check ``errors_fn(histories) -> {name: final-epoch training error as a fraction}``.

    ``histories`` maps run names to :class:`resnet_course.history.History` objects (or dicts with
    ``train_acc``/``val_acc`` lists). Recognised mistakes: percentages instead of fractions, accuracy instead of
    error, the best epoch instead of the final one, validation instead of training accuracy, missing runs.
    """
    import math

    if not histories:
        raise Hint("there are no training histories to check against", "run the training cells above first")
    got = student_call(errors_fn, histories, what="final_train_errors(histories)")
    if not isinstance(got, dict):
        raise Hint(
            f"expected a dict {{run name: error}}, got {type(got).__name__}",
            "return e.g. {name: ... for name, h in histories.items()}",
        )
    missing = [name for name in histories if name not in got]
    if missing:
        raise Hint(f"no value for {_first(missing)}", "return one entry per run in histories")
    for name, h in histories.items():
        train = [float(a) for a in _series(h, "train_acc")]
        if not train:
            raise Hint(f"run {name!r} has no recorded epochs", "train it first (its History is empty)")
        try:
            value = float(got[name])
        except (TypeError, ValueError):
            raise Hint(f"the value for {name!r} is {got[name]!r}, not a number", "return floats") from None
        expected = 1.0 - train[-1]
        if math.isclose(value, expected, abs_tol=1e-6):
            continue
        val = [a for a in _series(h, "val_acc") if a is not None]
        if math.isclose(value, 100 * expected, abs_tol=1e-4) and value > 1:
            hint = "give fractions in [0, 1], not percentages (the package uses fractions everywhere)"
        elif math.isclose(value, train[-1], abs_tol=1e-6):
            hint = "that is the accuracy; the error is 1 − accuracy"
        elif math.isclose(value, 1.0 - max(train), abs_tol=1e-6):
            hint = "that is the best epoch's error; use the final epoch, h.train_acc[-1]"
        elif math.isclose(value, 1.0 - train[0], abs_tol=1e-6):
            hint = "that is the first epoch; the final one is the last entry, h.train_acc[-1]"
        elif val and math.isclose(value, 1.0 - float(val[-1]), abs_tol=1e-6):
            hint = "that is the validation error; the training error uses h.train_acc"
        else:
            hint = "training error = 1 − h.train_acc[-1]"
        raise Hint(f"{name}: got {value:.4g}, expected {expected:.4g}", hint)
    return f"final-epoch training errors are right for all {len(histories)} runs"


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

    Compared with :func:`resnet_course.data.compute_mean_std` on ``images`` (a tensor or ``ImageTensors``)
    and on a second, random image set (so a hard-coded answer fails).
    """
    import math

    from .data import compute_mean_std, mean_per_image_std

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


# --- notebook 05 ---
# --------------------------------------------------------------------------------------------------
# Notebook 05: learning rate of a warm-up + cosine schedule; which split selects the model
# --------------------------------------------------------------------------------------------------


@friendly_check
def check_warmup_cosine_lr(lr_fn: Callable[[int, float, int, int], Any]) -> str:
    """Check ``lr_fn(step, base_lr, warmup_steps, total_steps)`` against the engine's ``"cosine"`` schedule
    (:func:`resnet_course.schedules.lr_curve`): linear warm-up from ``0.1 × base_lr`` over ``warmup_steps``
    optimizer steps, then cosine annealing to 0 over the remaining steps. Steps are counted from 0."""
    import math

    from .config import TrainConfig
    from .schedules import lr_curve

    cases = [
        (10, 2.0, 7, 0.4),
        (4, 1.0, 25, 0.1),
        (3, 0.0, 10, 0.05),
    ]  # epochs, warm-up epochs, steps/epoch, lr
    for epochs, warmup_epochs, steps_per_epoch, lr in cases:
        config = TrainConfig(epochs=epochs, schedule="cosine", warmup_epochs=warmup_epochs, lr=lr)
        curve = lr_curve(config, steps_per_epoch)
        total = epochs * steps_per_epoch
        warmup = round(warmup_epochs * steps_per_epoch)
        probes = sorted({0, 1, max(warmup - 1, 0), warmup, warmup + 1, (warmup + total) // 2, total - 1})
        for step in probes:
            got = student_call(lr_fn, step, lr, warmup, total, what=f"lr_at({step}, {lr}, {warmup}, {total})")
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise Hint(f"lr_at returned {got!r}, not a number", "return a float") from None
            want = curve[step]
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                continue
            where = f"lr_at({step}, base_lr={lr}, warmup_steps={warmup}, total_steps={total}) = {got:.6g}, expected {want:.6g}"
            if step < warmup:
                if math.isclose(got, lr * step / warmup, rel_tol=1e-6, abs_tol=1e-12):
                    hint = (
                        "warm-up starts at 0.1 × base_lr, not 0: base_lr × (0.1 + 0.9 × step / warmup_steps)"
                    )
                else:
                    hint = "during warm-up: base_lr × (0.1 + 0.9 × step / warmup_steps)"
            else:
                t, span = step - warmup, total - warmup
                if math.isclose(got, 0.5 * lr * (1 + math.cos(math.pi * step / total)), rel_tol=1e-6):
                    hint = "the cosine starts after the warm-up: use t = step − warmup_steps over total_steps − warmup_steps"
                elif span > 1 and math.isclose(
                    got, 0.5 * lr * (1 + math.cos(math.pi * t / (span - 1))), rel_tol=1e-6
                ):
                    hint = "the cosine spans total_steps − warmup_steps steps (it would reach 0 one step after the last)"
                else:
                    hint = "after warm-up: 0.5 × base_lr × (1 + cos(π × (step − warmup_steps) / (total_steps − warmup_steps)))"
            raise Hint(where, hint)
    return "your warm-up + cosine learning rate matches the engine's schedule at every probed step"


@friendly_check
def check_model_selection_split(answer: Any) -> str:
    """Which split should pick the epoch, learning rate or model? ``"train"``, ``"val"`` or ``"test"``."""
    text = str(answer).strip().lower()
    aliases = {"validation": "val", "valid": "val", "training": "train"}
    text = aliases.get(text, text)
    if text == "val":
        return (
            "the validation split: choose with it, then evaluate the chosen model on the test split once; "
            "its accuracy is then an unbiased estimate"
        )
    if text == "test":
        raise Hint(
            "choosing with the test split makes its accuracy optimistic (you picked the luckiest option on it)",
            "keep the test split for one final measurement; choose with a split held out of the training data",
        )
    if text == "train":
        raise Hint(
            "training accuracy rewards memorising: the biggest, longest-trained model always wins on it",
            "choose with data the model was not trained on, but not the test split",
        )
    raise Hint(
        f"{answer!r} is not one of 'train', 'val', 'test'", "answer with the name of a split, e.g. 'val'"
    )


# --- notebook 08 ---


def _fresh_resnet20(seed: int = 0) -> nn.Module:
    from .models import create

    torch.manual_seed(seed)
    return create("resnet20", num_classes=10)


@friendly_check
def check_feature_extractor(fn: Callable[..., Any]) -> str:
    """Check ``fn(model, num_classes) -> model``: every pretrained weight frozen, ``fc`` replaced by a new
    ``nn.Linear(in_features, num_classes)`` that is the only trainable part, the backbone's weights unchanged.

    Tried on a course ResNet-20 (64 features, 10 classes) with 3 and with 7 new classes, so a head size
    copied from ResNet-18 (512 features) or a hard-coded class count fails.
    """
    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_feature_extractor(feature_extractor)",
        )
    for num_classes in (3, 7):
        model = _fresh_resnet20()
        before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
        in_features = model.fc.in_features
        out = student_call(fn, model, num_classes, what=f"feature_extractor(model, {num_classes})")
        if not isinstance(out, nn.Module):
            raise Hint(
                f"feature_extractor returned {type(out).__name__}, not the model",
                "end the function with `return model`",
            )
        fc = getattr(out, "fc", None)
        if not isinstance(fc, nn.Linear):
            raise Hint(
                "the returned model has no nn.Linear called fc",
                "replace the head with model.fc = nn.Linear(model.fc.in_features, num_classes)",
            )
        if fc.in_features != in_features:
            raise Hint(
                f"the new head takes {fc.in_features} features, the backbone gives {in_features}",
                "read the width from the old head: model.fc.in_features (512 is only ResNet-18's)",
            )
        if fc.out_features != num_classes:
            raise Hint(
                f"the new head has {fc.out_features} outputs for {num_classes} classes",
                "use num_classes for out_features",
            )
        trainable = sorted(n for n, p in out.named_parameters() if p.requires_grad)
        if trainable != ["fc.bias", "fc.weight"]:
            extra = [n for n in trainable if not n.startswith("fc.")]
            if extra:
                raise Hint(
                    f"{len(extra)} backbone tensors are still trainable (e.g. {_first(extra, 2)})",
                    "set p.requires_grad = False for every parameter *before* you create the new head",
                )
            raise Hint(
                f"trainable parameters are {trainable}, expected only fc.weight and fc.bias",
                "the new nn.Linear is trainable by default: create it after freezing the rest",
            )
        after = out.state_dict()
        changed = [k for k, v in before.items() if k not in after or not torch.equal(after[k], v)]
        if changed:
            raise Hint(
                f"the backbone changed ({_first(changed, 2)})",
                "keep the pretrained weights: only freeze them and swap the head",
            )
        out.eval()
        with torch.no_grad():
            y = student_call(out, torch.randn(2, 3, 32, 32), what="the returned model's forward pass")
        if tuple(y.shape) != (2, num_classes):
            raise Hint(
                f"the model outputs shape {tuple(y.shape)}, expected (2, {num_classes})",
                "the head must map the pooled features to num_classes logits",
            )
    return "backbone frozen, new fc head is the only trainable part (tried with 3 and 7 classes)"


@friendly_check
def check_param_groups(fn: Callable[..., Any]) -> str:
    """Check ``fn(model, lr, backbone_factor) -> list of dicts`` for discriminative fine-tuning: the head's
    parameters at ``lr``, every other trainable parameter at ``lr * backbone_factor``, each exactly once,
    frozen parameters left out, and ``torch.optim.SGD`` accepts the groups."""
    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_param_groups(param_groups)",
        )
    model = _fresh_resnet20()
    model.conv1.weight.requires_grad_(False)  # one frozen tensor: it must not be handed to the optimizer
    lr, factor = 0.05, 0.1
    groups = student_call(fn, model, lr, factor, what=f"param_groups(model, {lr}, {factor})")
    if isinstance(groups, dict) or not isinstance(groups, list | tuple):
        raise Hint(
            f"expected a list of dicts, got {type(groups).__name__}",
            'return [{"params": [...], "lr": ...}, {"params": [...], "lr": ...}]',
        )
    names = {id(p): n for n, p in model.named_parameters()}
    seen: dict[str, float] = {}
    for i, g in enumerate(groups):
        if not isinstance(g, dict) or "params" not in g or "lr" not in g:
            raise Hint(
                f"group {i} is not a dict with 'params' and 'lr'",
                'each group looks like {"params": list_of_parameters, "lr": 0.01}',
            )
        for p in list(g["params"]):
            n = names.get(id(p))
            if n is None:
                raise Hint(
                    f"group {i} holds a tensor that is not a parameter of the model",
                    "take the parameters from model.named_parameters()",
                )
            if n in seen:
                raise Hint(f"{n} appears in two groups", "put every parameter in exactly one group")
            seen[n] = float(g["lr"])
    if "conv1.weight" in seen:
        raise Hint(
            "a frozen parameter (requires_grad=False) was put in a group",
            "skip parameters with p.requires_grad == False",
        )
    wanted = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(wanted - set(seen))
    if missing:
        raise Hint(
            f"{len(missing)} trainable parameters are in no group (e.g. {_first(missing, 2)})",
            "the backbone group holds every trainable parameter whose name does not start with 'fc.'",
        )
    for n, group_lr in seen.items():
        expected = lr if n.startswith("fc.") else lr * factor
        if abs(group_lr - expected) > 1e-12 * max(1.0, expected):
            part = "the head" if n.startswith("fc.") else "the backbone"
            raise Hint(
                f"{n} ({part}) gets lr {group_lr:g}, expected {expected:g}",
                "head: lr; backbone: lr * backbone_factor",
            )
    try:
        torch.optim.SGD(groups, lr=lr, momentum=0.9)
    except Exception as err:
        raise Hint(
            f"torch.optim.SGD rejects the groups: {_describe(err)}",
            "each group is a dict with a 'params' list",
        ) from None
    return f"{len(groups)} groups: head at lr {lr:g}, backbone at {lr * factor:g}, frozen tensors left out"


# --- notebook 09 ---


@friendly_check
def check_smoothed_targets(fn: Callable[..., Any]) -> str:
    """Check ``fn(labels, num_classes, eps) -> (N, num_classes)`` label-smoothed target distributions
    ``q = (1 - eps) · one_hot + eps / num_classes`` (Szegedy et al. 2016, Sec. 7), and that the cross-entropy
    with ``q`` equals ``F.cross_entropy(logits, labels, label_smoothing=eps)``."""
    import torch.nn.functional as F

    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_smoothed_targets(smoothed_targets)",
        )
    g = torch.Generator().manual_seed(0)
    for num_classes, eps in ((10, 0.1), (4, 0.3), (5, 0.0)):
        labels = torch.randint(0, num_classes, (6,), generator=g)
        logits = torch.randn(6, num_classes, generator=g)
        q = student_call(
            fn, labels.clone(), num_classes, eps, what=f"smoothed_targets(labels, {num_classes}, {eps})"
        )
        if not isinstance(q, torch.Tensor):
            raise Hint(
                f"expected a tensor, got {type(q).__name__}",
                "return a float tensor of shape (N, num_classes)",
            )
        if tuple(q.shape) != (6, num_classes):
            raise Hint(
                f"got shape {tuple(q.shape)}, expected (6, {num_classes}) for 6 labels",
                "one row per label, one column per class (F.one_hot(labels, num_classes))",
            )
        q = q.double()
        expected = (1 - eps) * F.one_hot(labels, num_classes).double() + eps / num_classes
        if not torch.allclose(q.sum(1), torch.ones(6, dtype=torch.float64), atol=1e-6):
            raise Hint(
                f"rows sum to {q.sum(1)[0].item():.4f}, not 1 (eps={eps}, {num_classes} classes)",
                "the target must be a probability distribution: (1 - eps) on the one-hot plus eps spread uniformly",
            )
        if not torch.allclose(q, expected, atol=1e-6):
            true_val = q[0, labels[0]].item()
            hint = (
                f"the true class should get 1 - eps + eps/K = {1 - eps + eps / num_classes:.4f} "
                f"and every other class eps/K = {eps / num_classes:.4f}"
            )
            if abs(true_val - (1 - eps)) < 1e-6:
                hint += " (you gave the true class 1 - eps: the uniform part eps/K goes to every class, the true one too)"
            raise Hint(
                f"wrong values for {num_classes} classes, eps={eps}: true class gets {true_val:.4f}", hint
            )
        ours = -(q * F.log_softmax(logits.double(), 1)).sum(1).mean()
        torch_ce = F.cross_entropy(logits.double(), labels, label_smoothing=eps)
        if not torch.allclose(ours, torch_ce, atol=1e-6):  # cannot differ when q is right; kept as the link
            raise Hint(
                f"cross-entropy with your targets {ours.item():.5f} ≠ PyTorch's {torch_ce.item():.5f}",
                "check the formula q = (1 - eps) * one_hot + eps / num_classes",
            )
    return "targets match, and −Σ q·log p equals F.cross_entropy(..., label_smoothing=eps)"


def _all_close(got: list[torch.Tensor], expected: list[torch.Tensor]) -> bool:
    return all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(got, expected, strict=True))


@friendly_check
def check_accumulation(fn: Callable[..., Any]) -> str:
    """Check ``fn(model, x, y, accum_steps)``: it splits the batch into ``accum_steps`` micro-batches and
    calls ``backward`` on each so that the accumulated ``.grad`` equals the gradient of the mean loss over
    the whole batch (no BatchNorm in the test model, so the two must agree up to rounding)."""
    import torch.nn.functional as F

    if not callable(fn):
        raise Hint(
            f"expected a function, got {type(fn).__name__}",
            "pass the function itself: check_accumulation(accumulate_gradients)",
        )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))
    x, y = torch.randn(24, 3, 2, 2), torch.randint(0, 5, (24,))

    def grads_of(loss: torch.Tensor) -> list[torch.Tensor]:
        return [gr.detach() for gr in torch.autograd.grad(loss, list(model.parameters()))]

    reference = grads_of(F.cross_entropy(model(x), y))
    for accum in (4, 3):
        last = grads_of(F.cross_entropy(model(x.chunk(accum)[-1]), y.chunk(accum)[-1]) / accum)
        model.zero_grad(set_to_none=True)
        student_call(fn, model, x, y, accum, what=f"accumulate_gradients(model, x, y, {accum})")
        grads = [p.grad for p in model.parameters()]
        if any(gr is None for gr in grads):
            raise Hint(
                "some parameters have no gradient after your function",
                "call loss.backward() on every micro-batch (and don't zero the gradients in between)",
            )
        if _all_close(grads, reference):
            continue
        if _all_close(grads, [accum * gr for gr in reference]):
            raise Hint(
                f"the gradient is {accum}× too large (accum_steps={accum})",
                "each micro-batch loss is a mean over its own images: divide it by accum_steps before backward",
            )
        if _all_close(grads, last):
            raise Hint(
                "only the last micro-batch's gradient is left",
                "don't zero the gradients between micro-batches: backward() adds to .grad",
            )
        raise Hint(
            f"with accum_steps={accum} the accumulated gradient differs from the full-batch gradient",
            "split x and y into accum_steps equal chunks (torch.chunk), backward (loss / accum_steps) on each",
        )
    return "accumulated gradients equal the full-batch gradient (accum_steps 4 and 3)"


__all__ += ["check_feature_extractor", "check_param_groups", "check_smoothed_targets", "check_accumulation"]
