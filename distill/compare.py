"""Comparison of evaluated runs: student quality against subset size k, per recipe and selection method, with
95% intervals; paired verdicts against a baseline method and against a baseline recipe; and, with full-corpus runs,
each subset against the full corpus (from which k on it is not told apart from all the data) and whether small k
ranks recipes as the full corpus does.

Writes `results.csv` (one row per run), `results.md` and `results.json` (the accuracy table with intervals, the
untrained student of the same shape as the floor row and the teacher as the ceiling row; the paired tables, also
as `verdicts.csv`, `recipe_verdicts.csv` and `gaps.csv`; the rank correlations), `results.png` (each metric against
k, one line per method, 95% intervals, floor, teacher and full corpus dashed) and, with several recipes,
`recipes.png`; and prints the tables. Intervals and verdicts come from one bootstrap over seeds and test images
(`distill.intervals`).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import statistics
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from subsets.errors import InputError
from subsets.fileio import read_json, write_text_atomic
from subsets.report import save_figure

from .intervals import Bootstrap, Estimate, verdict

METRICS = {"knn_top1": "k-NN top-1", "probe_top1": "linear probe top-1", "agreement": "cosine to teacher"}
SCORED = ("knn_top1", "probe_top1")  # per-image results exist for these: intervals and verdicts
COLUMNS = ["run", "recipe", "objective", "method", "k", "seed", "steps", "epochs", "knn_top1", "probe_top1", "agreement",
           "untrained_knn_top1", "untrained_probe_top1"]
FLOOR = "untrained student"
FULL = "full"
# Line styles of the objectives in the plots (colours are the methods'); dashed and dash-dot are the reference lines'.
OBJECTIVE_STYLES = {"distill": "-", "mim-jepa": ":", "local-global": (0, (5, 1, 1, 1, 1, 1))}


def k_order(k) -> tuple:
    """Subset sizes ascending, the full corpus last."""
    return (1, 0) if k == FULL else (0, k)


def load_rows(runs: list[Path]) -> tuple[list[dict], dict]:
    """One row per run (from run.json and eval.json; `correct` holds its per-image results) and the reference rows
    (the untrained floor, averaged over the runs, and each teacher's scores); refuses runs evaluated on different
    sets or without per-image results."""
    if not runs:
        raise InputError("compare: no runs given")
    rows, first, references = [], None, {}
    for run in map(Path, runs):
        if not (run / "eval.json").exists():
            raise InputError(f"{run}: no eval.json; evaluate it first (distill eval --run {run})")
        ev, rec = read_json(run / "eval.json", "evaluation"), read_json(run / "run.json", "run record")
        if first is None:
            first = (run, ev["eval_set"])
        elif ev["eval_set"] != first[1]:
            diff = sorted(k for k in ev["eval_set"] if ev["eval_set"][k] != first[1].get(k))
            raise InputError(f"{run}: evaluated on another set than {first[0]} (differs in {', '.join(diff)}); "
                             "re-evaluate them alike to compare")
        if "correct" not in ev["student"]:
            raise InputError(f"{run / 'eval.json'}: has no per-image results (made by an older version); "
                             f"re-evaluate it (distill eval --run {run})")
        agreements = [v for v in ev["student"]["agreement"].values() if v is not None]
        subset = rec["subset"]
        recipe, objective = run_arm(rec)
        rows.append({"run": _run_label(run, rec), "recipe": recipe, "objective": objective,
                     "method": FULL if subset.get("full") else subset["method"],
                     "k": FULL if subset.get("full") else subset["k"],
                     "seed": rec["config"]["seed"], "steps": rec["steps"], "epochs": round(rec["epochs"], 2),
                     "knn_top1": ev["student"]["knn_top1"], "probe_top1": ev["student"]["probe_top1"],
                     "agreement": statistics.fmean(agreements) if agreements else None,
                     "untrained_knn_top1": ev.get("untrained", {}).get("knn_top1"),
                     "untrained_probe_top1": ev.get("untrained", {}).get("probe_top1"),
                     "correct": {m: np.frombuffer(ev["student"]["correct"][m].encode(), np.uint8) == ord("1")
                                 for m in SCORED}})
        for name, scores in ev.get("teachers", {}).items():
            if scores:
                references.setdefault(f"teacher: {name}", scores)
    rows.sort(key=lambda r: (r["recipe"], r["objective"], r["method"], k_order(r["k"]), r["seed"]))
    _refuse_duplicates(rows)
    return rows, floor_rows(rows) | references


def floor_rows(rows: list[dict]) -> dict:
    """The untrained student, averaged over the runs; one row per recipe when recipes differ in the floor (another
    student shape or seed gives another untrained twin)."""
    by_recipe: dict[str, dict] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        floors = [r for r in rows if r["recipe"] == recipe and r["untrained_knn_top1"] is not None]
        if floors:
            by_recipe[recipe] = {m: statistics.fmean(r[f"untrained_{m}"] for r in floors) for m in SCORED}
    if len({tuple(v.values()) for v in by_recipe.values()}) <= 1:
        return {FLOOR: v for v in list(by_recipe.values())[:1]}
    return {f"{FLOOR} ({recipe})": v for recipe, v in by_recipe.items()}


def run_arm(rec: dict) -> tuple[str, str]:
    """(recipe, objective) of a run record: "" for a run outside a recipe; older records name no objective."""
    return rec["config"].get("recipe") or "", rec.get("objective") or rec["config"].get("objective", "distill")


def _run_label(run: Path, rec: dict) -> str:
    return f"{rec['config']['recipe']}/{run.name}" if rec["config"].get("recipe") else run.name


def _refuse_duplicates(rows: list[dict]) -> None:
    seen = {}
    for r in rows:
        key = (r["recipe"], r["objective"], r["method"], r["k"], r["seed"])
        if key in seen:
            raise InputError(f"compare: runs {seen[key]} and {r['run']} are the same recipe, objective, method, k and seed; "
                             "give each once")
        seen[key] = r["run"]


def _groups(rows: list[dict]) -> dict[tuple, dict[int, dict]]:
    """((recipe, objective), method, k) -> {seed: row}. A recipe with an objective is an arm of the comparison."""
    groups: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        groups.setdefault(((r["recipe"], r["objective"]), r["method"], r["k"]), {})[r["seed"]] = r
    return groups


def _stack(runs: list[dict], metric: str) -> np.ndarray:
    return np.stack([r["correct"][metric] for r in runs])


def aggregate(rows: list[dict], boot: Bootstrap) -> list[dict]:
    """Per (recipe, objective, method, k): mean over seeds, std, and the 95% interval (seeds and test images
    resampled)."""
    out = []
    for (arm, method, k), by_seed in sorted(_groups(rows).items(), key=lambda g: (g[0][0], g[0][1], k_order(g[0][2]))):
        rs = [by_seed[s] for s in sorted(by_seed)]
        agg = {"recipe": arm[0], "objective": arm[1], "method": method, "k": k, "seeds": len(rs),
               "steps": ", ".join(f"{s:,}" for s in sorted({r["steps"] for r in rs}))}
        for m in METRICS:
            vals = [r[m] for r in rs if r[m] is not None]
            agg[m] = statistics.fmean(vals) if vals else None
            agg[m + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        for m in SCORED:
            est = boot.mean(_stack(rs, m))
            agg[m + "_low"], agg[m + "_high"] = est.low, est.high
        out.append(agg)
    return out


def _paired(boot: Bootstrap, runs: dict[int, dict], base: dict[int, dict], seeds: list[int]) -> dict:
    """Per scored metric: the mean over `seeds` of runs - base, paired by seed and test image, its 95% interval and
    its verdict."""
    row = {}
    for m in SCORED:
        d = boot.difference(_stack([runs[s] for s in seeds], m), _stack([base[s] for s in seeds], m))
        row |= {f"{m}_diff": d.value, f"{m}_low": d.low, f"{m}_high": d.high, f"{m}_verdict": verdict(d.low, d.high)}
    return row


def _against(rows: list[dict], partner, by_k_first: bool = False) -> tuple[list[tuple], bool]:
    """Every group (arm, method, k) with the group it is compared with (`partner(arm, method, k)` names it, None for
    none) and the seeds both have: ([(arm, method, k, its runs by seed, the partner's, seeds)], whether a pair was
    dropped for sharing fewer than two seeds: one seed gives no interval over seeds)."""
    groups = _groups(rows)
    order = (lambda g: (g[0][0], k_order(g[0][2]), g[0][1])) if by_k_first else \
        (lambda g: (g[0][0], g[0][1], k_order(g[0][2])))
    pairs, single = [], False
    for key, by_seed in sorted(groups.items(), key=order):
        other = partner(*key)
        base = groups.get(other) if other not in (None, key) else None
        if base is None:
            continue
        seeds = sorted(set(by_seed) & set(base))
        if len(seeds) < 2:
            single = True
            continue
        pairs.append((*key, by_seed, base, seeds))
    return pairs, single


def verdicts(rows: list[dict], boot: Bootstrap, baseline: str) -> tuple[list[dict], str | None]:
    """Each method against `baseline` at each k of each recipe: the mean over seeds of the paired difference (same
    seed, same test images), its 95% interval, and a verdict. Returns (rows, why there are none, if so)."""
    pairs, single = _against(rows, lambda arm, method, k: None if method == FULL else (arm, baseline, k),
                             by_k_first=True)
    out = [{"recipe": arm[0], "objective": arm[1], "k": k, "method": method, "baseline": baseline,
            "seeds": len(seeds)} | _paired(boot, by_seed, base, seeds)
           for arm, method, k, by_seed, base, seeds in pairs]
    if out:
        return out, None
    if single:
        return [], (f"no verdicts: a verdict against {baseline} needs at least two seeds of each method at a k "
                    "(paired by seed); these runs have one")
    return [], f"no verdicts: no method has runs beside {baseline} at the same k"


def arm_name(recipe: str, objective: str, with_objective: bool = False) -> str:
    name = recipe or "(no recipe)"
    return f"{name}, {objective}" if with_objective else name


def recipe_verdicts(rows: list[dict], boot: Bootstrap, baseline: tuple[str, str]) -> list[dict]:
    """Each other recipe (with its objective) against the `baseline` one, for each method and k both ran: the mean
    over seeds of the paired difference (same seed, subset and test images), its 95% interval and a verdict."""
    several = len({r["objective"] for r in rows}) > 1
    pairs, _ = _against(rows, lambda arm, method, k: (baseline, method, k))
    return [{"recipe": arm[0], "objective": arm[1], "method": method, "k": k, "against": arm_name(*baseline, several),
             "seeds": len(seeds), "steps": by_seed[seeds[0]]["steps"], "against_steps": base[seeds[0]]["steps"]}
            | _paired(boot, by_seed, base, seeds) for arm, method, k, by_seed, base, seeds in pairs]


def gaps_to_full(rows: list[dict], boot: Bootstrap) -> list[dict]:
    """Each method at each small k against the full corpus of the same recipe: the mean over seeds of the paired
    difference (same seed, so the same student initialisation; same test images), its 95% interval and a verdict.
    'not resolved' from some k on is where the subset stops being told apart from all the data at this budget."""
    pairs, _ = _against(rows, lambda arm, method, k: None if method == FULL else (arm, FULL, FULL))
    return [{"recipe": arm[0], "objective": arm[1], "method": method, "k": k, "seeds": len(seeds),
             "steps": by_seed[seeds[0]]["steps"], "full_steps": base[seeds[0]]["steps"]}
            | _paired(boot, by_seed, base, seeds) for arm, method, k, by_seed, base, seeds in pairs]


def rank_correlations(rows: list[dict], boot: Bootstrap, metric: str = "knn_top1") -> list[dict]:
    """With runs on the full corpus: for each method and small k, Spearman's correlation between the ranking of
    recipes (with their objectives) there and on the full corpus, with its 95% interval (recipes paired by seed)."""
    groups = _groups(rows)
    full = {arm: g for (arm, method, _), g in groups.items() if method == FULL}
    out = []
    for method in sorted({m for (_, m, _) in groups if m != FULL}):
        for k in sorted({k for (_, m, k) in groups if m == method}, key=k_order):
            recipes = [r for r in sorted(full) if (r, method, k) in groups]
            if len(recipes) < 3:  # with two, any ranking correlates +-1
                continue
            seeds = sorted(set.intersection(*[set(groups[(r, method, k)]) & set(full[r]) for r in recipes]))
            if not seeds:
                continue
            est: Estimate = boot.rank_correlation([_stack([groups[(r, method, k)][s] for s in seeds], metric) for r in recipes],
                                                  [_stack([full[r][s] for s in seeds], metric) for r in recipes])
            out.append({"method": method, "k": k, "recipes": len(recipes), "seeds": len(seeds), "metric": metric,
                        "spearman": est.value, "low": est.low, "high": est.high})
    return out


def _by_verdict(rows: list[dict], metric: str) -> str:
    """'worse at k = 100, 300; not resolved at k = 1,000': the ks of each verdict, in the order they first come."""
    by: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(r[metric + "_verdict"], []).append(_k(r["k"]))
    return "; ".join(f"{word} at k = {', '.join(ks)}" for word, ks in by.items())


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


# ------------------------------------------------------------------------------------------ tables
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


def _lead(agg: list[dict]) -> list[str]:
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


def paired_sections(lead: list[str], verdict_rows: list[dict], gap_rows: list[dict],
                    recipe_rows: list[dict]) -> list[tuple[str, list, list[dict], list[str]]]:
    """(title, columns before the differences as (header, cell of a row), rows, summary lines) of each paired
    comparison there is: methods against the baseline method, subsets against the full corpus, recipes against the
    baseline recipe."""
    by_lead = [(c, lambda r, c=c: r[c]) for c in lead]
    k, method, seeds = ("k", lambda r: _k(r["k"])), ("method", lambda r: r["method"]), ("seeds", lambda r: str(r["seeds"]))
    sections = []
    if verdict_rows:
        sections.append((f"against {verdict_rows[0]['baseline']}", [*by_lead, k, method, seeds], verdict_rows,
                         verdict_summary(verdict_rows)))
    if gap_rows:
        sections.append(("against the full corpus",
                         [*by_lead, method, k, seeds, *_steps_pair(gap_rows, "full_steps", "steps (subset / full)")],
                         gap_rows, gap_summary(gap_rows)))
    if recipe_rows:
        arm = [("recipe", lambda r: arm_name(r["recipe"], r["objective"], "objective" in lead))]
        sections.append((f"recipes against {recipe_rows[0]['against']}",
                         [*arm, method, k, seeds, *_steps_pair(recipe_rows, "against_steps", "steps (recipe / against)")],
                         recipe_rows, recipe_summary(recipe_rows)))
    return sections


def markdown(agg: list[dict], references: dict, sections: list, ranks: list[dict], notes: list[str]) -> str:
    lead = _lead(agg)
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
                                           + [r[m + "_verdict"] for m in SCORED]) + " |")
        lines += [""] + [f"- {line}" for line in summary]
    if ranks:
        lines += ["", "## Does a small k rank recipes as the full corpus does? (Spearman, k-NN)", "",
                  "| method | k | recipes | seeds | Spearman [95% interval] |", "|---|---|---|---|---|"]
        for r in ranks:
            lines.append(f"| {r['method']} | {_k(r['k'])} | {r['recipes']} | {r['seeds']} | "
                         f"{r['spearman']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] |")
    lines += [""] + [f"_{n}_" for n in notes]
    return "\n".join(lines).rstrip() + "\n"


def rich_tables(agg: list[dict], references: dict, sections: list, ranks: list[dict]) -> list[Table]:
    lead = _lead(agg)
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
                      *(f"{_diff(r, m)} [{colour[r[m + '_verdict']]}]{r[m + '_verdict']}[/]" for m in SCORED))
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
    return tables


# ------------------------------------------------------------------------------------------ plots
def _errorbar(ax, pts: list[dict], metric: str, **style) -> None:
    x = [a["k"] for a in pts]
    y = [a[metric] for a in pts]
    if metric in SCORED:
        err = [[a[metric] - a[metric + "_low"] for a in pts], [a[metric + "_high"] - a[metric] for a in pts]]
    else:
        err = [a[metric + "_std"] for a in pts]
    ax.errorbar(x, y, yerr=err, marker="o", ms=4, capsize=3, **style)


def _full_line(ax, full: dict | None, metric: str, color: str, label: str) -> None:
    if full is None or full[metric] is None:
        return
    ax.axhline(full[metric], ls="-.", color=color, lw=1, label=label)
    if metric in SCORED:
        ax.axhspan(full[metric + "_low"], full[metric + "_high"], color=color, alpha=0.12, lw=0)


def _k_axis(ax, agg: list[dict]) -> None:
    """A log axis of k with the subset sizes as its ticks, written out (a short range otherwise labels its minor
    ticks on top of each other)."""
    from matplotlib.ticker import NullFormatter

    ks = sorted({a["k"] for a in agg if a["k"] != FULL})
    ax.set_xscale("log")
    ax.set_xticks(ks, [f"{k:,}" for k in ks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("subset size k")


def plot(agg: list[dict], references: dict, png: Path, title: str, verdict_rows: list[dict] = ()) -> Path:
    """Each metric against k for the first recipe: one line per method (its colour) and objective (its line style)
    with its 95% interval, a triangle up (down) where the verdict against the baseline is better (worse); the floor,
    the teachers and the full corpus as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipe = agg[0]["recipe"]
    agg = [a for a in agg if a["recipe"] == recipe]
    methods = sorted({a["method"] for a in agg if a["method"] != FULL})
    objectives = list(dict.fromkeys(a["objective"] for a in agg))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.4 * len(METRICS), 3.6), squeeze=False)
    for ax, (metric, label) in zip(axes[0], METRICS.items()):
        for (i, method), objective in itertools.product(enumerate(methods), objectives):
            pts = [a for a in agg if a["method"] == method and a["objective"] == objective and a[metric] is not None]
            if pts:
                _errorbar(ax, pts, metric, label=method if len(objectives) == 1 else f"{method}, {objective}",
                          color=f"C{i}", ls=OBJECTIVE_STYLES.get(objective, "-"))
            if metric in SCORED:
                for v in verdict_rows:
                    if (v["recipe"], v["objective"], v["method"]) == (recipe, objective, method) and \
                            v[metric + "_verdict"] != "not resolved":
                        y = next(a[metric] for a in pts if a["k"] == v["k"])
                        ax.scatter([v["k"]], [y], s=90, facecolors="none", edgecolors=f"C{i}", linewidths=1.5,
                                   marker="^" if v[metric + "_verdict"] == "better" else "v", zorder=5)
        if metric in SCORED and verdict_rows:
            ax.scatter([], [], marker="^", facecolors="none", edgecolors="0.3",
                       label=f"better / worse than {verdict_rows[0]['baseline']} (95%)")
        for objective in objectives:
            full = next((a for a in agg if a["method"] == FULL and a["objective"] == objective), None)
            _full_line(ax, full, metric, "k", "full corpus" if len(objectives) == 1 else f"full corpus, {objective}")
        if metric != "agreement":
            for i, (name, t) in enumerate(references.items()):
                if name.startswith(FLOOR) and name not in (FLOOR, f"{FLOOR} ({recipe})"):
                    continue  # another recipe's floor
                color = "0.5" if name.startswith(FLOOR) else f"C{len(methods) + i}"
                ax.axhline(t[metric], ls="--", color=color, lw=1, label=name)
        _k_axis(ax, agg)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    fig.suptitle(title + (f" (recipe {recipe})" if recipe else ""), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, png)


def plot_recipes(agg: list[dict], png: Path, title: str, metric: str = "knn_top1") -> Path:
    """k-NN against k per recipe (one panel per method the recipes share), each recipe's full-corpus result as a
    horizontal line of its colour: whether the lines keep their order from small k to the full corpus."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = sorted({(a["recipe"], a["objective"]) for a in agg})
    several = len({arm[1] for arm in arms}) > 1
    shared = [m for m in sorted({a["method"] for a in agg if a["method"] != FULL})
              if sum(any((a["recipe"], a["objective"]) == arm and a["method"] == m for a in agg) for arm in arms) > 1]
    fig, axes = plt.subplots(1, max(1, len(shared)), figsize=(4.6 * max(1, len(shared)), 3.6), squeeze=False)
    for ax, method in zip(axes[0], shared):
        for i, arm in enumerate(arms):
            of_arm = [a for a in agg if (a["recipe"], a["objective"]) == arm]
            pts = [a for a in of_arm if a["method"] == method]
            if pts:
                _errorbar(ax, pts, metric, label=arm_name(*arm, several), color=f"C{i}",
                          ls=OBJECTIVE_STYLES.get(arm[1], "-"))
            _full_line(ax, next((a for a in of_arm if a["method"] == FULL), None), metric, f"C{i}", None)
        _k_axis(ax, agg)
        ax.set_title(f"{METRICS[metric]}, {method} subsets (dash-dot: full corpus)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, png)


# ------------------------------------------------------------------------------------------ the whole comparison
def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    return buf.getvalue()


def baseline_arm(rows: list[dict], first_run: Path, recipe: str | None) -> tuple[str, str]:
    """The (recipe, objective) the other recipes are compared with: the named recipe, else the first run's."""
    arms = list(dict.fromkeys((r["recipe"], r["objective"]) for r in rows))
    if recipe is None:
        return run_arm(read_json(Path(first_run) / "run.json", "run record"))
    named = [arm for arm in arms if arm[0] == recipe]
    if not named:
        raise InputError(f"compare: no runs of recipe {recipe!r} to compare the others with (the runs have "
                         f"{', '.join(arm_name(*arm) for arm in arms)})")
    return named[0]


def compare_runs(runs: list[Path], out: Path, console: Console | None = None, baseline: str = "random",
                 require_verdicts: bool = False, baseline_recipe: str | None = None) -> dict[str, Path]:
    """Everything the module's docstring lists, from evaluated runs. Methods are compared with `baseline` (a
    method); recipes with `baseline_recipe` (default: the first run's)."""
    rows, references = load_rows(runs)
    n_images = len(rows[0]["correct"]["knn_top1"])
    boot = Bootstrap(n_images)
    agg = aggregate(rows, boot)
    verdict_rows, why_not = verdicts(rows, boot, baseline)
    if why_not and require_verdicts:
        raise InputError(f"compare: {why_not}")
    ranks = rank_correlations(rows, boot)
    gap_rows = gaps_to_full(rows, boot)
    recipe_rows = recipe_verdicts(rows, boot, baseline_arm(rows, runs[0], baseline_recipe))
    sections = paired_sections(_lead(agg), verdict_rows, gap_rows, recipe_rows)
    notes = [f"95% intervals: {boot.replicates:,} bootstrap replicates over seeds and the {n_images:,} test images."]
    compared = {r["method"] for r in rows} - {baseline, FULL}  # with the baseline alone, no verdict was wanted
    notes += [why_not] if why_not and compared else []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plain = [{k: v for k, v in r.items() if k != "correct"} for r in rows]
    write_text_atomic(out / "results.csv", _csv(plain, COLUMNS))
    write_text_atomic(out / "summary.csv", _csv(agg, list(agg[0])))
    tables = {"verdicts_csv": ("verdicts.csv", verdict_rows), "gaps_csv": ("gaps.csv", gap_rows),
              "recipe_verdicts_csv": ("recipe_verdicts.csv", recipe_rows)}
    for name, rs in tables.values():
        if rs:
            write_text_atomic(out / name, _csv(rs, list(rs[0])))
    write_text_atomic(out / "results.md", markdown(agg, references, sections, ranks, notes))
    write_text_atomic(out / "results.json", json.dumps({"runs": plain, "aggregate": agg, "verdicts": verdict_rows,
                                                        "gaps_to_full": gap_rows, "recipe_verdicts": recipe_rows,
                                                        "rank_correlations": ranks, "references": references,
                                                        "notes": notes}, indent=1))
    first = read_json(Path(runs[0]) / "eval.json", "evaluation")["eval_set"]
    budgets = "students at equal step budgets" if len({r["steps"] for r in rows}) == 1 else "step budgets in results.md"
    title = f"k-NN / probe: {first['train_source']} -> {first['test_source']}; {budgets}"
    paths = {"csv": out / "results.csv", "summary_csv": out / "summary.csv", "markdown": out / "results.md",
             "json": out / "results.json", "plot": plot(agg, references, out / "results.png", title, verdict_rows)}
    paths |= {key: out / name for key, (name, rs) in tables.items() if rs}
    if len({(a["recipe"], a["objective"]) for a in agg}) > 1:
        paths["recipes_plot"] = plot_recipes(agg, out / "recipes.png", "recipes against k")
    console = console or Console()
    for table in rich_tables(agg, references, sections, ranks):
        console.print(table)
    for _, _, _, summary in sections:
        for line in summary:
            console.print(line)
    for note in notes[1:]:
        console.print(f"[dim]{note}[/]")
    return paths
