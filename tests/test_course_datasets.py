"""The course's notebooks on each kind of data a class brings.

* **the offline stand-in** ``shapes10``: the README's nbval run (every notebook, solutions in place);
* **a teacher's own ImageFolder** (``RESNET_COURSE_DATASET=<folder>``: 5 classes, 48-px images, a class name with a
  space): ``test_nbgrader.py`` autogrades the unanswered student copy of every notebook on it, so each notebook
  runs top to bottom there without falling back to the stand-in;
* **CIFAR-10 found on disk** in the dataset's own pickle format (random images): here, the notebooks that say
  something about it: 00 (the environment report's CIFAR-10 row) and 04 (the data notebook). Every notebook loads
  its data through the same ``load_data(P.dataset, fallback=True)``, which ``test_data.py`` tests on these files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_notebook, used_stand_in, write_tiny_cifar

pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CIFAR_NOTEBOOKS = ["00_start_here", "04_cifar10_data"]


@pytest.fixture(scope="module")
def cifar_course(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Smoke profile with CIFAR-10 on disk in the course's data folder, at the smoke profile's sizes."""
    root = tmp_path_factory.mktemp("cifar_course")
    write_tiny_cifar(root, per_class_per_batch=24, test_per_class=60)
    return {"RESNET_COURSE_PROFILE": "smoke", "RESNET_COURSE_DATASET": "cifar10", "RESNET_COURSE_DATA": str(root)}


@pytest.mark.parametrize("name", CIFAR_NOTEBOOKS)
def test_notebook_runs_on_cifar10_from_disk_without_the_stand_in(name: str, cifar_course: dict, monkeypatch) -> None:
    text = run_notebook(NOTEBOOKS / f"{name}.ipynb", cifar_course, monkeypatch)
    assert not used_stand_in(text), "the notebook used the offline stand-in although CIFAR-10 was on disk"
    assert "airplane" in text or "CIFAR-10" in text
