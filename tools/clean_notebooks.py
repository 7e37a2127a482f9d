"""Output-free copies of notebooks, for a class that should not see results before running them.

    python tools/clean_notebooks.py notebooks/*.ipynb   [--check]

The repository itself commits the notebooks *with* the outputs of ``tools/render_notebooks.py`` (and a test
fails on cleaned notebooks there). This tool clears every output and execution count, except in cells whose
source starts with ``# NBVAL_CHECK_OUTPUT`` (nbval compares those in CI; they keep their outputs and get their
position among the code cells as execution count, which nbval requires), drops execution timestamps and widget
state, merges consecutive stream outputs (as nbval does before comparing), and sets the kernelspec to
``python3``. ``--check`` changes nothing and exits with status 1 when a notebook is not clean (e.g. for a
teacher's own repository of output-free copies). Student copies without solutions come from nbgrader
(docs/TEACHING.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import nbformat

__all__ = ["CHECK_MARKER", "clean_notebook", "clean_files", "is_checked_cell", "main"]

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# Cell metadata written by Jupyter/nbconvert while running: timestamps and UI state, never content.
_VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_checked_cell(cell) -> bool:
    """True for a code cell whose source starts with ``# NBVAL_CHECK_OUTPUT`` (its outputs are kept)."""
    return cell.get("cell_type") == "code" and _source(cell).lstrip().startswith(CHECK_MARKER)


def _coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same name (stdout/stderr), as nbval does before comparing."""
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and out.get("output_type") == "stream"
            and prev.get("output_type") == "stream"
            and prev.get("name") == out.get("name")
        ):
            prev["text"] = _text(prev) + _text(out)
        else:
            merged.append(out)
    return merged


def _text(output) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else text


def _strip_outputs(cell, keep_outputs: bool, position: int) -> None:
    """Clear a code cell, or (``keep_outputs``) keep its outputs with a normalised execution count.

    nbval refuses a cell with outputs but no execution count ("unrun reference cell has outputs"), so a kept
    cell gets ``position`` — its 1-based index among the code cells, as in one top-to-bottom run — which
    is stable from one run to the next (no spurious diffs).
    """
    if keep_outputs and cell.get("outputs"):
        cell["execution_count"] = position
        cell["outputs"] = _coalesce_streams(cell["outputs"])
        for out in cell["outputs"]:
            if "execution_count" in out:
                out["execution_count"] = position
            out.get("metadata", {}).pop("transient", None)
    else:
        cell["execution_count"] = None
        cell["outputs"] = []


def clean_notebook(nb, keep_checked: bool = True):
    """Clean ``nb`` in place (and return it): see the module docstring.

    With ``keep_checked=False`` every output goes, including those of ``# NBVAL_CHECK_OUTPUT`` cells.
    """
    position = 0
    for cell in nb.cells:
        md = cell.setdefault("metadata", {})
        for key in _VOLATILE_CELL_METADATA:
            md.pop(key, None)
        if cell.get("cell_type") == "code":
            position += 1
            _strip_outputs(cell, keep_outputs=keep_checked and is_checked_cell(cell), position=position)
        elif "attachments" in cell and not cell["attachments"]:
            del cell["attachments"]
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return nb


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _write(nb, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = nbformat.writes(nb) + "\n"  # nbformat.writes has no trailing newline; Jupyter writes one
    path.write_text(text, encoding="utf-8")


def _notebooks_in(paths: Iterable[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb") if not q.name.startswith("."))
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: not a notebook (.ipynb) or a folder of notebooks")
    return found


def clean_files(paths: Sequence[str | Path], check: bool = False) -> list[Path]:
    """Clean notebooks in place; return those that were not clean (with ``check=True`` nothing is written)."""
    changed: list[Path] = []
    for path in _notebooks_in(paths):
        before = path.read_text(encoding="utf-8")
        nb = clean_notebook(nbformat.reads(before, as_version=4))
        after = nbformat.writes(nb) + "\n"
        if after != before:
            changed.append(path)
            if not check:
                path.write_text(after, encoding="utf-8")
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/clean_notebooks.py",
        description="Clear notebooks' outputs except '# NBVAL_CHECK_OUTPUT' cells; kernelspec python3.",
    )
    parser.add_argument("paths", nargs="+", help=".ipynb files or folders")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a notebook is not clean"
    )
    args = parser.parse_args(argv)

    try:
        changed = clean_files(args.paths, check=args.check)
    except (FileNotFoundError, ValueError, nbformat.ValidationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = "not clean" if args.check else "cleaned"
    for path in changed:
        print(f"{verb}: {path}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
