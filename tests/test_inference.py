"""Classifier: files, PIL images and tensors in, top-k classes out; unreadable inputs are ImageErrors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from resnet_course.apps.inference import Classifier, ImageError
from resnet_course.models.registry import create
from resnet_course.training.checkpoints import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["red", "green", "blue"]
PRE = {"image_size": 16, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create("resnet20", num_classes=3)
    path = tmp_path_factory.mktemp("inf") / "m.pt"
    return save_checkpoint(model, path, classes=CLASSES, preprocess=PRE, epoch=7, metrics={"test_accuracy": 0.9})


@pytest.fixture(scope="module")
def clf(ckpt: Path) -> Classifier:
    return Classifier.from_checkpoint(ckpt)


def image(h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_info_and_output_format(clf: Classifier) -> None:
    assert clf.info["model"] == "resnet20" and clf.info["epoch"] == 7 and clf.info["test_accuracy"] == 0.9
    assert clf.info["classes"] == CLASSES
    (top,) = clf.predict(image(), top_k=2)
    assert len(top) == 2 and top[0][0] in CLASSES and top[0][1] >= top[1][1]
    (everything,) = clf.predict(image(), top_k=10)  # capped at the number of classes
    assert len(everything) == 3 and sum(p for _, p in everything) == pytest.approx(1.0, abs=1e-5)


def test_prediction_equals_the_model_on_normalised_input(clf: Classifier) -> None:
    x = image()
    mean = torch.tensor(PRE["mean"]).view(3, 1, 1)
    std = torch.tensor(PRE["std"]).view(3, 1, 1)
    with torch.no_grad():
        expected = clf.model(((x.float() / 255 - mean) / std).unsqueeze(0)).softmax(1)[0]
    (top,) = clf.predict(x, top_k=3)
    for name, p in top:
        assert p == pytest.approx(float(expected[CLASSES.index(name)]), abs=1e-5)


def test_files_pil_grayscale_rgba_and_batches_agree(clf: Classifier, tmp_path: Path) -> None:
    x = image(24, 32, seed=1)
    pil = Image.fromarray(x.permute(1, 2, 0).numpy())
    pil.save(tmp_path / "rgb.png")
    pil.convert("L").save(tmp_path / "gray.png")
    pil.convert("RGBA").save(tmp_path / "rgba.png")
    from_file, from_pil, from_tensor, from_rgba = clf.predict(
        [tmp_path / "rgb.png", pil, x, str(tmp_path / "rgba.png")], top_k=3
    )
    for other in (from_pil, from_tensor, from_rgba):  # the same input tensor; its place in the batch may change
        assert [n for n, _ in other] == [n for n, _ in from_file]  # the last float bits (oneDNN's blocking)
        assert [p for _, p in other] == pytest.approx([p for _, p in from_file], abs=1e-6)
    assert len(clf.predict(tmp_path / "gray.png")) == 1
    assert len(clf.predict(torch.stack([image(), image(seed=2)]))) == 2
    assert clf.prepare(np.zeros((20, 10, 3), dtype=np.uint8)).shape == (1, 3, 16, 16)


def test_bad_inputs_raise_image_errors_naming_them(clf: Classifier, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    good = tmp_path / "ok.jpg"
    Image.fromarray(image(64, 64).permute(1, 2, 0).numpy()).save(good)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:200])
    for bad in (text, cut, tmp_path / "missing.png"):
        with pytest.raises(ImageError, match=str(bad.name)):
            clf.predict([bad])
    with pytest.raises(ImageError, match="channels last"):
        clf.predict(torch.zeros(16, 16, 3, dtype=torch.uint8))
    with pytest.raises(ImageError, match="float tensor"):
        clf.predict(torch.full((3, 8, 8), 3.0))
    with pytest.raises(ValueError, match="top_k"):
        clf.predict(image(), top_k=0)
    assert issubclass(ImageError, ValueError)
