"""The whole course on a teacher's own images: every notebook runs top to bottom in the smoke profile with
``RESNET_COURSE_DATASET`` pointing at an ImageFolder the test writes — 5 classes (not CIFAR-10's 10), 48-px
images (not 32), a class name with a space — and no notebook falls back to the offline stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CLASSES = ["Circle", "Triangle", "Star", "Diamond", "Checker board"]


@pytest.fixture(scope="module")
def teacher_course(tmp_path_factory: pytest.TempPathFactory):
    """Environment for the kernels: smoke profile, the teacher's ImageFolder, and one data folder shared by the
    module's notebooks (run in course order, so 06, 07 and 10 find notebook 05's checkpoint as in class)."""
    from resnet_course.data import write_image_folder
    from resnet_course.shapes import make_shapes10

    root = tmp_path_factory.mktemp("teacher")
    images = make_shapes10(300, seed=7).select_classes([0, 2, 5, 7, 9])
    images.classes = list(CLASSES)
    folder = write_image_folder(images, root / "my_images", image_size=48)
    return {"RESNET_COURSE_PROFILE": "smoke", "RESNET_COURSE_DATASET": str(folder),
            "RESNET_COURSE_DATA": str(root / "data")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_a_teachers_imagefolder(path: Path, teacher_course: dict, monkeypatch) -> None:
    for key, value in teacher_course.items():
        monkeypatch.setenv(key, value)  # the kernel inherits the environment
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, when a cell fails
    text = "\n".join(
        "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/markdown", ""))
        for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    if path.name.startswith("08"):  # the target task is the teacher's folder; its source model is the course's
        assert "Checker board" in text
    elif "load_data" in "".join(c.source for c in nb.cells):
        assert "shapes10" not in text.replace("my_images", ""), "the notebook used the stand-in, not the folder"
