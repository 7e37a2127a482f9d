"""The whole course on the real data paths, with data the tests write: every notebook runs top to bottom in the
smoke profile

* on **CIFAR-10** found on disk (``RESNET_COURSE_DATASET=cifar10``, the five training batches and the test
  batch in CIFAR-10's pickle format, random images), i.e. the path a class with the real dataset takes;
* on **a teacher's own ImageFolder** (``RESNET_COURSE_DATASET=<folder>``: 5 classes, not 10; 48-px images,
  not 32; a class name with a space);

and no notebook falls back to the offline stand-in ``shapes10``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_notebook, used_stand_in, write_tiny_cifar

pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FOLDER_CLASSES = ["Circle", "Triangle", "Star", "Diamond", "Checker board"]


@pytest.fixture(scope="module")
def cifar10_course(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Smoke profile on a CIFAR-10 folder large enough for its sizes (1,200 training, 600 test images)."""
    data = tmp_path_factory.mktemp("cifar_course")
    write_tiny_cifar(data, per_class_per_batch=24, test_per_class=60)
    return {"RESNET_COURSE_PROFILE": "smoke", "RESNET_COURSE_DATASET": "cifar10", "RESNET_COURSE_DATA": str(data)}


@pytest.fixture(scope="module")
def folder_course(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Smoke profile on a teacher's ImageFolder; one data folder for the module's notebooks (run in course order,
    so 06, 07 and 10 find notebook 05's checkpoint as in class)."""
    from resnet_course.data.imagefolder import write_image_folder
    from resnet_course.data.shapes10 import make_shapes10

    root = tmp_path_factory.mktemp("folder_course")
    images = make_shapes10(300, seed=7).select_classes([0, 2, 5, 7, 9])
    images.classes = list(FOLDER_CLASSES)
    folder = write_image_folder(images, root / "my_images", image_size=48)
    return {"RESNET_COURSE_PROFILE": "smoke", "RESNET_COURSE_DATASET": str(folder),
            "RESNET_COURSE_DATA": str(root / "data")}


def uses_course_data(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    return "load_data" in "".join(c.source for c in nb.cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_cifar10_from_disk(path: Path, cifar10_course: dict, monkeypatch) -> None:
    text = run_notebook(path, cifar10_course, monkeypatch)
    assert not used_stand_in(text), "the notebook used the offline stand-in although CIFAR-10 was on disk"
    if uses_course_data(path):
        assert "cifar10" in text or "CIFAR-10" in text or "airplane" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_a_teachers_imagefolder(path: Path, folder_course: dict, monkeypatch) -> None:
    text = run_notebook(path, folder_course, monkeypatch)
    if path.name.startswith("08"):  # the target task is the teacher's folder; the source model is the course's
        assert "Checker board" in text
    elif uses_course_data(path):
        assert not used_stand_in(text), "the notebook used the stand-in, not the folder"
