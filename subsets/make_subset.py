"""The selection job: embeddings directory -> subset directory (nested manifest with coverage)."""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from . import select
from .checkpoint import checkpoint_folder
from .comm import Comm
from .coverage import coverage_blocks, default_report_ks
from .device import check_device, resolve_device
from .distributed_kcenter import kcenter_shards
from .embed import Embeddings, load_embeddings
from .errors import InputError
from .manifest import Manifest, read_manifest, refuse_to_replace_subset, write_manifest
from .memory import available_memory
from .progress import progress_bar
from .shards import EmbeddingShards


@dataclass
class SelectConfig:
    method: str = "kcenter"  # kcenter | kmeans | kmeans-random | kmeans-resampled | prototypes | random | class-balanced
    k_max: int | None = 1000  # length of the ordering; None: the whole corpus (after --dedup)
    seed: int = 0
    dedup: float | None = None  # cosine threshold; near-duplicates above it are dropped first
    clusters: list[int] | None = None  # kmeans: clusters per level, finest first (default from k_max); prototypes: one
    niter: int = 20  # kmeans iterations per level
    resample_steps: int = 10  # kmeans-resampled: resampling steps after each level's k-means (ssl-data-curation's 10)
    report_k: list[int] | None = None  # k values to report coverage at (default 10, 20, 50, ..., k_max)
    device: str = "cpu"  # where the ordering's distance products run: cpu (numpy, faiss) | cuda (torch; subsets.device)
    # one process: run the k-means methods and dedup over the mapped shards (Lloyd's over every row, memory flat in N)
    # as a job across processes does, instead of faiss's in-memory versions; always so across processes or on cuda
    mapped: bool = False


def check_config(config: SelectConfig, corpus_size: int, where: str) -> None:
    if config.method not in select.METHODS:
        raise InputError(f"--method {config.method}: unknown (choose from {', '.join(select.METHODS)})")
    if config.k_max < 1:
        raise InputError(f"--k-max {config.k_max}: must be at least 1")
    if config.k_max > corpus_size:
        raise InputError(f"--k-max {config.k_max}: larger than the corpus ({corpus_size} images in {where})")
    if config.niter < 1:
        raise InputError(f"--niter {config.niter}: k-means needs at least 1 iteration per level")
    if config.dedup is not None and not 0.0 < config.dedup < 1.0:
        raise InputError(f"--dedup {config.dedup}: a cosine threshold must lie between 0 and 1")
    bad = [k for k in config.report_k or [] if not 1 <= k <= config.k_max]
    if bad:
        raise InputError(f"--report-k {bad[0]}: outside 1..k_max ({config.k_max})")
    if config.resample_steps < 0:
        raise InputError(f"--resample-steps {config.resample_steps}: must be 0 or more")
    if config.clusters and any(c < 2 for c in config.clusters):
        raise InputError(f"--clusters {config.clusters}: each level needs at least 2 clusters")
    check_device(config.device)


def clusters_used(n: int, config: SelectConfig) -> list[int] | None:
    """The cluster counts a k-means method will use on n images: the asked ones (or the defaults), each cut to the
    number of points it clusters (the images, then the previous level's centroids)."""
    if config.method in select.KMEANS_METHODS:
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


def known_labels(labels: np.ndarray | None, where: Path | str) -> np.ndarray:
    """The labels of a class-balanced selection, refused where the corpus has none or some image lacks one."""
    if labels is None or not (np.asarray(labels) >= 0).any():
        raise InputError(f"{where}: the corpus has no labels; --method class-balanced needs class subfolders or a "
                         "`cls` field")
    labels = np.asarray(labels)
    if (labels < 0).any():
        raise InputError(f"{where}: {int((labels < 0).sum()):,} image(s) have no label; --method class-balanced "
                         "needs every image's class")
    return labels


def select_order(x: np.ndarray, config: SelectConfig, clusters: list[int] | None = None,
                 labels: np.ndarray | None = None, where: str = "embeddings") -> np.ndarray:
    """Rows of x in selection order (length k_max) for the configured method (class-balanced: from `labels`, one per
    row of x)."""
    if config.method == "class-balanced":
        return select.class_balanced_order(known_labels(labels, where), config.k_max, config.seed)
    clusters = clusters or clusters_used(len(x), config)
    if config.method == "kcenter":
        return select.kcenter_greedy(x, config.k_max, config.seed)
    if config.method in select.KMEANS_METHODS:
        return select.kmeans_balanced(x, config.k_max, config.seed, clusters, config.niter, _within(config.method),
                                      resample_steps(config))[0]
    if config.method == "prototypes":
        return select.prototypes_order(x, config.k_max, config.seed, clusters[0], config.niter)[0]
    return select.random_order(len(x), config.k_max, config.seed)


