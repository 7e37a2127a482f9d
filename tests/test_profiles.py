"""Tests of the size profiles and the data directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from resnet_course import profiles
from resnet_course.models.registry import list_models
from resnet_course.profiles import PROFILES, Profile, data_dir, get_profile


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("RESNET_COURSE_PROFILE", "RESNET_COURSE_DATASET", "RESNET_COURSE_SEED", "RESNET_COURSE_AMP"):
        monkeypatch.delenv(name, raising=False)


def test_three_profiles_with_sane_sizes():
    assert set(PROFILES) == {"smoke", "cpu", "gpu"}
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    assert smoke.dataset == "shapes10" and cpu.dataset == gpu.dataset == "cifar10"
    assert gpu.model == "resnet18" and cpu.model == smoke.model == "resnet20"
    assert gpu.train_size is None and gpu.epochs >= 30 and gpu.batch_size == 512
    assert set(gpu.degradation_models) == {"plain20", "plain56", "resnet20", "resnet56"}
    assert smoke.train_size < cpu.train_size
    assert smoke.epochs <= cpu.epochs <= gpu.epochs
    models = set(list_models())
    for p in PROFILES.values():
        assert p.model in models and set(p.degradation_models) <= models
        assert all(f"plain{d}" in models and f"resnet{d}" in models for d in p.gradient_depths)
        assert 0 <= p.val_fraction < 1


def test_profile_is_frozen_sums_itself_up_in_two_lines_and_lists_every_knob():
    p = get_profile("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.epochs = 1
    text = p.table()
    for f in dataclasses.fields(Profile):
        if f.name != "chosen_by":
            assert f.name in text
    assert "resnet20" in text and "plain20, plain32" in text
    short = str(p).splitlines()  # what every notebook's parameters cell prints
    assert len(short) == 2 and short[0].startswith("Profile 'cpu' (requested")
    assert (
        f"{p.train_size} training / {p.test_size} test images; resnet20, {p.epochs} epochs, batch 64"
        in short[1]
    )
    assert "all training" in str(PROFILES["gpu"]) and "0.1 × batch/128" in str(PROFILES["gpu"])
    assert p.replace(epochs=1).epochs == 1 and p.epochs == PROFILES["cpu"].epochs > 1


def test_selection_by_environment_and_hardware(monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    assert get_profile().name == "smoke" and "RESNET_COURSE_PROFILE" in get_profile().chosen_by
    assert get_profile("gpu").name == "gpu"  # an explicit name wins
    monkeypatch.delenv("RESNET_COURSE_PROFILE")
    for kind, gib, expected, why in [
        ("cuda", 80.0, "gpu", "auto: CUDA GPU with 80 GiB"),
        ("cuda", 8.0, "gpu", "auto: CUDA GPU with 8 GiB"),
        ("cuda", 4.0, "cpu", "under the 8 GiB the gpu profile is sized for"),
        ("mps", None, "cpu", "Apple GPU (MPS)"),
        ("cpu", None, "cpu", "auto: no GPU found"),
    ]:
        monkeypatch.setattr(profiles, "accelerator_kind", lambda kind=kind, gib=gib: (kind, gib))
        chosen = get_profile()
        assert chosen.name == expected and why in chosen.chosen_by, (kind, gib, chosen.chosen_by)


def test_unknown_profile_lists_the_valid_ones(monkeypatch):
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        get_profile("laptop")
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="'fast'.*smoke, cpu, gpu"):
        get_profile()


def test_dataset_override(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_DATASET", "shapes10")
    assert get_profile("gpu").dataset == "shapes10"
    monkeypatch.setenv("RESNET_COURSE_DATASET", "CIFAR10")
    assert get_profile("smoke").dataset == "cifar10"
    monkeypatch.setenv("RESNET_COURSE_DATASET", str(tmp_path))
    assert get_profile("cpu").dataset == str(tmp_path.resolve())
    monkeypatch.setenv("RESNET_COURSE_DATASET", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="RESNET_COURSE_DATASET.*neither"):
        get_profile("cpu")


def test_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path / "d"))
    assert data_dir() == tmp_path / "d"
    monkeypatch.delenv("RESNET_COURSE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data_dir() == tmp_path / "cache" / "resnet_course"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_dir() == Path.home() / ".cache" / "resnet_course"


def test_knobs_grow_from_smoke_to_cpu_to_gpu_and_subsets_fit_inside_the_data():
    """Every epoch/size knob is at least as large in cpu as in smoke and in gpu as in cpu (None = all data);
    the subset knobs never ask for more images than the profile's training set; switches are off in smoke."""

    def size(v):
        return float("inf") if v is None else v

    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    knobs = [
        "train_size",
        "test_size",
        "epochs",
        "degradation_epochs",
        "degradation_train_size",
        "transfer_train_size",
        "transfer_epochs",
        "transfer_source_epochs",
        "tricks_epochs",
        "tricks_train_size",
        "short_epochs",
        "short_train_size",
        "n_seeds",
        "transfer_image_size",
        "benchmark_images",
    ]
    for knob in knobs:
        values = [size(getattr(p, knob)) for p in (smoke, cpu, gpu)]
        assert values == sorted(values), f"{knob}: {values}"
    for p in (smoke, cpu, gpu):
        for knob in ("degradation_train_size", "tricks_train_size", "short_train_size"):
            assert size(getattr(p, knob)) <= size(p.train_size) or p.train_size is None, (p.name, knob)
        assert p.tricks_noise_seeds >= 2  # a spread needs two runs at least
    assert (
        not smoke.download_weights and not smoke.transfer_resnet50
    )  # CI never downloads or trains ResNet-50
    assert gpu.transfer_resnet50 and gpu.model == "resnet18"


