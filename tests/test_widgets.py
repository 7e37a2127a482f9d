"""The in-notebook classifier widget: simulated uploads and example picks show what ``predict`` returns."""

from __future__ import annotations

import datetime
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from resnet_course.apps.inference import Classifier
from resnet_course.apps.widgets import ClassifierWidget, classifier_widget
from resnet_course.training.checkpoints import CheckpointError

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, make_tiny_checkpoint) -> Path:
    """A tiny untrained 3-class checkpoint (nothing is trained), test accuracy 0.75."""
    path = tmp_path_factory.mktemp("widgets") / "tiny.pt"
    return make_tiny_checkpoint(path, classes=CLASSES, metrics={"test_accuracy": 0.75})


@pytest.fixture(scope="module")
def classifier(ckpt: Path) -> Classifier:
    return Classifier.from_checkpoint(ckpt, device="cpu")


def examples() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return {
        f"test #{i}": torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8) for i in range(3)
    }


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def upload(widget: ClassifierWidget, name: str, content: bytes) -> None:
    """What the browser sends: ipywidgets 8's FileUpload value (a tuple of dicts)."""
    widget.upload.value = (
        {
            "name": name,
            "type": "image/png",
            "size": len(content),
            "content": memoryview(content),
            "last_modified": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
        },
    )


