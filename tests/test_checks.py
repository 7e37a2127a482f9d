"""Tests for resnet_course.checks: right answers pass, typical wrong ones fail with the right hint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_course.checks.environment import environment_report
from resnet_course.checks.framework import CheckResult, ExerciseFailed, Hint, friendly_check, student_call
from resnet_course.checks.notebook01 import check_final_train_errors
from resnet_course.checks.notebook02 import check_basic_block, check_bottleneck, check_no_bn_projection_block
from resnet_course.checks.notebook03 import check_resnet34
from resnet_course.checks.notebook04 import check_mean_std
from resnet_course.checks.notebook05 import check_model_selection_split, check_warmup_cosine_lr
from resnet_course.checks.notebook06 import check_recall_from_confusion
from resnet_course.checks.notebook07 import check_gradient_bug, gradient_bug_model
from resnet_course.checks.notebook08 import check_feature_extractor, check_param_groups
from resnet_course.checks.notebook09 import check_accumulation, check_smoothed_targets
from resnet_course.checks.notebook10 import check_top_k
from resnet_course.data.cifar10 import (
    CIFAR10_META_FILE,
    CIFAR10_TEST_FILES,
    CIFAR10_TRAIN_FILES,
    cifar10_folder,
    load_cifar10,
)
from resnet_course.data.containers import DatasetUnavailableError
from resnet_course.models.blocks import BasicBlock, Bottleneck
from resnet_course.models.registry import resnet18, resnet34
from resnet_course.models.resnet import ResNet

# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def outcome(check, *args, **kwargs) -> CheckResult:
    """The check's result, passed or failed (a failed check raises ExerciseFailed carrying it)."""
    try:
        return check(*args, **kwargs)
    except ExerciseFailed as failed:
        assert not failed.result and str(failed) == str(failed.result)
        return failed.result


def test_check_result_display():
    assert bool(CheckResult(True, "fine")) and str(CheckResult(True, "fine")) == "✅ fine"
    bad = CheckResult(False, "wrong", "try this")
    assert not bad and str(bad) == "❌ wrong\n   Hint: try this"


def test_friendly_check_prints_then_fails_the_cell(capsys):
    @friendly_check
    def check_positive(x):
        if x <= 0:
            raise Hint(f"{x} is not positive", "use a number > 0")
        return f"{x} is positive"

    @friendly_check
    def check_broken(x):
        return 1 / x

    @friendly_check
    def check_calls_student(fn):
        student_call(fn, what="your function")
        return "ran"

    def student_fn():
        raise KeyError("oops")

    def stub():
        raise NotImplementedError

    result = check_positive(3)
    assert result and result.passed and result.message == "3 is positive"
    from IPython.core.formatters import DisplayFormatter

    assert DisplayFormatter().format(result) == ({}, {})  # printed once; a notebook shows no stray "True"
    assert "✅ 3 is positive" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="-1 is not positive") as failed:
        check_positive(-1)
    assert isinstance(failed.value, AssertionError)  # what nbgrader's autograder scores as a failed test
    assert (
        "❌ -1 is not positive\n   Hint: use a number > 0" in capsys.readouterr().out
    )  # shown before it raises
    assert not outcome(check_broken, 0)
    assert "the check could not run: ZeroDivisionError" in capsys.readouterr().out
    assert not outcome(check_calls_student, student_fn)
    assert "your function raised KeyError: 'oops'" in capsys.readouterr().out
    assert not outcome(check_calls_student, stub)
    assert "replace the stub" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# Environment report
# --------------------------------------------------------------------------------------------------


CIFAR10_FILES = [*CIFAR10_TRAIN_FILES, *CIFAR10_TEST_FILES, CIFAR10_META_FILE]


