"""Counting parameters and layers, the torchinfo summary, saved-activation memory and randomized BatchNorm."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from resnet_course.analysis.architecture import (
    count_parameters,
    count_weighted_layers,
    randomize_batchnorm,
    saved_activation_bytes,
    summary,
)
from resnet_course.devices import model_device
from resnet_course.models.registry import create, resnet18, resnet20


@pytest.mark.parametrize(
    ("name", "main", "shortcut"),
    [("resnet18", 18, 3), ("resnet34", 34, 3), ("resnet50", 50, 4), ("resnet101", 101, 4), ("resnet152", 152, 4)],
)
def test_why_resnet18_is_called_18(name, main, shortcut):
    count = count_weighted_layers(create(name))
    assert (count.main_path, count.shortcut) == (main, shortcut)
    assert count.total == main + shortcut


def test_counts_torchvision_models_too():
    assert count_weighted_layers(torchvision.models.resnet18()).main_path == 18


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_cifar_family_depths(depth):
    assert count_weighted_layers(create(f"resnet{depth}")).main_path == depth
    assert count_weighted_layers(create(f"resnet{depth}")).shortcut == 0  # option A has no weights
    assert count_weighted_layers(create(f"plain{depth}")).main_path == depth


def test_se_layers_counted_apart():
    count = count_weighted_layers(create("se_resnet20"))
    assert count.main_path == 20 and count.other == 2 * 9


def test_count_parameters_trainable_only():
    net = resnet20()
    total = count_parameters(net)
    for p in net.fc.parameters():
        p.requires_grad_(False)
    assert count_parameters(net, trainable_only=True) == total - (64 * 10 + 10)
    assert count_parameters(net) == total


def test_summary_does_not_move_model_and_reports_totals():
    net = resnet20()
    stats = summary(net, (1, 3, 32, 32))
    assert stats.total_params == count_parameters(net)
    assert model_device(net) == torch.device("cpu")
    assert "layer3" in str(stats)
    with pytest.raises(ValueError, match="batch"):
        summary(net, (3, 32, 32))


# --------------------------------------------------------------------------------------------------
# saved_activation_bytes
# --------------------------------------------------------------------------------------------------


def _tiny_convnet() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    ).train()


def test_saved_activation_bytes_grows_linearly_with_batch_size():
    net = _tiny_convnet()
    b2, b4, b8 = (saved_activation_bytes(net, torch.randn(n, 3, 16, 16)) for n in (2, 4, 8))
    assert 0 < b2 < b4 < b8
    # activations are proportional to the batch, the saved weights are a constant: b(n) = weights + n * per_image
    assert b8 - b4 == 2 * (b4 - b2)
    per_image = (b4 - b2) // 2
    assert per_image > 8 * 16 * 16 * 4  # at least one fp32 feature map of 8×16×16 per image


def test_saved_activation_bytes_bf16_autocast_roughly_halves_it():
    net = _tiny_convnet()
    x = torch.randn(8, 3, 16, 16)
    fp32 = saved_activation_bytes(net, x)
    bf16 = saved_activation_bytes(net, x, amp_dtype=torch.bfloat16)
    assert 0.4 < bf16 / fp32 < 0.6


def test_saved_activation_bytes_counts_each_storage_once():
    class Square(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(10))

        def forward(self, x):
            return self.w * self.w + x  # mul saves w twice (as self and as other); add saves nothing

    assert saved_activation_bytes(Square(), torch.zeros(10)) == 10 * 4


def test_saved_activation_bytes_leaves_the_model_unchanged_and_is_repeatable():
    net = _tiny_convnet()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(4, 3, 16, 16)
    first = saved_activation_bytes(net, x)
    assert saved_activation_bytes(net, x) == first
    assert net.training  # the mode is kept
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # BatchNorm running statistics restored
    assert all(p.grad is None for p in net.parameters())  # no backward ran
    with torch.no_grad():  # gradient recording is switched on for the measurement
        assert saved_activation_bytes(net, x) == first
    assert saved_activation_bytes(net.eval(), x) > 0 and not net.training


def test_saved_activation_bytes_restores_buffers_when_the_forward_pass_fails():
    net = _tiny_convnet()
    before = net[1].running_mean.clone()
    with pytest.raises(RuntimeError):
        saved_activation_bytes(net, torch.randn(4, 5, 16, 16))  # the first conv wants 3 channels
    assert torch.equal(net[1].running_mean, before)


def test_saved_activation_bytes_rejects_bad_input():
    net = _tiny_convnet()
    x = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="amp_dtype must be None, torch.float16 or torch.bfloat16"):
        saved_activation_bytes(net, x, amp_dtype=torch.float32)
    with pytest.raises(ValueError, match="x must be a tensor"):
        saved_activation_bytes(net, x.tolist())


# --------------------------------------------------------------------------------------------------
# randomize_batchnorm
# --------------------------------------------------------------------------------------------------


def _bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "bn" in k or "downsample.1" in k}


def test_randomize_batchnorm_is_reproducible_and_in_range():
    a = randomize_batchnorm(resnet18(), torch.Generator().manual_seed(0))
    b = randomize_batchnorm(resnet18(), torch.Generator().manual_seed(0))
    c = randomize_batchnorm(resnet18(), torch.Generator().manual_seed(1))
    sa, sb, sc = _bn_state(a), _bn_state(b), _bn_state(c)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["bn1.weight"], sc["bn1.weight"])
    for m in a.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert 0.5 <= m.weight.min() and m.weight.max() < 1.5
            assert 0.5 <= m.running_var.min() and m.running_var.max() < 1.5
            assert m.bias.abs().max() > 0 and m.running_mean.abs().max() > 0
            assert m.num_batches_tracked.item() == 0


def test_randomize_batchnorm_returns_the_model_and_touches_only_batchnorm():
    torch.manual_seed(0)
    model = resnet20()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert randomize_batchnorm(model, torch.Generator().manual_seed(0)) is model
    after = model.state_dict()
    for k, v in before.items():
        is_bn = k.split(".")[-2].startswith("bn") and not k.endswith("num_batches_tracked")
        assert torch.equal(after[k], v) != is_bn, k


def test_randomize_batchnorm_uses_the_global_rng_without_a_generator():
    torch.manual_seed(3)
    a = _bn_state(randomize_batchnorm(resnet20()))
    torch.manual_seed(3)
    b = _bn_state(randomize_batchnorm(resnet20()))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_randomize_batchnorm_handles_every_batchnorm_kind_and_dtype():
    model = nn.Sequential(
        nn.BatchNorm1d(4), nn.BatchNorm2d(4, affine=False), nn.BatchNorm3d(4, track_running_stats=False)
    ).double()
    randomize_batchnorm(model, torch.Generator().manual_seed(0))
    assert model[0].weight.dtype == torch.float64 and not torch.equal(model[0].weight, torch.ones(4))
    assert model[1].weight is None and not torch.equal(model[1].running_var, torch.ones(4, dtype=torch.float64))
    assert model[2].running_mean is None and not torch.equal(model[2].bias, torch.zeros(4, dtype=torch.float64))
    # the same draws whatever the model's dtype
    single = randomize_batchnorm(nn.BatchNorm1d(4), torch.Generator().manual_seed(0))
    assert torch.equal(single.weight.double(), model[0].weight)


def test_randomized_batchnorm_makes_a_forgotten_layer_visible():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    with_bn, without_bn = nn.Sequential(conv, nn.BatchNorm2d(4)).eval(), nn.Sequential(conv).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(with_bn(x), without_bn(x), atol=1e-4)  # default BatchNorm: almost the identity
        randomize_batchnorm(with_bn, torch.Generator().manual_seed(0))
        assert not torch.allclose(with_bn(x), without_bn(x), atol=1e-2)


def test_randomize_batchnorm_rejects_a_seed_instead_of_a_generator():
    with pytest.raises(ValueError, match="generator must be a torch.Generator or None, got int"):
        randomize_batchnorm(resnet20(), 0)


def test_unchanged_state_restores_buffers_and_each_modules_mode_even_after_an_error() -> None:
    from resnet_course.models.state import unchanged_state

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    net.eval()
    net[1].train()  # a mixed-mode model: only the BatchNorm in training mode
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"), unchanged_state(net):
        net.train()
        net(torch.randn(8, 3, 6, 6) * 3 + 1)  # updates the running statistics
        assert not torch.equal(net[1].running_mean, before["1.running_mean"])
        raise RuntimeError("boom")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert [m.training for m in net.modules()] == [False, False, True, False]
