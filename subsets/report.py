"""Coverage against k for several subsets of one corpus: a rich table and a PNG plot."""

from __future__ import annotations

from pathlib import Path

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


def series_names(manifests: list[Manifest]) -> list[str]:
    names = [m.method + (f"+dedup{m.meta['dedup']['threshold']}" if m.meta.get("dedup") else "") for m in manifests]
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


def print_coverage(manifests: list[Manifest], console=None) -> None:
    from rich.columns import Columns

    from .console import output_console

    console = console or output_console()
    console.print(f"Coverage of {manifests[0].meta['corpus_size']:,} images against subset size k "
                  f"({manifests[0].meta['embeddings']['source']}, {manifests[0].meta['embeddings']['encoder']['name']})")
    console.print(Columns(coverage_tables(manifests)))


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