def test_environment_report_rows(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    monkeypatch.delenv("RESNET_COURSE_DATASET", raising=False)
    report = environment_report()
    items = {row.item: row for row in report}
    for name in (
        "Python",
        "torch",
        "torchvision",
        "device",
        "profile",
        "data directory",
        "CIFAR-10",
        "Graphviz dot",
    ):
        assert name in items
    assert items["torch"].ok and items["torchvision"].ok  # the test environment has the pinned pair
    assert items["profile"].value.startswith("smoke")
    assert items["CIFAR-10"].value == "not found" and items["CIFAR-10"].ok  # smoke does not need it
    assert all(row.fix for row in report if not row.ok)  # every problem says how to fix it
    assert "<table>" in report._repr_html_() and "CIFAR-10" in str(report)

    (tmp_path / "cifar-10-batches-py").mkdir()
    for name in CIFAR10_FILES:
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(b"")
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "cpu")
    items = {row.item: row for row in environment_report()}
    assert items["CIFAR-10"].ok and "found" in items["CIFAR-10"].value


@pytest.mark.parametrize(
    "folder, names",
    [
        ("cifar10/cifar-10-batches-py", CIFAR10_FILES),  # one level too deep: load_cifar10 never looks there
        ("cifar-10-batches-py", ["data_batch_1", "test_batch"]),  # right place; batches 2-5 and meta missing
    ],
    ids=["nested", "incomplete"],
)
def test_environment_report_finds_cifar10_only_where_the_loader_reads_it(
    monkeypatch, tmp_path, folder, names
):
    """The report used to say "found" for both layouts, where load_cifar10 would download (or fail)."""
    (tmp_path / folder).mkdir(parents=True)
    for name in names:
        (tmp_path / folder / name).write_bytes(b"")
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "cpu")
    monkeypatch.delenv("RESNET_COURSE_DATASET", raising=False)
    items = {row.item: row for row in environment_report()}
    assert items["CIFAR-10"].value == "not found" and not items["CIFAR-10"].ok
    assert cifar10_folder() is None
    with pytest.raises(DatasetUnavailableError, match="missing"):
        load_cifar10(download=False)


def test_environment_report_names_the_folder_load_cifar10_reads(monkeypatch, tiny_cifar_root):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tiny_cifar_root))
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "cpu")
    monkeypatch.delenv("RESNET_COURSE_DATASET", raising=False)
    items = {row.item: row for row in environment_report()}
    folder = cifar10_folder()
    assert folder == tiny_cifar_root / "cifar-10-batches-py"
    assert items["CIFAR-10"].ok and items["CIFAR-10"].value == f"found in {folder}"
    assert len(load_cifar10(download=False)[0]) == 100


def test_environment_report_flags_missing_cifar_and_bad_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    monkeypatch.delenv("RESNET_COURSE_DATASET", raising=False)
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "cpu")
    items = {row.item: row for row in environment_report()}
    assert not items["CIFAR-10"].ok and "cifar-10-python.tar.gz" in items["CIFAR-10"].fix
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "turbo")
    report = environment_report()
    items = {row.item: row for row in report}
    assert not items["profile"].ok and "RESNET_COURSE_PROFILE" in items["profile"].fix
    assert not report.ok


def test_environment_report_custom_dataset(monkeypatch, tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    monkeypatch.setenv("RESNET_COURSE_DATASET", str(tmp_path / "imgs"))
    items = {row.item: row for row in environment_report()}
    assert items["your dataset"].ok and "2 classes" in items["your dataset"].value


def test_environment_report_graphviz_missing(monkeypatch):
    monkeypatch.setattr("resnet_course.checks.environment.shutil.which", lambda name: None)
    items = {row.item: row for row in environment_report()}
    assert not items["Graphviz dot"].ok and "apt-get install graphviz" in items["Graphviz dot"].fix


# --------------------------------------------------------------------------------------------------
# check_basic_block
# --------------------------------------------------------------------------------------------------


class GoodBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def residual(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))

    def shortcut(self, x):
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


class NoFinalRelu(GoodBlock):
    def forward(self, x):
        return self.residual(x) + self.shortcut(x)


class ReluBeforeAdd(GoodBlock):
    def forward(self, x):
        return torch.relu(self.residual(x)) + self.shortcut(x)


class NoShortcut(GoodBlock):
    def forward(self, x):
        return torch.relu(self.residual(x))


