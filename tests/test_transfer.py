"""Transfer learning helpers: weights found, downloaded (from a local server) or reported unavailable fast;
new heads, frozen backbones and frozen BatchNorm; per-layer learning rates for fine-tuning."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights, WeightsEnum
from torchvision.models._api import Weights
from torchvision.ops.misc import FrozenBatchNorm2d
from torchvision.transforms._presets import ImageClassification

from resnet_course.analysis.architecture import count_parameters
from resnet_course.checks.notebook08 import check_feature_extractor
from resnet_course.models.registry import create
from resnet_course.training import transfer as T
from resnet_course.training.config import TrainConfig
from resnet_course.training.optimizers import build_optimizer

pytestmark = pytest.mark.usefixtures("one_thread")
CLASSES = ["a", "b", "c", "d"]


@pytest.fixture
def hub_dir(tmp_path: Path):
    """torch hub's cache redirected to an empty folder for the test."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def fake_weights(url: str) -> WeightsEnum:
    """A weights enum like torchvision's, for the course's resnet20 (4 classes), served from ``url``."""

    class ResNet20_Weights(WeightsEnum):  # the class name tells load_pretrained the architecture
        TEST = Weights(url=url, transforms=functools.partial(ImageClassification, crop_size=32),
                       meta={"categories": CLASSES, "_file_size": 1.1})

    return ResNet20_Weights.TEST


@pytest.fixture
def weights_server(tmp_path: Path):
    """A local HTTP server offering a resnet20 state dict under a hash-named file (torch hub's convention)."""
    torch.manual_seed(3)
    model = create("resnet20", num_classes=len(CLASSES))
    served = tmp_path / "served"
    served.mkdir()
    tmp = served / "tmp.pth"
    torch.save(model.state_dict(), tmp)
    name = f"resnet20-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    (served / "resnet20-deadbeef.pth").write_bytes(tmp.read_bytes())  # a file whose hash does not match its name
    tmp.rename(served / name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{name}", model
    server.shutdown()
    server.server_close()


def refused_url(name: str = "resnet20-00000000.pth") -> str:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there any more
    return f"http://127.0.0.1:{port}/{name}"


# ---------------------------------------------------------------------------------------------- weights


def test_weights_file_is_torch_hubs_cache_path(hub_dir: Path) -> None:
    assert T.weights_file(ResNet18_Weights.IMAGENET1K_V1) == hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    assert T.weights_file("ResNet50_Weights.IMAGENET1K_V2").name == "resnet50-11ad3fa6.pth"
    with pytest.raises(ValueError, match="unknown weights 'ResNet18_Weights.NOPE'"):
        T.weights_file("ResNet18_Weights.NOPE")
    help_text = T.weights_help(ResNet50_Weights.IMAGENET1K_V2)
    assert ResNet50_Weights.IMAGENET1K_V2.url in help_text and str(hub_dir / "checkpoints") in help_text


def test_download_from_a_server_then_load_from_the_cache(hub_dir: Path, weights_server) -> None:
    url, served_model = weights_server
    weights = fake_weights(url)
    status = T.find_weights(weights, timeout=5)
    assert status.path == hub_dir / "checkpoints" / Path(url).name and status.path.is_file()
    assert status.message.startswith("downloaded to")
    assert T.find_weights(weights, allow_download=False).message.startswith("found in the cache")
    model = T.load_pretrained(weights, allow_download=False)
    assert not model.training and model.fc.out_features == len(CLASSES)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), served_model.eval()(x))


def test_a_corrupt_download_is_refused_and_not_kept(hub_dir: Path, weights_server) -> None:
    url, _ = weights_server
    status = T.find_weights(fake_weights(url.rsplit("/", 1)[0] + "/resnet20-deadbeef.pth"), timeout=5)
    assert status.path is None and "download failed" in status.message and "hash" in status.message
    assert not list(hub_dir.rglob("resnet20-deadbeef.pth"))
    missing = T.find_weights(fake_weights(url.rsplit("/", 1)[0] + "/resnet20-00000000.pth"), timeout=5)
    assert missing.path is None and "404" in missing.message


