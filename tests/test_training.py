"""The training engine: config validation, fit/evaluate/predict, AMP/SWA/accumulation on CPU, exact resume,
Ctrl-C, divergence, best-on-validation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from resnet_course.models.registry import create
from resnet_course.training.checkpoints import load_checkpoint, read_checkpoint
from resnet_course.training.config import TrainConfig, profile_recipe, recipe
from resnet_course.training.engine import TrainingDiverged, fit
from resnet_course.training.history import History
from resnet_course.training.loop import evaluate
from resnet_course.training.optimizers import build_optimizer
from resnet_course.training.predictions import predict

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = ["r", "g", "b", "k"]


def data(n: int = 48, seed: int = 0) -> TensorDataset:
    """8×8 images whose class is the brightest channel (or none): learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.rand(n, 3, 8, 8, generator=g) * 0.3
    for c in range(3):
        x[y == c, c] += 0.7
    return TensorDataset((x - 0.4) / 0.3, y)


def loaders(batch_size: int = 8) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(
        data(), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(5)
    )
    return train, DataLoader(data(16, seed=1), batch_size=16)


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create("resnet20", num_classes=4)


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"epochs": 3, "batch_size": 8, "device": "cpu", **kw})


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"optimizer": "adam"}, "optimizer must be one of sgd, adamw"),
        ({"lr": -1.0}, "lr must be a positive number"),
        ({"schedule": "linear"}, "schedule must be one of"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"warmup_epochs": 5, "epochs": 5}, "warmup_epochs must be in"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"accum_steps": 0}, "accum_steps"),
        ({"amp_dtype": "fp8"}, "amp_dtype"),
        ({"milestones": (0.5, 1.5)}, "milestones"),
        ({"device": "tpu"}, "device must be one of"),
    ],
)
def test_config_validation(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kw)


def test_config_defaults_and_round_trip() -> None:
    c = TrainConfig()
    assert (c.optimizer, c.nesterov, c.momentum, c.schedule, c.label_smoothing) == (
        "sgd",
        True,
        0.9,
        "onecycle",
        0.1,
    )
    assert c.effective_lr() == pytest.approx(0.1) and TrainConfig(
        batch_size=512
    ).effective_lr() == pytest.approx(0.4)
    assert (
        c.effective_weight_decay() == 5e-4 and TrainConfig(optimizer="adamw").effective_weight_decay() == 0.05
    )
    assert c.effective_warmup_epochs() == pytest.approx(6.0)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"epochs": 3, "lerning_rate": 0.1})
    assert recipe("gpu-resnet18").batch_size == 512
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe("nope")


def test_profile_recipe_scales_the_profiles_rate_with_the_global_batch() -> None:
    from resnet_course.profiles import PROFILES

    cpu = PROFILES["cpu"]  # batch 64 at its own learning rate
    assert profile_recipe(cpu) == {"batch_size": cpu.batch_size, "lr": cpu.lr}
    assert profile_recipe(cpu, 128)["lr"] == pytest.approx(2 * cpu.lr)  # twice the batch, twice the rate
    assert profile_recipe(cpu, processes=2) == {"batch_size": cpu.batch_size, "lr": pytest.approx(2 * cpu.lr)}
    assert profile_recipe(cpu, lr=0.01) == {"batch_size": cpu.batch_size, "lr": 0.01}
    assert profile_recipe(cpu, optimizer="adamw")["lr"] is None  # TrainConfig's 1e-3
    assert profile_recipe(None, 32, 0.05) == {"batch_size": 32, "lr": 0.05}
    with pytest.raises(ValueError, match="needs a run profile"):
        profile_recipe(None, 32)


def test_weight_decay_not_on_norm_and_bias() -> None:
    m = model()
    groups = build_optimizer(m, cfg()).param_groups
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]
    assert all(p.ndim == 1 for p in groups[1]["params"]) and all(p.ndim > 1 for p in groups[0]["params"])
    assert len(build_optimizer(m, cfg(decay_norm_and_bias=True)).param_groups) == 1


