"""An in-notebook classifier demo: upload an image (or pick an example) and see the model's top-5.

:func:`classifier_widget` is the notebook twin of the desktop app in :mod:`resnet_course.apps.gui`; both go
through :class:`resnet_course.apps.inference.Classifier`, so they show exactly what ``Classifier.predict``
returns, and the image shown is prepared as the model's input is (upright, transparency on white). The probability bars are ipywidgets ``FloatProgress`` bars, so the widget needs no plotting back
end and its state can be read back in tests.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from resnet_course.analysis.plots import new_figure, plot_prediction_bars
from resnet_course.apps.inference import Classifier
from resnet_course.data.images import rgb_image

__all__ = ["ClassifierWidget", "classifier_widget"]

DISPLAY_SIDE = 192  # images are shown at about this many pixels per side
MAX_EXAMPLES_FROM_DATASET = 12


def _to_pil(image: Any) -> Image.Image:
    """A display copy of an example image: uint8 ``(3, H, W)`` / ``(1, H, W)`` tensor, PIL image or path."""
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            raise ValueError(
                f"example tensor has dtype {image.dtype} and shape {tuple(image.shape)}; "
                "expected a uint8 tensor of shape (3, H, W)"
            )
        array = image.detach().cpu().permute(1, 2, 0).numpy()
        return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as img:
            img.load()
            return img.copy()
    raise TypeError(
        f"cannot show an example of type {type(image).__name__}; use a uint8 tensor, PIL image or path"
    )


def _display_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image`` as the model gets it before resizing (:func:`~resnet_course.data.images.rgb_image`:
    upright, transparency on white), scaled to ``DISPLAY_SIDE`` px (small images enlarged, sharp pixels)."""
    img = rgb_image(image)
    scale = DISPLAY_SIDE / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    buffer = io.BytesIO()
    img.resize(size, resample).save(buffer, format="PNG")
    return buffer.getvalue()


def _normalise_examples(examples: Any) -> list[tuple[str, Any]]:
    """Accept ``{name: image}``, ``[(name, image), ...]`` or an ``ImageTensors`` (first few, by label)."""
    if examples is None:
        return []
    if all(hasattr(examples, a) for a in ("images", "labels", "classes")):
        n = min(len(examples.images), MAX_EXAMPLES_FROM_DATASET)
        return [(f"#{i}: {examples.classes[int(examples.labels[i])]}", examples.images[i]) for i in range(n)]
    if isinstance(examples, Mapping):
        return [(str(k), v) for k, v in examples.items()]
    if isinstance(examples, Sequence) and not isinstance(examples, (str, bytes)):
        pairs = []
        for item in examples:
            if not (isinstance(item, Sequence) and len(item) == 2):
                raise TypeError(f"examples must be (name, image) pairs; got an item {item!r:.60}")
            pairs.append((str(item[0]), item[1]))
        return pairs
    raise TypeError(
        f"examples must be a dict {{name: image}}, a list of (name, image) pairs or an ImageTensors; "
        f"got {type(examples).__name__}"
    )


