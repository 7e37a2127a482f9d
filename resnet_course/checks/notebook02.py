"""Checks of notebook 02's exercises: a student's ``BasicBlock`` and ``Bottleneck`` against the package's, weights
loaded (the bottleneck also builds a ResNet-50 whose parameter count must be torchvision's), and a BatchNorm-free
block with a projection shortcut against a reference."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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

__all__ = ["check_basic_block", "check_bottleneck", "check_no_bn_projection_block"]


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


def _require_class(obj: object, call: str) -> None:
    """A :class:`Hint` when a check meant for a class was given something else (usually an instance)."""
    if not isinstance(obj, type):
        raise Hint(
            f"expected a class, got {type(obj).__name__}", f"pass the class itself: {call}, not an instance"
        )


@friendly_check
def check_basic_block(student_cls: type) -> str:
    """Check a student's BasicBlock class against :class:`resnet_course.models.blocks.BasicBlock`.

    The student's class must take ``(inplanes, planes, stride=1, downsample=None)`` and name its layers like
    torchvision (``conv1, bn1, conv2, bn2, downsample``). The reference weights (with random BatchNorm
    statistics) are loaded into it and the outputs compared, for stride 1 and for stride 2 with a 1×1
    projection shortcut.
    """
    _require_class(student_cls, "check_basic_block(StudentBlock)")
    generator = torch.Generator().manual_seed(0)
    _check_one_block(student_cls, 16, 16, 1, generator)
    _check_one_block(student_cls, 16, 32, 2, generator)
    return (
        f"{student_cls.__name__} matches the reference BasicBlock "
        "(stride 1, and stride 2 with a projection shortcut)"
    )


# --------------------------------------------------------------------------------------------------
# The Bottleneck
# --------------------------------------------------------------------------------------------------

RESNET50_PARAMETERS = 25_557_032  # torchvision's resnet50() at 1000 classes


def _bottleneck_variants(ref: nn.Module, x: torch.Tensor, stride: int) -> dict[str, torch.Tensor]:
    """The reference output and those of typical mistakes, computed from the reference's weights."""
    with torch.no_grad():
        a = torch.relu(ref.bn1(ref.conv1(x)))
        f = ref.bn3(ref.conv3(torch.relu(ref.bn2(ref.conv2(a)))))
        f_no_inner = ref.bn3(ref.conv3(ref.bn2(ref.conv2(ref.bn1(ref.conv1(x))))))
        # the original paper's placement: the stride on the first 1×1 convolution, the 3×3 at stride 1
        a1 = torch.relu(ref.bn1(F.conv2d(x, ref.conv1.weight, stride=stride)))
        f_paper = ref.bn3(ref.conv3(torch.relu(ref.bn2(F.conv2d(a1, ref.conv2.weight, padding=1)))))
        identity = x if ref.downsample is None else ref.downsample(x)
        variants = {
            "correct": torch.relu(f + identity),
            "no ReLU after the addition": f + identity,
            "ReLU before the addition": torch.relu(f) + identity,
            "no shortcut": torch.relu(f),
            "no ReLU inside the branch": torch.relu(f_no_inner + identity),
        }
        if stride > 1:
            variants["the stride on conv1"] = torch.relu(f_paper + identity)
        return variants


_BOTTLENECK_HINTS = {
    "no ReLU after the addition": "apply ReLU *after* adding the shortcut: out = relu(bn3(conv3(...)) + identity)",
    "ReLU before the addition": "bn3's output goes into the addition without a ReLU; the ReLU follows the addition",
    "no shortcut": "add the shortcut: identity = x, or self.downsample(x) when a downsample module is given",
    "no ReLU inside the branch": "put a ReLU after bn1 and after bn2: relu(bn1(conv1(x))), relu(bn2(conv2(...)))",
    "the stride on conv1": "put the stride on the 3×3 convolution (conv2), as torchvision does (ResNet v1.5); "
    "conv1 and conv3 are 1×1 with stride 1",
}


