"""The loop of notebook 05 (training/loop.py) and its exercise checks: a right loop passes, each usual mistake
fails with a hint that names it."""

from __future__ import annotations

import pytest
import torch

from resnet_course.checks.framework import ExerciseFailed
from resnet_course.checks.notebook05 import check_evaluate, check_train_one_epoch
from resnet_course.models.registry import create
from resnet_course.training.config import TrainConfig
from resnet_course.training.engine import fit
from resnet_course.training.loop import evaluate, train_one_epoch

pytestmark = pytest.mark.usefixtures("one_thread")


def train_solution(model, loader, optimizer, loss_fn, device, *, zero=True, train_mode=True, per_image=True):
    if train_mode:
        model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        if zero:
            optimizer.zero_grad()
        logits = model(images)
        loss = loss_fn(logits, labels)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * (labels.size(0) if per_image else 1)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += labels.size(0)
    return {"loss": total_loss / (seen if per_image else len(loader)), "accuracy": correct / seen}


def eval_solution(model, loader, loss_fn, device, *, eval_mode=True, no_grad=True, per_image=True):
    if eval_mode:
        model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.no_grad() if no_grad else torch.enable_grad():
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            total_loss += loss_fn(logits, labels).item() * (labels.size(0) if per_image else 1)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += labels.size(0)
    return {"loss": total_loss / (seen if per_image else len(loader)), "accuracy": correct / seen}


def test_the_textbook_loops_pass_their_checks(capsys) -> None:
    assert check_train_one_epoch(train_solution)
    assert check_evaluate(eval_solution)
    assert "same weights, loss and accuracy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ({"zero": False}, "call optimizer.zero_grad() at the start of every batch"),
        ({"train_mode": False}, "call model.train() before the loop"),
        ({"per_image": False}, "is the mean of the batch means"),
    ],
)
def test_each_training_loop_mistake_fails_with_its_hint(mistake, hint, capsys) -> None:
    with pytest.raises(ExerciseFailed):
        check_train_one_epoch(lambda *args: train_solution(*args, **mistake))
    assert hint in capsys.readouterr().out


def test_a_training_loop_without_a_step_or_a_result_fails(capsys) -> None:
    def no_step(model, loader, optimizer, loss_fn, device):
        for images, labels in loader:
            loss_fn(model(images), labels).backward()
        return {"loss": 0.0, "accuracy": 0.0}

    with pytest.raises(ExerciseFailed):
        check_train_one_epoch(no_step)
    assert "no optimizer step was taken" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed):
        check_train_one_epoch(lambda *args: (train_solution(*args), None)[1])
    assert "not a dict with 'loss' and 'accuracy'" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("mistake", "hint"),
    [
        ({"eval_mode": False}, "call model.eval() before the loop"),
        ({"no_grad": False}, "wrap the loop in `with torch.no_grad():`"),
        ({"per_image": False}, "is the mean of the batch means"),
    ],
)
def test_each_evaluation_loop_mistake_fails_with_its_hint(mistake, hint, capsys) -> None:
    with pytest.raises(ExerciseFailed):
        check_evaluate(lambda *args: eval_solution(*args, **mistake))
    assert hint in capsys.readouterr().out


def test_fit_trains_with_the_loop_students_write() -> None:
    """With the plain knobs (constant rate, no momentum tricks beyond SGD's, fp32) one epoch of fit and one call
    of the textbook loop with fit's optimizer and loss give the same weights."""
    torch.manual_seed(0)
    images, labels = torch.randn(24, 3, 16, 16), torch.randint(0, 4, (24,))
    batches = [(images[i : i + 8], labels[i : i + 8]) for i in range(0, 24, 8)]

    class Loader(list):
        batch_size = 8

    config = TrainConfig(
        epochs=1, batch_size=8, lr=0.05, schedule="constant", label_smoothing=0.0, weight_decay=0.0,
        nesterov=False, amp=False, channels_last=False, device="cpu",
    )  # fmt: skip
    torch.manual_seed(1)
    a = create("resnet20", num_classes=4)
    b = create("resnet20", num_classes=4)
    b.load_state_dict(a.state_dict())
    history = fit(a, Loader(batches), None, config, progress=False)
    optimizer = torch.optim.SGD(b.parameters(), lr=0.05, momentum=config.momentum)
    result = train_one_epoch(b, batches, optimizer, torch.nn.CrossEntropyLoss(), "cpu")
    assert all(torch.allclose(a.state_dict()[k], b.state_dict()[k], atol=1e-6) for k in a.state_dict())
    assert history.train_loss[0] == pytest.approx(result["loss"], rel=1e-6)
    assert evaluate(a, batches)["accuracy"] == evaluate(b, batches)["accuracy"]
