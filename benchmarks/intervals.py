"""How often a 95% interval of `distill compare` calls two equal methods different, and what the shipped studies'
verdicts become with intervals over seeds from Student's t.

    python benchmarks/intervals.py simulate [--comparisons 300] [--images 2000]
    python benchmarks/intervals.py pooled [--tables 2000]
    python benchmarks/intervals.py studies [studies/]

`simulate` draws comparisons of two methods with known truth, on a test set like the studies' (2,000 images): each
run's per-image errors around shared image difficulties, each seed's run shifted as a whole on the logit scale by
a seed spread (0: the seeds differ by their runs' own image errors alone). It prints, per seed count and spread,
the share of equal pairs given a verdict (a 95% interval should give one about 5% of the time) and the share of
pairs 0.1 apart on the logit scale (about 0.014 of accuracy) called better, for the interval of `distill.intervals`
and for the one it replaced on 2026-12-03 (seeds resampled with replacement beside the test images), kept here as
`resampled_seeds` to measure it.

`pooled` asks whether a table's comparisons may share their seed variance, which with three seeds each would give
a table's verdicts together back their power (Sidak's quantile for 9 comparisons: 13.2 with each comparison's own 2
degrees of freedom): tables of comparisons whose seed spreads differ by a ratio, read with each comparison's own t
(`distill compare`'s seed part) and with Smyth's (2004) empirical Bayes variance moderated across the table (limma's
moderated t). It prints how often each calls equal methods different, alone, for the widest-spread comparison and
with the table together, and how often each finds a real difference together.

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


def _digamma(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    shift = sum(1 / (x + i) for i in range(6))  # psi(x) = psi(x + 6) - sum 1/(x + i): the series is exact past 6
    y = x + 6
    f = 1 / (y * y)
    return np.log(y) - 0.5 / y - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132)))) - shift


def _trigamma(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    shift = sum(1 / (x + i) ** 2 for i in range(6))
    y = x + 6
    f = 1 / (y * y)
    return 1 / y + f / 2 + f / y * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f / 30))) + shift


def _trigamma_inverse(v: np.ndarray) -> np.ndarray:
    """x with trigamma(x) = v (v > 0), by Newton's method from limma's start (Smyth 2004)."""
    x = 0.5 + 1 / v
    for _ in range(60):
        h = 1e-5 * x
        slope = (_trigamma(x + h) - _trigamma(x - h)) / (2 * h)
        x = np.maximum(x - (_trigamma(x) - v) / slope, x / 10)
    return x


def moderated_variances(variances: np.ndarray, df: int) -> tuple[np.ndarray, np.ndarray]:
    """Smyth's (2004) empirical Bayes seed variances for a table: `variances` [..., J] each with `df` degrees of
    freedom -> (each comparison's variance drawn towards the table's, its degrees of freedom). The prior's degrees of
    freedom come from how much the J variances spread beyond what `df` explains, capped at the other comparisons'
    pooled degrees of freedom (uncapped, tables of 4 equal pairs with equal spreads got a verdict together 9.6% of
    the time: the prior's degrees of freedom, estimated from 4 variances, came out unbounded too often)."""
    e = np.log(variances) - _digamma(df / 2) + np.log(df / 2)
    j = variances.shape[-1]
    excess = e.var(axis=-1, ddof=1) - _trigamma(df / 2)
    cap = df * (j - 1)
    prior_df = np.where(excess > 0, 2 * _trigamma_inverse(np.maximum(excess, 1e-12)), np.inf)
    prior_df = np.minimum(prior_df, cap)
    prior = np.exp(e.mean(-1) + _digamma(prior_df / 2) - np.log(prior_df / 2))
    moderated = (prior_df[..., None] * prior[..., None] + df * variances) / (prior_df[..., None] + df)
    return moderated, np.broadcast_to(prior_df[..., None] + df, variances.shape)


def _called(x: np.ndarray, family_level: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seed differences x [tables, J, S] read with each comparison's own t and with the variance moderated across
    its table: for each reading, which comparisons get a verdict alone and which at `family_level` ([tables, J])."""
    seeds = x.shape[-1]
    mean, var = x.mean(-1), x.var(-1, ddof=1)
    moderated, df = moderated_variances(var, seeds - 1)
    quantile = np.vectorize(lambda f, level: t_quantile(int(f), level))
    out = []
    for v, d in ((var, np.full_like(var, seeds - 1)), (moderated, df)):
        t = np.abs(mean) / np.sqrt(v / seeds)
        # floor of the degrees of freedom: a little wider than the exact quantile, never narrower
        dfs = np.floor(np.minimum(d, 200))
        out.append((t > quantile(dfs, 0.95), t > quantile(dfs, family_level)))
    return out


def pooled(tables: int = 2000, seeds: int = 3, seed: int = 0) -> list[tuple]:
    """Tables of J comparisons of equal methods (and of methods 2.5 seed standard deviations apart), each comparison's
    seed differences normal with its own spread, the spreads across the table a ratio apart (log-evenly, the last
    comparison the widest): for each comparison's own t and the moderated variance, how often equal pairs get a
    verdict alone, the widest-spread one alone, and any of the table with all together (Sidak's level); and how often
    pairs 2.5 sd apart are found with all together."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in (4, 9, 16):
        sidak = 0.95 ** (1 / j)
        for ratio in (1, 2, 3):
            sd = np.exp(np.linspace(-np.log(ratio) / 2, np.log(ratio) / 2, j))[:, None]
            equal = _called(rng.standard_normal((tables, j, seeds)) * sd, sidak)
            apart = _called(rng.standard_normal((tables, j, seeds)) * sd + 2.5 * sd, sidak)
            rows.append((j, ratio, *((alone.mean(), alone[:, -1].mean(), together.any(-1).mean())
                                     for alone, together in equal), *(together.mean() for _, together in apart)))
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
    pool = sub.add_parser("pooled")
    pool.add_argument("--tables", type=int, default=2000)
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
    if args.command == "pooled":
        table = Table(title=f"The seed part of a table's intervals with 3 seeds ({args.tables:,} tables a row): each "
                            "comparison's own t, or its variance moderated across the table")
        for col in ("comparisons", "spread ratio", "equal pairs called different: own t", "moderated",
                    "widest one: own t", "moderated", "any of the table at Sidak's level: own t", "moderated",
                    "2.5 sd apart found together: own t", "moderated"):
            table.add_column(col, justify="right")
        for j, ratio, own, moderated, own_found, moderated_found in pooled(args.tables):
            table.add_row(str(j), f"{ratio}", *(f"{x:.1%}" for pair in zip(own, moderated) for x in pair),
                          f"{own_found:.1%}", f"{moderated_found:.1%}")
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