def _within(method: str) -> str:
    """The balanced k-means rule inside a leaf cluster: nearest its centroid first, or random (kmeans-random)."""
    return "random" if method == "kmeans-random" else "nearest"


def resample_steps(config: SelectConfig) -> int:
    """The resampling steps a method runs after each k-means level: kmeans-resampled's, none for the others."""
    return config.resample_steps if config.method == "kmeans-resampled" else 0


def order_across_processes(embeddings: Path | EmbeddingShards, config: SelectConfig, count: int, comm,
                           keep: np.ndarray | None = None, device=None, checkpoint: Path | None = None) -> np.ndarray:
    """The ordering of a selection (k_max set) of `count` embeddings, or of the rows `keep` a dedup kept, each process
    of `comm` mapping only its own shards; every process returns it (as rows of the embeddings). The k-means methods
    run Lloyd's k-means across the processes (`distributed_kmeans`), not the in-memory faiss.Kmeans, so their orders
    differ from one process's `select_order`. `device` (`resolve_device`): where each process's products run.
    `checkpoint`: the folder k-center and k-means save their state to every minute and resume from."""
    pool = count if keep is None else len(keep)
    if config.method == "random":
        order = select.random_order(pool, config.k_max, config.seed)
    elif config.method == "class-balanced":
        order = select.class_balanced_order(_pool_labels(embeddings, keep), config.k_max, config.seed)
    else:
        order = _order_with_progress(embeddings, config, pool, comm, keep, device, checkpoint)
    return order if keep is None else keep[order]


def _pool_labels(embeddings: Path | EmbeddingShards, keep: np.ndarray | None) -> np.ndarray:
    """The labels of the rows a selection chooses among (every process reads the same small file)."""
    folder = embeddings.path if isinstance(embeddings, EmbeddingShards) else Path(embeddings)
    file = folder / "labels.npy"
    labels = known_labels(np.load(file) if file.exists() else None, file if file.exists() else folder)
    return labels if keep is None else labels[keep]


def _order_with_progress(embeddings: Path | EmbeddingShards, config: SelectConfig, pool: int, comm,
                         keep: np.ndarray | None, device, checkpoint: Path | None) -> np.ndarray:
    """A k-center or k-means ordering (positions in the pool) across processes, the main process showing its
    progress: a large corpus takes hours."""
    from .distributed_kmeans import kmeans_balanced_shards, kmeans_passes, prototypes_shards

    kcenter = config.method == "kcenter"
    clusters = clusters_used(pool, config)
    total, unit = ((min(config.k_max, pool), "picks") if kcenter else
                   (kmeans_passes(pool, clusters[0], config.niter, resample_steps(config)), "passes"))
    with progress_bar(unit, enabled=comm.rank == 0) as bar:
        task = bar.add_task(f"{config.method} ordering", total=total)

        def progress(done: int) -> None:
            bar.update(task, completed=done)
        if kcenter:
            return kcenter_shards(embeddings, config.k_max, config.seed, comm=comm, keep=keep, device=device,
                                  progress=progress, checkpoint=checkpoint)
        if config.method == "prototypes":
            return prototypes_shards(embeddings, config.k_max, config.seed, clusters[0], config.niter, comm,
                                     keep=keep, device=device, progress=progress, checkpoint=checkpoint)
        return kmeans_balanced_shards(embeddings, config.k_max, config.seed, clusters, config.niter,
                                      _within(config.method), comm=comm, keep=keep, device=device, progress=progress,
                                      checkpoint=checkpoint, resample_steps=resample_steps(config))


def _dedup_with_progress(shards: EmbeddingShards, config: SelectConfig, comm, device, checkpoint: Path) -> np.ndarray:
    """The rows --dedup keeps, across processes, the main process showing the groups searched."""
    from .distributed_dedup import dedup_shards

    with progress_bar("groups", enabled=comm.rank == 0) as bar:
        task = bar.add_task("dedup", total=None)

        def progress(done: int, of: int) -> None:
            bar.update(task, completed=done, total=of)
        return dedup_shards(shards, config.dedup, seed=config.seed, comm=comm, device=device, progress=progress,
                            checkpoint=checkpoint)


