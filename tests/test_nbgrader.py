"""nbgrader on the course (docs/TEACHING.md): the notebooks are valid nbgrader source notebooks, and autograding
gives full marks to the solutions, zero to unanswered student copies and to a wrong answer, and nothing else.

Full marks for the solutions is shown in two parts, so that CI runs each notebook once less: the README's test
command runs every source notebook (solutions in place) under nbval, where a check cell that fails is an error;
and here a submission of notebook 05 with one wrong answer gets full points for its three right ones.

The course's notebooks on each kind of data a class brings:

* **the offline stand-in** ``shapes10``: the README's nbval run (every notebook, solutions in place);
* **a teacher's own ImageFolder** (``RESNET_COURSE_DATASET=<folder>``: 5 classes, 48-px images, a class name with a
  space; ``conftest.write_teacher_folder``): the unanswered copies are autograded on it, and since no cell but the
  exercises' checks may fail, they show that every notebook runs on such a folder without falling back to the
  stand-in;
* **CIFAR-10 found on disk** in the dataset's own pickle format (random images): the wrong submission of 05.

The autograding (about five minutes alone, on one core) runs in a background thread that ``conftest.py`` starts
after collection, while the other tests run.

nbgrader itself runs, in a temporary course directory configured by ``docs/nbgrader_config.py``, one
assignment per notebook (as a teacher would release them week by week), in the smoke profile.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import nbformat
import pytest
from conftest import outputs_text, used_stand_in, write_teacher_folder, write_tiny_cifar

pytest.importorskip("nbgrader")
from nbgrader.api import Gradebook  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ASSIGNMENTS = [nb.stem for nb in NOTEBOOKS]
WRONG = "05_training_resnet18"  # four exercises: the wrong answer must cost exactly one of them
WRONG_TASK = "model_selection_split"


def _nbgrader_cells(path: Path) -> list[tuple[int, dict]]:
    nb = nbformat.read(path, as_version=4)
    return [(i, c.metadata["nbgrader"]) for i, c in enumerate(nb.cells) if "nbgrader" in c.metadata]


def _tasks(path: Path) -> dict[str, float]:
    """{solution grade_id: points of its test cell} of one notebook."""
    cells = _nbgrader_cells(path)
    return {
        meta["grade_id"]: cells[k + 1][1]["points"] for k, (_, meta) in enumerate(cells) if meta["solution"]
    }


def _nbgrader(course: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {
        "RESNET_COURSE_PROFILE": "smoke",
        "RESNET_COURSE_DATA": str(course / "data"),  # the notebooks' data, runs and results, apart from the tests'
        "RESNET_COURSE_DATASET": str(course / "my_images"),  # the teacher's folder (the graded fixture writes it)
        "TORCH_HOME": str(course / "torch"),  # torch hub's cache: ImageNet weights for 08 (the fixture writes them)
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "[ERROR]" not in proc.stderr, proc.stderr[-6000:]
    return proc


# --------------------------------------------------------------------------------------------------
# The metadata, without running anything
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ASSIGNMENTS)
def test_every_exercise_is_an_autograded_answer_followed_by_its_test(path):
    nb = nbformat.read(path, as_version=4)
    cells = _nbgrader_cells(path)
    ids = [meta["grade_id"] for _, meta in cells]
    assert len(ids) == len(set(ids)), f"grade_ids must be unique in a notebook: {ids}"
    for i, cell in enumerate(nb.cells):
        if "BEGIN SOLUTION" in cell.source:  # nbgrader only clears solution regions in solution cells
            assert cell.metadata.get("nbgrader", {}).get("solution"), (
                f"cell {i} has a solution but no metadata"
            )
    for k, (i, meta) in enumerate(cells):
        if meta["solution"]:
            assert nb.cells[i].cell_type == "code" and not meta["grade"] and not meta["locked"]
            j, test = cells[k + 1]
            assert j == i + 1, "the check cell follows its answer cell"
            assert test["grade"] and test["locked"] and not test["solution"] and test["points"] > 0
            assert test["grade_id"] == meta["grade_id"] + "-check"
            assert "check_" in nb.cells[j].source, "a test cell calls a check from resnet_course.checks"
            # the exercise's heading states its points, as the metadata does
            heading = next(
                c.source for c in reversed(nb.cells[:i]) if c.cell_type == "markdown" and "point" in c.source
            )
            word = "point" if test["points"] == 1 else "points"
            assert f"({test['points']} {word})" in heading, heading[:200]
        else:
            assert meta["grade"], "every other nbgrader cell is a test cell right after an answer"
            assert cells[k - 1][1]["solution"]


def test_every_exercise_of_the_course_is_graded_and_listed_for_teachers():
    tasks = {path.stem: _tasks(path) for path in NOTEBOOKS}
    assert sum(len(t) for t in tasks.values()) == 17
    assert all(tasks[a] for a in ASSIGNMENTS if not a.startswith("00_"))  # every lesson has an exercise
    # docs/TEACHING.md's table: each notebook's grade ids and points, and the total
    teaching = (REPO / "docs" / "TEACHING.md").read_text()
    listed = {}
    for row in teaching.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if row.startswith("| ") and len(cells) == 3 and cells[0].isdigit():
            ids = [i.strip(" `") for i in cells[1].split(",")]
            listed[cells[0]] = dict(zip(ids, [float(p) for p in cells[2].split("+")], strict=True))
    assert listed == {a[:2]: {k: v for k, v in t.items()} for a, t in tasks.items() if t}
    total = sum(sum(t.values()) for t in tasks.values())
    assert f"{total:g} points in all" in teaching


# --------------------------------------------------------------------------------------------------
# nbgrader itself: generate, submit, collect, autograde, feedback
# --------------------------------------------------------------------------------------------------


def _cache_imagenet_weights(torch_home: Path) -> Path:
    """Random weights in the real format where torch hub keeps ``ResNet18_Weights.IMAGENET1K_V1``: notebook 08
    then takes its pretrained branch, which CI cannot download for."""
    import torch
    from torchvision.models import ResNet18_Weights

    from resnet_course.models.registry import create

    file = torch_home / "hub" / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    file.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(create("resnet18").state_dict(), file)
    return file


def _grade(course: Path) -> None:
    """generate_assignment, then the autograding of two students' submissions: ``unanswered`` (the student
    versions as released, every notebook, on the teacher's folder) and ``wrong`` (notebook 05's solutions with one
    answer wrong, on CIFAR-10 found on disk: the notebooks' other real data path)."""
    _nbgrader(course, "generate_assignment", "*", "--create")
    for path in NOTEBOOKS:
        dest = course / "submitted" / "unanswered" / path.stem
        dest.mkdir(parents=True)
        shutil.copy(course / "release" / path.stem / path.name, dest / path.name)
    wrong = nbformat.read(course / "source" / WRONG / f"{WRONG}.ipynb", as_version=4)
    (cell,) = [c for c in wrong.cells if c.metadata.get("nbgrader", {}).get("grade_id") == WRONG_TASK]
    assert '"val"' in cell.source
    cell.source = cell.source.replace('"val"', '"test"')  # choosing on the test set: the lesson's trap
    (course / "submitted" / "wrong" / WRONG).mkdir(parents=True)
    nbformat.write(wrong, course / "submitted" / "wrong" / WRONG / f"{WRONG}.ipynb")
    _nbgrader(course, "autograde", "*", "--student", "unanswered", "--create", env=BACKGROUND_ENV)
    _nbgrader(course, "autograde", WRONG, "--student", "wrong", "--create", env=BACKGROUND_ENV | CIFAR_ENV)