def _check_one_bottleneck(
    student_cls: type, inplanes: int, planes: int, stride: int, generator: torch.Generator
) -> None:
    from resnet_course.models.blocks import Bottleneck

    out_planes = planes * 4
    downsample = _projection(inplanes, out_planes, stride)
    case = f"{student_cls.__name__}({inplanes}, {planes}, stride={stride}" + (
        ", downsample=...)" if downsample else ")"
    )
    ref = Bottleneck(inplanes, planes, stride, downsample)
    randomize_batchnorm(ref, generator)
    ref.eval()
    block = student_call(
        student_cls,
        inplanes,
        planes,
        stride,
        _projection(inplanes, out_planes, stride),
        what=case,
        hint="the constructor takes (inplanes, planes, stride=1, downsample=None), like torchvision's Bottleneck",
    )
    if not isinstance(block, nn.Module):
        raise Hint(f"{case} is a {type(block).__name__}, not an nn.Module", "subclass torch.nn.Module")
    missing, unexpected, wrong = state_dict_diff(block, ref)
    if missing or unexpected:
        raise Hint(
            f"{case}: the parameter names differ from the reference ({state_dict_diff_text(missing, unexpected, wrong)})",
            "name the layers conv1, bn1, conv2, bn2, conv3, bn3 (convolutions without bias) and keep the shortcut "
            "module in self.downsample",
        )
    if wrong:
        raise Hint(
            f"{case}: the parameter shapes differ from the reference ({state_dict_diff_text([], [], wrong)})",
            "conv1 is 1×1 inplanes → planes, conv2 3×3 planes → planes, conv3 1×1 planes → planes × expansion (4)",
        )
    block.load_state_dict(ref.state_dict())
    block.eval()
    x = torch.randn(2, inplanes, 8, 8, generator=generator)
    with torch.no_grad():
        out = student_call(
            block, x, what=f"the forward pass of {case}", hint="F(x) and the shortcut must have one shape"
        )
    expected = (2, out_planes, 8 // stride, 8 // stride)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Hint(
            f"{case}: the output is {got}, expected shape {expected}", "conv3 expands to planes × 4 channels"
        )
    variants = _bottleneck_variants(ref, x, stride)
    if torch.allclose(out, variants["correct"], atol=1e-5, rtol=1e-4):
        return
    for mistake, value in variants.items():
        if mistake != "correct" and torch.allclose(out, value, atol=1e-5, rtol=1e-4):
            raise Hint(f"{case}: the output matches a bottleneck with {mistake}", _BOTTLENECK_HINTS[mistake])
    raise Hint(
        f"{case}: the output differs from the reference (max abs difference "
        f"{(out - variants['correct']).abs().max().item():.3g})",
        "conv1 → bn1 → ReLU → conv2 → bn2 → ReLU → conv3 → bn3, then + identity, then ReLU",
    )


def _resnet50_parameters(student_cls: type) -> int:
    """Parameters of ResNet-50 ([3, 4, 6, 3] stages, 1000 classes) built from the student's block."""
    from resnet_course.models.resnet import ResNet

    class Adapted(student_cls):  # type: ignore[misc, valid-type]  # the package's ResNet passes a norm_layer too
        has_shortcut, preact = True, False

        def __init__(
            self,
            inplanes: int,
            planes: int,
            stride: int = 1,
            downsample: nn.Module | None = None,
            **_: object,
        ):
            super().__init__(inplanes, planes, stride, downsample)

    Adapted.__name__ = student_cls.__name__
    net = ResNet(Adapted, [3, 4, 6, 3], (64, 128, 256, 512), num_classes=1000, stem="imagenet")
    return sum(p.numel() for p in net.parameters())


@friendly_check
def check_bottleneck(student_cls: type) -> str:
    """Check a student's Bottleneck class against :class:`resnet_course.models.blocks.Bottleneck`: ``expansion`` 4,
    torchvision's layer names, the reference's output with its weights loaded (stride 1 with an identity shortcut,
    stride 2 with a projection), and a ResNet-50 built from it with torchvision's 25,557,032 parameters."""
    _require_class(student_cls, "check_bottleneck(StudentBottleneck)")
    if getattr(student_cls, "expansion", None) != 4:
        raise Hint(
            f"{student_cls.__name__}.expansion is {getattr(student_cls, 'expansion', 'missing')!r}, expected 4",
            "set the class attribute expansion = 4: the block outputs planes × 4 channels, and ResNet reads it",
        )
    generator = torch.Generator().manual_seed(0)
    _check_one_bottleneck(student_cls, 64, 16, 1, generator)
    _check_one_bottleneck(student_cls, 64, 32, 2, generator)
    n = _resnet50_parameters(student_cls)
    if n != RESNET50_PARAMETERS:
        raise Hint(
            f"a ResNet-50 built from {student_cls.__name__} has {n:,} parameters, torchvision's {RESNET50_PARAMETERS:,}",
            "each block: conv1 1×1 inplanes → planes, conv2 3×3 planes → planes, conv3 1×1 planes → 4 × planes, "
            "no conv bias",
        )
    return (
        f"{student_cls.__name__} matches the reference Bottleneck (stride 1, and stride 2 with a projection), and a "
        f"ResNet-50 built from it has torchvision's {RESNET50_PARAMETERS:,} parameters"
    )


