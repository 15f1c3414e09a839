"""A comparison as plots: each metric against k per method (`results.png`); with several recipes, k-NN against k
per recipe with each recipe's full corpus (`recipes.png`); and k-NN against the compute each answer took
(`compute.png`)."""

from __future__ import annotations

import itertools
from pathlib import Path

from subsets.report import save_figure

from .compare_stats import FLOOR, FULL, METRICS, OBJECTIVE_STYLES, SCORED, arm_name, holds_together


def _errorbar(ax, pts: list[dict], metric: str, x: str = "k", **style) -> None:
    """Each point's mean of `metric` with its 95% interval (its std where it has none), against its `x`."""
    xs = [a[x] for a in pts]
    y = [a[metric] for a in pts]
    if metric in SCORED:
        err = [[a[metric] - a[metric + "_low"] for a in pts], [a[metric + "_high"] - a[metric] for a in pts]]
    else:
        err = [a[metric + "_std"] for a in pts]
    ax.errorbar(xs, y, yerr=err, ms=4, capsize=3, **({"marker": "o"} | style))


def _full_line(ax, full: dict | None, metric: str, color: str, label: str) -> None:
    if full is None or full[metric] is None:
        return
    ax.axhline(full[metric], ls="-.", color=color, lw=1, label=label)
    if metric in SCORED:
        ax.axhspan(full[metric + "_low"], full[metric + "_high"], color=color, alpha=0.12, lw=0)


def _reference_lines(ax, references: dict, recipe: str, metric: str, first_colour: int) -> None:
    """The recipe's untrained floor (grey) and each teacher (its own colour after the methods'), dashed."""
    for i, (name, t) in enumerate(references.items()):
        if name.startswith(FLOOR) and name not in (FLOOR, f"{FLOOR} ({recipe})"):
            continue  # another recipe's floor
        color = "0.5" if name.startswith(FLOOR) else f"C{first_colour + i}"
        ax.axhline(t[metric], ls="--", color=color, lw=1, label=name)


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
    with its 95% interval, a triangle up (down) where the verdict against the baseline is better (worse), filled where
    it holds with all the table's comparisons together, hollow where alone only; the floor,
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
                        ax.scatter([v["k"]], [y], s=90, facecolors=f"C{i}" if holds_together(v, metric) else "none",
                                   edgecolors=f"C{i}", linewidths=1.5,
                                   marker="^" if v[metric + "_verdict"] == "better" else "v", zorder=5)
        if metric in SCORED and verdict_rows:
            against = f"better / worse than {verdict_rows[0]['baseline']}"
            ax.scatter([], [], marker="^", color="0.3", label=f"{against}, all {verdict_rows[0]['family']} together")
            ax.scatter([], [], marker="^", facecolors="none", edgecolors="0.3", label=f"{against} (95%), alone only")
        for objective in objectives:
            full = next((a for a in agg if a["method"] == FULL and a["objective"] == objective), None)
            _full_line(ax, full, metric, "k", "full corpus" if len(objectives) == 1 else f"full corpus, {objective}")
        if metric != "agreement":
            _reference_lines(ax, references, recipe, metric, len(methods))
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


def plot_compute(agg: list[dict], compute: list[dict], references: dict, png: Path, title: str,
                 metric: str = "knn_top1") -> Path | None:
    """k-NN against the compute each answer took (`compute_account`), for the first recipe: one line per method
    through its k (each point its mean with its 95% interval), the full corpus as a point of its own, the floor and
    the teachers as horizontal lines; what a subset saves and what choosing it costs, on one axis. None where no
    row's total is known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recipe = agg[0]["recipe"]
    totals = {(c["objective"], c["method"], c["k"]): c["total"] for c in compute
              if c["recipe"] == recipe and c["total"] is not None}
    if not totals:
        return None
    pts = [a | {"total": totals[(a["objective"], a["method"], a["k"])]} for a in agg
           if a["recipe"] == recipe and (a["objective"], a["method"], a["k"]) in totals]
    methods = sorted({a["method"] for a in pts if a["method"] != FULL})
    objectives = list(dict.fromkeys(a["objective"] for a in pts))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (i, method), objective in itertools.product(enumerate(methods), objectives):
        line = sorted((a for a in pts if a["method"] == method and a["objective"] == objective), key=lambda a: a["total"])
        if line:
            _errorbar(ax, line, metric, x="total", label=method if len(objectives) == 1 else f"{method}, {objective}",
                      color=f"C{i}", ls=OBJECTIVE_STYLES.get(objective, "-"))
            for a in line:  # which k each point is: the lines run through k, each at its own compute
                ax.annotate(f"{a['k']:,}", (a["total"], a[metric]), xytext=(4, -9), textcoords="offset points",
                            fontsize=6, color=f"C{i}")
    for objective in objectives:
        full = [a for a in pts if a["method"] == FULL and a["objective"] == objective]
        if full:
            _errorbar(ax, full, metric, x="total", color="k", marker="s",
                      label="full corpus" if len(objectives) == 1 else f"full corpus, {objective}")
    _reference_lines(ax, references, recipe, metric, len(methods))
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from .model_cost import amount

    ax.set_xscale("log")
    ax.margins(x=0.1)  # room for the last point's k
    # 1, 2 and 5 of each decade, labelled alike: matplotlib labels every minor tick of an axis under one decade, and
    # they overlap
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: amount(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("multiply-accumulates the answer took (selection + teacher targets + training; points: k)")
    ax.set_ylabel(METRICS[metric])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title + (f" (recipe {recipe})" if recipe else ""), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, png)
