"""A comparison as people read it: the accuracy table with its floor and ceiling rows, the paired tables with a plain
line per method or recipe, and the rank correlations, in Markdown (`results.md`) and as rich tables."""

from __future__ import annotations

from rich.table import Table

from .compare_stats import FLOOR, FULL, METRICS, SCORED, arm_name, holds_together
from .compute_account import ACCOUNT, macs_text
from .intervals import MOST_SEEDS


def _by_verdict(rows: list[dict], metric: str) -> str:
    """'worse at k = 100, 300 (k = 300 not with all 9 together); not resolved at k = 1,000': the ks of each verdict, in
    the order they first come, and those whose verdict does not hold with the whole table's comparisons together."""
    by: dict[str, list[str]] = {}
    alone: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(r[metric + "_verdict"], []).append(_k(r["k"]))
        if not holds_together(r, metric):
            alone.setdefault(r[metric + "_verdict"], []).append(_k(r["k"]))
    return "; ".join(f"{word} at k = {', '.join(ks)}" + (f" (k = {', '.join(alone[word])} not with all "
                                                          f"{rows[0]['family']} together)" if word in alone else "")
                     for word, ks in by.items())


def verdict_cell(row: dict, metric: str) -> str:
    """'better', or 'better, not with all 9' where the verdict holds alone only."""
    word = row[metric + "_verdict"]
    return word if holds_together(row, metric) else f"{word}, not with all {row['family']}"


def family_note(rows: list[dict]) -> str:
    """What 'not with all N' means, with the level each interval takes for the whole table to hold together; "" where
    every verdict of the table holds together (nothing reads so)."""
    if all(holds_together(r, m) for r in rows for m in SCORED):
        return ""
    levels = " and ".join(f"{100 * rows[0][m + '_family_level']:.1f}% for {METRICS[m]}" for m in SCORED)
    return (f"'not with all {rows[0]['family']}': the 95% interval excludes zero, but not once every interval of "
            f"this table is widened alike (to {levels}) so that all {rows[0]['family']} hold together at 95% "
            "(percentile bootstrap, Mandel & Betensky 2008): among many comparisons, about one 95% interval in "
            "twenty misses by chance.")


def seeds_line(rows: list[dict], name, metric: str = "knn_top1") -> str:
    """What more seeds would settle, for the comparisons that do not hold with the whole table together: the seeds at
    which each would, alone and together, were its difference and its seeds' spread to stay as measured (`name(row)`
    names a comparison); "" where every one holds together."""
    open_rows = [r for r in rows if r[metric + "_family_verdict"] == "not resolved"]
    if not open_rows:
        return ""
    within = [r for r in open_rows if r[metric + "_seeds_alone"] is not None]
    said = []
    for r in within:
        alone, together, now = r[metric + "_seeds_alone"], r[metric + "_seeds_together"], r["seeds"]
        first = f"alone now ({now} seeds)" if alone == now else f"alone at {alone} seeds"
        said.append(f"{name(r)} ({r[metric + '_diff']:+.3f}) {first}, "
                    + (f"with all {r['family']} at {together}" if together else
                       f"not with all {r['family']} within {MOST_SEEDS}"))
    rest = len(open_rows) - len(within)
    if rest:
        said.append(f"{f'{rest} other' if within else f'the {rest}'}{'s' * (rest > 1 and bool(within))} not within "
                    f"{MOST_SEEDS} seeds even alone")
    return (f"with more seeds ({METRICS[metric]}; projected, were each difference and its seeds' spread to stay as "
            "measured, so a lower bound: a lead picked for its size tends to shrink): " + "; ".join(said))


def _lines_by(rows: list[dict], key) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out


def _method_within(method: str, recipe: str, objective: str, several: bool) -> str:
    """'kcenter (base)': a method with its recipe, and its objective where there are several."""
    within = ", ".join(filter(None, [recipe, objective if several else ""]))
    return f"{method} ({within})" if within else method


def verdict_summary(verdict_rows: list[dict], metric: str = "knn_top1") -> list[str]:
    """One plain line per recipe and method: at which k it is better, worse or not resolved against the baseline."""
    several = len({v["objective"] for v in verdict_rows}) > 1
    lines = []
    for (recipe, objective, method), vs in _lines_by(verdict_rows, lambda v: (v["recipe"], v["objective"],
                                                                               v["method"])).items():
        lines.append(f"{_method_within(method, recipe, objective, several)} against {vs[0]['baseline']} ({METRICS[metric]}): "
                     + _by_verdict(vs, metric))
    return lines


