"""How often a 95% interval of `distill compare` calls two equal methods different, and what the shipped studies'
verdicts become with intervals over seeds from Student's t.

    python benchmarks/intervals.py simulate [--comparisons 300] [--images 2000]
    python benchmarks/intervals.py studies [studies/]

`simulate` draws comparisons of two methods with known truth, on a test set like the studies' (2,000 images): each
run's per-image errors around shared image difficulties, each seed's run shifted as a whole on the logit scale by
a seed spread (0: the seeds differ by their runs' own image errors alone). It prints, per seed count and spread,
the share of equal pairs given a verdict (a 95% interval should give one about 5% of the time) and the share of
pairs 0.1 apart on the logit scale (about 0.014 of accuracy) called better, for the interval of `distill.intervals`
and for the one it replaced on 2026-12-03 (seeds resampled with replacement beside the test images), kept here as
`resampled_seeds` to measure it.

`studies` re-reads every shipped paired table (verdicts.csv, gaps.csv, recipe_verdicts.csv) from the per-run
accuracies in its results.csv: each comparison's paired t interval over seeds, the seed part of today's interval
(the test set's part, shared by the seeds, only widens it), beside the verdict shipped.
"""

from __future__ import annotations

import argparse
import csv
import functools
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from distill.intervals import Bootstrap, percentile_estimate, verdict, verdict_of  # noqa: E402

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131}  # Student's t, 97.5% quantile by degrees of freedom
METRICS = ("knn_top1", "probe_top1")


def resampled_seeds(boot: Bootstrap, d) -> np.ndarray:
    """The replicates of the interval before 2026-12-03: each replicate's mean over S seeds drawn with replacement."""
    draws = boot.rng.integers(len(d), size=(boot.replicates, len(d)))
    return d.replicates[draws, np.arange(boot.replicates)[:, None]].mean(1)


def simulate(comparisons: int, images: int, seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)

    def runs(difficulty, shift, spread, seeds):
        return np.stack([rng.random(images) < 1 / (1 + np.exp(-(difficulty + shift + rng.normal(0, spread)
                                                                 + rng.normal(0, 1.0, images))))
                         for _ in range(seeds)])

    rows = []
    from rich.progress import track

    cells = [(s, spread) for s in (3, 6) for spread in (0.0, 0.08, 0.15)]
    for seeds, spread in track(cells, description="simulating"):
        called = {(name, shift): 0 for name in ("resampled", "current") for shift in (0.0, 0.1)}
        sds = []
        for shift in (0.0, 0.1):
            for t in range(comparisons):
                difficulty = rng.normal(0.3, 2.0, images)
                a, b = runs(difficulty, shift, spread, seeds), runs(difficulty, 0.0, spread, seeds)
                boot = Bootstrap(images, replicates=1000, seed=int(rng.integers(1 << 30)))
                d = boot.seed_differences(a, b)
                sds.append(d.measured.std(ddof=1))
                for name, reps in (("resampled", resampled_seeds(boot, d)), ("current", boot.with_seed_error(d))):
                    called[(name, shift)] += verdict_of(percentile_estimate(d.value, reps)) != "not resolved"
        rows.append((seeds, spread, statistics.median(sds), *(called[(n, s)] / comparisons
                                                              for s in (0.0, 0.1) for n in ("resampled", "current"))))
    return rows


def _runs_by_cell(results: Path) -> dict[tuple, dict[int, dict]]:
    cells: dict[tuple, dict[int, dict]] = defaultdict(dict)
    for r in csv.DictReader(results.open()):
        cells[(r.get("recipe") or "(no recipe)", r.get("objective") or "distill", r["method"], r["k"])][int(r["seed"])] = r
    return cells


@functools.cache  # a table's every comparison asks the same (seeds, family size): simulated once
def t_quantile(df: int, level: float) -> float:
    """Student's t two-sided quantile at `level` (by simulation: numpy has no t quantile, this project no scipy)."""
    if level == 0.95 and df in T975:
        return T975[df]
    draws = np.random.default_rng(df).standard_t(df, size=4_000_000)
    return float(np.quantile(np.abs(draws), level))


def _paired(a: dict[int, dict], b: dict[int, dict], metric: str) -> list[float]:
    """Each seed's difference a - b (runs by seed, results.csv rows), over the seeds both have."""
    return [float(a[s][metric]) - float(b[s][metric]) for s in sorted(set(a) & set(b)) if a[s][metric] and b[s][metric]]


