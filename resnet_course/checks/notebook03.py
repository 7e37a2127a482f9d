"""Checks of notebook 03's exercise: a ResNet-34 assembled from blocks, against ``models.registry.resnet34``."""

from __future__ import annotations

import copy

import torch
from torch import nn

from resnet_course.analysis.architecture import randomize_batchnorm
from resnet_course.checks.framework import (
    Hint,
    friendly_check,
    state_dict_diff,
    state_dict_diff_text,
    student_call,
)

__all__ = ["check_resnet34"]


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
    """Check a student's ResNet-34 (ImageNet layout, 1000 classes) against :func:`resnet_course.models.registry.resnet34`.

    ``model`` is an instance, or an ``nn.Module`` subclass that builds one without arguments (then errors in
    its constructor become hints). Compares the parameter count, the state-dict keys and shapes, and — after
    loading the reference's weights into a copy — the outputs on a random batch.
    """
    from resnet_course.analysis.architecture import count_parameters
    from resnet_course.models.registry import resnet34

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

    diff = state_dict_diff(model, ref)
    if any(diff):
        raise Hint(
            f"the parameter count is right but the state dicts differ: {state_dict_diff_text(*diff, keys=3)}",
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