class IgnoresDownsample(GoodBlock):
    def forward(self, x):
        return torch.relu(self.residual(x) + x)


class StrideOnConv2(GoodBlock):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)


class ConvWithBias(GoodBlock):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=True)


class OtherNames(nn.Module):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.c1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)

    def forward(self, x):
        return self.c1(x)


class InplaceOnInput(GoodBlock):
    def forward(self, x):
        out = self.residual(x) + self.shortcut(x)
        x.relu_()
        return torch.relu(out)


class WrongSignature(GoodBlock):
    def __init__(self, channels):
        super().__init__(channels, channels)


class Stub(GoodBlock):
    def forward(self, x):
        raise NotImplementedError


class ForgetsBn2(GoodBlock):  # caught only because the check randomizes the reference's BatchNorm layers
    def residual(self, x):
        return self.conv2(torch.relu(self.bn1(self.conv1(x))))


def _run(capsys, obj):
    ok = outcome(check_basic_block, obj)
    return ok, capsys.readouterr().out


def test_basic_block_reference_and_correct_solution_pass(capsys):
    for cls in (BasicBlock, GoodBlock):
        ok, out = _run(capsys, cls)
        assert ok and out.startswith("✅"), out


@pytest.mark.parametrize(
    "cls, expected",
    [
        (NoFinalRelu, "ReLU *after* adding the shortcut"),
        (ReluBeforeAdd, "the ReLU comes after the addition"),
        (NoShortcut, "add the shortcut"),
        (IgnoresDownsample, "self.downsample(x)"),
        (StrideOnConv2, "differs from the reference"),
        (ConvWithBias, "bias=False"),
        (OtherNames, "name the layers conv1, bn1, conv2, bn2"),
        (InplaceOnInput, "changed its input tensor in place"),
        (WrongSignature, "(inplanes, planes, stride=1, downsample=None)"),
        (Stub, "NotImplementedError"),
        (ForgetsBn2, "differs from the reference"),
    ],
)
def test_basic_block_typical_mistakes(capsys, cls, expected):
    ok, out = _run(capsys, cls)
    assert not ok
    assert out.startswith("❌") and "Hint:" in out
    assert expected in out, out


def test_basic_block_wants_a_class(capsys):
    ok, out = _run(capsys, GoodBlock(16, 16))
    assert not ok and "pass the class itself" in out


# --------------------------------------------------------------------------------------------------
# check_bottleneck
# --------------------------------------------------------------------------------------------------


class GoodBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, first_stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, first_stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride // first_stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def branch(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return self.bn3(self.conv3(torch.relu(self.bn2(self.conv2(out)))))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.branch(x) + identity)


class StrideOnConv1(GoodBottleneck):  # the original paper's placement
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__(inplanes, planes, stride, downsample, first_stride=stride)


class BottleneckReluBeforeAdd(GoodBottleneck):
    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.branch(x)) + identity


class BottleneckNoShortcut(GoodBottleneck):
    def forward(self, x):
        return torch.relu(self.branch(x))


class NoExpansion(GoodBottleneck):
    expansion = 1


class ExpandsByTwo(GoodBottleneck):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv3 = nn.Conv2d(planes, planes * 2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 2)


class BottleneckWithBias(GoodBottleneck):
    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__(inplanes, planes, stride, downsample)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=True)


def test_bottleneck_reference_and_correct_solution_pass(capsys):
    for cls in (Bottleneck, GoodBottleneck):
        ok = outcome(check_bottleneck, cls)
        out = capsys.readouterr().out
        assert ok and out.startswith("✅") and "25,557,032 parameters" in out, out


@pytest.mark.parametrize(
    "cls, expected",
    [
        (StrideOnConv1, "put the stride on the 3×3 convolution (conv2)"),
        (BottleneckReluBeforeAdd, "the ReLU follows the addition"),
        (BottleneckNoShortcut, "add the shortcut"),
        (NoExpansion, "set the class attribute expansion = 4"),
        (ExpandsByTwo, "parameter shapes differ"),
        (BottleneckWithBias, "parameter names differ"),
        (GoodBlock, "expansion"),
    ],
)
def test_bottleneck_typical_mistakes(capsys, cls, expected):
    ok = outcome(check_bottleneck, cls)
    out = capsys.readouterr().out
    assert not ok and out.startswith("❌") and "Hint:" in out
    assert expected in out, out