def test_lr_factors_make_one_group_per_rate_with_the_longest_prefix_winning() -> None:
    m = model()
    opt = build_optimizer(m, cfg(lr=0.1, lr_factors={"": 0.1, "fc.": 1.0, "fc.bias": 2.0}))
    by_name = {g["name"]: g for g in opt.param_groups}
    assert set(by_name) == {"lr x2, no decay", "lr x1, decay", "lr x0.1, decay", "lr x0.1, no decay"}
    assert by_name["lr x2, no decay"]["params"] == [m.fc.bias] and by_name["lr x2, no decay"]["lr"] == 0.2
    assert by_name["lr x1, decay"]["params"] == [m.fc.weight] and by_name["lr x1, decay"]["lr"] == 0.1
    assert by_name["lr x0.1, decay"]["lr"] == pytest.approx(0.01)
    backbone = [p for n, p in m.named_parameters() if not n.startswith("fc.")]
    grouped = by_name["lr x0.1, decay"]["params"] + by_name["lr x0.1, no decay"]["params"]
    assert len(grouped) == len(backbone) and {id(p) for p in grouped} == {id(p) for p in backbone}
    # frozen parameters are in no group
    for p in backbone:
        p.requires_grad_(False)
    assert {g["name"] for g in build_optimizer(m, cfg(lr_factors={"fc.": 1.0})).param_groups} == {
        "lr x1, decay",
        "lr x1, no decay",
    }


def test_lr_factors_are_validated() -> None:
    with pytest.raises(ValueError, match=r"lr_factors must be positive.*freeze it"):
        cfg(lr_factors={"layer1.": 0.0})
    with pytest.raises(ValueError, match="lr_factors must map parameter-name prefixes"):
        cfg(lr_factors=[("fc.", 1.0)])
    with pytest.raises(
        ValueError, match=r"prefix\(es\) \['head\.'\] match no trainable parameter.*'conv1.weight'"
    ):
        build_optimizer(model(), cfg(lr_factors={"head.": 1.0}))
    c = cfg(lr_factors={"fc.": 1, "": 0.5})
    assert list(c.lr_factors.items()) == [("", 0.5), ("fc.", 1.0)]
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_fit_keeps_the_ratio_of_group_rates_through_the_schedule_and_swa(tmp_path: Path) -> None:
    m = model()
    c = cfg(epochs=3, lr=0.05, lr_factors={"": 0.1, "fc.": 1.0}, schedule="cosine", swa=True, swa_start=0.5)
    h = fit(m, *loaders(), c, out_dir=tmp_path, progress=False)
    assert len(h) == 3
    groups = read_checkpoint(tmp_path / "last.pt")["optimizer"]["param_groups"]
    rates = {g["lr_factor"]: g["lr"] for g in groups}
    assert rates[0.1] == pytest.approx(rates[1.0] * 0.1)  # SWA's constant rate is scaled per group too
    assert rates[1.0] == pytest.approx(0.005)  # swa_lr defaults to lr / 10


# ---------------------------------------------------------------------------------------------- fit


def test_fit_learns_records_history_and_keeps_best_on_validation(tmp_path: Path) -> None:
    m = model()
    train, val = loaders()
    h = fit(m, train, val, cfg(epochs=4, lr=0.05), out_dir=tmp_path, progress=False, classes=CLASSES)
    assert h.epoch == [1, 2, 3, 4] and len(h.lr) == len(h.seconds) == 4 and not h.interrupted
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.val_acc[h.best_epoch - 1] == max(h.val_acc)
    assert read_checkpoint(tmp_path / "best.pt")["epoch"] == h.best_epoch
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 4
    assert History.from_json(tmp_path / "history.json") == h
    result = evaluate(m, val, classes=CLASSES)
    assert set(result) == {"accuracy", "loss", "n", "per_class"} and result["n"] == 16
    assert result["accuracy"] == pytest.approx(h.val_acc[-1])
    assert set(result["per_class"]) == set(CLASSES)
    p = predict(m, val)
    assert p.probs.shape == (16, 4) and p.accuracy == pytest.approx(result["accuracy"])
    assert (p.labels == data(16, seed=1).tensors[1].numpy()).all()
    assert torch.allclose(torch.from_numpy(p.probs.sum(1)), torch.ones(16), atol=1e-5)
    loaded, ckpt = load_checkpoint(tmp_path / "last.pt")
    assert same_weights(loaded, m.cpu()) and ckpt["classes"] == CLASSES


