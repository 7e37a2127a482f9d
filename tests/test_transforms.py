"""Tests of the torchvision.transforms.v2 pipelines."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from resnet_course.data.transforms import denormalize, test_transforms, train_transforms

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)


def _image(size: int = 32) -> torch.Tensor:
    return torch.randint(
        1, 256, (3, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )


def test_test_transforms_normalise_and_denormalize_inverts():
    image = _image()
    x = test_transforms(MEAN, STD)(image)
    assert x.dtype == torch.float32 and x.shape == (3, 32, 32)
    expected = (image.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-5)
    assert torch.allclose(denormalize(x, MEAN, STD), image.float() / 255, atol=1e-5)
    assert torch.allclose(denormalize(x[None], MEAN, STD)[0], image.float() / 255, atol=1e-5)
    with pytest.raises(TypeError):
        denormalize(image, MEAN, STD)


def test_test_transforms_accept_pil_and_resize():
    pil = Image.new("RGB", (64, 40), (255, 0, 0))
    x = test_transforms(MEAN, STD, image_size=32)(pil)
    assert x.shape == (3, 32, 32)
    assert torch.allclose(denormalize(x, MEAN, STD)[0], torch.ones(32, 32), atol=1e-5)


def test_train_transforms_output_is_a_crop_of_the_padded_image_maybe_flipped():
    image = _image()
    transform = train_transforms(MEAN, STD)
    padded = TF.pad(image, [4])
    seen_flip = seen_plain = False
    torch.manual_seed(0)
    for _ in range(20):
        out = denormalize(transform(image), MEAN, STD)
        raw = (out * 255).round().to(torch.uint8)
        matches = [
            (top, left, flip)
            for top in range(9)
            for left in range(9)
            for flip in (False, True)
            if torch.equal(
                raw, (TF.horizontal_flip if flip else (lambda t: t))(TF.crop(padded, top, left, 32, 32))
            )
        ]
        assert matches, "the output is not a pad-4 crop (+flip) of the input"
        seen_flip |= any(m[2] for m in matches)
        seen_plain |= any(not m[2] for m in matches)
    assert seen_flip and seen_plain


@pytest.mark.parametrize("policy", ["autoaugment", "randaugment", "trivialaugment"])
def test_auto_augment_policies_run(policy):
    x = train_transforms(MEAN, STD, auto_augment=policy)(_image())
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_cutout_blanks_a_square_to_the_mean_colour():
    torch.manual_seed(0)
    x = train_transforms(MEAN, STD, cutout=8, padding=0, flip=False)(_image())
    zero = (x == 0).all(dim=0)
    assert zero.sum() == 64  # an 8×8 square, set to 0 in normalised space (= the mean colour)
    rows, cols = zero.nonzero(as_tuple=True)
    assert rows.max() - rows.min() == 7 and cols.max() - cols.min() == 7


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="auto_augment"):
        train_transforms(MEAN, STD, auto_augment="magic")
    with pytest.raises(ValueError, match="one value per channel"):
        train_transforms((0.5, 0.5), STD)
    with pytest.raises(ValueError, match="positive"):
        test_transforms(MEAN, (0.1, 0.0, 0.2))
    with pytest.raises(ValueError, match="cutout"):
        train_transforms(MEAN, STD, cutout=40)
