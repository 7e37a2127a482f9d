"""The course's saved runs: notebook 05's folder, and the checkpoint notebooks 06/07/10 analyse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_course.data.bundle import DataBundle
from resnet_course.data.loading import load_data
from resnet_course.models.registry import create_for_data
from resnet_course.training.checkpoints import load_checkpoint, save_checkpoint
from resnet_course.training.runs import course_checkpoint, course_run_dir

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = "resnet20"
SIZES = dict(epochs=1, train_size=30, batch_size=16, eval_batch_size=40, seed=0, device="cpu")


@pytest.fixture(scope="module")
def data() -> DataBundle:
    return load_data("shapes10", train_size=60, test_size=40, val_fraction=0.0)


@pytest.fixture()
def data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("RESNET_COURSE_DATA", str(root))
    return root


def save_as_05(data: DataBundle, classes: list[str] | None = None, image_size: int | None = None) -> Path:
    model = create_for_data(MODEL, len(data.classes), data.image_size)
    preprocess = {**data.preprocess, "image_size": image_size or data.image_size}
    return save_checkpoint(model, course_run_dir(MODEL) / "last.pt", epoch=7, classes=classes or data.classes,
                           preprocess=preprocess, metrics={"test_accuracy": 0.625})


def test_course_run_dir_is_notebook_05s_folder(data_root: Path) -> None:
    assert course_run_dir("resnet18") == data_root / "runs" / "05_resnet18"
    assert not course_run_dir("resnet18").exists()  # not created


def test_uses_05s_checkpoint_when_it_fits(data: DataBundle, data_root: Path, tmp_path: Path) -> None:
    saved = save_as_05(data)
    path, text = course_checkpoint(data, MODEL, **SIZES, work_dir=tmp_path / "work")
    assert path == saved
    assert "notebook 05" in text and "epoch 7" in text and "62.5%" in text and "chance is 10%" in text
    assert not (tmp_path / "work").exists()  # nothing trained, nothing written


@pytest.mark.parametrize("damage", ["classes", "image_size", "corrupt", "missing"])
def test_trains_a_quick_model_when_05s_does_not_fit(
    data: DataBundle, data_root: Path, tmp_path: Path, damage: str
) -> None:
    if damage == "classes":
        save_as_05(data, classes=[f"c{i}" for i in range(10)])
    elif damage == "image_size":
        save_as_05(data, image_size=64)
    elif damage == "corrupt":
        good = save_as_05(data)
        good.write_bytes(good.read_bytes()[:200])
    path, text = course_checkpoint(data, MODEL, **{**SIZES, "epochs": 2}, work_dir=tmp_path / "work")
    assert path == tmp_path / "work" / "quick.pt"
    expected = {
        "classes": "other classes", "image_size": "64 px", "corrupt": "corrupt", "missing": "no checkpoint"
    }
    assert expected[damage] in text
    assert "Trained a quick resnet20" in text and "2 epoch(s) on 30 images" in text and "1/10 = 10%" in text
    model, ckpt = load_checkpoint(path)  # loadable, rebuilt by name
    assert ckpt["classes"] == data.classes and ckpt["preprocess"] == data.preprocess
    assert ckpt["epoch"] == 2 and len(ckpt["history"]["epoch"]) == 2
    accuracy = ckpt["metrics"]["test_accuracy"]
    assert 0.0 <= accuracy <= 1.0 and f"{accuracy:.1%}" in text
    assert ckpt["config"]["schedule"] == "onecycle" and ckpt["model"]["name"] == MODEL  # notebook 05's recipe


def test_short_run_trains_a_seeded_subset_and_hands_the_model_to_the_callback(data: DataBundle) -> None:
    from resnet_course.training.runs import short_run

    seen = []
    run = short_run(data, MODEL, epochs=2, train_size=30, batch_size=16, seed=3, device="cpu",
                    callback=lambda model, h: seen.append((model, len(h))))
    assert run.train_images == 30 and len(run.history) == 2 and run.history.label == f"quick {MODEL}"
    assert [n for _, n in seen] == [1, 2] and all(m is run.model for m, _ in seen)
    assert run.config.schedule == "onecycle" and run.config.seed == 3 and run.config.epochs == 2
    assert run.config.lr is None and not run.config.amp  # the engine's default rate, fp32
    tuned = short_run(data, MODEL, epochs=1, train_size=30, batch_size=16, seed=3, device="cpu", lr=0.05, amp=True)
    assert tuned.config.effective_lr() == 0.05 and tuned.config.amp
    again = short_run(data, MODEL, epochs=2, train_size=30, batch_size=16, seed=3, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(run.model.state_dict().values(),
                                                  again.model.state_dict().values(), strict=True))
    assert short_run(data, MODEL, epochs=1, train_size=None, batch_size=16, seed=0,
                     device="cpu").train_images == len(data.train)
