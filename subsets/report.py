"""Coverage against k for several subsets of one corpus: a rich table and a PNG plot."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from rich.table import Table

from .errors import InputError
from .manifest import Manifest

METRICS = {  # key -> (column title, plot title, lower is better)
    "max_dist": ("radius", "coverage radius (max distance to nearest pick)", True),
    "mean_dist": ("mean", "mean distance to nearest pick", True),
    "label_coverage": ("labels", "share of classes present", False),
    # normalised entropy of the subset's classes: on a skewed corpus, whether a method evens out its classes
    "label_balance": ("balance", "class balance (entropy / log C)", False),
    "cluster_coverage": ("clusters", "share of corpus clusters hit", False),
}


def check_same_corpus(manifests: list[Manifest]) -> None:
    """Coverage is only comparable over the same embeddings."""
    first = manifests[0]
    for m in manifests[1:]:
        if m.meta["embeddings"]["hash"] != first.meta["embeddings"]["hash"]:
            raise InputError(
                f"{m.path}: selected from other embeddings ({m.meta['embeddings']['path']}) than {first.path} "
                f"({first.meta['embeddings']['path']}); coverage is only comparable on one corpus and encoder"
            )


def _method_names(manifests: list[Manifest]) -> list[str]:
    return [m.method + (f"+dedup{m.meta['dedup']['threshold']}" if m.meta.get("dedup") else "") for m in manifests]


def series_names(manifests: list[Manifest]) -> list[str]:
    names = _method_names(manifests)
    return [f"{n} ({m.path.name})" if names.count(n) > 1 else n for n, m in zip(names, manifests)]


def coverage_tables(manifests: list[Manifest]) -> list[Table]:
    """One small table per metric: rows k, a column per subset, the best value of each row in bold."""
    check_same_corpus(manifests)
    names = series_names(manifests)
    by_k = [{row["k"]: row for row in m.meta["coverage"]} for m in manifests]
    ks = sorted(set().union(*by_k))
    tables = []
    for metric, (title, _, lower_better) in METRICS.items():
        if not all(metric in m.meta["coverage"][0] for m in manifests):
            continue
        heading = f"{title} ({'lower' if lower_better else 'higher'} is better)"
        table = Table(title=heading, title_style="bold", min_width=len(heading))  # a title wrapped over lines is hard to read
        table.add_column("k", justify="right")
        for name in names:
            table.add_column(name, justify="right")
        for k in ks:
            values = [rows[k][metric] if k in rows else None for rows in by_k]
            present = [v for v in values if v is not None]
            best = (min if lower_better else max)(present)
            table.add_row(f"{k:,}", *("" if v is None else f"[bold]{v:.3f}[/]" if v == best and len(present) > 1
                                      else f"{v:.3f}" for v in values))
        tables.append(table)
    return tables


def shared_images(manifests: list[Manifest]) -> dict[str, dict[int, float]]:
    """For each method given with two subsets or more (its seeds, say): at each k of their coverage rows, the share
    of its k images two of them have in common, the mean over their pairs. Seeds of a method whose subsets share
    most of their images measure the student's randomness more than the subset's: a comparison's interval over such
    seeds says less about the method's next draw."""
    by_name: dict[str, list[Manifest]] = {}
    for name, m in zip(_method_names(manifests), manifests):
        by_name.setdefault(name, []).append(m)
    shared = {}
    for name, group in by_name.items():
        if len(group) < 2:
            continue
        ks = sorted(set.intersection(*({row["k"] for row in m.meta["coverage"]} for m in group)))
        shared[name] = {k: float(np.mean([len(np.intersect1d(a.order[:k], b.order[:k])) / k
                                          for a, b in itertools.combinations(group, 2)])) for k in ks}
    return shared


def shared_images_table(manifests: list[Manifest]) -> Table | None:
    """`shared_images` as a table: rows k, a column per method with several subsets (random's expected share: k / N)."""
    shared = shared_images(manifests)
    if not shared:
        return None
    heading = "share of images two of a method's subsets hold alike (mean of pairs)"
    table = Table(title=heading, title_style="bold", min_width=len(heading))
    table.add_column("k", justify="right")
    names = _method_names(manifests)
    for name in shared:
        table.add_column(f"{name} ({names.count(name)} subsets)", justify="right")
    for k in sorted(set().union(*shared.values())):
        table.add_row(f"{k:,}", *(f"{v[k]:.3f}" if k in v else "" for v in shared.values()))
    return table


def print_coverage(manifests: list[Manifest], console=None) -> None:
    from rich.columns import Columns

    from .console import output_console

    console = console or output_console()
    console.print(f"Coverage of {manifests[0].meta['corpus_size']:,} images against subset size k "
                  f"({manifests[0].meta['embeddings']['source']}, {manifests[0].meta['embeddings']['encoder']['name']})")
    tables = coverage_tables(manifests)
    tables += [table] if (table := shared_images_table(manifests)) else []
    console.print(Columns(tables))


def plot_coverage(manifests: list[Manifest], png: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_same_corpus(manifests)
    metrics = [k for k in METRICS if all(k in m.meta["coverage"][0] for m in manifests)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, m in zip(series_names(manifests), manifests):
            rows = m.meta["coverage"]
            ax.plot([r["k"] for r in rows], [r[metric] for r in rows], marker="o", ms=3, label=name)
        ax.set_xscale("log")
        ax.set_xlabel("subset size k")
        ax.set_title(METRICS[metric][1], fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{manifests[0].meta['embeddings']['source']} embedded by "
                 f"{manifests[0].meta['embeddings']['encoder']['name']}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, png)


def save_figure(fig, png: Path) -> Path:
    """Write a matplotlib figure as PNG under a temporary name, then rename: no half-written plot."""
    import matplotlib.pyplot as plt

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(f".{png.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")  # legends placed beside the axes stay in
    plt.close(fig)
    tmp.replace(png)
    return png
