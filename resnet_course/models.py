"""Residual networks, written to be read.

The style and the parameter names follow torchvision's ``models/resnet.py`` so that
``ResNet(stem="imagenet", num_classes=1000)`` loads torchvision's state dicts with ``strict=True``.

What is here:

* blocks: :class:`PlainBlock` (no shortcut), :class:`BasicBlock`, :class:`Bottleneck`,
  :class:`PreActBlock`, :class:`PreActBottleneck`; each optionally with squeeze-and-excitation;
* shortcuts where the shape changes: option ``"B"`` (1×1 convolution + BatchNorm, torchvision's
  ``downsample``) and option ``"A"`` (:class:`ShortcutA`, parameter-free: subsample and zero-pad);
* one :class:`ResNet` class with an ImageNet stem (7×7/2 conv + max-pool) or a CIFAR stem (3×3/1 conv);
* builders for the ImageNet family (``resnet18`` … ``resnet152``, ``resnext50_32x4d``, ``wide_resnet50_2``),
  the CIFAR family of He et al. 2015 (``resnet20`` … ``resnet110``) and its plain twins (``plain20`` …),
  ``preact_resnet18``, Wide ResNets (``wrn16_4``, ``wrn28_10``) and SE variants, all reachable through
  :func:`create`; every model they build records how to rebuild it (:func:`model_config`).

The forward pass is free of Python-side checks, so ``torch.jit.script``, ``torch.export``, ``torch.compile``
and torchvision's ``create_feature_extractor`` accept every model; :meth:`ResNet.check_input` validates input.

Sources: He, Zhang, Ren, Sun, *Deep Residual Learning for Image Recognition*, CVPR 2016 (arXiv:1512.03385);
He et al., *Identity Mappings in Deep Residual Networks*, ECCV 2016 (arXiv:1603.05027); Zagoruyko &
Komodakis, *Wide Residual Networks*, BMVC 2016 (arXiv:1605.07146); Hu, Shen, Sun,
*Squeeze-and-Excitation Networks*, CVPR 2018 (arXiv:1709.01507); Xie et al., *Aggregated Residual
Transformations for Deep Neural Networks* (ResNeXt), CVPR 2017 (arXiv:1611.05431).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import SqueezeExcitation

__all__ = [
    "conv3x3",
    "conv1x1",
    "ShortcutA",
    "PlainBlock",
    "BasicBlock",
    "Bottleneck",
    "PreActBlock",
    "PreActBottleneck",
    "ResNet",
    "create",
    "list_models",
    "register",
    "model_config",
    "create_for_data",
    "SMALL_IMAGE_SIZE",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "preact_resnet18",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "plain110",
    "wrn16_4",
    "wrn28_10",
    "se_resnet18",
    "se_resnet20",
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
STEMS = ("imagenet", "cifar")
SHORTCUTS = ("A", "B")


class ResNet(nn.Module):
    """A residual network: stem → stages ``layer1 … layerN`` → global average pool → linear head.

    Args:
        block: the block class used in every stage.
        layers: number of blocks in each stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        widths: the ``planes`` of each stage (a block outputs ``planes * block.expansion`` channels).
            Every stage after the first halves the resolution (stride 2 in its first block).
        num_classes: size of the linear head.
        stem: ``"imagenet"`` (7×7/2 conv + BN + ReLU + 3×3/2 max-pool, for 224×224 inputs) or
            ``"cifar"`` (3×3/1 conv + BN + ReLU, no pooling, for 32×32 inputs).
        in_channels: channels of the input images.
        shortcut: ``"B"`` (1×1 conv + BN projection where the shape changes) or ``"A"`` (parameter-free
            subsample + zero padding).
        zero_init_residual: start every residual branch at zero, so each block is ``relu(shortcut(x))``
            (Goyal et al. 2017, "Accurate, Large Minibatch SGD", Sec. 5.1).
        stem_width: channels after the stem; defaults to ``widths[0]``.
        norm_layer: normalisation layer factory, ``nn.BatchNorm2d`` by default.
        se_reduction: add squeeze-and-excitation with this reduction ratio to every block (Hu et al. use 16).
        groups, width_per_group: the grouped, widened 3×3 convolutions of :class:`Bottleneck` (torchvision's
            names); other blocks accept only the defaults 1 and 64.

    The forward pass does not check its input, so that ``torch.jit.script``, ``torch.export``, ``torch.compile``
    and torchvision's ``create_feature_extractor`` handle it as they handle torchvision's ResNets; entry points
    that take user tensors call :meth:`check_input` for a clear error message.

    With pre-activation blocks the stem has no BN/ReLU after its convolution (the first block supplies
    them) and a final ``bn_final`` + ``relu_final`` precedes the pooling, as in He et al. 2016.
    """

    # Python-side properties that forward does not use: torch.jit.script would otherwise compile them.
    __jit_unused_properties__ = ["stages", "total_stride", "min_input_size"]

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        num_classes: int = 1000,
        stem: str = "imagenet",
        in_channels: int = 3,
        shortcut: str = "B",
        zero_init_residual: bool = False,
        stem_width: int | None = None,
        norm_layer: NormLayer | None = None,
        se_reduction: int | None = None,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be 'A' (zero-pad) or 'B' (1x1 projection), got {shortcut!r}")
        if len(layers) == 0 or len(layers) != len(widths):
            raise ValueError(
                f"layers and widths must be non-empty and of the same length (one entry per stage), "
                f"got layers={list(layers)} and widths={list(widths)}"
            )
        if any(n < 1 for n in layers):
            raise ValueError(f"every stage needs at least one block, got layers={list(layers)}")
        if num_classes < 1 or in_channels < 1:
            raise ValueError(
                f"num_classes and in_channels must be positive, got {num_classes} and {in_channels}"
            )
        if groups < 1 or width_per_group < 1:
            raise ValueError(
                f"groups and width_per_group must be positive, got {groups} and {width_per_group}"
            )
        if zero_init_residual and not block.has_shortcut:
            raise ValueError(
                f"zero_init_residual=True would zero the output of every {block.__name__} "
                "(it has no shortcut to carry the signal); leave it False for plain networks"
            )
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.block = block
        self.shortcut = shortcut
        self.stem = stem
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.se_reduction = se_reduction
        self.groups = groups
        self.base_width = width_per_group
        self.inplanes = stem_width or widths[0]

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = conv3x3(in_channels, self.inplanes)
        if block.preact and stem == "cifar":
            self.bn1: nn.Module = nn.Identity()
            self.relu: nn.Module = nn.Identity()
        else:
            self.bn1 = self._norm_layer(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
        self.maxpool = (
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem == "imagenet" else nn.Identity()
        )

        self.num_stages = len(layers)
        for i, (n_blocks, width) in enumerate(zip(layers, widths, strict=True)):
            stage = self._make_layer(block, width, n_blocks, stride=1 if i == 0 else 2)
            setattr(self, f"layer{i + 1}", stage)

        self.num_features = self.inplanes
        self.bn_final: nn.Module | None = self._norm_layer(self.inplanes) if block.preact else None
        self.relu_final: nn.Module | None = nn.ReLU(inplace=True) if block.preact else None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(self.inplanes, num_classes)

        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """Kaiming-normal convolutions (fan-out, as torchvision), unit-scale zero-shift norms, optional zero-init."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if hasattr(m, "zero_init_last"):
                    m.zero_init_last()

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        """One stage: the first block may change stride/width (with a shortcut that matches), the rest keep it."""
        out_planes = planes * block.expansion
        downsample: nn.Module | None = None
        if block.has_shortcut and (stride != 1 or self.inplanes != out_planes):
            if self.shortcut == "A":
                downsample = ShortcutA(self.inplanes, out_planes, stride)
            elif block.preact:  # He et al. 2016: the projection sees the pre-activated input, no BN after it
                downsample = conv1x1(self.inplanes, out_planes, stride)
            else:
                downsample = nn.Sequential(
                    conv1x1(self.inplanes, out_planes, stride), self._norm_layer(out_planes)
                )
        kwargs: dict[str, Any] = {
            "norm_layer": self._norm_layer,
            "se_reduction": self.se_reduction,
            "groups": self.groups,
            "base_width": self.base_width,
        }
        layers = [block(self.inplanes, planes, stride, downsample, **kwargs)]
        self.inplanes = out_planes
        layers += [block(self.inplanes, planes, **kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @property
    def stages(self) -> list[nn.Sequential]:
        """The stages ``layer1 … layerN`` in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    @property
    def total_stride(self) -> int:
        """How much the network downsamples its input before the global pool."""
        return (4 if self.stem == "imagenet" else 1) * 2 ** (self.num_stages - 1)

    @property
    def min_input_size(self) -> int:
        """Smallest height/width for which the last stage still sees at least one real pixel."""
        return self.total_stride

    def check_input(self, x: Tensor) -> None:
        """Raise a ``ValueError`` naming the expected shape when ``x`` cannot be fed to this network.

        :meth:`forward` does not call it (tracers and compilers would see the checks); call it where user
        input enters, before ``model(x)``.
        """
        expected = f"(N, {self.in_channels}, H, W) with H, W >= {self.min_input_size}"
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a tensor of shape {expected}, got {type(x).__name__}")
        if x.ndim != 4:
            hint = " (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 else ""
            raise ValueError(f"expected a 4-D tensor of shape {expected}, got shape {tuple(x.shape)}{hint}")
        if x.shape[1] != self.in_channels:
            hint = (
                " (is it channels-last HWC data? use x.permute(0, 3, 1, 2))"
                if x.shape[-1] == self.in_channels
                else ""
            )
            raise ValueError(
                f"expected {self.in_channels} input channels, shape {expected}, got shape {tuple(x.shape)}{hint}"
            )
        if min(x.shape[2], x.shape[3]) < self.min_input_size:
            raise ValueError(
                f"input of {x.shape[2]}x{x.shape[3]} pixels is too small for this network (stem={self.stem!r}, "
                f"total stride {self.total_stride}): expected shape {expected}, got {tuple(x.shape)}"
            )

    def forward_features(self, x: Tensor) -> Tensor:
        """Everything up to (not including) the global pool: the last stage's feature map."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name, child in self.named_children():  # the stages in order; TorchScript unrolls this loop
            if name.startswith("layer"):
                x = child(x)
        if self.bn_final is not None and self.relu_final is not None:
            x = self.relu_final(self.bn_final(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.forward_features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


# --------------------------------------------------------------------------------------------------
# Builders and the registry
# --------------------------------------------------------------------------------------------------

_REGISTRY: dict[str, Callable[..., ResNet]] = {}


def _call_kwargs(
    signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The arguments of one builder call as keywords (positional ones named, ``**kwargs`` flattened)."""
    bound = signature.bind(*args, **kwargs)
    config: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        else:
            config[name] = value
    return config


def register(fn: Callable[..., ResNet]) -> Callable[..., ResNet]:
    """Add a builder to the registry under its function name.

    The builder is wrapped so that every model it returns records its name and the arguments it was given
    (``registry_name``, ``registry_kwargs``): ``model_config(resnet18(num_classes=10))`` equals
    ``model_config(create("resnet18", num_classes=10))``, and a checkpoint can rebuild either.
    """
    name = fn.__name__
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def builder(*args: Any, **kwargs: Any) -> ResNet:
        config = _call_kwargs(signature, args, kwargs)
        model = fn(*args, **kwargs)
        model.registry_name = name
        model.registry_kwargs = config
        return model

    _REGISTRY[name] = builder
    return builder


def list_models() -> list[str]:
    """Names accepted by :func:`create`, sorted."""
    return sorted(_REGISTRY)


def _builder(name: str) -> Callable[..., ResNet]:
    """The registered builder called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available models: {', '.join(list_models())}") from None


def create(name: str, **kwargs: Any) -> ResNet:
    """Build a registered model by name, e.g. ``create("resnet18", num_classes=10, stem="cifar")``."""
    return _builder(name)(**kwargs)


SMALL_IMAGE_SIZE = 64  # at or below this many pixels, the ImageNet stem would shrink the image too early


def create_for_data(name: str, num_classes: int, image_size: int, **kwargs: Any) -> ResNet:
    """Build ``name`` for a dataset with ``num_classes`` classes and ``image_size``-pixel images.

    Builders with a ``stem`` parameter (the ImageNet family, ``preact_resnet18``, ``se_resnet18``, ResNeXt and
    Wide ResNet-50) get the stem that suits the image size: the 3×3 CIFAR stem on small images
    (≤ ``SMALL_IMAGE_SIZE`` px), where the 7×7/2 conv + max-pool would turn a 32×32 image into 8×8 before the
    first stage, and the ImageNet stem on larger ones, where the CIFAR stem would run every stage at full
    resolution. ``stem`` is passed only when it differs from the builder's default, so the recorded
    :func:`model_config` stays minimal. The CIFAR-only designs (``resnet20``, ``wrn16_4``, ...) keep their
    stem. Explicit ``kwargs`` (e.g. ``stem=...``) win. The CLI, the GUI and the notebooks all build their
    models through this rule.
    """
    stem = inspect.signature(_builder(name)).parameters.get("stem")
    if stem is not None and "stem" not in kwargs:
        wanted = "cifar" if image_size <= SMALL_IMAGE_SIZE else "imagenet"
        if wanted != stem.default:
            kwargs["stem"] = wanted
    return create(name, num_classes=num_classes, **kwargs)


def model_config(model: nn.Module) -> dict[str, Any]:
    """``{"name": ..., "kwargs": ...}`` for a model made by :func:`create` or a registered builder such as
    :func:`resnet18` (what a checkpoint stores)."""
    name = getattr(model, "registry_name", None)
    if name is None:
        raise ValueError(
            "this model was not built with resnet_course.models.create() or a registered builder such as "
            "models.resnet18(), so it cannot be rebuilt by name"
        )
    return {"name": name, "kwargs": dict(model.registry_kwargs)}


def _imagenet_family(block: Block, layers: list[int], num_classes: int, stem: str, **kwargs: Any) -> ResNet:
    return ResNet(block, layers, (64, 128, 256, 512), num_classes=num_classes, stem=stem, **kwargs)


@register
def resnet18(num_classes: int = 1000, stem: str = "imagenet", **kwargs: Any) -> ResNet:
    """ResNet-18 (He et al. 2015, Table 1): BasicBlock × [2, 2, 2, 2]; 11.7 M parameters at 1000 classes."""
    return _imagenet_family(BasicBlock, [2, 2, 2, 2], num_classes, stem, **kwargs)


@register
def resnet34(num_classes: int = 1000, stem: str = "imagenet", **kwargs: Any) -> ResNet:
    """ResNet-34 (He et al. 2015, Table 1): BasicBlock × [3, 4, 6, 3]."""
    return _imagenet_family(BasicBlock, [3, 4, 6, 3], num_classes, stem, **kwargs)


@register
def resnet50(num_classes: int = 1000, stem: str = "imagenet", **kwargs: Any) -> ResNet:
    """ResNet-50 (He et al. 2015, Table 1): Bottleneck × [3, 4, 6, 3]; 25.6 M parameters at 1000 classes."""
    return _imagenet_family(Bottleneck, [3, 4, 6, 3], num_classes, stem, **kwargs)


@register
def resnet101(num_classes: int = 1000, stem: str = "imagenet", **kwargs: Any) -> ResNet:
    """ResNet-101 (He et al. 2015, Table 1): Bottleneck × [3, 4, 23, 3]."""
    return _imagenet_family(Bottleneck, [3, 4, 23, 3], num_classes, stem, **kwargs)


@register
def resnet152(num_classes: int = 1000, stem: str = "imagenet", **kwargs: Any) -> ResNet:
    """ResNet-152 (He et al. 2015, Table 1): Bottleneck × [3, 8, 36, 3]."""
    return _imagenet_family(Bottleneck, [3, 8, 36, 3], num_classes, stem, **kwargs)


@register
def resnext50_32x4d(num_classes: int = 1000, stem: str = "imagenet", **kwargs: Any) -> ResNet:
    """ResNeXt-50 32×4d (Xie et al. 2017): ResNet-50 whose 3×3 convolutions have 32 groups (4 channels each in
    ``layer1``, twice as many in every later stage); 25.0 M parameters at 1000 classes."""
    return _imagenet_family(
        Bottleneck, [3, 4, 6, 3], num_classes, stem, groups=32, width_per_group=4, **kwargs
    )


@register
def wide_resnet50_2(num_classes: int = 1000, stem: str = "imagenet", **kwargs: Any) -> ResNet:
    """Wide ResNet-50-2 (torchvision's variant of Zagoruyko & Komodakis 2016): ResNet-50 whose bottlenecks are
    twice as wide inside (the 1×1 reduce and the 3×3 convolution); 68.9 M parameters at 1000 classes."""
    return _imagenet_family(Bottleneck, [3, 4, 6, 3], num_classes, stem, width_per_group=128, **kwargs)


@register
def preact_resnet18(num_classes: int = 10, stem: str = "cifar", **kwargs: Any) -> ResNet:
    """Pre-activation ResNet-18 (He et al. 2016) with the CIFAR stem by default."""
    return _imagenet_family(PreActBlock, [2, 2, 2, 2], num_classes, stem, **kwargs)


def _cifar_family(block: Block, depth: int, num_classes: int, shortcut: str, **kwargs: Any) -> ResNet:
    """The 6n+2 networks of He et al. 2015, Sec. 4.2: three stages of n blocks at widths 16/32/64."""
    if (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
    n = (depth - 2) // 6
    kwargs.setdefault("stem", "cifar")
    return ResNet(block, [n, n, n], (16, 32, 64), num_classes=num_classes, shortcut=shortcut, **kwargs)


@register
def resnet20(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR residual net, 20 weighted layers (He et al. 2015, Sec. 4.2): 3 blocks per stage; 0.27 M parameters."""
    return _cifar_family(BasicBlock, 20, num_classes, shortcut, **kwargs)


@register
def resnet32(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR residual net, 32 weighted layers (He et al. 2015, Sec. 4.2): 5 blocks per stage; 0.46 M parameters."""
    return _cifar_family(BasicBlock, 32, num_classes, shortcut, **kwargs)


@register
def resnet44(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR residual net, 44 weighted layers (He et al. 2015, Sec. 4.2): 7 blocks per stage; 0.66 M parameters."""
    return _cifar_family(BasicBlock, 44, num_classes, shortcut, **kwargs)


@register
def resnet56(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR residual net, 56 weighted layers (He et al. 2015, Sec. 4.2): 9 blocks per stage; 0.85 M parameters."""
    return _cifar_family(BasicBlock, 56, num_classes, shortcut, **kwargs)


@register
def resnet110(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR residual net, 110 weighted layers (He et al. 2015, Sec. 4.2): 18 blocks per stage; 1.7 M parameters."""
    return _cifar_family(BasicBlock, 110, num_classes, shortcut, **kwargs)


@register
def plain20(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR plain (no shortcut) net, 20 weighted layers (He et al. 2015, Sec. 4.2): 3 blocks per stage; 0.27 M parameters."""
    return _cifar_family(PlainBlock, 20, num_classes, shortcut, **kwargs)


@register
def plain32(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR plain (no shortcut) net, 32 weighted layers (He et al. 2015, Sec. 4.2): 5 blocks per stage; 0.46 M parameters."""
    return _cifar_family(PlainBlock, 32, num_classes, shortcut, **kwargs)


@register
def plain44(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR plain (no shortcut) net, 44 weighted layers (He et al. 2015, Sec. 4.2): 7 blocks per stage; 0.66 M parameters."""
    return _cifar_family(PlainBlock, 44, num_classes, shortcut, **kwargs)


@register
def plain56(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR plain (no shortcut) net, 56 weighted layers (He et al. 2015, Sec. 4.2): 9 blocks per stage; 0.85 M parameters."""
    return _cifar_family(PlainBlock, 56, num_classes, shortcut, **kwargs)


@register
def plain110(num_classes: int = 10, shortcut: str = "A", **kwargs: Any) -> ResNet:
    """CIFAR plain (no shortcut) net, 110 weighted layers (He et al. 2015, Sec. 4.2): 18 blocks per stage; 1.7 M parameters."""
    return _cifar_family(PlainBlock, 110, num_classes, shortcut, **kwargs)


def _wide_resnet(depth: int, k: int, num_classes: int, **kwargs: Any) -> ResNet:
    """WRN-depth-k (Zagoruyko & Komodakis 2016): pre-activation blocks, widths 16k/32k/64k, stem width 16."""
    if (depth - 4) % 6:
        raise ValueError(f"Wide ResNet depth must be 6n+4 (16, 22, 28, 40, ...), got {depth}")
    n = (depth - 4) // 6
    kwargs.setdefault("stem", "cifar")
    kwargs.setdefault("stem_width", 16)
    return ResNet(PreActBlock, [n, n, n], (16 * k, 32 * k, 64 * k), num_classes=num_classes, **kwargs)


@register
def wrn16_4(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """WRN-16-4 (Zagoruyko & Komodakis 2016, Table 4): 2.7 M parameters."""
    return _wide_resnet(16, 4, num_classes, **kwargs)


@register
def wrn28_10(num_classes: int = 10, **kwargs: Any) -> ResNet:
    """WRN-28-10 (Zagoruyko & Komodakis 2016, Table 4): 36.5 M parameters."""
    return _wide_resnet(28, 10, num_classes, **kwargs)


@register
def se_resnet18(num_classes: int = 10, stem: str = "cifar", se_reduction: int = 16, **kwargs: Any) -> ResNet:
    """ResNet-18 with squeeze-and-excitation in every block (Hu et al. 2018, reduction 16), CIFAR stem."""
    return resnet18(num_classes=num_classes, stem=stem, se_reduction=se_reduction, **kwargs)


@register
def se_resnet20(num_classes: int = 10, se_reduction: int = 16, **kwargs: Any) -> ResNet:
    """ResNet-20 with squeeze-and-excitation in every block (Hu et al. 2018, reduction 16)."""
    return _cifar_family(
        BasicBlock, 20, num_classes, kwargs.pop("shortcut", "A"), se_reduction=se_reduction, **kwargs
    )
