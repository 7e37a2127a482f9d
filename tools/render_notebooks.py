"""Re-render the course: run every notebook in course order in the cpu profile on real CIFAR-10 and write each one
back with its outputs, ready to commit, so that a reader on GitHub or in JupyterLab sees every figure, table and
verdict before running anything.

    cp -r /path/to/cifar-10-batches-py "$HOME/cifar"/      # real CIFAR-10 (the full set or a subset)
    RESNET_COURSE_DATA="$HOME/cifar" python tools/render_notebooks.py

Each notebook's first cell gets one line saying which profile, data, machine and date produced the outputs, and
the wall time of each notebook is printed (course order: 06, 07 and 10 reuse notebook 05's model, as in class).
The tool refuses to run without real CIFAR-10 (outputs of the generated ``shapes10`` must never be committed) or
without Graphviz's ``dot`` (03 and 07 draw computation graphs), and warns when a notebook grows over 2 MB. The
header's expected run time and README's table of run times are written from the wall times measured here.
``--only 05 06`` renders some notebooks; ``--no-write`` only times them (e.g. with ``RESNET_COURSE_AMP=off`` to
time fp32 on a CPU that has bf16). A maintainer tool: it is not part of the ``resnet_course`` package.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from notebook_runs import (
    NOTEBOOKS,
    ROOT,
    add_isa_option,
    cap_isa,
    describe_data,
    execute_notebook,
    machine,
    outputs_text,
    used_stand_in,
)

PROVENANCE = "**Outputs shown**"
SIZE_LIMIT = 2_000_000  # bytes per notebook


def provenance_line(data: str, when: str) -> str:
    from resnet_course.profiles import resolve_amp

    amp = "bf16 mixed precision" if resolve_amp("cpu")[0] else "fp32"
    return (
        f"{PROVENANCE} were produced by `python tools/render_notebooks.py` on {when}: cpu profile "
        f"({amp}), {data}, on a {machine()}."
    )


def stamp(nb, line: str) -> None:
    """Put ``line`` at the end of the first (Markdown) cell, replacing an earlier provenance line."""
    first = nb.cells[0]
    kept = [ln for ln in first.source.split("\n") if not ln.startswith(PROVENANCE)]
    while kept and not kept[-1].strip():
        kept.pop()
    first.source = "\n".join(kept + ["", line])


RUN_TIME = "**Expected run time**"
GPU_LINE = "- gpu profile: not measured yet (no GPU was available to the renders)"
README_BEGIN, README_END = "<!-- run-times:begin -->", "<!-- run-times:end -->"


def minutes(seconds: float) -> str:
    """``"4 min 52 s"``, or ``"38 s"`` under a minute."""
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def run_time_lines(seconds: float, when: str) -> list[str]:
    """The header's expected run times, one line per profile: the cpu line is this render's wall time."""
    return [
        f"{RUN_TIME} (whole notebook)",
        f"- cpu profile: {minutes(seconds)} for the outputs below ({when}, on the machine named in the last line)",
        GPU_LINE,
    ]


def set_run_time(nb, seconds: float, when: str) -> None:
    """Replace the first cell's run-time block (the ``**Expected run time**`` line, then its list or table rows)."""
    lines = nb.cells[0].source.split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.startswith(RUN_TIME)), None)
    if start is None:
        raise ValueError(f"the first cell has no line starting with {RUN_TIME}; add one where the run time goes")
    end = start + 1
    while end < len(lines) and (lines[end].startswith(("|", "- cpu profile", "- gpu profile")) or not lines[end].strip()):
        end += 1
    nb.cells[0].source = "\n".join(lines[:start] + run_time_lines(seconds, when) + [""] + lines[end:])


def update_readme(readme: Path, times: dict[str, float]) -> int:
    """Write ``times`` ({notebook stem: seconds}) into the last column of README's notebook table (the rows between
    the run-time markers whose link names the notebook); returns how many rows changed."""
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{readme} lacks the markers {README_BEGIN} … {README_END} around its notebook table")
    head, rest = text.split(README_BEGIN, 1)
    table, tail = rest.split(README_END, 1)
    rows, changed = table.split("\n"), 0
    for i, row in enumerate(rows):
        stem = next((s for s in times if f"notebooks/{s}.ipynb" in row), None)
        if stem is not None:
            cells = row.rstrip().rstrip("|").split("|")
            cells[-1] = f" {minutes(times[stem])} "
            rows[i], changed = "|".join(cells) + "|", changed + 1
    readme.write_text(head + README_BEGIN + "\n".join(rows) + README_END + tail)
    return changed


def machine_paths(data_dir: Path) -> list[tuple[str, str]]:
    """``(absolute path of this machine, what a reader sees instead)``, longest first: the course's data folder,
    the temporary folder and the home folder, so that no committed output names the renderer's disk."""
    pairs = [(str(data_dir), "$RESNET_COURSE_DATA"), (tempfile.gettempdir(), "$TMPDIR"), (str(Path.home()), "~")]
    return sorted(((a, b) for a, b in pairs if len(a) > 1), key=lambda pair: -len(pair[0]))