# --------------------------------------------------------------------------------------------------
# check_no_bn_projection_block
# --------------------------------------------------------------------------------------------------


class GoodNoBN(nn.Module):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride)

    def branch(self, x):
        return self.conv2(torch.relu(self.conv1(x)))

    def forward(self, x):
        return torch.relu(self.branch(x) + self.shortcut(x))


class NoBNReluBeforeAdd(GoodNoBN):
    def forward(self, x):
        return torch.relu(self.branch(x)) + self.shortcut(x)


class NoBNNoShortcut(GoodNoBN):
    def forward(self, x):
        return torch.relu(self.branch(x))


class NoBNNoInnerRelu(GoodNoBN):
    def branch(self, x):
        return self.conv2(self.conv1(x))


class NoBNShortcut3x3(GoodNoBN):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 3, stride, 1)


class NoBNWithoutBias(GoodNoBN):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)


class NoBNShortcutWithoutStride(GoodNoBN):
    def __init__(self, in_channels, out_channels, stride):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1)


def test_no_bn_projection_block_solution_passes(capsys):
    ok = outcome(check_no_bn_projection_block, GoodNoBN)
    out = capsys.readouterr().out
    assert ok and out.startswith("✅") and "16 → 32 channels at stride 2" in out, out


@pytest.mark.parametrize(
    "cls, expected",
    [
        (NoBNReluBeforeAdd, "the last ReLU comes after the addition"),
        (NoBNNoShortcut, "add the projected input"),
        (NoBNNoInnerRelu, "put a ReLU between conv1 and conv2"),
        (NoBNShortcut3x3, "wrong shape shortcut.weight"),
        (NoBNWithoutBias, "three convolutions with bias"),
        (NoBNShortcutWithoutStride, "forward pass"),
        (GoodBlock, "missing conv1.bias"),
    ],
)
def test_no_bn_projection_block_typical_mistakes(capsys, cls, expected):
    ok = outcome(check_no_bn_projection_block, cls)
    out = capsys.readouterr().out
    assert not ok and out.startswith("❌") and "Hint:" in out
    assert expected in out, out


# --------------------------------------------------------------------------------------------------
# check_resnet34
# --------------------------------------------------------------------------------------------------