class ClassifierWidget(widgets.VBox):
    """Upload / example picker, the image, and the top-k bars. Build it with :func:`classifier_widget`.

    Attributes read by tests and notebooks: ``upload`` (``FileUpload``), ``examples_dropdown`` (``Dropdown``
    or ``None``), ``image`` (``Image``), ``bar_rows`` (one ``HBox`` of name / ``FloatProgress`` / percentage
    per class), ``message`` (``HTML``, empty unless something went wrong), ``predictions`` (the last
    ``[(class, probability), ...]`` or ``None``).
    """

    def __init__(self, classifier: Classifier, examples: Any = None, top_k: int = 5) -> None:
        self.classifier = classifier
        self.examples = _normalise_examples(examples)
        n_classes = len(classifier.info.get("classes", [])) or top_k
        self.top_k = min(top_k, n_classes)
        self.predictions: list[tuple[str, float]] | None = None

        info = classifier.info
        accuracy = info.get("test_accuracy")
        acc_text = "not recorded" if accuracy is None else f"{100 * float(accuracy):.2f} %"
        header = widgets.HTML(
            f"<b>{html.escape(str(info.get('model', 'model')))}</b> · {n_classes} classes · "
            f"test accuracy {acc_text}"
        )
        self.upload = widgets.FileUpload(
            accept="image/*", multiple=False, description="Upload image", layout=widgets.Layout(width="auto")
        )  # "auto": the button fits its label and file count instead of cutting them off
        self.upload.observe(self._on_upload, names="value")
        controls: list[widgets.Widget] = [self.upload]
        self.examples_dropdown: widgets.Dropdown | None = None
        if self.examples:
            options = [("— pick an example —", -1)] + [(name, i) for i, (name, _) in enumerate(self.examples)]
            self.examples_dropdown = widgets.Dropdown(options=options, value=-1, description="Example")
            self.examples_dropdown.observe(self._on_example, names="value")
            controls.append(self.examples_dropdown)

        self.image = widgets.Image(format="png", layout=widgets.Layout(width=f"{DISPLAY_SIDE}px"))
        self.caption = widgets.HTML("Upload an image" + (" or pick an example." if self.examples else "."))
        self.message = widgets.HTML("")
        self.bar_rows: list[widgets.HBox] = []
        for _ in range(self.top_k):
            name = widgets.Label(layout=widgets.Layout(width="140px"))
            bar = widgets.FloatProgress(min=0.0, max=1.0, value=0.0, layout=widgets.Layout(width="220px"))
            percent = widgets.Label(layout=widgets.Layout(width="70px"))
            row = widgets.HBox([name, bar, percent], layout=widgets.Layout(display="none"))
            self.bar_rows.append(row)
        bars = widgets.VBox(self.bar_rows)
        body = widgets.HBox([self.image, widgets.VBox([self.caption, bars])])
        super().__init__([header, widgets.HBox(controls), self.message, body])

    # ---- what the controls call --------------------------------------------------------------------------

    def classify(self, image: Any, name: str) -> list[tuple[str, float]] | None:
        """Show ``image`` (path, PIL image or uint8 tensor) and its top-k; errors go to :attr:`message`."""
        try:
            display = _display_png(_to_pil(image))
            predictions = self.classifier.predict([image], top_k=self.top_k)[0]
        except (ValueError, TypeError, OSError) as exc:  # ImageError is a ValueError
            self._show_error(f"Could not classify {name}: {exc}")
            return None
        self.message.value = ""
        self.image.value = display
        self.predictions = [(str(c), float(p)) for c, p in predictions]
        for row, (cls, p) in zip(self.bar_rows, self.predictions, strict=False):
            label, bar, percent = row.children
            label.value, bar.value, percent.value = cls, p, f"{100 * p:.1f} %"
            bar.bar_style = ""
            row.layout.display = "flex"
        self.bar_rows[0].children[1].bar_style = "success"
        top, p = self.predictions[0]
        self.caption.value = f"{html.escape(name)}: <b>{html.escape(top)}</b> ({100 * p:.1f} %)"
        return self.predictions

    def displayed_predictions(self) -> list[tuple[str, float]]:
        """The ``(class, probability)`` pairs the visible bars show, top first."""
        shown = []
        for row in self.bar_rows:
            if row.layout.display != "none":
                label, bar, _ = row.children
                shown.append((label.value, bar.value))
        return shown

    def snapshot(self) -> Figure | None:
        """A picture of what the widget shows now — the image and its top-k bars — or ``None`` before the first
        prediction. Saved notebooks and GitHub, which cannot run the widget, show this picture instead."""
        if self.predictions is None:
            return None
        fig = new_figure(figsize=(7.5, 2.8))
        image_ax, bars_ax = fig.subplots(1, 2, width_ratios=(1, 1.6))
        with Image.open(io.BytesIO(self.image.value)) as shown:
            image_ax.imshow(shown.convert("RGB"))
        image_ax.set_axis_off()
        caption = html.unescape(self.caption.value.replace("<b>", "").replace("</b>", ""))
        plot_prediction_bars(self.predictions, ax=bars_ax, title=caption)
        fig.tight_layout()
        return fig

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The live widget, plus a PNG of :meth:`snapshot` and a one-line text for where widgets cannot run."""
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = f"ClassifierWidget({self.classifier.info.get('model', 'model')}, top {self.top_k})"
        fig = self.snapshot()
        if fig is not None:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=80)
            bundle["image/png"] = buffer.getvalue()
        return bundle

    def _show_error(self, text: str) -> None:
        self.predictions = None
        self.image.value = b""
        for row in self.bar_rows:
            row.layout.display = "none"
        self.caption.value = ""
        self.message.value = f"<span style='color:#b00020'>{html.escape(text)}</span>"

    def _on_upload(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        name = str(item.get("name", "upload"))
        # Forget the upload, and show the dropdown's placeholder: the same file uploaded again, or the example
        # the dropdown showed picked again, is then a change that ipywidgets reports (an unchanged value is not).
        self.upload.value = ()
        if self.examples_dropdown is not None:
            self.examples_dropdown.value = -1
        try:
            with Image.open(io.BytesIO(bytes(item["content"]))) as img:
                img.load()
                image = img.copy()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            reason = "not a recognised image format" if isinstance(exc, UnidentifiedImageError) else str(exc)
            self._show_error(
                f"{name} is not an image that can be read ({reason}). "
                "Upload a PNG, JPEG, BMP or similar file."
            )
            return
        self.classify(image, name)

    def _on_example(self, change: dict[str, Any]) -> None:
        index = change["new"]
        if index is None or index < 0:
            return
        name, image = self.examples[index]
        self.classify(image, name)


def classifier_widget(
    classifier_or_checkpoint_path: Classifier | str | os.PathLike[str],
    examples: Any = None,
    *,
    top_k: int = 5,
) -> ClassifierWidget:
    """An ipywidgets demo of a trained classifier: upload an image or pick an example, see the top-k.

    Args:
        classifier_or_checkpoint_path: a :class:`~resnet_course.apps.inference.Classifier`, or the path of a
            checkpoint to load one from on the CPU (a bad checkpoint raises ``CheckpointError`` here).
        examples: optional example images for a dropdown: ``{name: image}``, ``[(name, image), ...]`` (images
            as uint8 ``(3, H, W)`` tensors, PIL images or paths) or an ``ImageTensors`` (its first 12 images,
            named by their label), e.g. ``bundle.test``.
        top_k: how many classes to show (at most the number of classes).

    Returns the widget; display it as the last expression of a cell. Image errors appear inside it.
    """
    source = classifier_or_checkpoint_path
    if isinstance(source, (str, os.PathLike)):
        classifier = Classifier.from_checkpoint(source, device="cpu")
    elif hasattr(source, "predict") and hasattr(source, "info"):
        classifier = source
    else:
        raise TypeError(
            f"classifier_widget needs a Classifier or a checkpoint path, got {type(source).__name__}"
        )
    return ClassifierWidget(classifier, examples=examples, top_k=top_k)