def test_without_validation_best_is_last(tmp_path: Path) -> None:
    m = model()
    h = fit(m, loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, progress=False)
    assert h.val_acc == [None, None] and h.best_epoch == 2
    best, _ = load_checkpoint(tmp_path / "best.pt")
    last, _ = load_checkpoint(tmp_path / "last.pt")
    assert same_weights(best, last)


def test_amp_bf16_swa_accumulation_and_clipping_run_on_cpu(tmp_path: Path) -> None:
    m = model()
    train, val = loaders()
    c = cfg(epochs=4, amp=True, swa=True, swa_start=0.5, accum_steps=4, grad_clip=1.0, schedule="cosine")
    h = fit(m, train, val, c, out_dir=tmp_path, progress=False)
    assert all(math.isfinite(v) for v in h.train_loss)
    assert h.extra["swa"]["n_averaged"] == 2  # epochs 3 and 4
    ckpt = read_checkpoint(tmp_path / "last.pt")
    assert (
        ckpt["swa"]["applied"] and ckpt["scheduler"]["steps"] == 2 * 2
    )  # 6 batches / 4 → 2 steps × 2 epochs
    assert same_weights(load_checkpoint(tmp_path / "last.pt")[0], m.cpu())


def test_adamw_and_every_schedule_run() -> None:
    for schedule in ("step", "multistep", "plateau", "constant"):
        h = fit(
            model(), loaders()[0], None, cfg(epochs=2, schedule=schedule, optimizer="adamw"), progress=False
        )
        assert len(h) == 2


def test_loader_batch_size_must_match_config() -> None:
    with pytest.raises(ValueError, match=r"set TrainConfig\(batch_size=8\)"):
        fit(model(), loaders()[0], None, cfg(batch_size=16), progress=False)


# ---------------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("lr_factors", [{}, {"": 0.5, "fc.": 1.0}], ids=["one-rate", "lr_factors"])
def test_resume_after_epoch_two_equals_an_uninterrupted_run(tmp_path: Path, lr_factors: dict) -> None:
    straight = model()
    h_straight = fit(straight, *loaders(), cfg(lr_factors=lr_factors), out_dir=tmp_path / "a", progress=False)

    first = model()
    h_first = fit(
        first,
        *loaders(),
        cfg(lr_factors=lr_factors),
        out_dir=tmp_path / "b",
        progress=False,
        callback=lambda h: len(h) == 2,
    )
    assert len(h_first) == 2 and h_first.interrupted
    torch.manual_seed(123)  # a different initialisation: everything must come from last.pt
    resumed = create("resnet20", num_classes=4)
    h_resumed = fit(
        resumed, *loaders(), cfg(lr_factors=lr_factors), out_dir=tmp_path / "b", resume=True, progress=False
    )
    assert same_weights(straight, resumed)
    assert h_resumed.train_loss == h_straight.train_loss and h_resumed.val_acc == h_straight.val_acc


def test_ctrl_c_stops_at_once_and_resume_continues_from_the_last_saved_epoch(tmp_path: Path) -> None:
    straight = model()
    fit(straight, *loaders(), cfg(accum_steps=2), out_dir=tmp_path / "a", progress=False)

    m = model()
    seen = {"n": 0}

    def interrupt_after_ten_batches(module, inputs):
        if module.training:
            seen["n"] += 1
            if seen["n"] == 10:  # epoch 2, batch 4: in the middle of an accumulation group
                raise KeyboardInterrupt

    m.register_forward_pre_hook(interrupt_after_ten_batches)
    with pytest.raises(
        KeyboardInterrupt,
        match=r"interrupted in epoch 2/3; .*last\.pt holds the first 1 epoch\(s\): continue",
    ):
        fit(m, *loaders(), cfg(accum_steps=2), out_dir=tmp_path / "b", progress=False)
    assert seen["n"] == 10  # stopped at once, not at the end of the epoch
    assert read_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    assert len(History.from_json(tmp_path / "b" / "history.json")) == 1
    again = model()
    h2 = fit(again, *loaders(), cfg(accum_steps=2), out_dir=tmp_path / "b", resume=True, progress=False)
    assert len(h2) == 3 and not h2.interrupted
    assert same_weights(straight, again)