def test_resnet34_correct_solutions_pass(capsys):
    model = ResNet(BasicBlock, [3, 4, 6, 3], num_classes=1000, stem="imagenet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert check_resnet34(model)
    out = capsys.readouterr().out
    assert out.startswith("✅") and "21,797,672" in out
    # the check works on a copy: the student's weights are untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert check_resnet34(resnet34())
    capsys.readouterr()


class StubResNet34(nn.Module):
    def __init__(self):
        super().__init__()
        raise NotImplementedError


class ClassResNet34(ResNet):
    def __init__(self, num_classes=1000):
        super().__init__(BasicBlock, [3, 4, 6, 3], num_classes=num_classes)


def test_resnet34_accepts_a_class(capsys):
    assert check_resnet34(ClassResNet34)
    assert capsys.readouterr().out.startswith("✅")
    assert not outcome(check_resnet34, StubResNet34)  # the student copy's stub: a hint, not a traceback
    assert "replace the stub" in capsys.readouterr().out


def test_resnet34_parameter_count_matches_paper_figure():
    from resnet_course.analysis.architecture import count_parameters

    assert count_parameters(resnet34()) == 21_797_672  # torchvision's documented figure


@pytest.mark.parametrize(
    "model, expected",
    [
        (lambda: resnet18(), "[3, 4, 6, 3]"),
        (lambda: ResNet(BasicBlock, [3, 4, 6, 3], num_classes=10), "1000 classes"),
        (lambda: ResNet(BasicBlock, [3, 4, 6, 3], num_classes=1000, stem="cifar"), "ImageNet stem"),
        (lambda: nn.Linear(3, 4), "parameters; ResNet-34 has 21,797,672"),
        (lambda: ResNet, "ResNet() raised TypeError"),
        (lambda: resnet34()(torch.zeros(1, 3, 64, 64)), "pass the model (or its class)"),
    ],
)
def test_resnet34_typical_mistakes(capsys, model, expected):
    assert not outcome(check_resnet34, model())
    out = capsys.readouterr().out
    assert out.startswith("❌") and expected in out, out


class Renamed(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = resnet34()

    def forward(self, x):
        return self.net(x)


class SkipsMaxPool(ResNet):
    def __init__(self):
        super().__init__(BasicBlock, [3, 4, 6, 3])

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SkipsStemBatchNorm(
    ResNet
):  # a forgotten BatchNorm: the randomized reference makes the difference large
    def __init__(self):
        super().__init__(BasicBlock, [3, 4, 6, 3])

    def forward(self, x):
        x = self.maxpool(self.relu(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_resnet34_wrong_names_and_wrong_forward(capsys):
    assert not outcome(check_resnet34, Renamed())
    out = capsys.readouterr().out
    assert "state dicts differ" in out and "net.conv1.weight" in out
    assert not outcome(check_resnet34, SkipsMaxPool())
    assert "outputs differ" in capsys.readouterr().out
    assert not outcome(check_resnet34, SkipsStemBatchNorm())
    out = capsys.readouterr().out
    assert "outputs differ" in out
    assert float(out.split("max abs difference ")[1].split(")")[0]) > 0.1  # not a rounding-level difference


# --- notebook 06 ---
# --------------------------------------------------------------------------------------------------
# Notebook 06: recall from a confusion matrix
# --------------------------------------------------------------------------------------------------


def _recall(cm):
    import numpy as np

    cm = np.asarray(cm, dtype=float)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def test_check_recall_from_confusion_passes_the_solution(capsys):
    assert check_recall_from_confusion(_recall)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda cm: _recall(cm.T), "precision"),  # column sums instead of row sums
        (
            lambda cm: __import__("numpy").nan_to_num(_recall(cm)),
            "np.nan",
        ),  # 0 instead of NaN for an empty class
        (lambda cm: cm / cm.sum(), "1-D array"),  # the normalised matrix, not one recall per class
        (lambda cm: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_check_recall_from_confusion_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_recall_from_confusion, wrong)
    assert hint in capsys.readouterr().out


# --- notebook 07 ---
# --------------------------------------------------------------------------------------------------
# Notebook 07: the parameter without a gradient
# --------------------------------------------------------------------------------------------------


def _backward_once(model):
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3])
    torch.nn.functional.cross_entropy(model(x), y).backward()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_bug_model_has_exactly_one_parameter_without_gradient(seed):
    model = gradient_bug_model(seed)
    _backward_once(model)
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == [model._gradient_bug_parameter]
    assert all(p.requires_grad for p in model.parameters())  # hidden from a requires_grad scan


def test_check_gradient_bug(capsys):
    model = gradient_bug_model(1)
    _backward_once(model)
    truth = model._gradient_bug_parameter
    assert check_gradient_bug(truth, model)
    assert check_gradient_bug(truth.removesuffix(".weight"), model)
    capsys.readouterr()
    assert not outcome(check_gradient_bug, "fc.weight", model)
    assert "does get a gradient" in capsys.readouterr().out
    assert not outcome(check_gradient_bug, "no.such.layer", model)
    assert "not a parameter" in capsys.readouterr().out
    assert not outcome(check_gradient_bug, 3, model)
    assert not outcome(check_gradient_bug, truth, resnet18(num_classes=10))  # not the exercise's model


# --- notebook 10 ---
# --------------------------------------------------------------------------------------------------
# Notebook 10: top-k from logits
# --------------------------------------------------------------------------------------------------


def _top_k(logits, classes, k=5):
    values, indices = logits.softmax(0).topk(min(k, len(classes)))
    return [(classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]


def test_check_top_k_passes_the_solution(capsys):
    assert check_top_k(_top_k)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda logits, classes, k: list(reversed(_top_k(logits, classes, k))), "descending"),
        (
            lambda logits, classes, k: [
                (c, float(v))
                for (c, _), v in zip(
                    _top_k(logits, classes, k), logits.sort(descending=True).values, strict=False
                )
            ],
            "softmax",
        ),  # logits instead of probabilities
        (lambda logits, classes, k: _top_k(logits, classes, 5), "pairs"),  # ignores k
        (lambda logits, classes, k: [(str(i), 0.5) for i in range(k)], "indices"),
        (lambda logits, classes, k: 42, "list of (name, probability)"),
    ],
)
def test_check_top_k_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_top_k, wrong)
    assert hint in capsys.readouterr().out


