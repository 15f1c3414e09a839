"""Comparison of evaluated runs: student quality against subset size k, one series per selection method.

Writes `results.csv` (one row per run), `results.md` (mean ± std over seeds per method and k, the
untrained student of the same shape as the floor row, the teacher as the ceiling row) and
`results.png` (each metric against k on a log axis, error bars over seeds, floor and teacher
dashed), and prints the table.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from subsets.errors import InputError
from subsets.fileio import read_json, write_text_atomic
from subsets.report import save_figure

METRICS = {"knn_top1": "k-NN top-1", "probe_top1": "linear probe top-1", "agreement": "cosine to teacher"}
COLUMNS = ["run", "method", "k", "seed", "steps", "epochs", "knn_top1", "probe_top1", "agreement",
           "untrained_knn_top1", "untrained_probe_top1"]
FLOOR = "untrained student"


def load_rows(runs: list[Path]) -> tuple[list[dict], dict]:
    """One row per run (from run.json and eval.json) and the reference rows (the untrained floor, averaged over
    the runs, and each teacher's scores); refuses runs evaluated on different sets."""
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
        agreements = [v for v in ev["student"]["agreement"].values() if v is not None]
        rows.append({"run": run.name, "method": rec["subset"]["method"], "k": rec["subset"]["k"],
                     "seed": rec["config"]["seed"], "steps": rec["steps"], "epochs": round(rec["epochs"], 2),
                     "knn_top1": ev["student"]["knn_top1"], "probe_top1": ev["student"]["probe_top1"],
                     "agreement": statistics.fmean(agreements) if agreements else None,
                     "untrained_knn_top1": ev.get("untrained", {}).get("knn_top1"),
                     "untrained_probe_top1": ev.get("untrained", {}).get("probe_top1")})
        for name, scores in ev.get("teachers", {}).items():
            if scores:
                references.setdefault(f"teacher: {name}", scores)
    rows.sort(key=lambda r: (r["method"], r["k"], r["seed"]))
    floors = [r for r in rows if r["untrained_knn_top1"] is not None]
    reference = {FLOOR: {m: statistics.fmean(r[f"untrained_{m}"] for r in floors) for m in ("knn_top1", "probe_top1")}}
    return rows, (reference if floors else {}) | references


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds for each (method, k)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["k"]), []).append(r)
    out = []
    for (method, k), rs in sorted(groups.items()):
        agg = {"method": method, "k": k, "seeds": len(rs)}
        for m in METRICS:
            vals = [r[m] for r in rs if r[m] is not None]
            agg[m] = statistics.fmean(vals) if vals else None
            agg[m + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(agg)
    return out


def _cell(mean, std, seeds) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f} ± {std:.3f}" if seeds > 1 else f"{mean:.3f}"


def markdown(agg: list[dict], references: dict) -> str:
    lines = ["| method | k | seeds | " + " | ".join(METRICS.values()) + " |", "|---|---|---|" + "---|" * len(METRICS)]
    for a in agg:
        lines.append(f"| {a['method']} | {a['k']:,} | {a['seeds']} | "
                     + " | ".join(_cell(a[m], a[m + '_std'], a['seeds']) for m in METRICS) + " |")
    for name, t in references.items():
        lines.append(f"| {name} | | | {t['knn_top1']:.3f} | {t['probe_top1']:.3f} | {'-' if name == FLOOR else 1} |")
    return "\n".join(lines) + "\n"


def rich_table(agg: list[dict], references: dict) -> Table:
    table = Table(title="student quality against subset size k (mean ± std over seeds)", title_style="bold")
    for col in ("method", "k", "seeds", *METRICS.values()):
        table.add_column(col, justify="left" if col == "method" else "right")
    best = {m: max((a[m] for a in agg if a[m] is not None), default=None) for m in METRICS}
    for a in agg:
        cells = [_cell(a[m], a[m + "_std"], a["seeds"]) for m in METRICS]
        cells = [f"[bold]{c}[/]" if a[m] is not None and a[m] == best[m] else c for c, m in zip(cells, METRICS)]
        table.add_row(a["method"], f"{a['k']:,}", str(a["seeds"]), *cells)
    for name, t in references.items():
        table.add_row(f"[dim]{name}[/]", "", "", f"{t['knn_top1']:.3f}", f"{t['probe_top1']:.3f}",
                      "-" if name == FLOOR else "1")
    return table


def plot(agg: list[dict], references: dict, png: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = sorted({a["method"] for a in agg})
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.4 * len(METRICS), 3.6), squeeze=False)
    for ax, (metric, label) in zip(axes[0], METRICS.items()):
        for method in methods:
            pts = [a for a in agg if a["method"] == method and a[metric] is not None]
            if pts:
                ax.errorbar([a["k"] for a in pts], [a[metric] for a in pts], yerr=[a[metric + "_std"] for a in pts],
                            marker="o", ms=4, capsize=3, label=method)
        if metric != "agreement":
            for i, (name, t) in enumerate(references.items()):
                color = "0.5" if name == FLOOR else f"C{len(methods) + i}"
                ax.axhline(t[metric], ls="--", color=color, lw=1, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("subset size k")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, png)


def compare_runs(runs: list[Path], out: Path, console: Console | None = None) -> dict[str, Path]:
    rows, references = load_rows(runs)
    agg = aggregate(rows)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows])
    write_text_atomic(out / "results.csv", buf.getvalue())
    write_text_atomic(out / "results.md", markdown(agg, references))
    write_text_atomic(out / "results.json", json.dumps({"runs": rows, "aggregate": agg, "references": references}, indent=1))
    first = read_json(Path(runs[0]) / "eval.json", "evaluation")["eval_set"]
    title = f"k-NN / probe: {first['train_source']} -> {first['test_source']}; students at equal step budgets"
    png = plot(agg, references, out / "results.png", title)
    (console or Console()).print(rich_table(agg, references))
    return {"csv": out / "results.csv", "markdown": out / "results.md", "plot": png}