def test_a_checkpoint_saved_mid_epoch_by_an_older_version_is_refused(tmp_path: Path) -> None:
    from resnet_course.training.checkpoints import save_checkpoint

    fit(model(), loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, progress=False, callback=lambda h: True)
    ckpt = read_checkpoint(tmp_path / "last.pt")
    save_checkpoint({**ckpt, "partial": {"batches": 2}}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="in the middle of an epoch by an older version"):
        fit(model(), loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)


def test_a_checkpoint_from_before_a_new_config_field_still_resumes(tmp_path: Path) -> None:
    """Checkpoints written before TrainConfig gained lr_factors lack the key: it counts as its default."""
    from resnet_course.training.checkpoints import save_checkpoint

    fit(model(), loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, progress=False, callback=lambda h: True)
    ckpt = read_checkpoint(tmp_path / "last.pt")
    del ckpt["config"]["lr_factors"]
    save_checkpoint(ckpt, tmp_path / "last.pt")
    h = fit(model(), loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)
    assert len(h) == 2
    with pytest.raises(ValueError, match=r"lr_factors=\{\} there"):
        fit(
            model(),
            loaders()[0],
            None,
            cfg(epochs=2, lr_factors={"fc.": 2.0}),
            out_dir=tmp_path,
            resume=True,
            progress=False,
        )


