"""Comparison of evaluated runs: student quality against subset size k, per recipe and selection method, with
95% intervals; paired verdicts against a baseline method, against a baseline recipe and of every cell against its
untrained twin (whether the students learned at all); and, with full-corpus runs,
each subset against the full corpus (from which k on it is not told apart from all the data) and whether small k
ranks recipes as the full corpus does.

Writes `results.csv` (one row per run), `results.md` and `results.json` (the accuracy table with intervals, the
untrained student of the same shape as the floor row and the teacher as the ceiling row; the paired tables, also
as `verdicts.csv`, `recipe_verdicts.csv`, `gaps.csv` and `floor_gains.csv`; the rank correlations), `results.png`
(each metric against k, one line per method, 95% intervals, floor, teacher and full corpus dashed) and, with several recipes,
`recipes.png`; and prints the tables. Intervals and verdicts come from one set of replicates over test images and
seeds (`distill.intervals`). The numbers are made in `compare_stats`, written out in `compare_tables` and drawn in
`compare_plots`; this module puts them together. With compute accounts (`distill.compute_account`), also the
compute table and `compute.png` (k-NN against the compute each answer took).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rich.console import Console

from subsets.console import output_console
from subsets.errors import InputError
from subsets.fileio import write_text_atomic
from subsets.provenance import trained_by

from .compare_plots import plot, plot_compute, plot_recipes
from .compare_stats import (
    COLUMNS,
    FLOOR,
    FULL,
    aggregate,
    arm_name,
    class_names,
    class_note,
    floor_gains,
    gaps_to_full,
    headroom_note,
    load_rows,
    one_seed_note,
    rank_correlations,
    read_evaluated,
    recipe_verdicts,
    run_arm,
    shared_subset_note,
    verdicts,
)
from .compare_tables import lead_columns, markdown, paired_sections, rich_tables
from .compute_account import compute_rows
from .intervals import Bootstrap
from .model_cost import cost_note


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    return buf.getvalue()


def baseline_arm(rows: list[dict], first_record: dict, recipe: str | None) -> tuple[str, str]:
    """The (recipe, objective) the other recipes are compared with: the named recipe, else the first run's (its
    run.json record)."""
    arms = list(dict.fromkeys((r["recipe"], r["objective"]) for r in rows))
    if recipe is None:
        return run_arm(first_record)
    named = [arm for arm in arms if arm[0] == recipe]
    if not named:
        raise InputError(f"compare: no runs of recipe {recipe!r} to compare the others with (the runs have "
                         f"{', '.join(arm_name(*arm) for arm in arms)})")
    return named[0]


DEFAULT_BASELINE = "random"  # where the runs have no random ones, a note says there are no verdicts

# Every file a comparison may write. One an earlier comparison of other runs left in the same folder is removed, so
# the folder never shows verdicts (say) that its results.md does not; no other file there is touched.
COMPARISON_FILES = ("results.json", "results.csv", "summary.csv", "verdicts.csv", "gaps.csv", "recipe_verdicts.csv",
                    "floor_gains.csv", "results.md", "results.png", "recipes.png", "compute.png")


def _is_comparison(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"runs", "aggregate"} <= data.keys()


def refuse_to_overwrite_other_results(out: Path) -> None:
    """Refuse an `out` whose files of a comparison's names no comparison wrote (it holds no comparison's
    results.json, which is written first): the comparison would overwrite them."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, not a folder; choose another --out")
    held = [name for name in COMPARISON_FILES if (out / name).exists()]
    if held and not _is_comparison(out / "results.json"):
        raise InputError(f"{out}: holds {', '.join(held)}, not written by a comparison (it has no comparison's "
                         "results.json), which this one would overwrite; choose another --out")


def remove_stale_files(out: Path, written: set[Path]) -> None:
    for name in COMPARISON_FILES:
        if out / name not in written:
            (out / name).unlink(missing_ok=True)


