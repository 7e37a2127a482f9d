"""The package's layout is its architecture (docs/ARCHITECTURE.md): layers import downwards only, no module
imports another's private names, subpackages re-export nothing, no function is longer than 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_course"
# Lower layers first; a module may import from its own layer's other packages only where listed in SIDEWAYS.
LAYERS = [
    {"atomic", "cpus", "devices", "downloads", "parallel"},
    {"profiles"},
    {"results"},
    {"models"},
    {"data"},
    {"training"},
    {"analysis"},
    {"checks", "apps"},
    {"__main__", "__init__"},
]
SIDEWAYS = {("checks", "apps")}  # notebook 10's check compares with apps.inference.Classifier
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(top: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if top in names)


def _top(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    """``from resnet_course... import`` statements outside ``if TYPE_CHECKING:`` blocks."""
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("resnet_course")
        and id(node) not in typing_only
    ]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_downwards_and_never_reach_private_names(path: Path) -> None:
    tree = ast.parse(path.read_text())
    mine = _top(path)
    for node in _runtime_imports(tree):
        assert node.level == 0, f"{path.name}: use absolute imports (from resnet_course...)"
        parts = node.module.split(".")
        assert len(parts) > 1, f"{path.name}:{node.lineno}: import from a module, not the package"
        target = parts[1]
        if target != mine and (mine, target) not in SIDEWAYS:
            assert _layer(target) < _layer(mine), (
                f"{path.relative_to(PACKAGE)}:{node.lineno} imports {node.module}: {mine} must not depend on "
                f"{target} (layers: {LAYERS})"
            )
        private = [a.name for a in node.names if a.name.startswith("_")]
        assert not private, f"{path.name}:{node.lineno} imports private names {private} from {node.module}"


def test_subpackages_re_export_nothing() -> None:
    """A package's ``__init__`` holds its docstring (and at most an import guard for an optional dependency,
    as ``apps/gui`` has for PySide6): no name of the package is imported into it."""
    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        own = [
            n
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("resnet")
        ]
        assert not own, f"{init}: re-exports {[a.name for n in own for a in n.names]}"
        for node in tree.body[1:]:
            assert isinstance(node, ast.Try) or (
                isinstance(node, ast.Assign) and node.targets[0].id == "__version__"
            ), f"{init}:{node.lineno}: only a docstring and an import guard belong here"


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - start + 1})")
    assert not long, long


def test_the_layers_cover_every_top_level_name() -> None:
    tops = {_top(p) for p in _modules()}
    assert tops <= set().union(*LAYERS), tops - set().union(*LAYERS)


def test_every_bad_input_in_docs_is_tested() -> None:
    """docs/BAD_INPUTS.md says what each bad input gets and names the tests that keep it true: they must exist."""
    import re

    root = PACKAGE.parent
    table = (root / "docs" / "BAD_INPUTS.md").read_text()
    named = re.findall(r"`(tests/\w+\.py)::(\w+)`", table)
    assert len(named) >= 20
    missing = [f"{f}::{name}" for f, name in named if f"def {name}(" not in (root / f).read_text()]
    assert not missing, missing