def gap_summary(gap_rows: list[dict], metric: str = "knn_top1") -> list[str]:
    """One plain line per recipe and method: where it is better, worse or not resolved against the full corpus, and
    the smallest k from which no subset is resolved worse than it."""
    several = len({g["objective"] for g in gap_rows}) > 1
    lines = []
    for (recipe, objective, method), gs in _lines_by(gap_rows, lambda g: (g["recipe"], g["objective"],
                                                                           g["method"])).items():
        worse = [i for i, g in enumerate(gs) if g[metric + "_verdict"] == "worse"]
        if worse and worse[-1] == len(gs) - 1:
            end = "the largest k here is still resolved worse"
        else:
            end = f"from k = {_k(gs[worse[-1] + 1 if worse else 0]['k'])} on, no subset is resolved worse"
        lines.append(f"{_method_within(method, recipe, objective, several)} against the full corpus ({METRICS[metric]}): "
                     f"{_by_verdict(gs, metric)}: {end}")
    return lines


def recipe_summary(recipe_rows: list[dict], metric: str = "knn_top1") -> list[str]:
    """One plain line per recipe and method (the full corpus counts as one): at which k it is better, worse or not
    resolved against the baseline recipe."""
    several = len({r["objective"] for r in recipe_rows}) > 1
    lines = []
    for (recipe, objective, method), rs in _lines_by(recipe_rows, lambda r: (r["recipe"], r["objective"],
                                                                              r["method"])).items():
        where, said = ("the full corpus", rs[0][metric + "_verdict"]) if method == FULL else \
            (method, _by_verdict(rs, metric))
        lines.append(f"{arm_name(recipe, objective, several)} against {rs[0]['against']} on {where} "
                     f"({METRICS[metric]}): {said}")
    return lines


def floor_summary(floor_rows: list[dict], metric: str = "knn_top1") -> list[str]:
    """One plain line per recipe and method: at which k its students are better, worse or not resolved against their
    untrained twins."""
    several = len({r["objective"] for r in floor_rows}) > 1
    return [f"{_method_within(method, recipe, objective, several)} against its untrained twin ({METRICS[metric]}): "
            + _by_verdict(rs, metric)
            for (recipe, objective, method), rs in _lines_by(floor_rows, lambda r: (r["recipe"], r["objective"],
                                                                                     r["method"])).items()]


def _cell(a: dict, m: str) -> str:
    if a[m] is None:
        return "-"
    if m in SCORED:
        return f"{a[m]:.3f} [{a[m + '_low']:.3f}, {a[m + '_high']:.3f}]"
    return f"{a[m]:.3f} ± {a[m + '_std']:.3f}" if a["seeds"] > 1 else f"{a[m]:.3f}"


def _diff(v: dict, m: str) -> str:
    return f"{v[m + '_diff']:+.3f} [{v[m + '_low']:+.3f}, {v[m + '_high']:+.3f}]"


def _k(k) -> str:
    return FULL if k == FULL else f"{k:,}"


def lead_columns(agg: list[dict]) -> list[str]:
    """The columns that tell the arms apart: recipe where named, objective where there are several."""
    return ["recipe"] * any(a["recipe"] for a in agg) + ["objective"] * (len({a["objective"] for a in agg}) > 1)


def _budget(agg: list[dict]) -> list[str]:
    """The steps column, where the runs were not all trained for the same steps (a sweep's `steps_by_k`)."""
    return ["steps"] * (len({a["steps"] for a in agg}) > 1)


def _steps_pair(rows: list[dict], key: str, header: str) -> list[tuple[str, callable]]:
    """The steps of both sides, where they differ somewhere (another budget is part of what is compared)."""
    if not any(r["steps"] != r[key] for r in rows):
        return []
    return [(header, lambda r: f"{r['steps']:,} / {r[key]:,}")]


