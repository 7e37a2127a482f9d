"""The whole course on a teacher's own ImageFolder (``RESNET_COURSE_DATASET=<folder>``: 5 classes, not 10; 48-px
images, not 32; a class name with a space), with data the tests write: every notebook that loads the course's data
runs top to bottom in the smoke profile, and none falls back to the offline stand-in ``shapes10``.

The other real data path, CIFAR-10 found on disk in its own format, is run by ``test_nbgrader.py``'s autograding
(every notebook once, on that data); the stand-in itself by the README's nbval run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_notebook, used_stand_in

pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FOLDER_CLASSES = ["Circle", "Triangle", "Star", "Diamond", "Checker board"]


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


def reads_the_dataset(path: Path) -> bool:
    """It loads the course's data, or reports on it (00's environment report)."""
    source = "".join(c.source for c in nbformat.read(path, as_version=4).cells)
    return "load_data" in source or "DATASET_ENV" in source


DATA_NOTEBOOKS = [p for p in NOTEBOOKS if reads_the_dataset(p)]  # the others (02, 03) never see a dataset


@pytest.mark.parametrize("path", DATA_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_a_teachers_imagefolder(path: Path, folder_course: dict, monkeypatch) -> None:
    text = run_notebook(path, folder_course, monkeypatch)
    if path.name.startswith("08"):  # the target task is the teacher's folder; the source model is the course's
        assert "Checker board" in text
    elif uses_course_data(path):
        assert not used_stand_in(text), "the notebook used the stand-in, not the folder"