def corpus_clusters(blocks: list[np.ndarray], starts: list[int], n: int, comm) -> np.ndarray:
    """A fixed clustering of the corpus (the same for every method and seed, and any number of processes) for cluster
    coverage: the labels of this process's rows. Lloyd's k-means on a seeded sample of 256 rows per cluster (as
    faiss trains), which every process gathers and clusters alike, then one pass assigns every row."""
    from .distributed_kmeans import assign, fetch_rows, kmeans_blocks

    n_clusters = max(2, min(100, n // 20))
    sample = np.sort(np.random.default_rng(0).choice(n, min(n, 256 * n_clusters), replace=False))
    rows = np.ascontiguousarray(fetch_rows(blocks, starts, sample, comm), dtype=np.float32)
    centroids = kmeans_blocks([rows], [0], len(rows), n_clusters, seed=0, comm=Comm(alone=True))[0]
    return assign(blocks, centroids)


def shard_coverage(shards: EmbeddingShards, order: np.ndarray, ks: list[int], comm, device=None) -> list[dict]:
    """The coverage curve of an ordering over the embedding shards, each process of `comm` mapping its own; the
    nearest-pick distances on `device` (`resolve_device`). The corpus clusters are found on the CPU whatever the
    device: a GPU's Lloyd's parts from faiss's at near-ties, and cluster coverage must compare across machines."""
    blocks, starts, n = shards.process_blocks(comm)
    labels_file = shards.path / "labels.npy"
    labels = np.load(labels_file, mmap_mode="r") if labels_file.exists() else None
    clusters = corpus_clusters(blocks, starts, n, comm)
    return coverage_blocks(blocks, starts, n, order, ks, labels, clusters, comm, device)


def embeddings_record(emb_path: Path, emb_meta: dict) -> dict:
    """What a subset's manifest says of the embeddings it was selected from (its meta.json's identity)."""
    return {"path": str(Path(emb_path).resolve()), "hash": emb_meta["hash"], "encoder": emb_meta["encoder"],
            "corpus_hash": emb_meta["corpus_hash"], "source": emb_meta["source"]}


def subset_meta(asked: SelectConfig, config: SelectConfig, clusters: list[int] | None, emb_path: Path, emb_meta: dict,
                n: int, kept: int, seconds: float, coverage: list[dict]) -> dict:
    """manifest.json's description of a selection (write_manifest adds the format, k_max and hashes)."""
    return {
        "method": config.method, "params": asdict(asked), "seed": config.seed, "clusters_used": clusters,
        "embeddings": embeddings_record(emb_path, emb_meta),
        "corpus_size": n, "dedup": None if config.dedup is None else
        {"threshold": config.dedup, "kept": int(kept), "removed": int(n - kept)},
        "select_seconds": round(seconds, 3), "coverage": coverage,
    }


def check_memory_for_vectors(shards: EmbeddingShards, config: SelectConfig) -> None:
    """Refuse, in one line and before loading anything, an in-memory selection whose float32 vectors (faiss's input)
    would not fit in the memory left: it would end in the kernel's out-of-memory kill, hours in."""
    need, free = shards.count * shards.dim * 4, available_memory()
    if need > free:
        raise InputError(f"{shards.path}: --method {config.method}{' with --dedup' if config.dedup else ''} in one "
                         f"process holds all {shards.count:,} vectors in memory ({need / 2**30:,.1f} GiB as float32), "
                         f"more than the {free / 2**30:,.1f} GiB available; pass --mapped (each shard read from its "
                         f"memory map) or run across processes")


def _check_kept(config: SelectConfig, kept: int, n: int, where: Path) -> None:
    """k_max must fit in what dedup kept."""
    if (config.k_max or 0) > kept:
        raise InputError(f"--k-max {config.k_max}: larger than the corpus after --dedup {config.dedup} "
                         f"({kept} of {n} images in {where} remain)")


def _report_ks(config: SelectConfig) -> list[int]:
    return sorted(set(config.report_k or default_report_ks(config.k_max)))


def _say_cut(asked: SelectConfig, clusters: list[int] | None, pool: int) -> None:
    if clusters and asked.clusters and clusters != list(asked.clusters)[:len(clusters)]:
        print(f"--clusters {','.join(map(str, asked.clusters))}: cut to {','.join(map(str, clusters))} "
              f"(a level cannot have more clusters than the {pool:,} images or centroids it clusters)")


# Methods whose one-process job is the job across processes with one process (the same code, memory flat in N); the
# k-means methods and dedup keep faiss's in-memory versions in one process (faster: faiss trains on a sample), but
# with --mapped or on a GPU (only the job across processes has a GPU path).
SHARD_METHODS = ("kcenter", "random", "class-balanced")


def has_in_memory_version(config: SelectConfig) -> bool:
    """Whether one process could run this selection with faiss's in-memory versions (a k-means method, dedup)."""
    return not (config.method in SHARD_METHODS and config.dedup is None)


def runs_mapped(config: SelectConfig) -> bool:
    """Whether a one-process selection runs the job across processes (mapping the shards) rather than in memory."""
    return not has_in_memory_version(config) or config.device != "cpu" or config.mapped


def make_subset(embeddings: Path | Embeddings, out: Path, config: SelectConfig = SelectConfig(),
                overwrite: bool = False) -> Manifest:
    """Select in this process, report coverage and write the subset directory."""
    path = embeddings.path if isinstance(embeddings, Embeddings) else Path(embeddings)
    if runs_mapped(config):
        # the same job as across processes, here with one: it maps the shards instead of loading every vector
        return make_subset_across_processes(path, out, config, Comm(alone=True), overwrite)
    shards = EmbeddingShards(path)  # the maps: coverage reads them, and their sizes are checked before loading
    if not isinstance(embeddings, Embeddings):
        check_memory_for_vectors(shards, config)
    emb = embeddings if isinstance(embeddings, Embeddings) else load_embeddings(embeddings)
    n = len(emb.keys)
    asked = config  # what the manifest records as its parameters
    check_config(replace(config, k_max=config.k_max or n), n, str(emb.path / "meta.json"))
    out = Path(out)
    refuse_to_replace_subset(out, overwrite)
    saved = checkpoint_folder(out)  # a stopped k-center job resumes from it: the order of an uninterrupted one
    start = time.perf_counter()
    pool = np.arange(n)
    if config.method in select.LABEL_METHODS:  # refused before a dedup
        known_labels(emb.labels, emb.path)
    if config.dedup is not None:
        pool = select.dedup(emb.vectors, config.dedup, seed=config.seed)
        _check_kept(config, len(pool), n, emb.path)
    config = replace(config, k_max=config.k_max or len(pool))
    clusters = clusters_used(len(pool), config)
    _say_cut(asked, clusters, len(pool))
    if config.method == "kcenter":  # with dedup (without, the job above): over the mapped shards' kept rows, as a job
        # across processes computes it: the same blocks give the same order bit for bit, whatever the number of processes
        order = pool[kcenter_shards(emb.path, config.k_max, config.seed, comm=Comm(alone=True), keep=pool,
                                    checkpoint=saved)]
    else:
        labels = None if emb.labels is None else emb.labels[pool]
        order = pool[select_order(emb.vectors[pool], config, clusters, labels, str(emb.path))]
    seconds = time.perf_counter() - start
    coverage = shard_coverage(shards, order, _report_ks(config), Comm(alone=True))
    meta = subset_meta(asked, config, clusters, emb.path, emb.meta, n, len(pool), seconds, coverage)
    write_manifest(out, meta, order, [emb.keys[i] for i in order], overwrite)
    shutil.rmtree(saved, ignore_errors=True)
    return read_manifest(out)


def make_subset_across_processes(embeddings: Path | EmbeddingShards, out: Path, config: SelectConfig, comm,
                                 overwrite: bool = False) -> Manifest | None:
    """`make_subset` with the processes of `comm` (torch.distributed) sharing the work, each mapping only its own
    shards: each checks its shards, the ordering and the coverage are computed across processes, and the first
    process writes the subset directory (its Manifest; None elsewhere). No process holds the corpus's vectors."""
    shards = EmbeddingShards.of(embeddings)  # bad shards: one line, before the processes meet
    n = shards.count
    # the manifest says a k-means method or dedup ran over the maps (Lloyd's, not faiss's in-memory one) as --mapped
    asked = replace(config, mapped=True) if has_in_memory_version(config) else config
    check_config(replace(config, k_max=config.k_max or n), n, str(shards.path / "meta.json"))
    out = Path(out)
    refuse_to_replace_subset(out, overwrite)
    shards.verify_owned(comm)  # also refuses more processes than shards, before any work
    start = time.perf_counter()
    device = resolve_device(config.device)
    saved = checkpoint_folder(out)  # a stopped job resumes from it: the dedup and order of an uninterrupted one
    keep = None
    if config.method in select.LABEL_METHODS:  # refused before a dedup, which can take hours
        _pool_labels(shards, None)
    if config.dedup is not None:
        keep = _dedup_with_progress(shards, config, comm, device, saved / "dedup")
        _check_kept(config, len(keep), n, shards.path)
    pool = n if keep is None else len(keep)
    config = replace(config, k_max=config.k_max or pool)
    clusters = clusters_used(pool, config)
    if comm.rank == 0:
        _say_cut(asked, clusters, pool)
    order = order_across_processes(shards, config, n, comm, keep, device, saved)
    seconds = time.perf_counter() - start
    coverage = shard_coverage(shards, order, _report_ks(config), comm, device)
    if comm.rank != 0:
        return None
    meta = subset_meta(asked, config, clusters, shards.path, shards.meta, n, pool, seconds, coverage)
    write_manifest(out, meta, order, shards.keys_of(order), overwrite)
    shutil.rmtree(saved, ignore_errors=True)
    return read_manifest(out)
