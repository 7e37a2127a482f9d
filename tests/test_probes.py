"""Tests for resnet_course.analysis.activations, .gradients and .gradcam: hooks are removed, modes restored, numbers checked by hand."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import shutil  # noqa: E402

import graphviz  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from resnet_course.analysis.activations import feature_maps, plot_feature_maps, zero_fractions
from resnet_course.analysis.gradcam import grad_cam, plot_grad_cam
from resnet_course.analysis.gradients import (
    GraphvizNotFoundError,
    compare_gradient_flow,
    computation_graph,
    gradient_norms,
    parameter_grad_norms,
    plot_gradient_flow,
    render_graph,
)
from resnet_course.models.blocks import BasicBlock
from resnet_course.models.registry import create  # noqa: E402
from resnet_course.models.resnet import ResNet


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _tiny(seed: int = 0) -> ResNet:
    torch.manual_seed(seed)
    return ResNet(BasicBlock, [1, 1], (8, 16), num_classes=3, stem="cifar")


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _x(n: int = 2, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------- feature maps


def test_feature_maps_shapes_values_hooks_and_mode():
    model = _tiny()
    model.train()
    x = _x()
    maps = feature_maps(model, x, ["conv1", "bn1", "layer1", "layer2"])
    assert list(maps) == ["conv1", "bn1", "layer1", "layer2"]
    assert maps["conv1"].shape == (2, 8, 16, 16) and maps["layer2"].shape == (2, 16, 8, 8)
    assert _no_hooks(model)
    assert model.training and all(m.training for m in model.modules())  # mode restored
    model.eval()
    with torch.no_grad():
        pre = model.bn1(model.conv1(x))
        expected = model.layer1(F.relu(pre))
    torch.testing.assert_close(maps["layer1"], expected)
    # The BatchNorm output is captured before the in-place ReLU that follows it.
    torch.testing.assert_close(maps["bn1"], pre)
    assert (maps["bn1"] < 0).any()


def test_feature_maps_removes_hooks_when_forward_raises():
    model = create("resnet20")
    with pytest.raises(ValueError, match="too small"):
        feature_maps(model, torch.randn(1, 3, 2, 2), ["layer1", "layer3.2.conv2"])
    assert _no_hooks(model)


def test_feature_maps_rejects_unknown_layer_and_uint8():
    model = _tiny()
    with pytest.raises(ValueError, match="no layer named 'layer9'.*layer1"):
        feature_maps(model, _x(), "layer9")
    with pytest.raises(ValueError, match="float"):
        feature_maps(model, torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "layer1")


def test_plot_feature_maps_draws_one_panel_per_channel():
    maps = feature_maps(_tiny(), _x(1), ["conv1", "layer2"])
    fig = plot_feature_maps(maps, max_channels=4, ncols=4, title="maps")
    assert isinstance(fig, Figure)
    images = [ax.get_images()[0] for ax in fig.axes if ax.get_images()]
    assert len(images) == 8
    np.testing.assert_allclose(images[4].get_array(), maps["layer2"][0, 0].numpy())
    with pytest.raises(ValueError, match="outside the batch"):
        plot_feature_maps(maps, index=3)
    fig.canvas.draw()


def test_zero_fractions_per_image_in_chunks_match_feature_maps():
    model = _tiny()
    model.train()
    x = _x(5)
    fractions = zero_fractions(model, x, ["conv1", "layer1", "layer2"], batch_size=2)
    assert list(fractions) == ["conv1", "layer1", "layer2"]
    maps = feature_maps(model, x, ["conv1", "layer1", "layer2"])
    for name, t in maps.items():
        assert fractions[name].shape == (5,)
        torch.testing.assert_close(fractions[name], (t == 0).flatten(1).float().mean(dim=1))
    assert float(fractions["conv1"].max()) == 0.0  # a convolution's output has no exact zeros here
    assert 0 < float(fractions["layer1"].mean()) < 1  # after the block's ReLU
    one_chunk = zero_fractions(model, x, "layer2", batch_size=100)
    torch.testing.assert_close(one_chunk["layer2"], fractions["layer2"])
    assert _no_hooks(model) and model.training
    with pytest.raises(ValueError, match="batch_size"):
        zero_fractions(model, x, "layer1", batch_size=0)


# ---------------------------------------------------------------------------------------------- gradients


def test_gradient_norms_one_finite_entry_per_layer_matching_backward():
    model = create("resnet20")
    x, y = _x(4, 16), torch.tensor([0, 1, 2, 3])
    norms = gradient_norms(model, x, y)
    names = [n for n, _ in norms]
    assert len(norms) == 20  # 19 convolutions + fc (option-A shortcuts have no weights)
    assert names[0] == "conv1" and names[1] == "layer1.0.conv1" and names[-1] == "fc"
    assert all(np.isfinite(v) and v > 0 for _, v in norms)
    assert all(p.grad is None for p in model.parameters())  # .grad untouched
    assert _no_hooks(model) and model.training
    # Same numbers as a plain backward pass (BN running stats differ, the batch statistics do not).
    torch.manual_seed(0)
    F.cross_entropy(model(x), y).backward()
    modules = dict(model.named_modules())
    for name, value in norms:
        assert value == pytest.approx(float(modules[name].weight.grad.norm()), rel=1e-4)


def test_gradient_norms_follow_forward_order_not_registration_order():
    class Reordered(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 2)
            self.body = nn.Linear(3, 4)
            self.unused = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.body(x)))

    model = Reordered()
    x = torch.randn(5, 3)
    norms = gradient_norms(model, x, torch.tensor([0, 1, 0, 1, 1]))
    assert [n for n, _ in norms] == ["body", "head"]


def test_compare_and_plot_gradient_flow():
    x, y = _x(2, 16), torch.tensor([0, 1])
    results = compare_gradient_flow(["plain20", "resnet20"], x, y, num_classes=10)
    assert set(results) == {"plain20", "resnet20"} and all(len(v) == 20 for v in results.values())
    again = compare_gradient_flow(["plain20"], x, y, num_classes=10)
    assert again["plain20"] == results["plain20"]  # seeded: reproducible
    fig = plot_gradient_flow(results, title="plain vs residual")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), [v for _, v in results["resnet20"]])
    rel = plot_gradient_flow(results, relative_depth=True)
    assert rel.axes[0].get_lines()[0].get_xdata()[-1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        plot_gradient_flow({})
    fig.canvas.draw()


def _flat_norms(n: int, value: float = 1.0) -> list[tuple[str, float]]:
    return [(f"layer{i}", value) for i in range(n)]


def test_plot_gradient_flow_colour_by_depth_and_dashed_variants():
    results = {
        "plain20": _flat_norms(20),
        "plain56": _flat_norms(56),
        "plain20, no BN": _flat_norms(20, 1e-5),
        "plain56, no BN": _flat_norms(56, 1e-9),
    }
    fig = plot_gradient_flow(results, relative_depth=True)
    lines = {line.get_label().split(" (")[0]: line for line in fig.axes[0].get_lines()}
    assert lines["plain20"].get_color() == lines["plain20, no BN"].get_color()
    assert lines["plain56"].get_color() == lines["plain56, no BN"].get_color()
    assert lines["plain20"].get_color() != lines["plain56"].get_color()
    assert lines["plain20"].get_linestyle() == "-" and lines["plain56"].get_linestyle() == "-"
    assert lines["plain20, no BN"].get_linestyle() == "--" and lines["plain56, no BN"].get_linestyle() == "--"
    # The same depth has the same colour in another figure, whatever else is drawn there.
    other = plot_gradient_flow({"resnet56": _flat_norms(56), "resnet110": _flat_norms(110)})
    assert other.axes[0].get_lines()[0].get_color() == lines["plain56"].get_color()
    # One legend column per depth, one row per variant: the legend lists each depth's lines together.
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    texts = fig.axes[0].get_legend().get_texts()
    assert [t.get_text() for t in texts] == [
        "plain20 (20 layers)",
        "plain20, no BN (20 layers)",
        "plain56 (56 layers)",
        "plain56, no BN (56 layers)",
    ]
    x0 = [round(t.get_window_extent(canvas.get_renderer()).x0) for t in texts]
    assert x0[0] == x0[1] < x0[2] == x0[3]  # columns: depth 20, depth 56
    styled = plot_gradient_flow(results, linestyles={"plain20": ":"})
    assert styled.axes[0].get_lines()[0].get_linestyle() == ":"
    with pytest.raises(ValueError, match="not in results"):
        plot_gradient_flow(results, linestyles={"resnet20": ":"})


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_plot_gradient_flow_two_panels_legend_and_labels_do_not_overlap():
    # Notebook 01's figure: two sharey panels drawn by plot_gradient_flow, then the right panel's tick
    # labels switched back on by the caller. Constrained layout places everything when it is drawn.
    x, y = _x(2, 16), torch.tensor([0, 1])
    results = compare_gradient_flow(["plain20", "plain32", "resnet20", "resnet32"], x, y, num_classes=10)
    no_bn = {f"{n}, no BN": [(layer, v * 1e-6) for layer, v in results[n]] for n in ("plain20", "plain32")}
    fig, (ax_p, ax_r) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    plot_gradient_flow(
        {"plain20": results["plain20"], "plain32": results["plain32"], **no_bn}, relative_depth=True, ax=ax_p
    )
    plot_gradient_flow({n: results[n] for n in ("resnet20", "resnet32")}, relative_depth=True, ax=ax_r)
    ax_r.tick_params(labelleft=True)
    assert fig.get_layout_engine() is not None
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    left_panel = ax_p.get_window_extent(renderer)
    right_labels = [ax_r.yaxis.label.get_window_extent(renderer)] + [
        t.get_window_extent(renderer) for t in ax_r.get_yticklabels() if t.get_visible() and t.get_text()
    ]
    assert right_labels[1:], "the right panel's tick labels are shown"
    assert not any(_overlap(box, left_panel) for box in right_labels)
    for ax in (ax_p, ax_r):
        legend = ax.get_legend().get_window_extent(renderer)
        assert legend.y1 <= ax.get_window_extent(renderer).y0  # below the plot, over no line
        assert legend.y1 <= ax.xaxis.label.get_window_extent(renderer).y0  # and below the x label
        assert legend.y0 >= 0  # inside the figure


def test_parameter_grad_norms_flags():
    model = _tiny()
    model.conv1.weight.requires_grad_(False)
    F.cross_entropy(model(_x()), torch.tensor([0, 1])).backward()
    model.fc.bias.grad.zero_()
    model.fc.weight.grad[0, 0] = float("nan")
    table = parameter_grad_norms(model).set_index("name")
    assert len(table) == len(list(model.parameters()))
    assert table.loc["conv1.weight", "grad_is_none"] and np.isnan(table.loc["conv1.weight", "grad_norm"])
    assert table.loc["fc.bias", "grad_is_zero"] and table.loc["fc.bias", "grad_norm"] == 0
    assert table.loc["fc.weight", "grad_non_finite"]
    ok = table.loc["layer1.0.conv1.weight"]
    assert ok["shape"] == (8, 8, 3, 3) and ok["grad_norm"] > 0
    assert not (ok["grad_is_none"] or ok["grad_is_zero"] or ok["grad_non_finite"])


# ---------------------------------------------------------------------------------------------- graph


def test_computation_graph_without_dot_says_how_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(GraphvizNotFoundError, match="apt-get install graphviz") as info:
        computation_graph(_tiny(), (1, 3, 16, 16))
    assert "brew install graphviz" in str(info.value) and "conda install graphviz" in str(info.value)
    assert isinstance(info.value, RuntimeError)
    graph = computation_graph(_tiny(), (1, 3, 16, 16), require_dot=False)
    assert isinstance(graph, graphviz.Digraph) and "layer1.0.conv1.weight" in graph.source


def test_render_graph_turns_missing_executable_into_install_hint(monkeypatch, tmp_path):
    graph = computation_graph(_tiny(), (1, 3, 16, 16), require_dot=False)

    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(("dot",))

    monkeypatch.setattr(graph, "render", missing)
    with pytest.raises(GraphvizNotFoundError, match="Install Graphviz"):
        render_graph(graph, tmp_path / "g")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_computation_graph_renders_with_dot(tmp_path):
    model = _tiny()
    model.train()
    graph = computation_graph(model, (1, 3, 16, 16))
    assert "fc.weight" in graph.source and "show_saved" not in graph.source
    assert model.training
    path = render_graph(graph, tmp_path / "tiny", format="svg")
    assert path.suffix == ".svg" and path.read_text().lstrip().startswith("<?xml")


# ---------------------------------------------------------------------------------------------- Grad-CAM


def test_grad_cam_equals_class_activation_map_for_gap_linear_head():
    # For features -> global average pool -> linear, Grad-CAM's weights are w_c / (h*w), so the
    # normalised map equals CAM (Zhou et al. 2016): ReLU(sum_k w_ck A_k), upsampled and scaled to max 1.
    model = _tiny()
    model.train()
    x = _x(1)
    cam = grad_cam(model, x, target_class=2, layer="layer2")
    assert cam.shape == (16, 16) and cam.dtype == torch.float32
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0)
    assert _no_hooks(model) and model.training
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        manual = F.relu(torch.einsum("k,nkhw->nhw", model.fc.weight[2], features))[:, None]
        manual = F.interpolate(manual, size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(cam, manual / manual.max(), atol=1e-5, rtol=1e-4)
    assert all(p.grad is None for p in model.parameters())


def test_grad_cam_raw_map_is_in_logit_units_and_normalises_to_the_default():
    model = _tiny()
    x = _x(1)
    raw = grad_cam(model, x, target_class=1, layer="layer2", normalize=False)
    cam = grad_cam(model, x, target_class=1, layer="layer2")
    assert raw.shape == (16, 16) and float(raw.min()) >= 0
    torch.testing.assert_close(cam, raw / raw.max())
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)  # (1, K, h, w): the input of pooling + linear head
        h, w = features.shape[-2:]
        contribution = torch.einsum("k,nkhw->nhw", model.fc.weight[1], features) / (h * w)  # Σ_k α_k A_k
        logit_minus_bias = model(x)[0, 1] - model.fc.bias[1]
    # Before the ReLU, the map's values are the positions' shares of the logit (minus the bias) ...
    assert float(contribution.sum()) == pytest.approx(float(logit_minus_bias), rel=1e-4, abs=1e-5)
    # ... and grad_cam(normalize=False) is that map after the ReLU, upsampled, not rescaled.
    manual = F.interpolate(F.relu(contribution)[:, None], size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(raw, manual[0, 0], atol=1e-6, rtol=1e-4)


def test_grad_cam_defaults_and_errors():
    model = create("resnet20")
    image = _x(1, 32)[0]
    cam = grad_cam(model, image)  # predicted class, last stage (layer3 for CIFAR nets)
    assert cam.shape == (32, 32) and 0 <= float(cam.min()) and float(cam.max()) <= 1
    default = grad_cam(model, image, target_class=int(model.eval()(image[None]).argmax()), layer="layer3")
    torch.testing.assert_close(cam, default)
    with pytest.raises(ValueError, match="one image"):
        grad_cam(model, _x(2, 32))
    with pytest.raises(ValueError, match="outside 0..9"):
        grad_cam(model, image, target_class=10)
    with pytest.raises(ValueError, match="no layer named 'layer4'"):
        grad_cam(model, image, layer="layer4")
    assert _no_hooks(model)


def test_plot_grad_cam_overlay():
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    cam = torch.linspace(0, 1, 256).reshape(16, 16)
    fig = plot_grad_cam(image, cam, "Grad-CAM of class 'cat'")
    assert len(fig.axes) == 4  # image, map, overlay, colour bar
    np.testing.assert_allclose(fig.axes[1].get_images()[0].get_array(), cam.numpy())
    assert len(fig.axes[2].get_images()) == 2
    assert fig.axes[3].get_ylabel() == "relative to this map's maximum"
    assert fig.axes[1].get_title() == "Grad-CAM (max 1)"
    # A raw map is drawn relative to its own maximum, which the title gives.
    raw = plot_grad_cam(image, 0.25 * cam)
    np.testing.assert_allclose(raw.axes[1].get_images()[0].get_array(), cam.numpy(), rtol=1e-6)
    assert raw.axes[1].get_title() == "Grad-CAM (max 0.25)"
    zero = plot_grad_cam(image, torch.zeros(16, 16))
    assert float(np.max(zero.axes[1].get_images()[0].get_array())) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        plot_grad_cam(image, cam - 0.5)
    with pytest.raises(ValueError, match="cam has shape"):
        plot_grad_cam(image, torch.zeros(8, 8))
    fig.canvas.draw()