def assert_same(shown: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [n for n, _ in shown] == [n for n, _ in expected]
    assert [p for _, p in shown] == pytest.approx([p for _, p in expected], abs=1e-6)


def test_picking_an_example_shows_predict_top_k(classifier: Classifier) -> None:
    ex = examples()
    widget = classifier_widget(classifier, examples=ex)
    assert widget.examples_dropdown is not None
    widget.examples_dropdown.value = 1  # "test #1"
    expected = classifier.predict([ex["test #1"]], top_k=5)[0]
    assert len(expected) == len(CLASSES)
    assert_same(widget.displayed_predictions(), expected)
    assert widget.predictions == [(n, pytest.approx(p)) for n, p in expected]
    assert widget.message.value == ""
    assert widget.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert expected[0][0] in widget.caption.value and "test #1" in widget.caption.value


def test_upload_shows_predict_top_k_for_grayscale_png(ckpt: Path, classifier: Classifier) -> None:
    widget = classifier_widget(ckpt)  # built from a checkpoint path
    assert widget.examples_dropdown is None
    gen = torch.Generator().manual_seed(4)
    gray = Image.fromarray(torch.randint(0, 256, (50, 40), generator=gen, dtype=torch.uint8).numpy(), "L")
    upload(widget, "gray.png", png_bytes(gray))
    expected = classifier.predict([gray], top_k=5)[0]
    assert_same(widget.displayed_predictions(), expected)
    assert widget.message.value == ""


def test_bad_upload_is_a_readable_message_and_a_good_one_recovers(classifier: Classifier) -> None:
    widget = classifier_widget(classifier)
    upload(widget, "notes.png", b"this is not an image")
    assert "notes.png" in widget.message.value
    assert "not an image" in widget.message.value
    assert widget.displayed_predictions() == []
    assert widget.predictions is None
    rgba = Image.new("RGBA", (20, 20), (10, 200, 30, 128))
    upload(widget, "rgba.png", png_bytes(rgba))
    assert widget.message.value == ""
    assert_same(widget.displayed_predictions(), classifier.predict([rgba], top_k=5)[0])


def test_every_pick_and_upload_is_shown_the_same_one_twice_included(classifier: Classifier) -> None:
    ex = examples()
    widget = classifier_widget(classifier, examples=ex)
    assert widget.examples_dropdown is not None
    gray = Image.fromarray(torch.full((24, 24), 200, dtype=torch.uint8).numpy(), "L")
    widget.examples_dropdown.value = 1
    upload(widget, "gray.png", png_bytes(gray))
    assert "gray.png" in widget.caption.value
    widget.examples_dropdown.value = 1  # the example picked before the upload, picked again
    assert "test #1" in widget.caption.value
    assert_same(widget.displayed_predictions(), classifier.predict([ex["test #1"]], top_k=5)[0])
    upload(widget, "gray.png", png_bytes(gray))  # the same file as before, uploaded again
    assert "gray.png" in widget.caption.value
    assert_same(widget.displayed_predictions(), classifier.predict([gray], top_k=5)[0])
    assert widget.upload.layout.width == "auto"  # the label is not cut off


def test_where_widgets_cannot_run_a_picture_of_the_widget_stands_in(classifier: Classifier) -> None:
    widget = classifier_widget(classifier, examples=examples())
    before = widget._repr_mimebundle_()
    assert "image/png" not in before and widget.snapshot() is None  # nothing shown yet: no picture
    assert before["text/plain"] == "ClassifierWidget(resnet20, top 3)"  # not the repr of every child widget
    widget.examples_dropdown.value = 2
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # the live widget, where it can run
    assert bundle["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    fig = widget.snapshot()
    image_ax, bars_ax = fig.axes
    top = widget.predictions[0][0]
    assert "test #2" in bars_ax.get_title() and top in bars_ax.get_title()
    assert [t.get_text() for t in bars_ax.get_yticklabels()] == [c for c, _ in widget.predictions]


def test_the_image_shown_is_upright_with_transparency_on_white(classifier: Classifier) -> None:
    widget = classifier_widget(classifier)
    clear = Image.new("RGBA", (8, 12), (0, 0, 0, 0))  # fully transparent, stored black
    exif = Image.Exif()
    exif[0x0112] = 8  # shown turned 90° counter-clockwise: 12 wide, 8 high
    buffer = io.BytesIO()
    clear.save(buffer, format="PNG", exif=exif)
    upload(widget, "clear.png", buffer.getvalue())
    assert widget.message.value == ""
    shown = Image.open(io.BytesIO(widget.image.value))
    assert shown.width > shown.height and shown.convert("RGB").getextrema() == ((255, 255),) * 3
    assert_same(
        widget.displayed_predictions(),
        classifier.predict([torch.full((3, 8, 12), 255, dtype=torch.uint8)])[0],
    )


def test_top_k_and_header(classifier: Classifier) -> None:
    widget = classifier_widget(classifier, top_k=2)
    assert len(widget.bar_rows) == 2
    header = widget.children[0].value
    assert "resnet20" in header and "75.00 %" in header and "3 classes" in header
    widget.classify(examples()["test #0"], "x")
    assert_same(widget.displayed_predictions(), classifier.predict([examples()["test #0"]], top_k=2)[0])


def test_examples_from_an_image_tensors_like_dataset(classifier: Classifier) -> None:
    ex = examples()
    images = torch.stack(list(ex.values()))
    data = SimpleNamespace(images=images, labels=torch.tensor([2, 0, 1]), classes=CLASSES)
    widget = classifier_widget(classifier, examples=data)
    labels = [label for label, _ in widget.examples_dropdown.options]
    assert labels[1:] == ["#0: triangle", "#1: circle", "#2: square"]
    widget.examples_dropdown.value = 2
    assert_same(widget.displayed_predictions(), classifier.predict([data.images[2]], top_k=5)[0])


def test_bad_arguments_raise_clear_errors(ckpt: Path, classifier: Classifier) -> None:
    with pytest.raises(CheckpointError, match="nowhere.pt"):
        classifier_widget(ckpt.with_name("nowhere.pt"))
    with pytest.raises(TypeError, match="Classifier or a checkpoint path"):
        classifier_widget(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="examples must be"):
        classifier_widget(classifier, examples=3)
    widget = classifier_widget(classifier, examples={"float": torch.zeros(3, 8, 8)})
    widget.examples_dropdown.value = 0
    assert "uint8" in widget.message.value and widget.predictions is None
