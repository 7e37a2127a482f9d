"""Tests of the size profiles and the data directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from resnet_course import profiles
from resnet_course.models import list_models
from resnet_course.profiles import PROFILES, Profile, data_dir, get_profile


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("RESNET_COURSE_PROFILE", "RESNET_COURSE_DATASET"):
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


def test_profile_is_frozen_and_prints_its_knobs():
    p = get_profile("cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.epochs = 1
    text = str(p)
    for f in dataclasses.fields(Profile):
        if f.name != "chosen_by":
            assert f.name in text
    assert "resnet20" in text and "plain20, plain32" in text
    assert p.replace(epochs=1).epochs == 1 and p.epochs == 8


def test_selection_by_environment_and_hardware(monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_PROFILE", "smoke")
    assert get_profile().name == "smoke" and "RESNET_COURSE_PROFILE" in get_profile().chosen_by
    assert get_profile("gpu").name == "gpu"  # an explicit name wins
    monkeypatch.delenv("RESNET_COURSE_PROFILE")
    monkeypatch.setattr(profiles, "accelerator_available", lambda: True)
    assert get_profile().name == "gpu"
    monkeypatch.setattr(profiles, "accelerator_available", lambda: False)
    assert get_profile().name == "cpu"


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


def test_short_run_knobs_and_cpu_degradation_budget():
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    assert (smoke.short_epochs, smoke.short_train_size) == (1, 500)
    assert (cpu.short_epochs, cpu.short_train_size) == (3, 4_000)
    assert (gpu.short_epochs, gpu.short_train_size) == (15, None)
    # notebook 01 took ~9 min in the cpu profile; these sizes aim at ~5 min
    assert (cpu.degradation_epochs, cpu.degradation_train_size) == (4, 3_000)
