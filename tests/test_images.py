"""One way to prepare an image: the same file becomes the same tensor in training data and in inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torch import nn

from resnet_course.apps.inference import Classifier
from resnet_course.data.imagefolder import resize_images
from resnet_course.data.images import BACKGROUND, ImageError, load_image, prepare_image, resize_and_crop
from resnet_course.data.loading import load_data
from resnet_course.models.registry import create

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 16
ORIENTATION = 0x0112  # EXIF tag
RED, BLUE = (220, 30, 30), (20, 40, 220)


def halves(width: int, height: int) -> Image.Image:
    """Red top half, blue bottom half, a little noise (so resizing has something to do)."""
    rng = np.random.default_rng(width * height)
    arr = np.empty((height, width, 3), dtype=np.int64)
    arr[: height // 2], arr[height // 2 :] = RED, BLUE
    arr += rng.integers(-10, 11, size=arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def palette_with_transparency() -> Image.Image:
    """A palette PNG whose index 0 (left half) is fully transparent but stores pure black."""
    img = Image.new("P", (24, 20), 0)
    img.putpalette([0, 0, 0, *RED] + [0] * 762)
    img.paste(1, (12, 0, 24, 20))
    img.info["transparency"] = 0
    return img


def gray16(width: int, height: int) -> Image.Image:
    """A 16-bit grayscale gradient over the whole range 0..65535 (PIL mode I;16)."""
    values = np.linspace(0, 65535, width * height).reshape(height, width).astype(np.uint16)
    return Image.fromarray(values)


def reference_rgb(path: Path) -> torch.Tensor:
    """What the course's conversion must give, computed independently: 16-bit values / 257; alpha composited
    onto white with NumPy; every other mode by PIL's RGB conversion (after EXIF orientation)."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode == "I;16":
            gray = np.rint(np.asarray(img, dtype=np.float64) / 257).astype(np.uint8)
            rgb = np.repeat(gray[:, :, None], 3, axis=2)
        elif img.has_transparency_data:
            rgba = np.asarray(img.convert("RGBA"), dtype=np.float64)
            alpha = rgba[:, :, 3:] / 255
            rgb = np.rint(rgba[:, :, :3] * alpha + np.array(BACKGROUND) * (1 - alpha)).astype(np.uint8)
        else:
            rgb = np.asarray(img.convert("RGB"))
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


def write_kinds(folder: Path) -> dict[str, Path]:
    """One file per kind the issue lists, each in a class folder of its own name."""
    rgba = halves(30, 30).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((30, 30)))  # partly transparent
    la = halves(20, 28).convert("LA")
    la.putalpha(128)
    kinds: dict[str, tuple[Image.Image, str, dict]] = {
        "rgb": (halves(32, 32), "png", {}),
        "palette": (palette_with_transparency(), "png", {"transparency": 0}),
        "rgba": (rgba, "png", {}),
        "la": (la, "png", {}),
        "gray": (halves(25, 40).convert("L"), "png", {}),
        "exif": (halves(48, 32), "jpg", {"exif": _exif(6), "quality": 95}),
        "wide": (halves(64, 24), "png", {}),
        "gray16": (gray16(30, 26), "png", {}),
        "cmyk": (halves(28, 36).convert("CMYK"), "jpg", {"quality": 95}),
    }
    paths = {}
    for name, (img, ext, options) in kinds.items():
        (folder / name).mkdir(parents=True)
        paths[name] = folder / name / f"{name}.{ext}"
        img.save(paths[name], **options)
    return paths


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    torch.manual_seed(0)
    model = create("resnet20", num_classes=7)
    return Classifier(
        model, [str(i) for i in range(7)], {"image_size": SIZE, "mean": [0.5] * 3, "std": [0.25] * 3}
    )


def test_the_same_file_is_the_same_tensor_in_training_and_in_the_classifier(
    tmp_path: Path, classifier
) -> None:
    train_paths = write_kinds(tmp_path / "train")
    write_kinds(tmp_path / "test")  # same files, so every class has a test image
    bundle = load_data(str(tmp_path), image_size=SIZE, val_fraction=0)
    assert sorted(bundle.classes) == sorted(train_paths) and len(bundle.train) == len(train_paths)
    mean = torch.tensor(bundle.mean).view(3, 1, 1)
    std = torch.tensor(bundle.std).view(3, 1, 1)
    clf = Classifier(classifier.model, bundle.classes, bundle.preprocess)
    for image, label in zip(bundle.train.images, bundle.train.labels.tolist(), strict=True):
        path = train_paths[bundle.classes[label]]
        assert image.dtype == torch.uint8 and image.shape == (3, SIZE, SIZE)
        assert torch.equal(image, prepare_image(path, SIZE)), path.name
        normalised = (image.float() / 255 - mean) / std
        torch.testing.assert_close(clf.prepare(path)[0], normalised, rtol=0, atol=1e-6)