# --------------------------------------------------------------------------------------------------
# The BatchNorm-free block with a projection shortcut
# --------------------------------------------------------------------------------------------------


class _NoBNProjectionBlock(nn.Module):
    """The reference: ReLU(conv2(ReLU(conv1(x))) + shortcut(x)), 3×3 convolutions with bias, the stride on conv1,
    and a 1×1 convolution with the same stride on the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(torch.relu(self.conv1(x))) + self.shortcut(x))


_NO_BN_HINTS = {
    "no ReLU after the addition": "apply ReLU after adding the shortcut: relu(conv2(...) + shortcut(x))",
    "ReLU before the addition": "the last ReLU comes after the addition, not on the branch before it",
    "no shortcut": "add the projected input: + self.shortcut(x)",
    "no ReLU between the two convolutions": "put a ReLU between conv1 and conv2: conv2(relu(conv1(x)))",
}


def _no_bn_variants(ref: _NoBNProjectionBlock, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        branch, projected = ref.conv2(torch.relu(ref.conv1(x))), ref.shortcut(x)
        return {
            "correct": torch.relu(branch + projected),
            "no ReLU after the addition": branch + projected,
            "ReLU before the addition": torch.relu(branch) + projected,
            "no shortcut": torch.relu(branch),
            "no ReLU between the two convolutions": torch.relu(ref.conv2(ref.conv1(x)) + projected),
        }


def _check_one_no_bn_block(
    student_cls: type, cin: int, cout: int, stride: int, generator: torch.Generator
) -> None:
    case = f"{student_cls.__name__}({cin}, {cout}, stride={stride})"
    ref = _NoBNProjectionBlock(cin, cout, stride)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.2)
    block = student_call(
        student_cls,
        cin,
        cout,
        stride,
        what=case,
        hint="the constructor takes (in_channels, out_channels, stride)",
    )
    if not isinstance(block, nn.Module):
        raise Hint(f"{case} is a {type(block).__name__}, not an nn.Module", "subclass torch.nn.Module")
    missing, unexpected, wrong = state_dict_diff(block, ref)
    if missing or unexpected or wrong:
        hint = (
            "three convolutions with bias: conv1 3×3 (the stride), conv2 3×3, shortcut 1×1 (the same stride)"
        )
        if any(k.startswith("shortcut") for k in missing) and not wrong:
            hint = (
                "keep the projection in self.shortcut: nn.Conv2d(in_channels, out_channels, 1, stride=stride)"
            )
        raise Hint(
            f"{case}: the layers differ from the reference ({state_dict_diff_text(missing, unexpected, wrong)})",
            hint,
        )
    block.load_state_dict(ref.state_dict())
    x = torch.randn(2, cin, 8, 8, generator=generator)
    with torch.no_grad():
        out = student_call(
            block, x, what=f"the forward pass of {case}", hint="relu(conv2(relu(conv1(x))) + shortcut(x))"
        )
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, cout, 8 // stride, 8 // stride):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Hint(
            f"{case}: output {shape}, expected {(2, cout, 8 // stride, 8 // stride)}",
            "return the block's output",
        )
    variants = _no_bn_variants(ref, x)
    for mistake, value in variants.items():
        if torch.allclose(out, value, atol=1e-5, rtol=1e-4):
            if mistake == "correct":
                return
            raise Hint(f"{case}: the output matches a block with {mistake}", _NO_BN_HINTS[mistake])
    diff = (out - variants["correct"]).abs().max().item()
    raise Hint(
        f"{case}: the output differs from the reference (max abs difference {diff:.3g})",
        "check the order: conv1 → ReLU → conv2, plus shortcut(x), then ReLU",
    )


@friendly_check
def check_no_bn_projection_block(student_cls: type) -> str:
    """Check a student's BatchNorm-free block with a 1×1 projection shortcut (the "convolutional block" of the
    tutorials that build ResNets without BatchNorm) against a reference: layer names ``conv1``, ``conv2``,
    ``shortcut`` (all with bias), the reference's weights loaded and the outputs compared, when the block halves
    the resolution and doubles the width, and when it only widens."""
    _require_class(student_cls, "check_no_bn_projection_block(StudentNoBNProjectionBlock)")
    generator = torch.Generator().manual_seed(0)
    _check_one_no_bn_block(student_cls, 16, 32, 2, generator)
    _check_one_no_bn_block(student_cls, 8, 24, 1, generator)
    return (
        f"{student_cls.__name__} matches the reference (16 → 32 channels at stride 2, and 8 → 24 at stride 1)"
    )
