""":class:`ResNet`: a stem, four (ImageNet) or three (CIFAR) stages of blocks, global pooling and a linear head.

Parameter names follow torchvision's ``models/resnet.py``, so ``ResNet(stem="imagenet", num_classes=1000)``
loads torchvision's state dicts with ``strict=True``. The forward pass is free of Python-side checks, so
``torch.jit.script``, ``torch.export``, ``torch.compile`` and torchvision's ``create_feature_extractor``
accept every model; :meth:`ResNet.check_input` validates an input with a precise ``ValueError`` at the
entry points that take tensors from outside (``apps.inference.Classifier``, the probes of ``analysis``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from resnet_course.models.blocks import Block, NormLayer, ShortcutA, conv1x1, conv3x3

__all__ = ["ResNet", "SHORTCUTS", "STEMS"]


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
