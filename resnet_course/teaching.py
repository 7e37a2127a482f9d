"""Tools for the teacher: student copies of the notebooks, and output-free copies.

Two commands::

    python -m resnet_course.teaching student notebooks/ student/
    python -m resnet_course.teaching clean notebooks/*.ipynb   [--check]

``student`` copies every notebook of a folder (or the notebooks given) into another folder, replacing each
code cell tagged ``solution`` by a stub, and clears all outputs. If a solution cell contains the markers
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's convention), only the lines between them are
replaced and the scaffold around them (imports, a class signature, a docstring) is kept; otherwise the whole
cell becomes::

    # YOUR CODE HERE
    raise NotImplementedError("...")

``clean`` makes output-free notebooks, e.g. for a class that should not see results before running them (the
repository itself commits the notebooks *with* the outputs of ``tools/render_notebooks.py``, and a test fails
on cleaned notebooks there): it clears every output and execution count, except in cells whose
source starts with ``# NBVAL_CHECK_OUTPUT`` (nbval compares those in CI; they keep their outputs and get their
position among the code cells as execution count, which nbval requires), drops execution
timestamps and widget state, merges consecutive stream outputs (as nbval does before comparing), and sets
the kernelspec to ``python3``. ``--check`` changes nothing and exits
with status 1 when a notebook is not clean (e.g. for a teacher's own repository of output-free copies).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import nbformat

__all__ = [
    "CHECK_MARKER",
    "SOLUTION_TAG",
    "STUB",
    "clean_notebook",
    "student_notebook",
    "clean_files",
    "make_student_copies",
    "is_checked_cell",
    "main",
]

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
SOLUTION_TAG = "solution"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUB = (
    '# YOUR CODE HERE\nraise NotImplementedError("Write your solution here, then run the check cell below.")'
)
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
# Cell metadata written by Jupyter/nbconvert while running: timestamps and UI state, never content.
_VOLATILE_CELL_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_checked_cell(cell) -> bool:
    """True for a code cell whose source starts with ``# NBVAL_CHECK_OUTPUT`` (its outputs are kept)."""
    return cell.get("cell_type") == "code" and _source(cell).lstrip().startswith(CHECK_MARKER)


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


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


def _stub_for(source: str) -> str:
    """The student's version of a solution cell's source."""
    lines = source.splitlines()
    begin = [i for i, line in enumerate(lines) if line.strip() == BEGIN_SOLUTION]
    end = [i for i, line in enumerate(lines) if line.strip() == END_SOLUTION]
    if not begin or len(begin) != len(end):
        return STUB
    out: list[str] = []
    i = 0
    for b, e in zip(begin, end, strict=True):
        if e < b:
            return STUB
        indent = lines[b][: len(lines[b]) - len(lines[b].lstrip())]
        out += lines[i:b]
        out += [indent + line for line in STUB.splitlines()]
        i = e + 1
    out += lines[i:]
    return "\n".join(out)


def student_notebook(nb):
    """Turn a teacher's notebook into a student's copy in place (and return it): solutions out, outputs out."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and SOLUTION_TAG in _tags(cell):
            cell["source"] = _stub_for(_source(cell))
    return clean_notebook(nb, keep_checked=False)


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


def make_student_copies(sources: Sequence[str | Path], dest: str | Path) -> list[Path]:
    """Write a student copy of each notebook in ``sources`` (folders or ``.ipynb`` files) into ``dest``.

    Returns the paths written. Refuses to overwrite a source notebook (``dest`` must differ from its folder).
    """
    dest = Path(dest)
    written: list[Path] = []
    for src in _notebooks_in(sources):
        target = dest / src.name
        if target.resolve() == src.resolve():
            raise ValueError(
                f"{src}: the student copy would overwrite the teacher's notebook; choose another folder"
            )
        nb = student_notebook(_read(src))
        _write(nb, target)
        written.append(target)
    return written


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
        prog="python -m resnet_course.teaching",
        description="Teacher tools: student copies without solutions, and clean notebooks for commits.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_student = sub.add_parser("student", help="copy notebooks, replacing cells tagged 'solution' by a stub")
    p_student.add_argument("sources", nargs="+", help="a folder of notebooks and/or .ipynb files")
    p_student.add_argument("dest", help="folder for the student copies (created if missing)")
    p_clean = sub.add_parser(
        "clean", help="clear outputs except '# NBVAL_CHECK_OUTPUT' cells; kernelspec python3"
    )
    p_clean.add_argument("paths", nargs="+", help=".ipynb files or folders")
    p_clean.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a notebook is not clean"
    )
    args = parser.parse_args(argv)

    try:
        if args.command == "student":
            written = make_student_copies(args.sources, args.dest)
            for path in written:
                print(f"wrote {path}")
            if not written:
                print("no notebooks found", file=sys.stderr)
                return 1
            return 0
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
