"""Does every lesson show its point on real CIFAR-10? Runs the lesson notebooks in the cpu profile with several
seeds and tabulates, per notebook, the quantity the lesson is about, its mean ± spread over seeds, and whether
the lesson's claim held in every seed.

The notebooks themselves are run (``nbclient``, ``RESNET_COURSE_SEED`` set per seed), and each writes what it
measured with ``resnet_course.results.record_result``: the table comes from the same code a student runs, not
from a second copy of it. Notebook 06 analyses notebook 05's model, so 05 runs before 06 for every seed.

    cp -r /path/to/cifar-10-batches-py "$HOME/cifar"/           # real CIFAR-10 (or a subset) in its own format
    RESNET_COURSE_DATA="$HOME/cifar" python benchmarks/lessons.py --seeds 0 1 2 --write

``--reuse`` skips a (notebook, seed) whose result file already exists, e.g. seed 0 after
``python tools/render_notebooks.py`` rendered the course. ``--write`` puts the table into
``benchmarks/RESULTS.md`` between its ``lessons`` markers. A benchmark, not a test: it needs real CIFAR-10 and
minutes per notebook.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from notebook_runs import describe_data, execute_notebook, machine  # noqa: E402

NOTEBOOKS = {
    "01": "01_degradation_problem.ipynb",
    "05": "05_training_resnet18.ipynb",
    "06": "06_evaluating_a_classifier.ipynb",
    "08": "08_transfer_learning.ipynb",
    "09": "09_training_tricks.ipynb",
}
BEGIN, END = "<!-- lessons:begin -->", "<!-- lessons:end -->"
FITTED = 0.3  # 01: training error below which a net counts as trained far enough (chance is 90 % error)


def run_notebook(name: str, seed: int, timeout: int) -> float:
    """Execute notebook ``name`` in the cpu profile with ``seed`` and the profile's own dataset and mixed-precision
    choice; wall seconds. Outputs are not saved."""
    env = {
        "RESNET_COURSE_PROFILE": "cpu",
        "RESNET_COURSE_SEED": str(seed),
        "RESNET_COURSE_DATASET": None,
        "RESNET_COURSE_AMP": None,
        "RESNET_COURSE_RESULTS": None,
    }
    return execute_notebook(ROOT / "notebooks" / NOTEBOOKS[name], env, timeout)[1]


def one_setting(records: list[dict]) -> str | None:
    """None when the records differ only in their seed; otherwise which knobs differ (runs that must not be
    combined, e.g. fp32 and bf16, or another dataset)."""

    def knobs(r: dict) -> dict:
        dataset = re.sub(r"-seed\d+$", "", r["dataset"])  # 08's target folder is named after its seed
        return {k: v for k, v in (r.get("settings") or {}).items() if k != "seed"} | {"dataset": dataset}

    first = knobs(records[0])
    differ = sorted({k for r in records[1:] for k, v in knobs(r).items() if first.get(k) != v})
    return ", ".join(differ) or None


def mean_spread(values: list[float], scale: float = 100.0, unit: str = " %") -> str:
    """'mean ± std (min–max)' in percent by default; std over seeds (n − 1)."""
    v = [scale * x for x in values]
    sd = statistics.stdev(v) if len(v) > 1 else float("nan")
    return f"{statistics.mean(v):.1f} ± {sd:.1f}{unit} ({min(v):.1f}–{max(v):.1f})"


def lesson_01(records: list[dict]) -> tuple[str, str, str, bool]:
    errors = [r["values"]["train_error"] for r in records]
    names = list(errors[0])
    plain = sorted((n for n in names if n.startswith("plain")), key=lambda n: int(n[5:]))
    res = sorted((n for n in names if n.startswith("resnet")), key=lambda n: int(n[6:]))
    plain_gap = [e[plain[-1]] - e[plain[0]] for e in errors]
    res_gap = [e[res[-1]] - e[res[0]] for e in errors]
    # seed-to-seed spread: the standard deviation of each net's final training error over seeds, pooled (RMS)
    spread = math.sqrt(statistics.mean(statistics.variance([e[n] for e in errors]) for n in names))
    # trained far enough: every net that does not degrade (the residual nets, the shallow plain net) fits its
    # training images to below FITTED error; the deep plain net's lag is the effect itself
    fitted = max(e[n] for e in errors for n in res + plain[:1])
    held = all(g > 2 * spread for g in plain_gap) and all(g <= spread for g in res_gap) and fitted < FITTED
    quantity = (
        f"final training error, {plain[-1]} − {plain[0]} / {res[-1]} − {res[0]} (points; pooled seed "
        f"spread {100 * spread:.1f}; worst of {', '.join(res + plain[:1])}: {100 * fitted:.0f} %)"
    )
    value = f"{mean_spread(plain_gap, unit='')} / {mean_spread(res_gap, unit='')}; per net: " + ", ".join(
        f"{n} {mean_spread([e[n] for e in errors])}" for n in names
    )
    claim = (
        f"deeper plain net worse by > 2× the seed spread in every seed; deeper residual net not worse by more "
        f"than the spread; the other nets trained to below {100 * FITTED:.0f} % error (chance: 90 %)"
    )
    return quantity, value, claim, held


def lesson_05(records: list[dict]) -> tuple[str, str, str, bool]:
    acc = [r["values"]["test_accuracy"] for r in records]
    exact = all(r["values"]["resume_identical"] for r in records)
    v = records[0]["values"]
    quantity = (
        f"final-epoch test accuracy of ResNet-20 ({v['train_images']} training images, {v['epochs']} "
        f"epochs, {v['test_images']} test images)"
    )
    return (
        quantity,
        mean_spread(acc),
        "≥ 68 % in every seed, and resume bit-identical",
        min(acc) >= 0.68 and exact,
    )


def lesson_06(records: list[dict]) -> tuple[str, str, str, bool]:
    runs = {
        (r["seed"], s): (a, r["values"]["seed_study_best_test_accuracy"][s])  # one entry per (data seed, run)
        for r in records
        for s, a in r["values"]["seed_study_final_accuracy"].items()
    }
    finals = [f for f, _ in runs.values()]
    bests = [b for _, b in runs.values()]
    trap = [b - f for b, f in zip(bests, finals, strict=True)]
    quantity = (
        f"seed-study runs ({records[0]['values']['study_epochs']} epochs): final-epoch test accuracy; "
        "'best test epoch' minus final (points)"
    )
    value = f"{mean_spread(finals)} over {len(finals)} runs; trap {mean_spread(trap, unit='')}"
    return quantity, value, "every seed-study run above 60 %", min(finals) > 0.60


def lesson_08(records: list[dict]) -> tuple[str, str, str, bool]:
    acc = {k: [r["values"]["accuracy"][k] for r in records] for k in records[0]["values"]["accuracy"]}
    gaps = [r["values"]["best_minus_scratch"] for r in records]
    half = [r["values"]["difference_interval"] for r in records]
    resolved = sum(g > h for g, h in zip(gaps, half, strict=True))
    quantity = "final test accuracy per strategy; best transfer − scratch vs the 95 % interval of that difference"
    value = "; ".join(f"{k} {mean_spread(v)}" for k, v in acc.items())
    value += (f"; difference {mean_spread(gaps, unit='')} points vs interval ±{100 * max(half):.1f}: "
              f"resolved in {resolved} of {len(records)} seeds")
    claim = ("the notebook reports a difference larger than its interval, or says plainly that this budget does "
             "not resolve it (it prints one or the other in every run)")
    return quantity, value, claim, all(h > 0 for h in half)


def lesson_09(records: list[dict]) -> tuple[str, str, str, bool]:
    base = [a / 100 for r in records for a in r["values"]["baseline_accuracy"]]
    verdicts: dict[str, list[str]] = {}
    for r in records:
        for name, v in r["values"]["verdicts"].items():
            verdicts.setdefault(name, []).append(v)
    quantity = (
        f"baseline test accuracy ({records[0]['values']['steps_per_run']} steps per run); verdict per trick"
    )
    value = f"baseline {mean_spread(base)} over {len(base)} runs; " + "; ".join(
        f"{name}: {', '.join(v)}" for name, v in verdicts.items()
    )
    held = min(base) >= 0.25 and all("near chance" not in v for vs in verdicts.values() for v in vs)
    claim = (
        "baseline ≥ 25 % (chance: 10 %) in every baseline run, and every row compared with the seeds' range"
    )
    return quantity, value, claim, held


LESSONS = {"01": lesson_01, "05": lesson_05, "06": lesson_06, "08": lesson_08, "09": lesson_09}


HEADER = [
    "| notebook | quantity | mean ± std (min–max) over seeds | claim | held in every seed | wall per run | measured |",
    "|---|---|---|---|---|---|---|",
]


def table(seeds: list[int], walls: dict[tuple[str, int], float], measured: str, notebooks: list[str]) -> str:
    """The lessons table's rows of ``notebooks``, each ending with ``measured`` (date and machine)."""
    from resnet_course.results import read_results

    lines = list(HEADER)
    for name, summarise in LESSONS.items():
        if name not in notebooks:
            continue
        records = [r for r in read_results(name, "cpu") if r["seed"] in seeds]
        if len(records) < len(seeds):
            lines.append(
                f"| {name} | — | missing seeds {sorted(set(seeds) - {r['seed'] for r in records})} | | | |"
            )
            continue
        mixed = one_setting(records)
        if mixed:
            lines.append(
                f"| {name} | — | records made with different settings ({mixed}): rerun without --reuse | | | |"
            )
            continue
        quantity, value, claim, held = summarise(records)
        run_walls = [walls[(name, s)] for s in seeds if (name, s) in walls]
        wall = f"{min(run_walls):.0f}–{max(run_walls):.0f} s" if run_walls else "(reused)"
        held_text = "yes" if held else "**no**"
        lines.append(f"| {name} | {quantity} | {value} | {claim} | {held_text} | {wall} | {measured} |")
    return "\n".join(lines)