def test_profiles_table_lists_every_knob_per_profile():
    from resnet_course.profiles import profiles_table

    table = profiles_table()
    assert list(table.columns) == ["smoke", "cpu", "gpu"]
    assert "name" not in table.index and "tricks_train_size" in table.index
    assert table.loc["train_size", "gpu"] == "all" and table.loc["epochs", "smoke"] == "2"
    assert table.loc["degradation_models", "gpu"] == "plain20, plain56, resnet20, resnet56"
    assert table.loc["lr", "gpu"] == "0.1 × batch/128" and table.loc["amp", "smoke"] == "off (fp32)"
    assert list(profiles_table(["cpu"]).columns) == ["cpu"]
    with pytest.raises(ValueError, match="unknown profile"):
        profiles_table(["laptop"])


def test_seed_environment_variable_replaces_the_base_seed(monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_SEED", "3")
    p = get_profile("cpu")
    assert p.seed == 3 and "RESNET_COURSE_SEED=3" in p.chosen_by
    for bad in ("-1", "1.5", "²", str(2**32)):
        monkeypatch.setenv("RESNET_COURSE_SEED", bad)
        with pytest.raises(ValueError, match="non-negative integer below"):
            get_profile("cpu")


def test_mixed_precision_is_on_where_native_and_can_be_forced(monkeypatch):
    monkeypatch.setattr(profiles, "native_mixed_precision", lambda: True)
    assert get_profile("cpu").amp and get_profile("gpu").amp
    assert "native" in get_profile("cpu").chosen_by
    assert not get_profile("smoke").amp  # CI gives the same numbers on every machine
    monkeypatch.setattr(profiles, "native_mixed_precision", lambda: False)
    assert not get_profile("cpu").amp and not get_profile("gpu").amp
    monkeypatch.setenv("RESNET_COURSE_AMP", "on")
    assert get_profile("smoke").amp and get_profile("cpu").amp
    monkeypatch.setenv("RESNET_COURSE_AMP", "off")
    monkeypatch.setattr(profiles, "native_mixed_precision", lambda: True)
    assert not get_profile("cpu").amp and "RESNET_COURSE_AMP=off" in get_profile("cpu").chosen_by
    monkeypatch.setenv("RESNET_COURSE_AMP", "bf16")
    with pytest.raises(ValueError, match="auto, on, off"):
        get_profile("cpu")


def test_cpu_profile_trains_on_at_most_5000_images_and_the_degradation_recipe_is_consistent():
    cpu, gpu = PROFILES["cpu"], PROFILES["gpu"]
    for knob in ("train_size", "degradation_train_size", "tricks_train_size", "short_train_size"):
        assert getattr(cpu, knob) <= 5000, knob  # what is measured on the real subset is what a student gets
    assert gpu.degradation_schedule == "multistep" and gpu.degradation_augment  # He et al.'s setting
    for p in PROFILES.values():
        assert p.degradation_schedule in ("multistep", "onecycle") and p.degradation_lr > 0