# --- notebook 01 ---
# --------------------------------------------------------------------------------------------------
# check_final_train_errors
# --------------------------------------------------------------------------------------------------


def _histories():
    from resnet_course.training.history import History

    a = History(label="plain20")
    b = History(label="resnet20")
    for i, (ta, tb) in enumerate([(0.30, 0.35), (0.55, 0.60), (0.50, 0.70)], start=1):
        a.append(epoch=i, train_loss=1.0, train_acc=ta, val_loss=1.0, val_acc=ta - 0.05, lr=0.1, seconds=1.0)
        b.append(epoch=i, train_loss=1.0, train_acc=tb, val_loss=1.0, val_acc=tb - 0.05, lr=0.1, seconds=1.0)
    return {"plain20": a, "resnet20": b}


def test_check_final_train_errors_passes_the_solution(capsys):
    hs = _histories()
    assert check_final_train_errors(lambda h: {n: 1 - x.train_acc[-1] for n, x in h.items()}, hs)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda h: {n: 100 * (1 - x.train_acc[-1]) for n, x in h.items()}, "not percentages"),
        (lambda h: {n: x.train_acc[-1] for n, x in h.items()}, "1 − accuracy"),
        (lambda h: {n: 1 - max(x.train_acc) for n, x in h.items()}, "use the final epoch"),
        (lambda h: {n: 1 - x.val_acc[-1] for n, x in h.items()}, "validation error"),
        (lambda h: {"plain20": 0.5}, "no value for resnet20"),
        (lambda h: [0.5, 0.3], "expected a dict"),
        (lambda h: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_check_final_train_errors_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_final_train_errors, wrong, _histories())
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out, out


# --- notebook 04 ---
# --------------------------------------------------------------------------------------------------
# check_mean_std
# --------------------------------------------------------------------------------------------------


def _images():
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 256, (20, 3, 6, 6), generator=g, dtype=torch.uint8)


def _mean_std(images):
    x = images.float() / 255
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3), correction=0).tolist()


def test_check_mean_std_passes_the_solution_and_compute_mean_std(capsys):
    from resnet_course.data.statistics import compute_mean_std

    assert check_mean_std(_mean_std, _images())
    assert check_mean_std(compute_mean_std, _images())
    assert capsys.readouterr().out.count("✅") == 2


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda x: (x.float().mean(dim=(0, 2, 3)), x.float().std(dim=(0, 2, 3))), "scale the pixels"),
        (
            lambda x: (
                (x.float() / 255).mean(dim=(0, 2, 3)),
                (x.float() / 255).std(dim=(2, 3), correction=0).mean(dim=0),
            ),
            "mean of per-image stds",
        ),
        (lambda x: ((x.float() / 255).mean(dim=(0, 1, 2)), [0.2] * 3), "one per channel"),
        (lambda x: ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), "expected"),  # hard-coded
        (lambda x: (0.5, 0.5), "not 3 numbers"),
        (lambda x: 42, "pair (mean, std)"),
    ],
)
def test_check_mean_std_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_mean_std, wrong, _images())
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out, out