def test_every_mode_becomes_the_reference_rgb_image(tmp_path: Path) -> None:
    paths = write_kinds(tmp_path)
    with Image.open(paths["gray16"]) as img:
        assert img.mode == "I;16"  # what PIL makes of a 16-bit grayscale PNG
    for name, path in paths.items():
        got, want = load_image(path), reference_rgb(path)
        assert got.shape == want.shape, name
        assert (got.int() - want.int()).abs().max() <= 1, name  # PIL composites in integers: ±1
    gradient = load_image(paths["gray16"])
    assert gradient.min() == 0 and gradient.max() == 255 and gradient.float().mean() > 100  # not all white


def test_an_image_too_elongated_to_resize_is_refused_naming_the_limit(tmp_path: Path) -> None:
    """1×400 000 pixels in a 0.5 KB PNG: resized to 32 px on its shorter side it would be 1.2 GB (4 GB to make)."""
    path = tmp_path / "line.png"
    Image.fromarray(np.zeros((1, 400_000), np.uint8)).save(path)
    with pytest.raises(ImageError, match=r"line.png: 400000×1 pixels is too elongated.*limit of 64 MiB per image"):
        prepare_image(path, 32)
    assert prepare_image(np.zeros((4, 400), np.uint8), 32).shape == (3, 32, 32)  # 3.2 MB resized: fine


def test_exif_orientation_and_transparency_are_applied(tmp_path: Path) -> None:
    paths = write_kinds(tmp_path)
    # orientation 6: the stored 48×32 image is shown turned 90° clockwise (32 wide, 48 high), so its
    # stored top (red) ends up on the right
    upright = load_image(paths["exif"])
    assert upright.shape == (3, 48, 32)
    left, right = upright[:, :, :8].float().mean((1, 2)), upright[:, :, -8:].float().mean((1, 2))
    assert right[0] > 150 > left[0] and left[2] > 150 > right[2]
    # transparent palette pixels are the background, not the black the palette stores
    palette = load_image(paths["palette"])
    assert (palette[:, :, :12] == torch.tensor(BACKGROUND, dtype=torch.uint8).view(3, 1, 1)).all()
    assert (palette[:, :, 12:] == torch.tensor(RED, dtype=torch.uint8).view(3, 1, 1)).all()
    # RGBA given as a file, a PIL image, a NumPy array and a tensor: one composite
    with Image.open(paths["rgba"]) as img:
        img.load()
        rgba = img.copy()
    array = np.array(rgba)
    expected = load_image(paths["rgba"])
    for other in (rgba, array, torch.from_numpy(array).permute(2, 0, 1)):
        assert torch.equal(load_image(other), expected)
    assert not torch.equal(expected, load_image(rgba.convert("RGB")))  # the alpha channel mattered


def test_non_square_is_resized_on_the_shorter_side_and_centre_cropped(tmp_path: Path) -> None:
    wide = torch.zeros(3, 24, 64, dtype=torch.uint8)
    wide[:, :, 16:48] = 255  # white in the middle, black sides
    out = prepare_image(wide, 12)
    assert out.shape == (3, 12, 12) and out.dtype == torch.uint8
    assert out.float().mean() > 250  # only the centre survives the crop
    with pytest.raises(ImageError, match="empty"):
        prepare_image(torch.zeros(3, 0, 5, dtype=torch.uint8), 12)
    with pytest.raises(ValueError, match="positive integer"):
        resize_and_crop(wide, 0)


def test_resize_images_is_the_single_image_resize() -> None:
    images = torch.randint(
        0, 256, (5, 3, 40, 30), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    batch = resize_images(images, 16, batch_size=2)
    assert torch.equal(batch, torch.stack([prepare_image(x, 16) for x in images]))
    assert resize_images(batch, 16) is batch  # already the size: untouched


class _Checked(nn.Module):
    """A model whose forward accepts anything; only its check_input refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.checked: list[tuple[int, ...]] = []

    def check_input(self, x: torch.Tensor) -> None:
        self.checked.append(tuple(x.shape))
        if x.shape[-1] < 32:
            raise ValueError(f"input of {x.shape[-2]}x{x.shape[-1]} pixels is too small for this network")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))


def test_classifier_validates_with_the_models_check_input() -> None:
    pre = {"image_size": 8, "mean": [0.5] * 3, "std": [0.25] * 3}
    model = _Checked()
    with pytest.raises(ValueError, match="too small"):
        Classifier(model, ["a", "b"], pre).predict(torch.zeros(3, 8, 8, dtype=torch.uint8))
    assert model.checked == [(1, 3, 8, 8)]
    (top,) = Classifier(model, ["a", "b"], {**pre, "image_size": 32}).predict(
        torch.zeros(3, 8, 8, dtype=torch.uint8)
    )
    assert len(top) == 2 and model.checked[-1] == (1, 3, 32, 32)
    plain = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2)
    )  # no check_input: still works
    assert len(Classifier(plain, ["a", "b"], pre).predict(torch.zeros(3, 8, 8, dtype=torch.uint8))[0]) == 2