def merge(old_section: str, new_table: str) -> str:
    """``new_table`` with the rows of ``old_section``'s table for the notebooks it lacks, in course order. A row
    without a ``measured`` column (written before it existed) gets the date and machine of its section's header."""
    rows = {line.split("|")[1].strip(): line for line in new_table.splitlines()[2:]}
    found = re.search(r"Measured (\d{4}-\d\d-\d\d) .*? on an? (.+?); mixed precision", old_section, re.S)
    default = f"{found.group(1)}, {found.group(2)}" if found else "not recorded"
    for line in old_section.splitlines():
        cells = line.split("|")
        if line.startswith("| ") and len(cells) > 2 and cells[1].strip() in NOTEBOOKS and cells[1].strip() not in rows:
            rows[cells[1].strip()] = line if len(cells) == 9 else f"{line.rstrip()} {default} |"
    return "\n".join(HEADER + [rows[n] for n in NOTEBOOKS if n in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--notebooks", nargs="+", default=list(NOTEBOOKS), choices=list(NOTEBOOKS))
    parser.add_argument("--reuse", action="store_true", help="skip runs whose result file exists")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--write", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    if len(set(args.seeds)) < 2:
        parser.error("a spread over seeds needs at least two different seeds, e.g. --seeds 0 1 2")

    from resnet_course.results import result_path

    try:
        data = describe_data()
    except Exception as err:  # noqa: BLE001 - the message says what is missing and how to fix it
        print(f"real CIFAR-10 is needed: {err}", file=sys.stderr)
        return 2
    where = machine()
    print(f"machine: {where}; data: {data}", flush=True)
    walls: dict[tuple[str, int], float] = {}
    for seed in args.seeds:
        for name in args.notebooks:
            path = result_path(name, "cpu", seed)
            if args.reuse and path.exists():
                record = json.loads(path.read_text())
                if "wall_seconds" in record:  # stamped by an earlier run of this script
                    walls[(name, seed)] = record["wall_seconds"]
                print(f"{name} seed {seed}: reusing the recorded result", flush=True)
                continue
            walls[(name, seed)] = run_notebook(name, seed, args.timeout)
            record = json.loads(path.read_text())  # written by the notebook's record_result cell
            path.write_text(json.dumps(record | {"wall_seconds": round(walls[(name, seed)], 1)}, indent=1))
            print(f"{name} seed {seed}: {walls[(name, seed)]:.0f} s", flush=True)
    text = table(args.seeds, walls, f"{time.strftime('%Y-%m-%d')}, {where}", args.notebooks)
    print(text)
    if args.write:
        import torch

        results = ROOT / "benchmarks" / "RESULTS.md"
        old = results.read_text()
        has_section = BEGIN in old and END in old.split(BEGIN, 1)[1]
        if has_section:
            text = merge(old.split(BEGIN, 1)[1].split(END, 1)[0], text)  # rows of the notebooks not run stay
        section = (
            f"{BEGIN}\nMeasured with `python benchmarks/lessons.py --seeds {' '.join(map(str, args.seeds))}`: cpu "
            f"profile, {data}, torch {torch.__version__}; mixed precision as the profile chooses it (on where the CPU "
            "has native bf16). The last column says when and on which machine each row was measured (`--notebooks` "
            f"re-measures some rows and keeps the others).\n\n{text}\n{END}"
        )
        if has_section:
            head, rest = old.split(BEGIN, 1)
            new = head + section + rest.split(END, 1)[1]
        else:
            new = old.rstrip("\n") + "\n\n## Lessons on real CIFAR-10 (cpu profile)\n\n" + section + "\n"
        results.write_text(new)
        print(f"written to {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