# The autograding runs in a thread while the other tests run (conftest.py starts it after collection): its
# notebooks compute with one thread that sleeps while it waits, so that it uses the core the rest leaves idle.
BACKGROUND_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
CIFAR_ENV = {"RESNET_COURSE_DATASET": "cifar10"}  # read from course/data/cifar-10-batches-py
_BACKGROUND: dict[str, object] = {}


def start_grading() -> None:
    """Write the course directory and start :func:`_grade` in a thread (once)."""
    if _BACKGROUND:
        return
    course = Path(tempfile.mkdtemp(prefix="resnet_course_nbgrader_"))
    shutil.copy(REPO / "docs" / "nbgrader_config.py", course / "nbgrader_config.py")
    write_teacher_folder(course)  # course/my_images
    write_tiny_cifar(course / "data", per_class_per_batch=24, test_per_class=60)  # for the wrong submission
    _cache_imagenet_weights(course / "torch")
    for path in NOTEBOOKS:
        (course / "source" / path.stem).mkdir(parents=True)
        shutil.copy(path, course / "source" / path.stem / path.name)

    errors: dict[str, BaseException] = {}

    def run() -> None:  # each step's error is re-raised by the test that needs the step
        for name, step in (
            ("grade", _grade),
            ("feedback", lambda c: _nbgrader(c, "generate_feedback", WRONG, "--student", "wrong")),
            ("exchange", lambda c: _exchange(c / "exchange_cycle")),
        ):
            try:
                step(course)
            except BaseException as e:  # noqa: BLE001
                errors[name] = e

    thread = threading.Thread(target=run, name="nbgrader autograde", daemon=True)
    _BACKGROUND.update(course=course, thread=thread, errors=errors)
    thread.start()


