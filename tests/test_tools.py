"""Tests of the maintainer tools' logic (tools/render_notebooks.py, benchmarks/lessons.py) on small inputs; the
tools themselves need real CIFAR-10 and minutes per notebook, so they are not run here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lessons  # noqa: E402
import render_notebooks  # noqa: E402


def notebook_with_outputs(outputs: list[dict]) -> object:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 — Title\n\nText."), nbformat.v4.new_code_cell("fit(...)")]
    nb.cells[1].outputs = [nbformat.from_dict(o) for o in outputs]
    nb.metadata["widgets"] = {"state": {"abc": {}}}
    return nb


def widget(text: str) -> dict:
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}, "text/plain": text},
    }


def test_finished_progress_bars_are_dropped_pictured_widgets_become_pictures_and_others_kept():
    line = {"output_type": "stream", "name": "stdout", "text": "epoch   1/24  train loss 2.3\n"}
    closed = {"output_type": "display_data", "metadata": {}, "data": {"text/plain": ""}}  # progress_bar's
    nb = notebook_with_outputs([widget("epoch 1/24:   0%|          | 0/16 [00:00<?, ?it/s]"), closed, line])
    assert render_notebooks.strip_widgets(nb) == 2
    assert nb.cells[1].outputs == [nbformat.from_dict(line)] and "widgets" not in nb.metadata
    app = notebook_with_outputs([widget("VBox(children=(FileUpload(...),))")])
    assert render_notebooks.strip_widgets(app) == 0 and "widgets" in app.metadata
    pictured = widget("ClassifierWidget(resnet20, top 5)")
    pictured["data"]["image/png"] = "iVBORw0KGgo="
    app = notebook_with_outputs([pictured])
    assert render_notebooks.strip_widgets(app) == 1 and "widgets" not in app.metadata
    assert set(app.cells[1].outputs[0].data) == {"image/png", "text/plain"}


def test_machine_paths_in_outputs_are_masked(tmp_path):
    data = tmp_path / "data"
    text = f"wrote {data}/runs/05/last.pt and {data}2/x\n"
    html = {"output_type": "display_data", "metadata": {}, "data": {"text/html": f"<code>{data}</code>"}}
    nb = notebook_with_outputs([{"output_type": "stream", "name": "stdout", "text": text}, html])
    pairs = render_notebooks.machine_paths(data)
    assert pairs[0] == (str(data), "$RESNET_COURSE_DATA")  # the longest first: before $TMPDIR, which holds it
    assert render_notebooks.mask_paths(nb, pairs) == 2
    assert nb.cells[1].outputs[0].text == "wrote $RESNET_COURSE_DATA/runs/05/last.pt and $RESNET_COURSE_DATA2/x\n"
    assert nb.cells[1].outputs[1].data["text/html"] == "<code>$RESNET_COURSE_DATA</code>"


def test_the_provenance_line_is_replaced_not_repeated():
    nb = notebook_with_outputs([])
    render_notebooks.stamp(nb, "**Outputs shown** were produced by run 1.")
    render_notebooks.stamp(nb, "**Outputs shown** were produced by run 2.")
    source = nb.cells[0].source
    assert source.count("**Outputs shown**") == 1 and source.endswith("run 2.") and source.startswith("# 01")


def test_the_run_time_block_is_written_from_the_measured_time():
    nb = notebook_with_outputs([])
    nb.cells[0].source = "# 01\n\n**Expected run time** (old)\n\n| a | b |\n|---|---|\n| cpu | 9 s |\n\nMore text."
    render_notebooks.set_run_time(nb, 187.4, "2026-12-07")
    render_notebooks.set_run_time(nb, 65, "2026-12-08")  # a second render replaces the block, it does not add one
    lines = nb.cells[0].source.split("\n")
    assert lines[2].startswith("**Expected run time**") and "|" not in nb.cells[0].source
    assert lines[3] == "- cpu profile: 1 min 05 s for the outputs below (2026-12-08, on the machine named in the last line)"
    assert lines[4].startswith("- gpu profile") and lines[5:] == ["", "More text."]
    bare = notebook_with_outputs([])
    with pytest.raises(ValueError, match="no line starting with"):
        render_notebooks.set_run_time(bare, 1, "today")


def test_readme_run_times_are_written_into_the_marked_table(tmp_path):
    readme = tmp_path / "README.md"
    table = (
        "| # | notebook | cpu |\n|---|---|---|\n| 00 | [Start](notebooks/00_start_here.ipynb) | 8 s |\n"
        "| 05 | [Train](notebooks/05_training_resnet18.ipynb) | 5 min 22 s |\n"
    )
    readme.write_text(f"intro\n{render_notebooks.README_BEGIN}\n{table}{render_notebooks.README_END}\nrest\n")
    assert render_notebooks.update_readme(readme, {"05_training_resnet18": 281.6}) == 1
    text = readme.read_text()
    assert "| 05 | [Train](notebooks/05_training_resnet18.ipynb) | 4 min 42 s |" in text and "| 8 s |" in text
    assert text.startswith("intro\n") and text.endswith("rest\n")
    readme.write_text("no markers")
    with pytest.raises(ValueError, match="lacks the markers"):
        render_notebooks.update_readme(readme, {})


def record(seed: int, errors: dict, amp: bool = True) -> dict:
    return {
        "notebook": "01",
        "seed": seed,
        "dataset": "cifar10",
        "values": {"train_error": errors},
        "settings": {"seed": seed, "amp": amp, "epochs": 24},
    }


def test_lesson_01_holds_only_when_plain_degrades_and_residual_does_not():
    good = [
        record(0, {"plain20": 0.10, "plain32": 0.50, "resnet20": 0.02, "resnet32": 0.03}),
        record(1, {"plain20": 0.15, "plain32": 0.45, "resnet20": 0.01, "resnet32": 0.01}),
        record(2, {"plain20": 0.12, "plain32": 0.55, "resnet20": 0.00, "resnet32": 0.02}),
    ]
    assert lessons.lesson_01(good)[3]
    residual_worse = good[:2] + [
        record(2, {"plain20": 0.12, "plain32": 0.55, "resnet20": 0.0, "resnet32": 0.3})
    ]
    assert not lessons.lesson_01(residual_worse)[3]
    no_gap = [
        record(s, {"plain20": 0.1 + s / 100, "plain32": 0.11, "resnet20": 0.0, "resnet32": 0.0})
        for s in range(3)
    ]
    assert not lessons.lesson_01(no_gap)[3]
    untrained = [
        record(s, {"plain20": 0.6, "plain32": 0.85, "resnet20": 0.5, "resnet32": 0.5}) for s in range(3)
    ]
    assert not lessons.lesson_01(untrained)[3]


def test_records_of_other_settings_are_not_combined():
    same = [record(0, {}), record(1, {})]
    assert lessons.one_setting(same) is None
    assert lessons.one_setting([record(0, {}), record(1, {}, amp=False)]) == "amp"


def test_lessons_rows_not_rerun_are_kept_with_where_they_were_measured():
    old = (
        "Measured 2026-12-02 with `python benchmarks/lessons.py --seeds 0 1 2`: cpu profile, data, torch 2, on a "
        "2-core Xeon, no GPU; mixed precision as chosen.\n\n| notebook | quantity | mean | claim | held | wall |\n"
        "|---|---|---|---|---|---|\n| 01 | gap | 20 | c | yes | 170 s |\n| 05 | acc | 71 | c | yes | 230 s |\n"
    )
    new = "\n".join(lessons.HEADER + ["| 05 | acc | 69 | c | yes | 280 s | 2026-12-07, 2-core EPYC |"])
    merged = lessons.merge(old, new).splitlines()
    assert merged[:2] == lessons.HEADER
    assert merged[2] == "| 01 | gap | 20 | c | yes | 170 s | 2026-12-02, 2-core Xeon, no GPU |"  # kept, dated
    assert merged[3] == "| 05 | acc | 69 | c | yes | 280 s | 2026-12-07, 2-core EPYC |" and len(merged) == 4
    assert lessons.merge("\n".join(merged), new).splitlines() == merged  # a second merge changes nothing
