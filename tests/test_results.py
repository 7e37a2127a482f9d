"""Tests of the lesson results that notebooks record for benchmarks/lessons.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_course.profiles import get_profile
from resnet_course.results import read_results, record_result, results_dir


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))
    monkeypatch.delenv("RESNET_COURSE_RESULTS", raising=False)


def test_record_and_read_back_json_friendly_values_with_the_profile(tmp_path):
    cpu = get_profile("cpu").replace(seed=2)
    values = {
        "acc": np.float32(0.5),
        "per_net": {"plain20": torch.tensor(0.25)},
        "seeds": (1, 2),
        "ok": True,
        "curve": np.array([0.5, 0.25]),
        "weights": torch.tensor([1.0, 2.0]),
    }
    path = record_result("01", values, profile=cpu, dataset="cifar10")
    assert path == results_dir() / "01-cpu-seed2.json" and path.parent == tmp_path / "results"
    record = json.loads(path.read_text())
    assert record["values"] == {
        "acc": 0.5,
        "per_net": {"plain20": 0.25},
        "seeds": [1, 2],
        "ok": True,
        "curve": [0.5, 0.25],
        "weights": [1.0, 2.0],
    }
    assert record["seed"] == 2 and record["dataset"] == "cifar10" and record["date"]
    assert record["settings"]["epochs"] == cpu.epochs and record["settings"]["amp"] == cpu.amp
    assert record["settings"]["degradation_models"] == list(cpu.degradation_models)
    record_result("01", {"acc": 0.7}, profile=cpu.replace(seed=0), dataset="cifar10")
    record_result("05", {"acc": 0.6}, profile=get_profile("smoke"), dataset="shapes10")
    assert [r["seed"] for r in read_results("01", "cpu")] == [0, 2]  # sorted by seed
    assert [r["notebook"] for r in read_results(profile="smoke")] == ["05"]


def test_a_second_record_for_the_same_run_replaces_the_first_atomically(monkeypatch):
    cpu = get_profile("cpu")
    record_result("05", {"acc": 0.1}, profile=cpu, dataset="cifar10")
    import re

    from resnet_course import atomic

    replaced = []
    real_replace = atomic.os.replace
    monkeypatch.setattr(
        atomic.os,
        "replace",
        lambda src, dst: replaced.append((Path(src).name, Path(dst).name)) or real_replace(src, dst),
    )
    record_result("05", {"acc": 0.2}, profile=cpu, dataset="cifar10")
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    # written to a new temporary file, then renamed over the old one
    ((tmp, target),) = replaced
    assert re.fullmatch(r"\.05-cpu-seed0\.json\.\d+\.[0-9a-f]{8}\.tmp", tmp) and target == "05-cpu-seed0.json"
    assert [r["values"]["acc"] for r in read_results("05")] == [0.2]


def test_the_folder_can_be_moved_for_runs_that_must_not_overwrite_the_records(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_RESULTS", str(tmp_path / "elsewhere"))
    path = record_result("09", {"acc": 0.3}, profile=get_profile("cpu"), dataset="cifar10")
    assert path.parent == tmp_path / "elsewhere" and not (tmp_path / "results").exists()


def test_bad_input_says_what_was_wrong():
    cpu = get_profile("cpu")
    with pytest.raises(ValueError, match="numbers, strings, lists and dicts"):
        record_result("01", {"model": object()}, profile=cpu, dataset="cifar10")
    with pytest.raises(ValueError, match="short name"):
        record_result("../01", {}, profile=cpu, dataset="cifar10")
    assert read_results("09") == []
