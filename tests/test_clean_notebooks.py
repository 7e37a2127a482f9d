"""Tests for tools/clean_notebooks.py: output-free copies of notebooks (tools/ is on sys.path: conftest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import clean_notebooks
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output


def _notebook():
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "my-venv", "display_name": "Old", "language": "python"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    checked = new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(11_689_512)", execution_count=3)
    checked.outputs = [
        new_output("stream", name="stdout", text="11689"),
        new_output("stream", name="stdout", text="512\n"),
    ]
    plain = new_code_cell("print(torch.randn(1))", execution_count=4)
    plain.outputs = [new_output("stream", name="stdout", text="tensor([0.3])\n")]
    plain.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00"}
    result = new_code_cell("1 + 1", execution_count=5)
    result.outputs = [new_output("execute_result", data={"text/plain": "2"}, execution_count=5)]
    solution = new_code_cell("class StudentBlock:\n    answer = 42", execution_count=6)
    solution.outputs = [new_output("stream", name="stdout", text="done\n")]
    nb.cells = [new_markdown_cell("# 99 — Test"), checked, plain, result, solution]
    return nb


def _write(nb, path):
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return path


def test_clean_keeps_only_checked_outputs(tmp_path):
    path = _write(_notebook(), tmp_path / "a.ipynb")
    assert clean_notebooks.main([str(path)]) == 0
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    checked, plain, result, solution = nb.cells[1:5]
    assert len(checked.outputs) == 1 and checked.outputs[0]["text"] == "11689512\n"  # streams merged
    assert plain.outputs == [] and result.outputs == [] and solution.outputs == []
    # nbval needs an execution count on a cell with reference outputs: its position among the code cells
    assert checked.execution_count == 1
    assert all(c.get("execution_count") is None for c in (plain, result, solution))
    assert "execution" not in plain.metadata
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb.metadata
    # the solution itself stays in the teacher's notebook
    assert "answer = 42" in solution.source


def test_clean_is_idempotent_and_check_mode(tmp_path):
    path = _write(_notebook(), tmp_path / "a.ipynb")
    assert clean_notebooks.clean_files([path], check=True) == [path]
    assert "tensor([0.3])" in path.read_text()  # --check writes nothing
    assert clean_notebooks.main(["--check", str(path)]) == 1
    clean_notebooks.clean_files([path])
    first = path.read_text()
    assert clean_notebooks.clean_files([path]) == []
    assert path.read_text() == first
    assert clean_notebooks.main(["--check", str(tmp_path)]) == 0


def test_missing_path_is_a_clear_error(tmp_path, capsys):
    assert clean_notebooks.main([str(tmp_path / "nope.ipynb")]) == 2
    assert "not a notebook" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    path = _write(_notebook(), tmp_path / "a.ipynb")
    proc = subprocess.run(
        [sys.executable, str(Path(clean_notebooks.__file__)), str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "cleaned" in proc.stdout


def test_cleaned_notebook_passes_nbval(tmp_path):
    """The point of `clean`: the committed notebook must pass `pytest --nbval-lax` (checked outputs compared)."""
    pytest.importorskip("nbval")
    nb = new_notebook()
    checked = new_code_cell("# NBVAL_CHECK_OUTPUT\nfor i in range(3):\n    print(i * i)", execution_count=7)
    checked.outputs = [new_output("stream", name="stdout", text=t) for t in ("0\n", "1\n", "4\n")]
    varying = new_code_cell("import random\nprint(random.random())", execution_count=8)
    varying.outputs = [new_output("stream", name="stdout", text="0.123\n")]
    nb.cells = [checked, varying]
    path = _write(nb, tmp_path / "nbval_roundtrip.ipynb")
    clean_notebooks.clean_files([path])
    wrong = nbformat.read(path, as_version=4)  # and a wrong reference output is caught
    wrong.cells[0].outputs[0]["text"] = "0\n1\n5\n"
    _write(wrong, tmp_path / "wrong_reference.ipynb")
    proc = subprocess.run(  # one pytest for both notebooks: each starts a kernel
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-rf", "-p", "no:cacheprovider", path.name, "wrong_reference.ipynb"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    failed = [line.removeprefix("FAILED ").split(" - ")[0] for line in proc.stdout.splitlines() if line.startswith("FAILED ")]
    assert failed == ["wrong_reference.ipynb::Cell 0"], proc.stdout[-2000:]
    assert "1 failed, 3 passed" in proc.stdout, proc.stdout[-2000:]
