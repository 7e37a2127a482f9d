"""The building blocks of residual networks, written like torchvision's ``models/resnet.py``.

* ``conv3x3`` / ``conv1x1``: the two convolutions every block is made of (no bias: BatchNorm follows);
* blocks: :class:`PlainBlock` (no shortcut), :class:`BasicBlock`, :class:`Bottleneck` (with ``groups`` and
  ``base_width`` for ResNeXt and Wide ResNet-50), :class:`PreActBlock`, :class:`PreActBottleneck`; each
  optionally with squeeze-and-excitation; every ReLU is a module, so hooks see all of them;
* shortcuts where the shape changes: option ``"B"`` (1×1 convolution + BatchNorm, torchvision's
  ``downsample``, built by :class:`~resnet_course.models.resnet.ResNet`) and option ``"A"``
  (:class:`ShortcutA`, parameter-free: subsample and zero-pad).

Sources: He, Zhang, Ren, Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016 (arXiv:1512.03385);
He et al., *Identity Mappings in Deep Residual Networks*, ECCV 2016 (arXiv:1603.05027); Hu, Shen, Sun,
*Squeeze-and-Excitation Networks*, CVPR 2018 (arXiv:1709.01507); Xie et al., *Aggregated Residual
Transformations for Deep Neural Networks* (ResNeXt), CVPR 2017 (arXiv:1611.05431).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BasicBlock",
    "Block",
    "Bottleneck",
    "NormLayer",
    "PlainBlock",
    "PreActBlock",
    "PreActBottleneck",
    "ShortcutA",
    "conv1x1",
    "conv3x3",
]


NormLayer = Callable[[int], nn.Module]


def conv3x3(
    in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1
) -> nn.Conv2d:
    """3×3 convolution with padding and no bias (a BatchNorm follows it)."""
    return nn.Conv2d(
        in_planes,
        out_planes,
        kernel_size=3,
        stride=stride,
        padding=dilation,
        groups=groups,
        bias=False,
        dilation=dilation,
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1×1 convolution with no bias."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def _require_default_width(block: str, groups: int, base_width: int) -> None:
    """Only :class:`Bottleneck` has grouped/widened 3×3 convolutions (ResNeXt, Wide ResNet-50), as in torchvision."""
    if groups != 1 or base_width != 64:
        raise ValueError(
            f"{block} only supports groups=1 and base_width=64, got groups={groups} and base_width={base_width}; "
            "use Bottleneck blocks (e.g. resnext50_32x4d, wide_resnet50_2) for grouped or wider convolutions"
        )


def _se(channels: int, se_reduction: int | None) -> nn.Module | None:
    """Squeeze-and-excitation (Hu et al. 2018) on ``channels``, or ``None`` when disabled."""
    if se_reduction is None:
        return None
    if se_reduction < 1:
        raise ValueError(f"se_reduction must be a positive integer or None, got {se_reduction!r}")
    from torchvision.ops import SqueezeExcitation  # here, not at the top: importing torchvision costs seconds

    return SqueezeExcitation(channels, max(1, channels // se_reduction))


class ShortcutA(nn.Module):
    """Parameter-free shortcut, option A of He et al. 2015 (Sec. 3.3 and 4.2).

    Computes ``x[:, :, ::stride, ::stride]`` and appends ``out_planes - in_planes`` channels of zeros,
    so the identity carries the old channels unchanged and the new channels start at zero.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(
                f"option-A shortcut can only add channels (zero padding), got {in_planes} -> {out_planes}; "
                "use shortcut='B' (1x1 projection) to reduce channels"
            )
        self.in_planes = in_planes
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_planes - self.in_planes
        if extra:
            x = F.pad(x, (0, 0, 0, 0, 0, extra))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_planes}, {self.out_planes}, stride={self.stride}"


