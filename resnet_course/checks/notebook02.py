"""Checks of notebook 02's exercise: a student's ``BasicBlock`` against the package's, weights loaded."""

from __future__ import annotations

import torch
from torch import nn

from resnet_course.analysis.architecture import randomize_batchnorm
from resnet_course.checks.framework import (
    Hint,
    first_items,
    friendly_check,
    state_dict_diff,
    state_dict_diff_text,
    student_call,
)

__all__ = ["check_basic_block"]


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
    from resnet_course.models.blocks import conv1x1

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
    missing, unexpected, wrong = state_dict_diff(block, ref)
    if any(k.endswith(".bias") and k.startswith("conv") for k in unexpected):
        raise Hint(
            f"{case}: your convolutions have a bias ({first_items([k for k in unexpected if k.startswith('conv')])})",
            "use bias=False: the BatchNorm right after each convolution has its own shift (beta), "
            "so a conv bias would be redundant",
        )
    if missing or unexpected:
        raise Hint(
            f"{case}: the parameter names differ from the reference "
            f"({state_dict_diff_text(missing, unexpected, wrong)})",
            "name the layers conv1, bn1, conv2, bn2 and keep the shortcut module in self.downsample",
        )
    if wrong:
        raise Hint(
            f"{case}: the parameter shapes differ from the reference ({state_dict_diff_text([], [], wrong)})",
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
    from resnet_course.models.blocks import BasicBlock

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
    """Check a student's BasicBlock class against :class:`resnet_course.models.blocks.BasicBlock`.

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
