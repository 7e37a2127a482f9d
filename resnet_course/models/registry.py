"""The model zoo by name: builders, :func:`create`, :func:`list_models`, :func:`model_config`.

Builders for the ImageNet family (``resnet18`` … ``resnet152``, ``resnext50_32x4d``, ``wide_resnet50_2``),
the CIFAR family of He et al. 2015 (``resnet20`` … ``resnet110``) and its plain twins (``plain20`` …),
``preact_resnet18``, Wide ResNets (``wrn16_4``, ``wrn28_10``; Zagoruyko & Komodakis, arXiv:1605.07146) and SE
variants. Every registered builder records how to rebuild its model (:func:`model_config`), whether it is
called directly or through :func:`create`; :func:`create_for_data` picks the stem from the image size.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from resnet_course.models.blocks import BasicBlock, Block, Bottleneck, PlainBlock, PreActBlock
from resnet_course.models.resnet import ResNet

__all__ = [
    "SMALL_IMAGE_SIZE",
    "create",
    "create_for_data",
    "list_models",
    "model_config",
    "plain110",
    "plain20",
    "plain32",
    "plain44",
    "plain56",
    "preact_resnet18",
    "register",
    "resnet101",
    "resnet110",
    "resnet152",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnext50_32x4d",
    "se_resnet18",
    "se_resnet20",
    "wide_resnet50_2",
    "wrn16_4",
    "wrn28_10",
]


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
            "this model was not built with resnet_course.models.registry.create() or a registered builder such as "
            "resnet_course.models.registry.resnet18(), so it cannot be rebuilt by name"
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