def test_resume_with_another_number_of_processes_is_refused(tmp_path: Path) -> None:
    """A run of a 2-process DDP job, resumed by one process: the shards and the global batch would differ."""
    from resnet_course.training.checkpoints import update_checkpoint

    fit(model(), loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, progress=False, callback=lambda h: True)
    update_checkpoint(tmp_path / "last.pt", world_size=2)
    with pytest.raises(
        ValueError, match=r"trained by 2 process\(es\) and this one has 1; resume with the same"
    ):
        fit(model(), loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    fit(model(), loaders()[0], None, cfg(epochs=1), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume.*epochs=1 there, 2 now"):
        fit(model(), loaders()[0], None, cfg(epochs=2), out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="does not fit the given model"):
        fit(
            create("resnet32", num_classes=4),
            loaders()[0],
            None,
            cfg(epochs=1),
            out_dir=tmp_path,
            resume=True,
            progress=False,
        )


def test_nan_loss_stops_with_advice_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    m = model()
    calls = {"n": 0}

    def poison(module, inputs, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] > 6:  # from epoch 2 on
                return output * float("nan")
        return output

    m.register_forward_hook(poison)
    with pytest.raises(
        TrainingDiverged, match=r"epoch 2, batch 1.*last good epoch.*lower learning rate.*normalised"
    ):
        fit(m, loaders()[0], None, cfg(), out_dir=tmp_path, progress=False)
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    loaded, _ = load_checkpoint(tmp_path / "last.pt")
    assert all(torch.isfinite(p).all() for p in loaded.parameters())


# ---------------------------------------------------------------------------------------------- one home per knob


def test_the_device_is_resolved_once_when_the_config_is_made() -> None:
    assert TrainConfig(device="auto").device in ("cpu", "cuda", "mps")
    assert TrainConfig(device=torch.device("cpu")).device == "cpu"
    assert TrainConfig(device="cpu").torch_device == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="invalid TrainConfig: device 'cuda' was requested"):
            TrainConfig(device="cuda")
    c = cfg()
    assert c.uses_channels_last() and c.autocast_dtype() is None
    assert (
        cfg(amp=True).autocast_dtype() == torch.bfloat16 and not cfg(channels_last=False).uses_channels_last()
    )


def test_imports_flow_one_way_from_the_config() -> None:
    import subprocess
    import sys

    code = (
        "import sys, resnet_course.training.schedules, resnet_course.training.optimizers; "
        "bad = [m for m in ('resnet_course.training.engine', 'resnet_course.training.runstate') if m in sys.modules]; "
        "assert not bad, bad"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import resnet_course.training.config as config_module

    assert not hasattr(config_module, "build_schedule")


# ---------------------------------------------------------------------------------------------- test metrics


def test_fit_with_a_test_loader_stores_the_final_models_test_metrics_everywhere(tmp_path: Path) -> None:
    m = model()
    train, val = loaders()
    test = DataLoader(data(24, seed=2), batch_size=8)
    h = fit(m, train, val, cfg(epochs=3, lr=0.05), test_loader=test, out_dir=tmp_path, progress=False)
    expected = evaluate(m, test)
    assert h.extra["test"] == {
        "accuracy": expected["accuracy"],
        "loss": pytest.approx(expected["loss"]),
        "n": 24,
        "epoch": 3,
    }
    assert History.from_json(tmp_path / "history.json").extra["test"]["n"] == 24
    last, best = read_checkpoint(tmp_path / "last.pt"), read_checkpoint(tmp_path / "best.pt")
    for ckpt in (last, best):
        assert ckpt["metrics"]["test_accuracy"] == expected["accuracy"]
        assert ckpt["metrics"]["test_n"] == 24 and ckpt["metrics"]["test_of_epoch"] == 3
    assert best["epoch"] == h.best_epoch and last["epoch"] == 3
    if h.best_epoch != 3:  # best.pt keeps the best epoch's weights
        assert not all(torch.equal(best["state_dict"][k], last["state_dict"][k]) for k in last["state_dict"])
    # resuming the finished run trains nothing, tests again, and keeps the weights
    h2 = fit(
        model(),
        train,
        val,
        cfg(epochs=3, lr=0.05),
        test_loader=test,
        out_dir=tmp_path,
        resume=True,
        progress=False,
    )
    assert h2.epoch == [1, 2, 3] and h2.extra["test"]["accuracy"] == expected["accuracy"]
    again = read_checkpoint(tmp_path / "best.pt")
    assert all(torch.equal(again["state_dict"][k], best["state_dict"][k]) for k in best["state_dict"])
    assert again["metrics"]["test_accuracy"] == expected["accuracy"]


def test_an_interrupted_run_is_not_tested(tmp_path: Path) -> None:
    test = DataLoader(data(24, seed=2), batch_size=8)
    h = fit(
        model(),
        loaders()[0],
        None,
        cfg(epochs=2),
        test_loader=test,
        out_dir=tmp_path,
        progress=False,
        callback=lambda h: True,
    )
    assert h.interrupted and "test" not in h.extra
    assert read_checkpoint(tmp_path / "last.pt")["metrics"] == {}


def test_amp_auto_is_on_exactly_where_mixed_precision_is_native(monkeypatch: pytest.MonkeyPatch) -> None:
    import resnet_course.training.config as config_module

    monkeypatch.setattr(config_module, "native_mixed_precision", lambda device: True)
    on = TrainConfig(amp="auto", device="cpu")
    assert on.amp is True and on.autocast_dtype() == torch.bfloat16
    assert on.amp_choice().startswith("bf16 mixed precision (native on this CPU")
    monkeypatch.setattr(config_module, "native_mixed_precision", lambda device: False)
    off = TrainConfig(amp="auto", device="cpu")
    assert off.amp is False and off.autocast_dtype() is None and off.to_dict()["amp"] is False
    assert off.amp_choice() == "fp32 (no native bf16/fp16 arithmetic on this CPU)"
    forced = TrainConfig(amp=True, device="cpu")
    assert "NOT native on this CPU: expect it slower than fp32" in forced.amp_choice()
    with pytest.raises(ValueError, match="amp must be True, False or 'auto', got 'yes'"):
        TrainConfig(amp="yes")


def test_a_run_whose_files_cannot_be_written_fails_and_says_why(tmp_path: Path) -> None:
    (tmp_path / "best.pt").mkdir()  # best.pt cannot be written there
    with pytest.raises(OSError):
        fit(model(), loaders()[0], None, cfg(epochs=1), out_dir=tmp_path, progress=False)


def test_files_are_on_disk_when_the_callback_runs(tmp_path: Path) -> None:
    epochs_on_disk = []

    def look(history) -> None:
        epochs_on_disk.append(read_checkpoint(tmp_path / "last.pt")["epoch"])

    fit(model(), *loaders(), cfg(epochs=2), out_dir=tmp_path, progress=False, callback=look)
    assert epochs_on_disk == [1, 2]


def test_summary_names_only_what_differs_from_the_defaults() -> None:
    assert TrainConfig().summary() == "TrainConfig() (all default)"
    line = TrainConfig(epochs=3, lr=0.1, channels_last=False).summary()
    assert line == "TrainConfig(epochs=3, lr=0.1, channels_last=False; the rest default)"


_KILLED_WRITE = """
import os, sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from test_training import cfg, loaders, model
from resnet_course.training import checkpoints
from resnet_course.training.engine import fit

out, target, at_call, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[5])
calls = {"n": 0}
write = checkpoints.write_atomically

def killed_mid_write(path, body):
    if Path(path).name == target:
        calls["n"] += 1
        if calls["n"] == at_call:  # half a temporary file, then the process dies as under kill -9
            Path(path).with_name(f".{target}.{os.getpid()}.0badf00d.tmp").write_bytes(b"half a checkpoint")
            os._exit(137)
    return write(path, body)

checkpoints.write_atomically = killed_mid_write
fit(model(), *loaders(), cfg(epochs=epochs), out_dir=out, resume=True, progress=False)
"""


@pytest.mark.parametrize(("target", "at_call", "epochs"), [("best.pt", 1, 1), ("last.pt", 2, 3)])
def test_best_and_last_survive_a_kill_during_their_write_and_resume_restores_both(
    tmp_path: Path, target: str, at_call: int, epochs: int
) -> None:
    """kill -9 during best.pt's write in a one-epoch run (no later epoch could write it again) or during last.pt's
    second write: after ``resume`` both files exist, load, and the run equals an uninterrupted one; the dead
    writer's temporary file is gone."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    tests = str(Path(__file__).parent)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITE, str(out), target, str(at_call), tests, str(epochs)],
        env=env,
        timeout=120,
    )
    assert killed.returncode == 137
    assert list(out.glob(f".{target}.*.tmp")), "the simulated kill left no temporary file"
    resumed = model()
    history = fit(resumed, *loaders(), cfg(epochs=epochs), out_dir=out, resume=True, progress=False)
    straight = model()
    fit(straight, *loaders(), cfg(epochs=epochs), out_dir=tmp_path / "straight", progress=False)
    assert same_weights(straight, resumed) and len(history) == epochs
    best, last = read_checkpoint(out / "best.pt"), read_checkpoint(out / "last.pt")
    assert last["epoch"] == epochs and best["epoch"] == history.best_epoch
    assert sorted(p.name for p in out.iterdir()) == [".lock", "best.pt", "history.json", "last.pt"]


def test_ctrl_c_in_the_final_evaluation_is_honoured_and_resume_runs_the_evaluation(tmp_path: Path) -> None:
    class Interrupted:
        def __len__(self) -> int:
            return 1

        def __iter__(self):
            raise KeyboardInterrupt

    train, val = loaders()
    with pytest.raises(
        KeyboardInterrupt, match=r"after the last epoch, in the final evaluation; .*last\.pt holds"
    ):
        fit(model(), train, val, cfg(epochs=1), test_loader=Interrupted(), out_dir=tmp_path, progress=False)
    history = fit(
        model(), train, val, cfg(epochs=1), test_loader=val, out_dir=tmp_path, resume=True, progress=False
    )
    assert len(history) == 1 and history.extra["test"]["n"] == 16
    assert read_checkpoint(tmp_path / "last.pt")["metrics"]["test_n"] == 16