class PlainBlock(nn.Module):
    """Two 3×3 conv + BN layers with ReLUs and **no shortcut**: ``y = relu(bn2(conv2(relu(bn1(conv1(x))))))``.

    The same layers as :class:`BasicBlock`; stacking these gives the "plain" networks of He et al. 2015
    whose training error rises with depth (the degradation problem).
    """

    expansion: ClassVar[int] = 1
    has_shortcut: ClassVar[bool] = False
    preact: ClassVar[bool] = False

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer | None = None,
        se_reduction: int | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        _require_default_width("PlainBlock", groups, base_width)
        if downsample is not None:
            raise ValueError("PlainBlock has no shortcut, so it takes no downsample module")
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.se = _se(planes, se_reduction)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out)


class BasicBlock(nn.Module):
    """The residual block of ResNet-18/34: ``y = relu(F(x) + shortcut(x))``, F = conv3x3-BN-ReLU-conv3x3-BN.

    ``shortcut`` is the identity, or ``downsample`` where the stride or the width changes.
    """

    expansion: ClassVar[int] = 1
    has_shortcut: ClassVar[bool] = True
    preact: ClassVar[bool] = False

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer | None = None,
        se_reduction: int | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        _require_default_width("BasicBlock", groups, base_width)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.se = _se(planes, se_reduction)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        out += identity
        return self.relu(out)

    def zero_init_last(self) -> None:
        """Zero the last BN's scale so that F(x) = 0 and the block starts as ``relu(shortcut(x))``."""
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """The residual block of ResNet-50/101/152: 1×1 reduce → 3×3 → 1×1 expand (×4), each followed by BN.

    ``y = relu(F(x) + shortcut(x))``. As in torchvision (ResNet v1.5) the stride sits on the 3×3
    convolution, not on the first 1×1 as in the original paper. ``groups`` and ``base_width`` set the inner
    width to ``planes * base_width / 64 * groups`` with a grouped 3×3 convolution: ResNeXt (Xie et al. 2017)
    uses ``groups=32, base_width=4``, Wide ResNet-50-2 ``base_width=128``.
    """

    expansion: ClassVar[int] = 4
    has_shortcut: ClassVar[bool] = True
    preact: ClassVar[bool] = False

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer | None = None,
        se_reduction: int | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = _se(planes * self.expansion, se_reduction)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        out += identity
        return self.relu(out)

    def zero_init_last(self) -> None:
        """Zero the last BN's scale so that F(x) = 0 and the block starts as ``relu(shortcut(x))``."""
        nn.init.zeros_(self.bn3.weight)


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): ``y = x + conv2(relu(bn2(conv1(relu(bn1(x))))))``.

    Nothing follows the addition, so the shortcut is a clean identity path through the whole network.
    A projection shortcut (when the shape changes) is applied to the pre-activated input ``relu(bn1(x))``.
    """

    expansion: ClassVar[int] = 1
    has_shortcut: ClassVar[bool] = True
    preact: ClassVar[bool] = True

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer | None = None,
        se_reduction: int | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        _require_default_width("PreActBlock", groups, base_width)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.bn1 = norm_layer(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes)
        self.se = _se(planes, se_reduction)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        if self.se is not None:
            out = self.se(out)
        return out + identity

    def zero_init_last(self) -> None:
        """Zero the last convolution so that F(x) = 0 and the block starts as the identity."""
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (He et al. 2016): BN-ReLU-conv1×1 → BN-ReLU-conv3×3 → BN-ReLU-conv1×1, plus x."""

    expansion: ClassVar[int] = 4
    has_shortcut: ClassVar[bool] = True
    preact: ClassVar[bool] = True

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: NormLayer | None = None,
        se_reduction: int | None = None,
        groups: int = 1,
        base_width: int = 64,
    ) -> None:
        super().__init__()
        _require_default_width("PreActBottleneck", groups, base_width)
        norm_layer = norm_layer or nn.BatchNorm2d
        self.bn1 = norm_layer(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = norm_layer(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = norm_layer(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.se = _se(planes * self.expansion, se_reduction)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(x))
        identity = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.se is not None:
            out = self.se(out)
        return out + identity

    def zero_init_last(self) -> None:
        """Zero the last convolution so that F(x) = 0 and the block starts as the identity."""
        nn.init.zeros_(self.conv3.weight)


Block = type[PlainBlock] | type[BasicBlock] | type[Bottleneck] | type[PreActBlock] | type[PreActBottleneck]
