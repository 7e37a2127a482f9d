"""Atomic saves, rebuilding models by name, and one-line errors for every bad file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from resnet_course.models.blocks import BasicBlock
from resnet_course.models.registry import create
from resnet_course.models.resnet import ResNet
from resnet_course.training import checkpoints
from resnet_course.training.checkpoints import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    update_checkpoint,
)

pytestmark = pytest.mark.usefixtures("one_thread")

PRE = {"image_size": 8, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def tiny(num_classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("resnet20", num_classes=num_classes)


def assert_one_line(err: pytest.ExceptionInfo, path: Path) -> None:
    text = str(err.value)
    assert "\n" not in text and str(path) in text


def test_round_trip_rebuilds_the_model_without_redeclaring_it(tmp_path: Path) -> None:
    model = tiny()
    path = save_checkpoint(model, tmp_path / "m.pt", classes=["a", "b", "c"], preprocess=PRE, epoch=4,
                           metrics={"test_accuracy": 0.5})
    loaded, ckpt = load_checkpoint(path)
    assert type(loaded) is ResNet and not loaded.training
    assert ckpt["model"] == {"name": "resnet20", "kwargs": {"num_classes": 3}}
    assert ckpt["classes"] == ["a", "b", "c"] and ckpt["epoch"] == 4 and ckpt["format"] == checkpoints.FORMAT
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(2, 3, 8, 8)
    assert torch.allclose(model.eval()(x), loaded(x))


def test_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint(tiny(), tmp_path / "last.pt", epoch=1)
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")  # half a file, then the "crash"
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tiny(), path, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert read_checkpoint(path)["epoch"] == 1


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty", "bare_state_dict", "missing", "folder"])
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bad.pt"
    expected = {
        "garbage": "corrupt", "truncated": "corrupt", "empty": "empty", "bare_state_dict": "not a resnet_course",
        "missing": "no such file", "folder": "folder",
    }[kind]
    if kind == "garbage":
        path.write_bytes(b"definitely not a checkpoint")
    elif kind == "truncated":
        good = save_checkpoint(tiny(), tmp_path / "good.pt").read_bytes()
        path.write_bytes(good[: len(good) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "bare_state_dict":
        torch.save(tiny().state_dict(), path)
    elif kind == "folder":
        path.mkdir()
    with pytest.raises(CheckpointError, match=expected) as err:
        load_checkpoint(path)
    assert_one_line(err, path)
    assert isinstance(err.value, ValueError)


class _Payload:
    """Unpickling this would call os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    path, marker = tmp_path / "crafted.pt", tmp_path / "payload-ran"
    ckpt = checkpoints.make_checkpoint(tiny())
    torch.save({**ckpt, "meta": {"note": _Payload(marker)}}, path)
    with pytest.raises(CheckpointError, match="contains Python objects that a safe load refuses") as err:
        load_checkpoint(path)
    assert_one_line(err, path)
    assert not marker.exists()


def test_checkpoint_for_a_different_architecture(tmp_path: Path) -> None:
    path = save_checkpoint(tiny(3), tmp_path / "r20.pt")
    with pytest.raises(CheckpointError, match="does not fit the given model") as err:
        load_checkpoint(path, model=create("resnet32", num_classes=3))
    assert_one_line(err, path)
    with pytest.raises(CheckpointError, match=r"shape mismatch fc\.weight") as err:
        load_checkpoint(path, model=create("resnet20", num_classes=5))
    assert_one_line(err, path)


def test_unknown_or_unbuildable_model(tmp_path: Path) -> None:
    ckpt = checkpoints.make_checkpoint(tiny())
    ckpt["model"] = {"name": "resnet9000", "kwargs": {}}
    path = save_checkpoint(ckpt, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="resnet9000"):
        load_checkpoint(path)
    ckpt["format"] = "something/else"
    save_checkpoint(ckpt, path)
    with pytest.raises(CheckpointError, match="unsupported checkpoint format"):
        load_checkpoint(path)


def test_model_not_built_by_create_needs_the_callers_model(tmp_path: Path) -> None:
    model = ResNet(BasicBlock, [1, 1], widths=(8, 16), num_classes=2, stem="cifar")
    path = save_checkpoint(model, tmp_path / "custom.pt")
    with pytest.raises(CheckpointError, match="pass model=") as err:
        load_checkpoint(path)
    assert_one_line(err, path)
    loaded, _ = load_checkpoint(path, model=ResNet(BasicBlock, [1, 1], widths=(8, 16), num_classes=2, stem="cifar"))
    assert torch.equal(loaded.fc.weight, model.fc.weight)


def test_update_checkpoint_merges_metrics(tmp_path: Path) -> None:
    path = save_checkpoint(tiny(), tmp_path / "m.pt", metrics={"a": 1})
    update_checkpoint(path, metrics={"test_accuracy": 0.75})
    assert read_checkpoint(path)["metrics"] == {"a": 1, "test_accuracy": 0.75}


def test_checkpoint_problem_says_why_a_checkpoint_does_not_fit(tmp_path: Path) -> None:
    from resnet_course.training.checkpoints import checkpoint_problem

    classes = ["a", "b", "c"]
    path = save_checkpoint(tiny(), tmp_path / "m.pt", classes=classes, preprocess=PRE)
    assert checkpoint_problem(path, classes, 8) is None
    assert checkpoint_problem(str(path), tuple(classes), 8) is None  # any sequence, str paths
    missing = checkpoint_problem(tmp_path / "none.pt", classes, 8)
    assert missing is not None and "no checkpoint" in missing and "none.pt" in missing
    other = checkpoint_problem(path, ["a", "c", "b"], 8)  # same names, other order: other label indices
    assert other is not None and "other classes" in other
    size = checkpoint_problem(path, classes, 32)
    assert size is not None and "8 px" in size and "32 px" in size
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:100])
    text = checkpoint_problem(corrupt, classes, 8)
    assert text is not None and "corrupt" in text and "\n" not in text
    unnamed = save_checkpoint(tiny(), tmp_path / "unnamed.pt", preprocess=PRE)
    assert "class names" in (checkpoint_problem(unnamed, classes, 8) or "")