def _t_interval(d: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the t interval over seeds of the differences `d` at `level`."""
    mean, half = statistics.fmean(d), t_quantile(len(d) - 1, level) * statistics.stdev(d) / len(d) ** 0.5
    return mean, mean - half, mean + half


def reread_studies(root: Path) -> list[dict]:
    """Every shipped paired comparison with its shipped verdict and its paired t interval over seeds."""
    out = []
    for results in sorted(root.rglob("results.csv")):
        cells = _runs_by_cell(results)
        for table in ("verdicts.csv", "gaps.csv", "recipe_verdicts.csv"):
            path = results.parent / table
            if not path.exists():
                continue
            for row in csv.DictReader(path.open()):
                recipe, objective = row.get("recipe") or "(no recipe)", row.get("objective") or "distill"
                mine = (recipe, objective, row["method"], row["k"])
                partner = {"verdicts.csv": (recipe, objective, row.get("baseline"), row["k"]),
                           "gaps.csv": (recipe, objective, "full", "full"),
                           "recipe_verdicts.csv": (row.get("against") or "(no recipe)", objective, row["method"],
                                                   row["k"])}[table]
                for metric in METRICS:
                    d = _paired(cells.get(mine, {}), cells.get(partner, {}), metric)
                    if len(d) < 2:
                        continue
                    t = _t_interval(d)
                    # Sidak's level for the table's comparisons taken as independent (they share the baseline's
                    # runs, which makes the level needed a little lower): what `family_intervals` takes
                    together = _t_interval(d, 0.95 ** (1 / int(row["family"]))) if row.get("family") else None
                    family = verdict(together[1], together[2]) if together else None
                    out.append({"table": str(path.relative_to(root)), "comparison": f"{' '.join(mine)} vs "
                                  + (f"recipe {partner[0]}" if table == "recipe_verdicts.csv" else partner[2]),
                                "metric": metric, "seeds": row["seeds"], "shipped": row[f"{metric}_verdict"],
                                "shipped_interval": (float(row[f"{metric}_low"]), float(row[f"{metric}_high"])),
                                "t": t, "t_verdict": verdict(t[1], t[2]),
                                "shipped_family": row.get(f"{metric}_family_verdict"), "t_family_verdict": family})
    return out


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate")
    sim.add_argument("--comparisons", type=int, default=300)
    sim.add_argument("--images", type=int, default=2000)
    studies = sub.add_parser("studies")
    studies.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parents[1] / "studies")
    args = parser.parse_args()
    console = Console()
    if args.command == "simulate":
        table = Table(title=f"95% intervals on simulated comparisons ({args.comparisons} per cell, {args.images:,} "
                            "test images)")
        for col in ("seeds", "seed spread (logit)", "paired diff's sd over seeds", "equal pairs called different: "
                    "seeds resampled", "current", "pairs 0.1 apart found: seeds resampled", "current"):
            table.add_column(col, justify="right")
        for seeds, spread, sd, *shares in simulate(args.comparisons, args.images):
            table.add_row(str(seeds), f"{spread:.2f}", f"{sd:.4f}", *(f"{s:.1%}" for s in shares))
        console.print(table)
        return
    rows = reread_studies(args.root)
    flips = [r for r in rows if r["shipped"] != r["t_verdict"]]
    resolved = [r for r in rows if r["shipped"] != "not resolved"]
    console.print(f"{len(rows)} shipped comparisons re-read ({len(resolved)} with a verdict); "
                  f"{sum(r['t_verdict'] != 'not resolved' for r in resolved)} of those keep it under the paired t "
                  f"over seeds, {sum(r['shipped'] == 'not resolved' and r['t_verdict'] != 'not resolved' for r in rows)}"
                  " unresolved ones would gain one")
    with_family = [r for r in rows if r["shipped_family"] and r["shipped_family"] != "not resolved"]
    console.print(f"{len(with_family)} shipped verdicts held with all of their table together; "
                  f"{sum(r['t_family_verdict'] != 'not resolved' for r in with_family)} of them do under the t over "
                  "seeds at Sidak's level for their table")
    table = Table(title="where the paired t over seeds reads otherwise")
    for col in ("table", "comparison", "metric", "seeds", "shipped", "paired t over seeds"):
        table.add_column(col)
    for r in flips:
        lo, hi = r["shipped_interval"]
        table.add_row(r["table"], r["comparison"], r["metric"], r["seeds"], f"{r['shipped']} [{lo:+.3f}, {hi:+.3f}]",
                      f"{r['t_verdict']} {r['t'][0]:+.3f} [{r['t'][1]:+.3f}, {r['t'][2]:+.3f}]")
    console.print(table)


if __name__ == "__main__":
    main()
