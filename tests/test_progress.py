"""The epoch bar in a real Jupyter kernel: once closed, the cell keeps text, never a widget that no longer exists
(``fit``'s bars in notebook 05, saved and reopened in JupyterLab: ``tests/test_browser.py``)."""

from __future__ import annotations

import textwrap

import nbformat
from nbclient import NotebookClient

from resnet_course.training.progress import progress_bar

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CELLS = [
    """
    from resnet_course.training.progress import progress_bar
    bar = progress_bar(total=3, desc="finished", leave=False)
    for _ in range(3):
        bar.update(1)
    bar.close()
    print("after the finished bar")
    """,
    """
    bar = progress_bar(total=5, desc="stopped")
    bar.update(2)
    bar.close()
    """,
]


def _outputs(cell) -> list[dict]:
    return [dict(o) for o in cell.get("outputs", [])]


def test_closed_bars_leave_text_in_the_notebook_not_a_widget() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(code).strip()) for code in CELLS]
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    finished, stopped = (_outputs(cell) for cell in nb.cells)
    for outputs in (finished, stopped):
        assert not any(WIDGET_VIEW in o.get("data", {}) for o in outputs), outputs
    # the finished epoch bar leaves nothing (an empty text), the stopped one shows where it stopped
    shown = [o["data"]["text/plain"] for o in finished + stopped if o["output_type"] == "display_data"]
    assert shown[0] == "" and "2/5" in shown[1] and "stopped" in shown[1]
    assert any("after the finished bar" in o.get("text", "") for o in finished)


def test_outside_a_notebook_it_is_tqdms_text_bar() -> None:
    bar = progress_bar(total=2, disable=True)
    assert type(bar).__module__.startswith("tqdm")
    bar.close()