def test_check_mean_std_rejects_an_answer_hard_coded_for_the_given_images(capsys):
    fixed = _mean_std(_images())
    assert not outcome(check_mean_std, lambda x: fixed, _images())
    assert "second, random image set" in capsys.readouterr().out


# --- notebook 05 ---
# --------------------------------------------------------------------------------------------------
# check_warmup_cosine_lr, check_model_selection_split
# --------------------------------------------------------------------------------------------------


def _lr_at(step, base_lr, warmup_steps, total_steps):
    import math

    if step < warmup_steps:
        return base_lr * (0.1 + 0.9 * step / warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))


def test_check_warmup_cosine_lr_passes_the_solution(capsys):
    assert check_warmup_cosine_lr(_lr_at)
    assert "✅" in capsys.readouterr().out


def _no_warmup_offset(step, base_lr, warmup_steps, total_steps):
    import math

    if step < warmup_steps:
        return base_lr * (0.1 + 0.9 * step / warmup_steps)
    return 0.5 * base_lr * (1 + math.cos(math.pi * step / total_steps))


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda s, lr, w, t: lr * s / w if s < w else _lr_at(s, lr, w, t), "starts at 0.1 × base_lr"),
        (_no_warmup_offset, "the cosine starts after the warm-up"),
        (lambda s, lr, w, t: _lr_at(s + 1, lr, w, t) if s + 1 < t else 0.0, "expected"),  # off by one
        (lambda s, lr, w, t: lr, "expected"),
        (lambda s, lr, w, t: "0.1", "expected"),
        (lambda s, lr, w, t: None, "not a number"),
    ],
)
def test_check_warmup_cosine_lr_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_warmup_cosine_lr, wrong)
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out, out


def test_check_model_selection_split(capsys):
    assert check_model_selection_split("val")
    assert check_model_selection_split(" Validation ")
    capsys.readouterr()
    assert not outcome(check_model_selection_split, "test")
    assert "optimistic" in capsys.readouterr().out
    assert not outcome(check_model_selection_split, "train")
    assert "memorising" in capsys.readouterr().out
    assert not outcome(check_model_selection_split, 3)
    assert "not one of" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# --- notebook 08 ---
# --------------------------------------------------------------------------------------------------


def _feature_extractor(model, num_classes):
    for p in model.parameters():
        p.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _fe_head_512(model, num_classes):
    for p in model.parameters():
        p.requires_grad = False
    model.fc = nn.Linear(512, num_classes)
    return model


def _fe_not_frozen(model, num_classes):
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _fe_head_frozen_too(model, num_classes):
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    for p in model.parameters():
        p.requires_grad = False
    return model


def _fe_fixed_classes(model, num_classes):
    return _feature_extractor(model, 3)


def _fe_reinitialised(model, num_classes):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight)
    return _feature_extractor(model, num_classes)


def _fe_returns_nothing(model, num_classes):
    _feature_extractor(model, num_classes)


def test_check_feature_extractor_passes_the_solution(capsys):
    assert check_feature_extractor(_feature_extractor)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_fe_head_512, "model.fc.in_features"),
        (_fe_not_frozen, "requires_grad = False"),
        (_fe_head_frozen_too, "after freezing"),
        (_fe_fixed_classes, "num_classes"),
        (_fe_reinitialised, "keep the pretrained weights"),
        (_fe_returns_nothing, "return model"),
        (42, "pass the function itself"),
    ],
)
def test_check_feature_extractor_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_feature_extractor, wrong)
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out


def _param_groups(model, lr, backbone_factor):
    head = [p for n, p in model.named_parameters() if n.startswith("fc.") and p.requires_grad]
    body = [p for n, p in model.named_parameters() if not n.startswith("fc.") and p.requires_grad]
    return [{"params": body, "lr": lr * backbone_factor}, {"params": head, "lr": lr}]


def _pg_same_lr(model, lr, backbone_factor):
    return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]


def _pg_swapped(model, lr, backbone_factor):
    groups = _param_groups(model, lr, backbone_factor)
    groups[0]["lr"], groups[1]["lr"] = groups[1]["lr"], groups[0]["lr"]
    return groups