def compare_runs(runs: list[Path], out: Path, console: Console | None = None, baseline: str = DEFAULT_BASELINE,
                 require_verdicts: bool = False, baseline_recipe: str | None = None,
                 classes: list[int | str] | None = None) -> dict[str, Path]:
    """Everything the module's docstring lists, from evaluated runs. Methods are compared with `baseline` (a
    method); recipes with `baseline_recipe` (default: the first run's). With `classes` (numbers or the test source's
    class names), on the test images of those classes only (a long-tailed corpus's tail, say)."""
    out = Path(out)
    refuse_to_overwrite_other_results(out)
    evaluated = read_evaluated(runs)
    rows, references = load_rows(evaluated, classes)
    methods = sorted({r["method"] for r in rows} - {FULL})
    if baseline != DEFAULT_BASELINE and baseline not in methods:  # a baseline named on purpose, and mistyped
        named = ", ".join(methods) or "none: the full corpus only"
        raise InputError(f"compare: baseline {baseline} is none of the runs' methods ({named})")
    n_images = len(rows[0]["correct"]["knn_top1"])
    boot = Bootstrap(n_images)
    agg = aggregate(rows, boot)
    verdict_rows, why_not = verdicts(rows, boot, baseline)
    if why_not and require_verdicts:
        raise InputError(f"compare: {why_not}")
    ranks = rank_correlations(rows, boot)
    gap_rows = gaps_to_full(rows, boot)
    recipe_rows = recipe_verdicts(rows, boot, baseline_arm(rows, evaluated[0][2], baseline_recipe))
    floor_rows = floor_gains(rows, boot)
    sections = paired_sections(lead_columns(agg), verdict_rows, gap_rows, recipe_rows, floor_rows)
    first = evaluated[0][1]["eval_set"]
    notes = [f"95% intervals: {boot.replicates:,} replicates of the {n_images:,} test images (bootstrap), each with a "
             "seed error from Student's t at the seeds' spread (S - 1 degrees of freedom)."]
    notes += [class_note(first, classes)] if classes is not None else []
    compared = {r["method"] for r in rows} - {baseline, FULL}  # with the baseline alone, no verdict was wanted
    notes += [why_not] if why_not and compared else []
    notes += [line] if (line := one_seed_note(rows)) else []
    notes += [line] if (line := shared_subset_note(evaluated)) else []
    notes += [line] if (line := trained_by([rec for _, _, rec in evaluated])) else []
    notes += [line] if (line := cost_note([ev for _, ev, _ in evaluated], [rec for _, _, rec in evaluated])) else []
    easy = headroom_note(references.get(FLOOR, {}), [v for k, v in references.items() if k.startswith("teacher: ")])
    notes += [easy] if easy else []
    out.mkdir(parents=True, exist_ok=True)
    plain = [{k: v for k, v in r.items() if k not in ("correct", "untrained_correct")} for r in rows]
    compute = compute_rows(rows)
    # first, so that a comparison stopped part-way leaves a folder a rerun recognises as its own
    write_text_atomic(out / "results.json", json.dumps({"runs": plain, "aggregate": agg, "verdicts": verdict_rows,
                                                        "gaps_to_full": gap_rows, "recipe_verdicts": recipe_rows,
                                                        "floor_gains": floor_rows,
                                                        "rank_correlations": ranks, "references": references,
                                                        "compute": compute, "notes": notes}, indent=1))
    write_text_atomic(out / "results.csv", _csv(plain, COLUMNS))
    write_text_atomic(out / "summary.csv", _csv(agg, list(agg[0])))
    tables = {"verdicts_csv": ("verdicts.csv", verdict_rows), "gaps_csv": ("gaps.csv", gap_rows),
              "recipe_verdicts_csv": ("recipe_verdicts.csv", recipe_rows), "floor_gains_csv": ("floor_gains.csv", floor_rows)}
    for name, rs in tables.values():
        if rs:
            write_text_atomic(out / name, _csv(rs, list(rs[0])))
    write_text_atomic(out / "results.md", markdown(agg, references, sections, ranks, notes, compute))
    budgets = "students at equal step budgets" if len({r["steps"] for r in rows}) == 1 else "step budgets in results.md"
    only = f" (classes {class_names(first, classes)})" if classes is not None else ""
    title = f"k-NN / probe: {first['train_source']} -> {first['test_source']}{only}; {budgets}"
    paths = {"csv": out / "results.csv", "summary_csv": out / "summary.csv", "markdown": out / "results.md",
             "json": out / "results.json", "plot": plot(agg, references, out / "results.png", title, verdict_rows)}
    paths |= {key: out / name for key, (name, rs) in tables.items() if rs}
    if len({(a["recipe"], a["objective"]) for a in agg}) > 1:
        paths["recipes_plot"] = plot_recipes(agg, out / "recipes.png", "recipes against k")
    if compute and (drawn := plot_compute(agg, compute, references, out / "compute.png", title)):
        paths["compute_plot"] = drawn
    remove_stale_files(out, set(paths.values()))
    console = console or output_console()
    for table in rich_tables(agg, references, sections, ranks, compute):
        console.print(table)
    for _, _, _, summary in sections:
        for line in summary:
            console.print(line)
    for note in notes[1:]:
        console.print(f"[bold yellow]{note}[/]" if note == easy else f"[dim]{note}[/]")
    return paths
