"""Checks of notebook 05's exercises: the training and evaluation loops, the warm-up + cosine learning rate, and
which split selects a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resnet_course.checks.framework import Hint, friendly_check, student_call

__all__ = ["check_evaluate", "check_model_selection_split", "check_train_one_epoch", "check_warmup_cosine_lr"]


# --- notebook 05 ---
# --------------------------------------------------------------------------------------------------
# Notebook 05: learning rate of a warm-up + cosine schedule; which split selects the model
# --------------------------------------------------------------------------------------------------


@friendly_check
def check_warmup_cosine_lr(lr_fn: Callable[[int, float, int, int], Any]) -> str:
    """Check ``lr_fn(step, base_lr, warmup_steps, total_steps)`` against the engine's ``"cosine"`` schedule
    (:func:`resnet_course.training.schedules.lr_curve`): linear warm-up from ``0.1 × base_lr`` over ``warmup_steps``
    optimizer steps, then cosine annealing to 0 over the remaining steps. Steps are counted from 0."""
    import math

    from resnet_course.training.config import TrainConfig
    from resnet_course.training.schedules import lr_curve

    cases = [
        (10, 2.0, 7, 0.4),
        (4, 1.0, 25, 0.1),
        (3, 0.0, 10, 0.05),
    ]  # epochs, warm-up epochs, steps/epoch, lr
    for epochs, warmup_epochs, steps_per_epoch, lr in cases:
        config = TrainConfig(epochs=epochs, schedule="cosine", warmup_epochs=warmup_epochs, lr=lr)
        curve = lr_curve(config, steps_per_epoch)
        total = epochs * steps_per_epoch
        warmup = round(warmup_epochs * steps_per_epoch)
        probes = sorted({0, 1, max(warmup - 1, 0), warmup, warmup + 1, (warmup + total) // 2, total - 1})
        for step in probes:
            got = student_call(lr_fn, step, lr, warmup, total, what=f"lr_at({step}, {lr}, {warmup}, {total})")
            try:
                got = float(got)
            except (TypeError, ValueError):
                raise Hint(f"lr_at returned {got!r}, not a number", "return a float") from None
            want = curve[step]
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
                continue
            where = f"lr_at({step}, base_lr={lr}, warmup_steps={warmup}, total_steps={total}) = {got:.6g}, expected {want:.6g}"
            if step < warmup:
                if math.isclose(got, lr * step / warmup, rel_tol=1e-6, abs_tol=1e-12):
                    hint = (
                        "warm-up starts at 0.1 × base_lr, not 0: base_lr × (0.1 + 0.9 × step / warmup_steps)"
                    )
                else:
                    hint = "during warm-up: base_lr × (0.1 + 0.9 × step / warmup_steps)"
            else:
                t, span = step - warmup, total - warmup
                if math.isclose(got, 0.5 * lr * (1 + math.cos(math.pi * step / total)), rel_tol=1e-6):
                    hint = "the cosine starts after the warm-up: use t = step − warmup_steps over total_steps − warmup_steps"
                elif span > 1 and math.isclose(
                    got, 0.5 * lr * (1 + math.cos(math.pi * t / (span - 1))), rel_tol=1e-6
                ):
                    hint = "the cosine spans total_steps − warmup_steps steps (it would reach 0 one step after the last)"
                else:
                    hint = "after warm-up: 0.5 × base_lr × (1 + cos(π × (step − warmup_steps) / (total_steps − warmup_steps)))"
            raise Hint(where, hint)
    return "your warm-up + cosine learning rate matches the engine's schedule at every probed step"


@friendly_check
def check_model_selection_split(answer: Any) -> str:
    """Which split should pick the epoch, learning rate or model? ``"train"``, ``"val"`` or ``"test"``."""
    text = str(answer).strip().lower()
    aliases = {"validation": "val", "valid": "val", "training": "train"}
    text = aliases.get(text, text)
    if text == "val":
        return (
            "the validation split: choose with it, then evaluate the chosen model on the test split once; "
            "its accuracy is then an unbiased estimate"
        )
    if text == "test":
        raise Hint(
            "choosing with the test split makes its accuracy optimistic (you picked the luckiest option on it)",
            "keep the test split for one final measurement; choose with a split held out of the training data",
        )
    if text == "train":
        raise Hint(
            "training accuracy rewards memorising: the biggest, longest-trained model always wins on it",
            "choose with data the model was not trained on, but not the test split",
        )
    raise Hint(
        f"{answer!r} is not one of 'train', 'val', 'test'", "answer with the name of a split, e.g. 'val'"
    )


# --------------------------------------------------------------------------------------------------
# Notebook 05: the training loop and the evaluation loop
# --------------------------------------------------------------------------------------------------


def _loop_setup() -> tuple[Any, list[tuple[Any, Any]], Any]:
    """A small network with BatchNorm (so that train/eval mode matters), three batches of 4, 4 and 2 random
    images (so that averaging per batch and per image differ) and the loss function, all seeded."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip
    images, labels = torch.randn(10, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 1])
    batches = [(images[i : i + 4], labels[i : i + 4]) for i in (0, 4, 8)]
    return model, batches, nn.CrossEntropyLoss()