def paired_sections(lead: list[str], verdict_rows: list[dict], gap_rows: list[dict], recipe_rows: list[dict],
                    floor_rows: list[dict] = ()) -> list[tuple[str, list, list[dict], list[str]]]:
    """(title, columns before the differences as (header, cell of a row), rows, summary lines) of each paired
    comparison there is: methods against the baseline method, subsets against the full corpus, recipes against the
    baseline recipe, every cell against its untrained twin."""
    by_lead = [(c, lambda r, c=c: r[c]) for c in lead]
    k, method, seeds = ("k", lambda r: _k(r["k"])), ("method", lambda r: r["method"]), ("seeds", lambda r: str(r["seeds"]))
    within = (lambda r: f" ({', '.join(r[c] for c in lead if r[c])})" if any(r[c] for c in lead) else "")
    name = lambda r: f"{r['method']}{within(r)} at k = {_k(r['k'])}"  # noqa: E731  a method at a k, in its recipe
    sections = []
    if verdict_rows:
        sections.append((f"against {verdict_rows[0]['baseline']}", [*by_lead, k, method, seeds], verdict_rows,
                         _with_seeds_line(verdict_summary(verdict_rows), verdict_rows, name)))
    if gap_rows:
        sections.append(("against the full corpus",
                         [*by_lead, method, k, seeds, *_steps_pair(gap_rows, "full_steps", "steps (subset / full)")],
                         gap_rows, _with_seeds_line(gap_summary(gap_rows), gap_rows, name)))
    if recipe_rows:
        arm_of = lambda r: arm_name(r["recipe"], r["objective"], "objective" in lead)  # noqa: E731
        on = lambda r: f"{arm_of(r)} on {r['method']}" + (f" at k = {_k(r['k'])}" if r["k"] != FULL else "")  # noqa: E731
        sections.append((f"recipes against {recipe_rows[0]['against']}",
                         [("recipe", arm_of), method, k, seeds,
                          *_steps_pair(recipe_rows, "against_steps", "steps (recipe / against)")],
                         recipe_rows, _with_seeds_line(recipe_summary(recipe_rows), recipe_rows, on)))
    if floor_rows:
        sections.append(("against the untrained twin", [*by_lead, method, k, seeds],
                         floor_rows, _with_seeds_line(floor_summary(floor_rows), floor_rows, name)))
    return sections


def _with_seeds_line(summary: list[str], rows: list[dict], name) -> list[str]:
    return summary + [line] if (line := seeds_line(rows, name)) else summary


COMPUTE_HEAD = ["selection", "teacher targets", "student training", "total", "k-NN top-1 (mean)"]
COMPUTE_NOTE = ("Compute in multiply-accumulates (a FLOP count as papers give it is about twice): selection is the "
                "encoder's pass over the whole corpus, charged to each method that read the embeddings (random and "
                "the full corpus read none); teacher targets, the cached teacher's pass over the views of the run's "
                "k images (an online teacher is in the training steps); student training, a step counted while "
                "training, times the steps. '-': not known (made before compute was counted, or a teacher not "
                "loaded where the run was evaluated).")


def _compute_cells(row: dict, lead: list[str]) -> list[str]:
    return ([row[c] or "-" for c in lead] + [row["method"], _k(row["k"]), str(row["seeds"])]
            + [macs_text(row[p]) for p in ACCOUNT] + [f"{row['knn_top1']:.3f}"])


