"""The notebooks are committed with the outputs of a cpu-profile run on real CIFAR-10 (``tools/render_notebooks.py``),
so that a reader sees every figure, table and verdict before running anything. These tests read the committed
files (they execute nothing): outputs from a smoke run or from the generated ``shapes10`` must never be committed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import outputs_text, used_stand_in

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_come_from_a_cpu_profile_run_on_real_cifar10(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.execution_count for c in code), (
        "render the notebook: python tools/render_notebooks.py"
    )
    text = outputs_text(nb)
    assert "Profile 'cpu'" in text, "the committed outputs are not from the cpu profile"
    assert "Profile 'smoke'" not in text and "Profile 'gpu'" not in text
    assert not used_stand_in(text), "the committed outputs come from the generated shapes10, not CIFAR-10"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"a committed cell failed: {errors[0].get('ename')}"
    provenance = [line for line in nb.cells[0].source.splitlines() if line.startswith("**Outputs shown**")]
    assert len(provenance) == 1, "the first cell must say once which run produced the outputs"
    assert "tools/render_notebooks.py" in provenance[0] and "cpu profile" in provenance[0]
    assert "real" in provenance[0] and "CIFAR-10" in provenance[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_stay_small(path: Path) -> None:
    assert path.stat().st_size < 2_000_000, f"{path.name} is over 2 MB: make its figures smaller"


def test_the_check_catches_smoke_and_stand_in_outputs() -> None:
    """The markers the test looks for are what the notebooks print: a smoke run on shapes10 is caught."""
    from resnet_course.data.loading import load_data
    from resnet_course.profiles import get_profile

    smoke = str(get_profile("smoke"))
    data = load_data("shapes10", train_size=200, test_size=20)
    assert "Profile 'smoke'" in smoke and used_stand_in(str(data))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_hold_no_warning_and_no_path_of_the_renderer(path: Path) -> None:
    text = outputs_text(nbformat.read(path, as_version=4))
    paths = re.findall(r"(?<![\w$~])/(?:home|root|tmp|work|Users|mnt|private)/[^\s'\"<>]*", text)
    assert not paths, f"outputs name the renderer's folders {paths[:3]}: tools/render_notebooks.py masks them"
    assert not re.search(r"\w*Warning\b|^\s*warnings\.warn", text, re.M), "a committed output holds a warning"


# A figure in a notebook's prose: a number (or a range of two) with a unit of measurement.
FIGURE = re.compile(r"(?<![\w.$^_{])(\d[\d,]*(?:\.\d+)?(?:\s?[–-]\s?\d[\d,]*(?:\.\d+)?)?)\s?(%|×| points?\b| s\b| min\b)")
# a paragraph that names where its figures come from: a paper, a table, a library's documentation
CITED = re.compile(r"et al\.|arXiv|\bTable \d|torchvision's figures|kuangliu|Myrtle|DAWNBench")
RESULTS_CITED = re.compile(r"RESULTS(\.md)?|benchmarks/lessons\.py")
# figures that state no measurement: a confidence level, an example probability, a unit conversion
NOT_MEASURED = ("95 %", "90 %", "100 %", "50 %")


def prose_figures(nb) -> list[tuple[int, str, str]]:
    """``(cell index, figure, paragraph)`` for each figure in the Markdown cells after the header."""
    found = []
    for i, cell in enumerate(nb.cells[1:], start=1):
        if cell.cell_type != "markdown":
            continue
        for paragraph in re.split(r"\n\s*\n|\n(?=[-*] |\|)|(?<=\|)\n", re.sub(r"\$[^$]+\$", "", cell.source)):
            if paragraph.lstrip().startswith("|") and not RESULTS_CITED.search(paragraph):
                continue  # tables of references with a source column, or course facts
            found += [(i, m.group(0), paragraph) for m in FIGURE.finditer(paragraph)]
    return found


def unsourced_figures(nb, results: str) -> list[str]:
    text = outputs_text(nb)
    shown = re.sub(r"\s+", " ", text)
    bad = []
    for i, figure, paragraph in prose_figures(nb):
        number = re.split(r"\s?[–-]\s?|\s?(?=[%×])|\s(?=\D)", figure)[0]
        if figure.replace(" ", "") in {f.replace(" ", "") for f in NOT_MEASURED}:
            continue
        if RESULTS_CITED.search(paragraph):
            # a figure of the lessons table must be in today's table, not in the history around it
            source = lessons_table(results) if "lessons.py" in paragraph else results
            if re.split(r"\s?(?=[%×])|\s", figure)[0] not in source:
                bad.append(f"cell {i}: {figure!r} is quoted from benchmarks/RESULTS.md, which no longer holds it")
        elif not CITED.search(paragraph) and not re.search(rf"(?<![\d.]){re.escape(number)}(?![\d])", shown):
            bad.append(f"cell {i}: {figure!r} describes a run but no output shows it: print it from the run")
    return bad


def lessons_table(results: str) -> str:
    """The table ``benchmarks/lessons.py --write`` keeps between its markers (all of ``results`` without them)."""
    begin, end = "<!-- lessons:begin -->", "<!-- lessons:end -->"
    return results.split(begin, 1)[1].split(end, 1)[0] if begin in results and end in results else results


RESULTS_MD = (Path(__file__).resolve().parents[1] / "benchmarks" / "RESULTS.md").read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_states_no_measured_figure_that_the_outputs_or_results_do_not_hold(path: Path) -> None:
    bad = unsourced_figures(nbformat.read(path, as_version=4), RESULTS_MD)
    assert not bad, "\n".join(bad)


def test_the_prose_check_catches_stale_and_unsourced_figures() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# header, 5 min"),
        nbformat.v4.new_markdown_cell(
            "The run reached 71.3 % here.\n\nHe et al. report 6.43 % (Table 6).\n\n"
            "Three seeds gave 12.9–29.0 points (`benchmarks/RESULTS.md`).\n\nAnd 17–38 points (RESULTS).\n\n"
            "Seeds of `benchmarks/lessons.py`: 6.6 points.\n\n"
            "A 95 % interval."
        ),
        nbformat.v4.new_code_cell("print(acc)"),
    ]
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="test accuracy 69.40%\n")]
    results = "pooled 12.9–29.0, an older run 6.6\n<!-- lessons:begin -->\nspread 6.2\n<!-- lessons:end -->"
    bad = unsourced_figures(nb, results=results)
    assert len(bad) == 3 and "'71.3 %' describes a run" in bad[0] and "'17–38 points' is quoted" in bad[1]
    assert "'6.6 points' is quoted" in bad[2]  # RESULTS mentions it, but not in today's lessons table
    nb.cells[2].outputs[0].text = "test accuracy 71.3%\n"
    results = "12.9–29.0 17–38 <!-- lessons:begin --> 6.6 <!-- lessons:end -->"
    assert unsourced_figures(nb, results=results) == []