def _metrics(result: Any, what: str) -> tuple[float, float]:
    if not isinstance(result, dict) or not {"loss", "accuracy"} <= set(result):
        raise Hint(
            f"{what} returned {type(result).__name__}, not a dict with 'loss' and 'accuracy'",
            'end with return {"loss": total_loss / seen, "accuracy": correct / seen}',
        )
    try:
        return float(result["loss"]), float(result["accuracy"])
    except (TypeError, ValueError):
        raise Hint(f"{what} returned a loss or accuracy that is not a number", "use .item() on tensors") from None


def _run_train(fn: Callable[..., Any], step: Any = None, *, student: bool = False, start_in_eval: bool = False):
    """``(weights after one epoch, what fn returned)`` for ``fn`` run on the setup's model, batches and loss, with
    SGD (momentum 0.9, so that stale gradients show); the model starts in eval mode, as evaluate() leaves it."""
    import torch

    model, batches, loss_fn = _loop_setup()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if start_in_eval:
        model.eval()
        model.train = lambda mode=True: model  # type: ignore[method-assign]  # a loop that never calls train()
    else:
        model.eval()  # a correct loop switches to training mode itself
    if student:
        result = student_call(fn, model, batches, optimizer, loss_fn, "cpu", what="train_one_epoch(...)")
    else:
        result = fn(model, batches, optimizer, loss_fn, "cpu", step)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, result


def _same_weights(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-5, atol=1e-6) for k in a)


@friendly_check
def check_train_one_epoch(fn: Callable[..., Any]) -> str:
    """Run the student's ``train_one_epoch(model, loader, optimizer, loss_fn, device)`` and the package's
    (:func:`resnet_course.training.loop.train_one_epoch`) on copies of the same model and batches; the weights
    after the epoch and the returned ``loss`` and ``accuracy`` must agree, and the usual mistakes are named."""

    from resnet_course.training.loop import Step, train_one_epoch

    class NoZeroGrad(Step):
        def zero_grad(self, optimizer: Any) -> None:
            pass

    want_weights, want = _run_train(train_one_epoch)
    got_weights, got = _run_train(fn, student=True)
    loss, accuracy = _metrics(got, "train_one_epoch")
    if not _same_weights(got_weights, want_weights):
        before, _, _ = _loop_setup()
        if _same_weights(got_weights, before.state_dict()):
            raise Hint(
                "the weights did not change: no optimizer step was taken",
                "after loss.backward(), call optimizer.step()",
            )
        if _same_weights(got_weights, _run_train(train_one_epoch, NoZeroGrad())[0]):
            raise Hint(
                "the gradients of earlier batches were added to each new batch's",
                "call optimizer.zero_grad() at the start of every batch (backward() adds to .grad)",
            )
        if _same_weights(got_weights, _run_train(train_one_epoch, start_in_eval=True)[0]):
            raise Hint(
                "the model trained in evaluation mode (BatchNorm used its running statistics)",
                "call model.train() before the loop: evaluate() leaves the model in eval mode",
            )
        raise Hint(
            "after one epoch your weights differ from those of the package's loop",
            "per batch: images and labels to the device, zero_grad, forward, loss, backward, step",
        )
    _compare_metrics(loss, accuracy, want, lambda: _batch_losses_of(train_one_epoch))
    return "your loop trains exactly like the package's: same weights, loss and accuracy after an epoch"


