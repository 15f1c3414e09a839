"""The selection job: embeddings directory -> subset directory (nested manifest with coverage)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import select
from .coverage import coverage_curve, default_report_ks
from .embed import Embeddings, load_embeddings
from .errors import InputError
from .manifest import Manifest, read_manifest, write_manifest


@dataclass
class SelectConfig:
    method: str = "kcenter"  # kcenter | kmeans | kmeans-random | prototypes | random
    k_max: int | None = 1000  # length of the ordering; None: the whole corpus (after --dedup)
    seed: int = 0
    dedup: float | None = None  # cosine threshold; near-duplicates above it are dropped first
    clusters: list[int] | None = None  # kmeans: clusters per level, finest first (default from k_max); prototypes: one
    niter: int = 20  # kmeans iterations per level
    report_k: list[int] | None = None  # k values to report coverage at (default 10, 20, 50, ..., k_max)


def check_config(config: SelectConfig, corpus_size: int, where: str) -> None:
    if config.method not in select.METHODS:
        raise InputError(f"--method {config.method}: unknown (choose from {', '.join(select.METHODS)})")
    if config.k_max < 1:
        raise InputError(f"--k-max {config.k_max}: must be at least 1")
    if config.k_max > corpus_size:
        raise InputError(f"--k-max {config.k_max}: larger than the corpus ({corpus_size} images in {where})")
    if config.dedup is not None and not 0.0 < config.dedup < 1.0:
        raise InputError(f"--dedup {config.dedup}: a cosine threshold must lie between 0 and 1")
    bad = [k for k in config.report_k or [] if not 1 <= k <= config.k_max]
    if bad:
        raise InputError(f"--report-k {bad[0]}: outside 1..k_max ({config.k_max})")
    if config.clusters and any(c < 2 for c in config.clusters):
        raise InputError(f"--clusters {config.clusters}: each level needs at least 2 clusters")


# Methods a selection job runs across processes (subsets/distributed_kcenter.py, subsets/distributed_kmeans.py): the
# embeddings are mapped shard by shard, each process its own.
DISTRIBUTED_METHODS = ("kcenter", "kmeans", "kmeans-random")


def clusters_used(n: int, config: SelectConfig) -> list[int] | None:
    """The cluster counts a k-means method will use on n images: the asked ones (or the defaults), each cut to the
    number of points it clusters (the images, then the previous level's centroids)."""
    if config.method in ("kmeans", "kmeans-random"):
        asked = config.clusters or select.default_clusters(n, config.k_max)
    elif config.method == "prototypes":
        asked = config.clusters[:1] if config.clusters else [select.prototype_clusters(n, config.k_max)]
    else:
        return None
    used, points = [], n
    for c in asked:
        used.append(min(c, points))
        points = used[-1]
    return used


def select_order(x: np.ndarray, config: SelectConfig, clusters: list[int] | None = None) -> np.ndarray:
    """Rows of x in selection order (length k_max) for the configured method."""
    clusters = clusters or clusters_used(len(x), config)
    if config.method == "kcenter":
        return select.kcenter_greedy(x, config.k_max, config.seed)
    if config.method in ("kmeans", "kmeans-random"):
        return select.kmeans_balanced(x, config.k_max, config.seed, clusters, config.niter, _within(config.method))[0]
    if config.method == "prototypes":
        return select.prototypes_order(x, config.k_max, config.seed, clusters[0], config.niter)[0]
    return select.random_order(len(x), config.k_max, config.seed)


def _within(method: str) -> str:
    """The balanced k-means rule inside a leaf cluster: nearest its centroid first, or random (kmeans-random)."""
    return "random" if method == "kmeans-random" else "nearest"


def order_across_processes(embeddings: Path, config: SelectConfig, count: int, comm) -> np.ndarray:
    """The ordering of a DISTRIBUTED_METHODS selection (k_max set, no dedup) of `count` embeddings, each process of
    `comm` mapping only its own shards; every process returns it."""
    from .distributed_kcenter import kcenter_shards
    from .distributed_kmeans import kmeans_balanced_shards

    if config.method == "kcenter":
        return kcenter_shards(embeddings, config.k_max, config.seed, comm=comm)
    return kmeans_balanced_shards(embeddings, config.k_max, config.seed, clusters_used(count, config), config.niter,
                                  _within(config.method), comm=comm)


def corpus_clusters(x: np.ndarray) -> np.ndarray:
    """A fixed clustering of the corpus (same for every method and seed) for cluster coverage."""
    return select.kmeans(x, max(2, min(100, len(x) // 20)), seed=0)[1]


def make_subset(embeddings: Path | Embeddings, out: Path, config: SelectConfig = SelectConfig(),
                overwrite: bool = False, order: np.ndarray | None = None) -> Manifest:
    """Select, report coverage and write the subset directory; `order` is an ordering already computed across
    processes (`order_across_processes`, for `distill subset select` under accelerate launch)."""
    emb = embeddings if isinstance(embeddings, Embeddings) else load_embeddings(embeddings)
    n = len(emb.keys)
    asked = config  # what the manifest records as its parameters
    check_config(replace(config, k_max=config.k_max or n), n, str(emb.path / "meta.json"))
    out = Path(out)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: already exists (pass --overwrite to replace it)")
    start = time.perf_counter()
    pool = np.arange(n)
    if config.dedup is not None:
        pool = select.dedup(emb.vectors, config.dedup, seed=config.seed)
        if (config.k_max or 0) > len(pool):
            raise InputError(f"--k-max {config.k_max}: larger than the corpus after --dedup {config.dedup} "
                             f"({len(pool)} of {n} images in {emb.path} remain)")
    config = replace(config, k_max=config.k_max or len(pool))
    clusters = clusters_used(len(pool), config)
    if clusters and config.clusters and clusters != list(config.clusters)[:len(clusters)]:
        print(f"--clusters {','.join(map(str, config.clusters))}: cut to {','.join(map(str, clusters))} "
              f"(a level cannot have more clusters than the {len(pool):,} images or centroids it clusters)")
    if order is not None:
        if config.method not in DISTRIBUTED_METHODS or config.dedup is not None or len(order) != config.k_max:
            raise ValueError("a precomputed order is a distributed job's ordering of k_max rows without dedup")
    elif config.method == "kcenter" and config.dedup is None:
        # over the mapped shards, as a distributed job computes it (python -m subsets.distributed_kcenter): the
        # same blocks give the same order bit for bit, whatever the number of processes
        from .comm import Comm
        from .distributed_kcenter import kcenter_shards

        order = kcenter_shards(emb.path, config.k_max, config.seed, comm=Comm(alone=True))
    else:
        order = pool[select_order(emb.vectors[pool], config, clusters)]
    seconds = time.perf_counter() - start
    ks = sorted(set(config.report_k or default_report_ks(config.k_max)))
    curve = coverage_curve(emb.vectors, order, ks, emb.labels, corpus_clusters(emb.vectors))
    meta = {
        "method": config.method, "params": asdict(asked), "seed": config.seed, "clusters_used": clusters,
        "embeddings": {"path": str(emb.path.resolve()), "hash": emb.hash, "encoder": emb.meta["encoder"],
                       "corpus_hash": emb.meta["corpus_hash"], "source": emb.meta["source"]},
        "corpus_size": n, "dedup": None if config.dedup is None else
        {"threshold": config.dedup, "kept": int(len(pool)), "removed": int(n - len(pool))},
        "select_seconds": round(seconds, 3), "coverage": curve,
    }
    write_manifest(out, meta, order, [emb.keys[i] for i in order], overwrite)
    return read_manifest(out)
