"""The epoch tally of the training engine: running totals and a mid-epoch position."""

from __future__ import annotations

import torch
from torch import nn

from resnet_course.training.tally import BufferSnapshot, EpochTally


def test_tally_counts_only_completed_optimizer_steps() -> None:
    tally = EpochTally.resumed(None, torch.device("cpu"))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    tally.add(torch.tensor(0.5), logits, torch.tensor([0, 1, 1]))
    assert (tally.batches, tally.seen, tally.correct, tally.loss) == (0, 0, 0, 0.0)  # not committed yet
    tally.commit(batches=1)
    assert (tally.batches, tally.seen, tally.correct) == (1, 3, 2)
    assert tally.loss == 1.5  # mean loss × batch size: a sum over images
    tally.add(torch.tensor(1.0), logits[:1], torch.tensor([1]))  # a group cut short (Ctrl-C) is not recorded
    position = tally.position({"torch": "state"})
    assert {k: position[k] for k in ("batches", "loss", "correct", "seen")} == {
        "batches": 1,
        "loss": 1.5,
        "correct": 2,
        "seen": 3,
    }
    assert position["rng_epoch_start"] == {"torch": "state"} and position["seconds"] >= 0


def test_a_resumed_tally_continues_from_the_checkpointed_position() -> None:
    partial = {"batches": 4, "loss": 10.0, "correct": 7, "seen": 16, "seconds": 2.5}
    tally = EpochTally.resumed(partial, torch.device("cpu"))
    tally.add(torch.tensor(2.0), torch.tensor([[1.0, 0.0]] * 4), torch.tensor([0, 0, 1, 1]))
    tally.commit(batches=5)
    assert (tally.batches, tally.loss, tally.correct, tally.seen) == (5, 18.0, 9, 20)
    assert tally.elapsed() >= 2.5  # time before the interruption counts


def test_buffer_snapshot_restores_batchnorm_statistics() -> None:
    model = nn.BatchNorm1d(3)
    snapshot = BufferSnapshot(model)
    before = model.running_mean.clone()
    model(torch.randn(8, 3) + 5)  # a forward pass in training mode moves the running statistics
    assert not torch.equal(model.running_mean, before)
    snapshot.restore()
    assert torch.equal(model.running_mean, before)
    model(torch.randn(8, 3))
    snapshot.take()
    taken = model.running_mean.clone()
    model(torch.randn(8, 3))
    snapshot.restore()
    assert torch.equal(model.running_mean, taken)