def _compare_metrics(
    loss: float, accuracy: float, want: dict[str, Any], batch_means: Callable[[], list[float]]
) -> None:
    """Fail with a hint when ``loss`` or ``accuracy`` differs from the package's ``want``; a loss that is the
    mean of the per-batch means (``batch_means()``) is named as such."""
    if abs(loss - want["loss"]) > 1e-5 * max(1.0, abs(want["loss"])):
        means = batch_means()
        if abs(loss - sum(means) / len(means)) < 1e-5:
            raise Hint(
                f"loss {loss:.4f} is the mean of the batch means; the mean per image is {want['loss']:.4f}",
                "the last batch is smaller: add loss.item() × batch size, divide by the number of images",
            )
        raise Hint(f"loss {loss:.4f}, expected {want['loss']:.4f}", "the mean loss per image of the loader")
    if abs(accuracy - want["accuracy"]) > 1e-6:
        raise Hint(
            f"accuracy {accuracy:.4f}, expected {want['accuracy']:.4f}",
            "count (logits.argmax(dim=1) == labels) over the loader and divide by the number of images",
        )


def _batch_losses_of(loop: Callable[..., Any]) -> list[float]:
    """The per-batch mean losses that ``loop`` computes (for the hint about averaging)."""
    from resnet_course.training.loop import Step

    losses: list[float] = []

    class Recording(Step):
        def backward(self, loss: Any) -> None:
            losses.append(loss.item())
            loss.backward()

    _run_train(loop, Recording())
    return losses


@friendly_check
def check_evaluate(fn: Callable[..., Any]) -> str:
    """Run the student's ``evaluate(model, loader, loss_fn, device)`` and the package's
    (:func:`resnet_course.training.loop.evaluate`) on copies of the same model (left in training mode) and
    batches: same ``loss`` and ``accuracy``, no gradients recorded, BatchNorm's statistics untouched."""
    import torch

    from resnet_course.training.loop import evaluate

    model, batches, loss_fn = _loop_setup()
    want = evaluate(model, batches, loss_fn, "cpu")
    model.train()  # a correct evaluate() switches to eval mode itself
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grad_enabled: list[bool] = []
    model.register_forward_hook(lambda m, i, o: grad_enabled.append(torch.is_grad_enabled()))
    got = student_call(fn, model, batches, loss_fn, "cpu", what="evaluate(...)")
    loss, accuracy = _metrics(got, "evaluate")
    if not torch.equal(before["1.running_mean"], model.state_dict()["1.running_mean"]):
        raise Hint(
            "BatchNorm's running statistics changed: the model was evaluated in training mode",
            "call model.eval() before the loop (and train() again before training)",
        )
    if any(grad_enabled):
        raise Hint(
            "the forward passes recorded gradients (slower, and memory for nothing)",
            "wrap the loop in `with torch.no_grad():`",
        )
    if not grad_enabled:
        raise Hint("the model was never called", "compute logits = model(images) for every batch")
    def batch_means() -> list[float]:
        with torch.no_grad():
            model.eval()
            return [loss_fn(model(x), y).item() for x, y in batches]

    _compare_metrics(loss, accuracy, want, batch_means)
    return "your evaluation loop measures exactly what the package's does"