def markdown(agg: list[dict], references: dict, sections: list, ranks: list[dict], notes: list[str],
             compute: list[dict] = ()) -> str:
    lead = lead_columns(agg)
    budget = _budget(agg)
    head = lead + ["method", "k", "seeds"] + budget + [f"{METRICS[m]} [95% interval]" if m in SCORED else
                                             f"{METRICS[m]} (± std)" for m in METRICS]
    lines = ["## Student quality against k", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in agg:
        lines.append("| " + " | ".join([a[c] or "-" for c in lead] + [a["method"], _k(a["k"]), str(a["seeds"])]
                                       + [a[c] for c in budget] + [_cell(a, m) for m in METRICS]) + " |")
    for name, t in references.items():
        scores = [f"{t['knn_top1']:.3f}", f"{t['probe_top1']:.3f}", "-" if name.startswith(FLOOR) else "1"]
        lines.append("| " + " | ".join([name] + [""] * (len(lead) + len(budget) + 2) + scores) + " |")
    for title, columns, rows, summary in sections:
        head = [h for h, _ in columns] + [f"{METRICS[m]}: difference [95% interval]" for m in SCORED] + \
            [f"{METRICS[m]}: verdict" for m in SCORED]
        lines += ["", f"## {title[0].upper()}{title[1:]} (paired by seed and test image)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            lines.append("| " + " | ".join([cell(r) or "-" for _, cell in columns] + [_diff(r, m) for m in SCORED]
                                           + [verdict_cell(r, m) for m in SCORED]) + " |")
        lines += [""] + [f"- {line}" for line in summary]
        if note := family_note(rows):
            lines += ["", f"_{note}_"]
    if ranks:
        lines += ["", "## Does a small k rank recipes as the full corpus does? (Spearman, k-NN)", "",
                  "| method | k | recipes | seeds | Spearman [95% interval] |", "|---|---|---|---|---|"]
        for r in ranks:
            lines.append(f"| {r['method']} | {_k(r['k'])} | {r['recipes']} | {r['seeds']} | "
                         f"{r['spearman']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] |")
    if compute:
        head = lead + ["method", "k", "seeds"] + COMPUTE_HEAD
        lines += ["", "## What each answer cost (multiply-accumulates, mean over seeds)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(_compute_cells(r, lead)) + " |" for r in compute]
        lines += ["", f"_{COMPUTE_NOTE}_"]
    lines += [""] + [f"_{n}_" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def rich_tables(agg: list[dict], references: dict, sections: list, ranks: list[dict],
                compute: list[dict] = ()) -> list[Table]:
    lead = lead_columns(agg)
    budget = _budget(agg)
    table = Table(title="student quality against subset size k (mean over seeds [95% interval])", title_style="bold")
    for col in (*lead, "method", "k", "seeds", *budget, *METRICS.values()):
        table.add_column(col, justify="left" if col in ("method", "recipe", "objective") else "right")
    best = {m: max((a[m] for a in agg if a[m] is not None), default=None) for m in METRICS}
    for a in agg:
        cells = [_cell(a, m) for m in METRICS]
        cells = [f"[bold]{c}[/]" if a[m] is not None and a[m] == best[m] else c for c, m in zip(cells, METRICS)]
        table.add_row(*[a[c] or "-" for c in lead], a["method"], _k(a["k"]), str(a["seeds"]), *[a[c] for c in budget],
                      *cells)
    for name, t in references.items():
        table.add_row(f"[dim]{name}[/]", *[""] * (len(lead) + len(budget) + 2), f"{t['knn_top1']:.3f}", f"{t['probe_top1']:.3f}",
                      "-" if name.startswith(FLOOR) else "1")
    tables = [table]
    colour = {"better": "green", "worse": "red", "not resolved": "dim"}
    for title, columns, rows, _ in sections:
        t = Table(title=f"{title}, paired by seed (difference [95% interval], verdict)", title_style="bold")
        for col, _ in (*columns, *((METRICS[m], None) for m in SCORED)):
            t.add_column(col, justify="left" if col in ("method", "recipe", "objective") else "right")
        for r in rows:
            t.add_row(*[cell(r) or "-" for _, cell in columns],
                      *(f"{_diff(r, m)} [{colour[r[m + '_verdict']] if holds_together(r, m) else 'yellow'}]"
                        f"{verdict_cell(r, m)}[/]" for m in SCORED))
        t.caption = family_note(rows) or None
        tables.append(t)
    if ranks:
        rt = Table(title="does a small k rank recipes as the full corpus does? (Spearman on k-NN [95% interval])",
                   title_style="bold")
        for col in ("method", "k", "recipes", "seeds", "Spearman"):
            rt.add_column(col, justify="left" if col == "method" else "right")
        for r in ranks:
            rt.add_row(r["method"], _k(r["k"]), str(r["recipes"]), str(r["seeds"]),
                       f"{r['spearman']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}]")
        tables.append(rt)
    if compute:
        ct = Table(title="what each answer cost (multiply-accumulates, mean over seeds)", title_style="bold",
                   caption=COMPUTE_NOTE)
        for col in (*lead, "method", "k", "seeds", *COMPUTE_HEAD):
            ct.add_column(col, justify="left" if col in ("method", "recipe", "objective") else "right")
        for r in compute:
            ct.add_row(*_compute_cells(r, lead))
        tables.append(ct)
    return tables