def _pg_with_frozen(model, lr, backbone_factor):
    head = list(model.fc.parameters())
    body = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
    return [{"params": body, "lr": lr * backbone_factor}, {"params": head, "lr": lr}]


def _pg_twice(model, lr, backbone_factor):
    groups = _param_groups(model, lr, backbone_factor)
    groups[0]["params"] = groups[0]["params"] + groups[1]["params"]
    return groups


def _pg_head_only(model, lr, backbone_factor):
    return [{"params": list(model.fc.parameters()), "lr": lr}]


def test_check_param_groups_passes_the_solution(capsys):
    assert check_param_groups(_param_groups)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_pg_same_lr, "lr * backbone_factor"),
        (_pg_swapped, "head: lr"),
        (_pg_with_frozen, "requires_grad == False"),
        (_pg_twice, "exactly one group"),
        (_pg_head_only, "in no group"),
        (lambda model, lr, f: {"params": list(model.parameters()), "lr": lr}, "list of dicts"),
    ],
)
def test_check_param_groups_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_param_groups, wrong)
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out


# --------------------------------------------------------------------------------------------------
# --- notebook 09 ---
# --------------------------------------------------------------------------------------------------


def _smoothed(labels, num_classes, eps):
    return (1 - eps) * torch.nn.functional.one_hot(labels, num_classes).float() + eps / num_classes


def _smoothed_no_uniform_on_true(labels, num_classes, eps):
    one_hot = torch.nn.functional.one_hot(labels, num_classes).float()
    return one_hot * (1 - eps) + (1 - one_hot) * eps / (num_classes - 1)


def _smoothed_unnormalised(labels, num_classes, eps):
    return torch.nn.functional.one_hot(labels, num_classes).float() + eps / num_classes


def test_check_smoothed_targets_passes_the_solution(capsys):
    assert check_smoothed_targets(_smoothed)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_smoothed_no_uniform_on_true, "the true one too"),
        (_smoothed_unnormalised, "probability distribution"),
        (lambda labels, k, eps: torch.nn.functional.one_hot(labels, k).float(), "1 - eps + eps/K"),
        (lambda labels, k, eps: _smoothed(labels, k, eps).T, "one row per label"),
        (lambda labels, k, eps: 1 / 0, "ZeroDivisionError"),
    ],
)
def test_check_smoothed_targets_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_smoothed_targets, wrong)
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out


def _accumulate(model, x, y, accum_steps):
    for xb, yb in zip(x.chunk(accum_steps), y.chunk(accum_steps), strict=True):
        (torch.nn.functional.cross_entropy(model(xb), yb) / accum_steps).backward()


def _accumulate_unscaled(model, x, y, accum_steps):
    for xb, yb in zip(x.chunk(accum_steps), y.chunk(accum_steps), strict=True):
        torch.nn.functional.cross_entropy(model(xb), yb).backward()


def _accumulate_zeroing(model, x, y, accum_steps):
    for xb, yb in zip(x.chunk(accum_steps), y.chunk(accum_steps), strict=True):
        model.zero_grad()
        (torch.nn.functional.cross_entropy(model(xb), yb) / accum_steps).backward()


def _accumulate_first_chunk_only(model, x, y, accum_steps):
    xb, yb = x.chunk(accum_steps)[0], y.chunk(accum_steps)[0]
    torch.nn.functional.cross_entropy(model(xb), yb).backward()


def test_check_accumulation_passes_the_solution(capsys):
    assert check_accumulation(_accumulate)
    assert capsys.readouterr().out.startswith("✅")


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_accumulate_unscaled, "divide it by accum_steps"),
        (_accumulate_zeroing, "don't zero the gradients"),
        (_accumulate_first_chunk_only, "differs from the full-batch gradient"),
        (lambda model, x, y, a: None, "call loss.backward() on every micro-batch"),
    ],
)
def test_check_accumulation_fails_with_a_hint(wrong, hint, capsys):
    assert not outcome(check_accumulation, wrong)
    out = capsys.readouterr().out
    assert out.startswith("❌") and hint in out
