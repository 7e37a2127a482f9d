"""Learning-rate curves of every schedule, and that a restored schedule continues the same curve."""

from __future__ import annotations

import math

import pytest
import torch

from resnet_course.training.config import TrainConfig
from resnet_course.training.schedules import build_schedule, lr_curve

pytestmark = pytest.mark.usefixtures("one_thread")

SPE = 10  # optimizer steps per epoch


def curve(**kw) -> list[float]:
    return lr_curve(TrainConfig(epochs=10, lr=0.1, **kw), SPE)


def test_onecycle_warms_up_to_the_peak_then_anneals_to_almost_zero() -> None:
    lrs = curve(schedule="onecycle")  # warm-up default: 20 % of the epochs
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(0.1 / 25)
    peak = max(range(100), key=lrs.__getitem__)
    assert 18 <= peak <= 21 and lrs[peak] == pytest.approx(0.1, rel=1e-3)
    assert all(a <= b + 1e-12 for a, b in zip(lrs[:peak], lrs[1 : peak + 1], strict=False))
    assert all(a >= b - 1e-12 for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False))
    assert lrs[-1] < 1e-3


def test_cosine_with_warmup() -> None:
    lrs = curve(schedule="cosine", warmup_epochs=1)
    assert lrs[0] == pytest.approx(0.01)  # warmup_start_factor 0.1
    assert lrs[SPE] == pytest.approx(0.1)
    mid = SPE + (100 - SPE) // 2
    assert lrs[mid] == pytest.approx(0.05, rel=0.05)
    assert lrs[-1] < 0.001


def test_cosine_without_warmup_starts_at_lr() -> None:
    lrs = curve(schedule="cosine")
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.05, rel=1e-6)


def test_step_and_multistep_and_constant() -> None:
    step = curve(schedule="step", step_size=4)
    assert (
        step[39] == pytest.approx(0.1)
        and step[40] == pytest.approx(0.01)
        and step[80] == pytest.approx(0.001)
    )
    multi = curve(schedule="multistep")  # He et al.: decay at 50 % and 75 %
    assert multi[49] == pytest.approx(0.1) and multi[50] == pytest.approx(0.01)
    assert multi[74] == pytest.approx(0.01) and multi[75] == pytest.approx(0.001)
    const = curve(schedule="constant", warmup_epochs=2)
    assert const[0] == pytest.approx(0.01) and all(v == pytest.approx(0.1) for v in const[20:])


def test_plateau_warms_up_then_decays_on_stagnating_loss() -> None:
    cfg = TrainConfig(epochs=10, lr=0.1, schedule="plateau", warmup_epochs=1, plateau_patience=1)
    lrs = lr_curve(cfg, SPE)
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.1)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = build_schedule(opt, cfg, SPE)
    for _ in range(SPE):
        opt.step()
        sched.step()
    for _ in range(3):  # the loss never improves after the first epoch
        sched.epoch_end(1.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize("name", ["onecycle", "cosine", "step", "multistep", "constant", "plateau"])
def test_restored_schedule_continues_the_same_curve(name: str) -> None:
    cfg = TrainConfig(epochs=4, lr=0.1, schedule=name, warmup_epochs=1)
    full = lr_curve(cfg, SPE)

    def make() -> tuple[torch.optim.Optimizer, object]:
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        return opt, build_schedule(opt, cfg, SPE)

    opt, sched = make()
    for _ in range(15):
        opt.step()
        sched.step()
    state_o, state_s = opt.state_dict(), sched.state_dict()
    opt2, sched2 = make()
    sched2.load_state_dict(state_s)
    opt2.load_state_dict(state_o)
    rest = []
    for _ in range(25):
        rest.append(opt2.param_groups[0]["lr"])
        opt2.step()
        sched2.step()
    assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(rest, full[15:], strict=True))
