"""Notebook 08's ImageNet path, which CI cannot download for: with a weights file where torch hub keeps
``ResNet18_Weights.IMAGENET1K_V1`` (random weights in the real format, written by the test), the notebook must
take the pretrained branch — load the file strictly, ask the model about target images at 224 px, transfer
ResNet-18 — and run top to bottom in the smoke profile."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_notebook

pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "08_transfer_learning.ipynb"


def test_notebook_08_uses_cached_imagenet_weights(tmp_path: Path, monkeypatch) -> None:
    from torchvision.models import ResNet18_Weights

    from resnet_course.models.registry import create

    torch_home = tmp_path / "torch"
    file = torch_home / "hub" / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    file.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(create("resnet18").state_dict(), file)
    text = run_notebook(NOTEBOOK, {
        "TORCH_HOME": str(torch_home),  # torch.hub.get_dir() = $TORCH_HOME/hub in the kernel
        "RESNET_COURSE_PROFILE": "smoke",
        "RESNET_COURSE_DATA": str(tmp_path / "data"),
        "RESNET_COURSE_DATASET": None,
    }, monkeypatch)
    assert f"found in the cache: {file}" in text
    assert "ImageNet ResNet-18 loaded into resnet_course.models.registry.resnet18 (strict=True)" in text
    assert "ImageNet top-3 =" in text  # the pretrained model was asked about target images
    assert "source: ImageNet-1k" in text and "resnet18" in text
    assert "skipped: no ImageNet weights" not in text