def mask_paths(nb, pairs: list[tuple[str, str]]) -> int:
    """Replace every path of ``pairs`` in the text of ``nb``'s outputs; returns how many outputs changed."""

    def masked(text: str) -> str:
        for path, shown in pairs:
            text = text.replace(path, shown)
        return text

    changed = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            before = json.dumps(out, sort_keys=True)
            if "text" in out:
                out["text"] = masked(out["text"])
            for kind, value in out.get("data", {}).items():
                if kind.startswith("text/"):
                    out["data"][kind] = masked(value) if isinstance(value, str) else [masked(v) for v in value]
            changed += json.dumps(out, sort_keys=True) != before
    return changed


def strip_widgets(nb) -> int:
    """Drop what a saved notebook cannot show of its widgets: the outputs of finished progress bars (the empty text
    a closed epoch bar leaves, :mod:`resnet_course.training.progress`, or a tqdm widget), and the live view of a
    widget that also gave a picture of itself (the classifier widget's snapshot, which then shows on GitHub and
    in JupyterLab alike); when no widget view is left, the widgets' saved state goes too (megabytes that GitHub
    cannot draw). ``fit`` also prints one summary line per epoch, which stays. Returns the number of outputs
    dropped or changed."""
    view = "application/vnd.jupyter.widget-view+json"
    changed, widgets_left = 0, False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            data = out.get("data", {})
            if out.get("output_type") == "display_data" and set(data) == {"text/plain"} and not "".join(data["text/plain"]):
                changed += 1  # a closed epoch bar
                continue
            if view in data and "image/png" in data:
                del data[view]  # the widget's own picture stands in for it
                changed += 1
            elif view in data:
                text = "".join(data.get("text/plain", ""))
                if "%|" in text or "it/s" in text or "s/it" in text:  # tqdm's text form of a bar
                    changed += 1
                    continue
                widgets_left = True
            kept.append(out)
        cell.outputs = kept
    if not widgets_left:
        nb.metadata.pop("widgets", None)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers, e.g. 05 06 (default: all)")
    parser.add_argument(
        "--no-write", action="store_true", help="time the notebooks, leave the files unchanged"
    )
    parser.add_argument(
        "--profile",
        default="cpu",
        choices=["smoke", "cpu", "gpu"],
        help="profile to run (default cpu); only cpu outputs are written, others are only timed",
    )
    add_isa_option(parser)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    parser.add_argument(
        "--times", type=Path, help="also write the wall seconds per notebook to this JSON file"
    )
    args = parser.parse_args(argv)
    cap_isa(args.isa)

    import nbformat

    if args.profile != "cpu" and not args.no_write:
        parser.error("only cpu-profile outputs are committed: add --no-write to time another profile")
    if shutil.which("dot") is None and not args.no_write:
        print(
            "render_notebooks needs Graphviz's `dot` for the computation graphs of 03 and 07 (committed outputs show "
            "every figure): install it (Debian: apt-get install graphviz; conda: conda install graphviz)",
            file=sys.stderr,
        )
        return 2
    try:
        data = describe_data()
    except Exception as err:  # noqa: BLE001 - the loader's message says what is missing and how to fix it
        if args.profile != "smoke":
            print(
                f"render_notebooks needs real CIFAR-10 on disk (RESNET_COURSE_DATA): {err}", file=sys.stderr
            )
            return 2
        data = "shapes10"
    env = {"RESNET_COURSE_PROFILE": args.profile, "RESNET_COURSE_DATASET": None, "RESNET_COURSE_SEED": None}
    if args.no_write:  # a timing run must not overwrite the results the notebooks record for benchmarks/lessons.py
        env["RESNET_COURSE_RESULTS"] = tempfile.mkdtemp(prefix="render_timing_results_")
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        unknown = sorted(set(args.only) - {p.name[:2] for p in paths})
        if unknown:
            parser.error(f"no notebook numbered {', '.join(unknown)}; give two digits, e.g. --only 05 06")
        paths = [p for p in paths if p.name[:2] in args.only]
    when = time.strftime("%Y-%m-%d")
    line = provenance_line(data, when)
    print(line, flush=True)
    total, times = 0.0, {}
    from resnet_course.profiles import data_dir

    paths_to_mask = machine_paths(data_dir())
    for path in paths:
        nb, seconds = execute_notebook(path, env, args.timeout)
        total += seconds
        times[path.stem] = round(seconds, 1)
        if used_stand_in(outputs_text(nb)) and args.profile != "smoke":
            print(f"{path.name}: fell back to shapes10; not written", file=sys.stderr)
            return 1
        size = ""
        if not args.no_write:
            strip_widgets(nb)
            mask_paths(nb, paths_to_mask)
            set_run_time(nb, seconds, when)
            stamp(nb, line)
            nbformat.write(nb, path)
            size = f", {path.stat().st_size / 1e6:.2f} MB"
            if path.stat().st_size > SIZE_LIMIT:
                size += " (over 2 MB: make its figures smaller)"
        print(f"{path.name}: {minutes(seconds)}{size}", flush=True)
    print(f"total: {minutes(total)}")
    if not args.no_write:
        update_readme(ROOT / "README.md", times)
    if args.times:
        args.times.write_text(json.dumps(times, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
