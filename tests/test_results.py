"""Tests of the lesson results that notebooks record for benchmarks/lessons.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from resnet_course.results import read_results, record_result, results_dir


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_COURSE_DATA", str(tmp_path))


def test_record_and_read_back_json_friendly_values(tmp_path):
    values = {"acc": np.float32(0.5), "per_net": {"plain20": torch.tensor(0.25)}, "seeds": (1, 2), "ok": True}
    path = record_result("01", values, profile="cpu", seed=2, dataset="cifar10")
    assert path == results_dir() / "01-cpu-seed2.json" and path.parent == tmp_path / "results"
    record = json.loads(path.read_text())
    assert record["values"] == {"acc": 0.5, "per_net": {"plain20": 0.25}, "seeds": [1, 2], "ok": True}
    assert record["seed"] == 2 and record["dataset"] == "cifar10" and record["date"]
    record_result("01", {"acc": 0.7}, profile="cpu", seed=0, dataset="cifar10")
    record_result("05", {"acc": 0.6}, profile="smoke", seed=0, dataset="shapes10")
    assert [r["seed"] for r in read_results("01", "cpu")] == [0, 2]  # sorted by seed
    assert [r["notebook"] for r in read_results(profile="smoke")] == ["05"]
    assert not list(tmp_path.joinpath("results").glob("*.tmp"))  # written atomically


def test_a_second_record_for_the_same_run_replaces_the_first():
    record_result("05", {"acc": 0.1}, profile="cpu", seed=0, dataset="cifar10")
    record_result("05", {"acc": 0.2}, profile="cpu", seed=0, dataset="cifar10")
    assert [r["values"]["acc"] for r in read_results("05")] == [0.2]


def test_bad_input_says_what_was_wrong():
    with pytest.raises(ValueError, match="numbers, strings, lists and dicts"):
        record_result("01", {"model": object()}, profile="cpu", seed=0, dataset="cifar10")
    with pytest.raises(ValueError, match="short name"):
        record_result("../01", {}, profile="cpu", seed=0, dataset="cifar10")
    assert read_results("09") == []
