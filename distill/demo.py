"""`distill demo`: the embedded default, end to end, offline.

Today it runs the subset stage: the shipped CIFAR-10 demo corpus embedded by the offline default
teacher, kcenter / kmeans / random subsets, and their coverage against k. Rerunning reuses what
is already done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from subsets.embed import EmbedConfig, embed_corpus, load_embeddings
from subsets.errors import InputError
from subsets.make_subset import SelectConfig, make_subset
from subsets.manifest import read_manifest
from subsets.report import plot_coverage, print_coverage
from subsets.sources import open_source

from .encoders import DEFAULT_ENCODER, resolve_encoder


@dataclass
class DemoConfig:
    out: Path = Path("demo-out")
    source: str = "builtin:cifar10-demo"
    encoder: str = DEFAULT_ENCODER
    methods: tuple[str, ...] = ("kcenter", "kmeans", "random")
    k_max: int = 2000
    seed: int = 0


def run_demo(config: DemoConfig = DemoConfig(), accelerator=None, console: Console | None = None) -> dict[str, Path]:
    console = console or Console()
    start = time.perf_counter()
    out = Path(config.out)
    console.rule(f"[bold]subset-distill demo[/] — {config.source}, encoder {config.encoder}")
    emb_dir = out / "embeddings"
    console.print(f"[1/3] embedding the corpus into {emb_dir}")
    embed_corpus(open_source(config.source), resolve_encoder(config.encoder), emb_dir, EmbedConfig(), accelerator)
    emb = load_embeddings(emb_dir)

    manifests = []
    for method in config.methods:
        sub = out / "subsets" / method
        if (sub / "manifest.json").exists():
            m = read_manifest(sub)
            if m.meta["embeddings"]["hash"] != emb.hash or m.meta["k_max"] != config.k_max:
                raise InputError(f"{sub}: made from other embeddings or k_max; delete {out} to start over")
            console.print(f"[2/3] {method}: reusing {sub}")
        else:
            console.print(f"[2/3] selecting {config.k_max} images by {method} into {sub}")
            m = make_subset(emb, sub, SelectConfig(method=method, k_max=config.k_max, seed=config.seed))
        manifests.append(m)

    console.print("[3/3] coverage against k")
    print_coverage(manifests, console)
    png = plot_coverage(manifests, out / "coverage.png")
    paths = {"embeddings": emb_dir, "subsets": out / "subsets", "coverage_plot": png}
    console.rule(f"done in {time.perf_counter() - start:.0f} s")
    for name, path in paths.items():
        console.print(f"  {name:14s} {path}")
    return paths