def test_offline_fails_within_seconds_and_says_how_to_install(hub_dir: Path) -> None:
    weights = fake_weights(refused_url())
    start = time.perf_counter()
    status = T.find_weights(weights, timeout=1)
    assert time.perf_counter() - start < 3
    assert status.path is None and "download failed" in status.message
    off = T.find_weights(weights, allow_download=False)
    assert off.path is None and "downloading is switched off" in off.message
    with pytest.raises(T.WeightsUnavailableError) as info:
        T.load_pretrained(weights, timeout=1)
    assert str(hub_dir / "checkpoints") in str(info.value) and weights.url in str(info.value)


def test_stalled_server_fails_within_seconds(hub_dir: Path) -> None:
    server = socket.socket()  # accepts connections, never answers
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    try:
        weights = fake_weights(f"http://127.0.0.1:{server.getsockname()[1]}/resnet20-00000000.pth")
        start = time.perf_counter()
        assert T.find_weights(weights, timeout=0.5).path is None
        assert time.perf_counter() - start < 5
    finally:
        server.close()


def test_load_pretrained_real_weights_from_a_cached_file(hub_dir: Path) -> None:
    """The ImageNet path, with a file the test writes where torch hub keeps ResNet18_Weights.IMAGENET1K_V1."""
    torch.manual_seed(0)
    reference = create("resnet18")
    file = T.weights_file(ResNet18_Weights.IMAGENET1K_V1)
    file.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), file)
    model = T.load_pretrained(ResNet18_Weights.IMAGENET1K_V1, allow_download=False)
    assert model.fc.out_features == 1000 and model.registry_name == "resnet18"
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model(x), reference.eval()(x))


# ---------------------------------------------------------------------------------------------- heads


def test_replace_head_keeps_the_width_and_rejects_other_models() -> None:
    m = T.replace_head(create("resnet20", num_classes=10), 3)
    assert (m.fc.in_features, m.fc.out_features) == (64, 3) and m(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    assert T.replace_head(create("resnet18"), 5).fc.in_features == 512
    with pytest.raises(ValueError, match="no nn.Linear head called fc"):
        T.replace_head(nn.Sequential(nn.Linear(3, 3)), 2)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        T.replace_head(create("resnet20"), 0)


def test_feature_extractor_trains_only_the_head_and_passes_the_exercise_check() -> None:
    m = T.feature_extractor(create("resnet20", num_classes=10), 4)
    assert sorted(n for n, p in m.named_parameters() if p.requires_grad) == ["fc.bias", "fc.weight"]
    assert count_parameters(m, trainable_only=True) == 64 * 4 + 4
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    assert check_feature_extractor(lambda model, n: T.feature_extractor(model, n, freeze_bn=False))


def test_frozen_batchnorm_computes_the_same_and_never_moves() -> None:
    torch.manual_seed(0)
    m = create("resnet20", num_classes=10)
    m.train()
    for _ in range(3):  # non-trivial running statistics
        m(torch.randn(8, 3, 32, 32) * 2 + 1)
    m.eval()
    x = torch.randn(4, 3, 32, 32)
    expected = m(x)
    T.freeze_batchnorm(m)
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    frozen = [x for x in m.modules() if isinstance(x, FrozenBatchNorm2d)]
    assert len(frozen) == 19  # resnet20: stem + 2 per block × 9 blocks
    assert torch.allclose(m(x), expected, atol=1e-5)
    before = frozen[0].running_mean.clone()
    m.train()
    m(torch.randn(8, 3, 32, 32) * 5)
    assert torch.equal(frozen[0].running_mean, before)
    assert torch.allclose(m.eval()(x), expected, atol=1e-5)


def test_fine_tuning_factors_give_the_backbone_a_smaller_rate() -> None:
    assert T.fine_tuning_factors(0.1) == {"": 0.1, "fc.": 1.0}
    m = T.replace_head(create("resnet20", num_classes=10), 3)
    groups = build_optimizer(m, TrainConfig(lr=0.05, lr_factors=T.fine_tuning_factors(0.1))).param_groups
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert rate[id(m.fc.weight)] == 0.05 and rate[id(m.conv1.weight)] == pytest.approx(0.005)
    assert len(rate) == len(list(m.parameters()))  # every parameter in exactly one group
    with pytest.raises(ValueError, match="feature_extractor"):
        T.fine_tuning_factors(0)
