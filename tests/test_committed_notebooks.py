"""The notebooks are committed with the outputs of a cpu-profile run on real CIFAR-10 (``tools/render_notebooks.py``),
so that a reader sees every figure, table and verdict before running anything. These tests read the committed
files (they execute nothing): outputs from a smoke run or from the generated ``shapes10`` must never be committed.
"""

from __future__ import annotations

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