@pytest.fixture(scope="module")
def background() -> tuple[Path, dict[str, BaseException]]:
    """The course directory and the errors of the background steps, once they have all run (started at
    collection by conftest.py; here when they were not)."""
    start_grading()
    _BACKGROUND["thread"].join()
    yield _BACKGROUND["course"], _BACKGROUND["errors"]
    shutil.rmtree(_BACKGROUND["course"], ignore_errors=True)


def _step(background: tuple[Path, dict[str, BaseException]], name: str) -> Path:
    course, errors = background
    needs = ["grade", name] if name == "feedback" else [name]  # feedback is for the graded submission
    for step in needs:
        if step in errors:
            raise errors[step]
    return course


@pytest.fixture(scope="module")
def graded(background) -> Path:
    """The course directory after :func:`_grade`."""
    return _step(background, "grade")


def _scores(course: Path, student: str, assignment: str) -> dict[str, tuple[float, float]]:
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(assignment, assignment, student)
        return {g.name.removesuffix("-check"): (g.score, g.max_score) for g in nb.grades if g.max_score}


def _errors(course: Path, student: str, assignment: str) -> list[tuple[int, str, str]]:
    """(cell index, grade_id or '', error name) of every cell of the autograded notebook that raised."""
    nb = nbformat.read(course / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
    return [
        (i, c.metadata.get("nbgrader", {}).get("grade_id", ""), o.ename)
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_autograding_unanswered_student_copies_gives_zero_and_no_other_error(graded, assignment):
    tasks = _tasks(REPO / "notebooks" / f"{assignment}.ipynb")
    assert _scores(graded, "unanswered", assignment) == {t: (0, p) for t, p in tasks.items()}
    errors = _errors(graded, "unanswered", assignment)
    failing = {gid.removesuffix("-check") for _, gid, _ in errors}
    assert failing == set(tasks), f"errors outside the exercises: {errors}"
    released = nbformat.read(graded / "release" / assignment / f"{assignment}.ipynb", as_version=4)
    assert "BEGIN SOLUTION" not in json.dumps(released.cells)
    assert all(not c.get("outputs") for c in released.cells if c.cell_type == "code")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_notebook_runs_on_a_teachers_folder_without_the_stand_in(graded, assignment):
    nb = nbformat.read(graded / "autograded" / "unanswered" / assignment / f"{assignment}.ipynb", as_version=4)
    text = outputs_text(nb)
    source = "".join(c.source for c in nb.cells)
    if assignment.startswith("08"):  # the target task is the teacher's folder; the source model is the course's
        assert "Checker board" in text
    elif "load_data" in source:
        assert not used_stand_in(text), "the notebook used the offline stand-in, not the teacher's folder"
        assert "Checker board" in text or "5 classes" in text


def test_notebook_08_takes_its_imagenet_branch_with_weights_in_the_cache(graded):
    """The pretrained path, which CI cannot download for (the README's nbval run shows the offline one): load the
    cached file strictly, ask the model about target images at 224 px, transfer ResNet-18."""
    name = "08_transfer_learning"
    text = outputs_text(nbformat.read(graded / "autograded" / "unanswered" / name / f"{name}.ipynb", as_version=4))
    assert "found in the cache: " in text and "resnet18-" in text
    assert "ImageNet ResNet-18 loaded into resnet_course.models.registry.resnet18 (strict=True)" in text
    assert "ImageNet top-3 =" in text  # the pretrained model was asked about target images
    assert "source: ImageNet-1k" in text
    assert "skipped: no ImageNet weights" not in text


def test_one_wrong_answer_costs_that_exercise_only_and_right_answers_get_full_marks(graded):
    tasks = _tasks(REPO / "notebooks" / f"{WRONG}.ipynb")
    expected = {t: (0 if t == WRONG_TASK else p, p) for t, p in tasks.items()}
    assert _scores(graded, "wrong", WRONG) == expected
    errors = _errors(graded, "wrong", WRONG)
    assert [(gid, name) for _, gid, name in errors] == [(f"{WRONG_TASK}-check", "ExerciseFailed")]
    # the student still sees the friendly message and hint above the failure
    nb = nbformat.read(graded / "autograded" / "wrong" / WRONG / f"{WRONG}.ipynb", as_version=4)
    text = outputs_text(nb)  # this submission ran on CIFAR-10 found on disk, not on the stand-in
    assert not used_stand_in(text) and "airplane" in text
    outputs = [
        o
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == f"{WRONG_TASK}-check"
        for o in c.outputs
    ]
    assert any(o.output_type == "stream" and "❌" in o.text and "Hint:" in o.text for o in outputs)


def test_feedback_for_a_wrong_answer(background):
    course = _step(background, "feedback")
    html = (course / "feedback" / "wrong" / WRONG / f"{WRONG}.html").read_text()
    total = sum(_tasks(REPO / "notebooks" / f"{WRONG}.ipynb").values())
    assert f"Score: {total - 1:.1f} / {total:.1f}" in html or f"{total - 1} / {total}" in html


EXCHANGED = "04_cifar10_data"


def _exchange(root: Path) -> None:
    """docs/TEACHING.md's steps 2–3 on one machine: the teacher releases, a student fetches and submits, the
    teacher collects (the student is whoever runs the test: nbgrader takes the account name)."""
    course, exchange, home = root / "course", root / "exchange", root / "student"
    exchange.mkdir(mode=0o777, parents=True)
    home.mkdir()
    (course / "source" / EXCHANGED).mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / f"{EXCHANGED}.ipynb", course / "source" / EXCHANGED)
    config = (REPO / "docs" / "nbgrader_config.py").read_text()
    (course / "nbgrader_config.py").write_text(config + f"\nc.Exchange.root = {str(exchange)!r}\n")
    shutil.copy(course / "nbgrader_config.py", home / "nbgrader_config.py")
    _nbgrader(course, "generate_assignment", EXCHANGED, "--create")
    _nbgrader(course, "release_assignment", EXCHANGED)
    _nbgrader(home, "fetch_assignment", EXCHANGED)
    _nbgrader(home, "submit", EXCHANGED)
    _nbgrader(course, "collect", EXCHANGED)


def test_release_fetch_submit_collect_through_a_local_exchange(background):
    root = _step(background, "exchange") / "exchange_cycle"
    fetched = root / "student" / EXCHANGED / f"{EXCHANGED}.ipynb"
    assert "BEGIN SOLUTION" not in fetched.read_text()
    (student,) = [p.name for p in (root / "course" / "submitted").iterdir()]
    submitted = root / "course" / "submitted" / student / EXCHANGED / f"{EXCHANGED}.ipynb"
    assert submitted.read_bytes() == fetched.read_bytes()


def test_student_copies_in_one_line_without_a_grading_course(tmp_path):
    """README's line for teachers who only want student copies: nbgrader's own command, no gradebook."""
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    _nbgrader(
        tmp_path,
        "generate_assignment",
        "notebooks",
        "--no-db",
        f"--CourseDirectory.root={tmp_path}",
        "--CourseDirectory.source_directory=.",
        "--CourseDirectory.release_directory=student",
    )
    copies = sorted((tmp_path / "student" / "notebooks").glob("*.ipynb"))
    assert [p.name for p in copies] == [p.name for p in NOTEBOOKS]
    assert not (tmp_path / "gradebook.db").exists()
    for path in copies:
        nb = nbformat.read(path, as_version=4)
        assert "BEGIN SOLUTION" not in json.dumps(nb.cells)
        answers = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
        assert all("raise NotImplementedError" in c.source for c in answers)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
