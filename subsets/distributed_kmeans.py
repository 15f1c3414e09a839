"""Balanced hierarchical k-means over row blocks held by one or many processes (torch.distributed, any backend).

Lloyd's algorithm with the rows split: each process assigns its own rows to the nearest centroid (faiss, exact L2, in
fixed chunks converted from the map; or torch on a GPU, `subsets.device`), and the per-cluster sums (float64) and
counts are all-reduced, so every process holds the same centroids after every iteration. The first centroids are rows
drawn by a seeded permutation of the global row indices (each owner contributes its own in the same all-reduce); a
cluster left empty keeps its centroid. Only the finest level runs over the rows: the upper levels cluster its
centroids, a few thousand vectors, in every process alike. What is gathered for the ordering is each row's finest
label and distance (12 bytes a row), never its vector, and the ordering is `select.balanced_order`'s.

The result is the same for any number of processes up to the summation order of the all-reduced float64 sums (tested:
equal assignments and order on well-separated data for 1, 2 and 3 processes). It is Lloyd's own algorithm, not
faiss.Kmeans's (which subsamples and splits empty clusters), so its order is not the in-memory `kmeans` method's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from .comm import Comm
from .distributed_kcenter import CHUNK_ROWS, products
from .kmeans_checkpoint import KMeansCheckpoint
from .select import (
    KMeansTree,
    balanced_order,
    default_clusters,
    nearest_per_cluster,
    resample_size,
    steps_resampled,
    typical_first,
)
from .shards import KeptRows

if TYPE_CHECKING:
    from .shards import EmbeddingShards


def row_chunks(blocks: list[np.ndarray]):
    """A process's rows as float32 chunks of at most CHUNK_ROWS, block by block: the same chunks whatever the
    number of processes, as blocks are shards."""
    for b in blocks:
        for lo in range(0, len(b), CHUNK_ROWS):
            yield np.ascontiguousarray(b[lo:lo + CHUNK_ROWS], dtype=np.float32)


def fetch_rows(blocks: list[np.ndarray], starts: list[int], rows: np.ndarray, comm: Comm) -> np.ndarray:
    """Global rows `rows` of every process's blocks [len(rows), width] as float64, in the order asked, each filled by
    the process that holds it and summed over the processes (exact: the others add zeros)."""
    out = np.zeros((len(rows), blocks[0].shape[1]))
    for b, s in zip(blocks, starts):
        inside = (rows >= s) & (rows < s + len(b))
        out[inside] = np.asarray(b[rows[inside] - s], dtype=np.float64)
    return comm.sum(out)


def _pass(blocks: list[np.ndarray], centroids: np.ndarray, device=None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                np.ndarray]:
    """One read of this process's rows: each row's nearest centroid and squared distance (faiss on the CPU, or torch
    on `device`), and the per-cluster float64 sums and counts of the rows so assigned (on the host, in row order)."""
    import torch

    n_clusters, dim = centroids.shape
    search = _searcher(np.ascontiguousarray(centroids, dtype=np.float32), device)
    labels, d2 = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)]
    sums, counts = torch.zeros((n_clusters, dim), dtype=torch.float64), np.zeros(n_clusters)
    for x in row_chunks(blocks):
        lab, d = search(x)
        # each cluster's rows added in row order, as np.add.at would (bit for bit), 4x faster
        sums.index_add_(0, torch.from_numpy(lab), torch.from_numpy(x).double())
        counts += np.bincount(lab, minlength=n_clusters)
        labels.append(lab)
        d2.append(d)
    return np.concatenate(labels), np.concatenate(d2), sums.numpy(), counts


def _searcher(centroids: np.ndarray, device):
    """chunk -> (nearest centroid, squared distance) of each row: faiss's exact L2 search, or torch on `device`."""
    if device is None:
        index = faiss.IndexFlatL2(centroids.shape[1])
        index.add(centroids)

        def search(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            d, lab = index.search(x, 1)
            return lab[:, 0].astype(np.int64), d[:, 0]
        return search
    import torch

    from .device import nearest

    c = torch.from_numpy(centroids).to(device)
    c_sq = (c * c).sum(1)
    return lambda x: nearest(torch.from_numpy(x).to(device), c, c_sq)


def assign(blocks: list[np.ndarray], centroids: np.ndarray, device=None) -> np.ndarray:
    """The nearest centroid of each of this process's rows."""
    return _pass(blocks, centroids, device)[0]


def kmeans_blocks(blocks: list[np.ndarray], starts: list[int], n: int, n_clusters: int, seed: int, niter: int = 20,
                  comm: Comm | None = None, device=None, progress=None,
                  checkpoint: KMeansCheckpoint | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lloyd's k-means over the rows of every process's blocks (block j holds global rows starts[j]...); returns
    (centroids, label of each local row, its distance to its centroid). `device`: a torch device for the
    assignments (None: faiss on the CPU); `progress(passes)` is told each pass over the rows (niter + 1 in all).
    `checkpoint`: resumed from when it holds a state, saved to between passes when due."""
    comm = comm or Comm()
    dim = blocks[0].shape[1]  # every process owns at least one block (EmbeddingShards.owned)
    n_clusters = min(n_clusters, n)
    resumed = checkpoint.load_agreed(n_clusters, dim, comm) if checkpoint is not None else None
    if resumed is not None:
        first, centroids = resumed
        if comm.rank == 0:
            print(f"{checkpoint.folder}: resuming k-means after pass {first} of {niter}", flush=True)
        if progress is not None:
            progress(first)
    else:
        first, picks = 0, np.random.default_rng([seed, n]).permutation(n)[:n_clusters]
        centroids = fetch_rows(blocks, starts, picks, comm)
    for i in range(first, niter):
        _, _, sums, counts = _pass(blocks, centroids, device)
        if progress is not None:
            progress(i + 1)
        packed = comm.sum(np.concatenate([sums.ravel(), counts]))
        sums, counts = packed[:-n_clusters].reshape(n_clusters, dim), packed[-n_clusters:]
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        if checkpoint is not None and (i + 1 == niter or checkpoint.due(comm)):  # the last: one pass left to redo
            checkpoint.save(i + 1, centroids, comm)
    labels, d2, _, _ = _pass(blocks, centroids, device)
    if progress is not None:
        progress(niter + 1)
    return centroids, labels, np.sqrt(np.maximum(d2, 0.0))


def resampled_kmeans_blocks(blocks: list[np.ndarray], starts: list[int], n: int, n_clusters: int, seed: int,
                            niter: int = 20, steps: int = 0, comm: Comm | None = None, device=None, progress=None,
                            checkpoint: KMeansCheckpoint | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`kmeans_blocks`, then `steps` resampling steps (`select.resampled_kmeans`'s rule across processes): every
    process gathers the rows' labels and distances (12 bytes a row), picks alike the rows nearest each centroid, runs
    Lloyd's k-means over its own of them (read from its maps) and assigns all its rows to the new centroids. Returns
    (centroids, label of each local row, its distance). `progress` counts the passes over rows (`kmeans_passes`);
    the checkpoint holds the first k-means: a resumed job redoes the resampling steps, to the same result."""
    comm = comm or Comm()
    centroids, labels, distance = kmeans_blocks(blocks, starts, n, n_clusters, seed, niter, comm, device, progress,
                                                checkpoint)
    size = resample_size(n, len(centroids))
    for step in range(steps_resampled(n, len(centroids), steps)):
        everyone = comm.concat(labels.astype(np.float64)).astype(np.int64)
        sample = nearest_per_cluster(everyone, comm.concat(distance), size)
        cuts = [np.searchsorted(sample, [s, s + len(b)]) for b, s in zip(blocks, starts)]
        mine = [KeptRows(b, sample[lo:hi] - s) for b, s, (lo, hi) in zip(blocks, starts, cuts)]
        done = (niter + 1) * (step + 1) + step  # passes before this step's
        centroids, _, _ = kmeans_blocks(mine, [int(lo) for lo, _ in cuts], len(sample), n_clusters,
                                        seed + 1000 * (step + 1), niter, comm, device,
                                        None if progress is None else lambda p, done=done: progress(done + p))
        labels, d2, _, _ = _pass(blocks, centroids, device)
        distance = np.sqrt(np.maximum(d2, 0.0))
        if progress is not None:
            progress(done + niter + 2)
    return centroids, labels, distance


def kmeans_passes(n: int, n_clusters: int, niter: int, steps: int) -> int:
    """Passes over rows a finest level takes: the k-means, and per resampling step its k-means and one assignment."""
    return (niter + 1) + steps_resampled(n, min(n_clusters, n), steps) * (niter + 2)


def kmeans_tree_blocks(blocks: list[np.ndarray], starts: list[int], n: int, clusters: list[int], seed: int,
                       niter: int = 20, comm: Comm | None = None, device=None, progress=None,
                       checkpoint: KMeansCheckpoint | None = None, resample_steps: int = 0) -> KMeansTree:
    """The hierarchical tree: the finest level over the rows of every process (on `device`, saved to `checkpoint`),
    the upper levels over the centroids (in every process alike, on the CPU); the rows' labels and distances gathered
    in global row order. `resample_steps`: as `resampled_kmeans_blocks`, at every level."""
    comm = comm or Comm()
    centroids, labels, distance = resampled_kmeans_blocks(blocks, starts, n, clusters[0], seed, niter, resample_steps,
                                                          comm, device, progress, checkpoint)
    tree = KMeansTree([comm.concat(labels.astype(np.float64)).astype(np.int64)], comm.concat(distance))
    alone = Comm(alone=True)
    for level, n_c in enumerate(clusters[1:], start=1):
        centroids, lab, _ = resampled_kmeans_blocks([centroids], [0], len(centroids), n_c, seed + level, niter,
                                                    resample_steps, alone)
        tree.levels.append(lab)
    return tree


def kmeans_balanced_shards(path: Path | EmbeddingShards, k: int, seed: int = 0, clusters: list[int] | None = None,
                           niter: int = 20, within: str = "nearest", comm: Comm | None = None, report=None,
                           keep: np.ndarray | None = None, device=None, progress=None, checkpoint: Path | None = None,
                           save_every: float | None = None, resample_steps: int = 0) -> np.ndarray:
    """The balanced k-means ordering (first k rows) of an embeddings directory, each process mapping only its own
    shards (`report(shards, bytes)` is told which); every process returns the same order. With `keep` (the sorted
    rows a dedup kept), over those rows alone, as positions in `keep`. `device`: as `kmeans_blocks`'.
    `checkpoint`: a folder the finest level's passes are saved to every `save_every` seconds and resumed from.
    `resample_steps`: kmeans-resampled's (`resampled_kmeans_blocks`)."""
    from .shards import EmbeddingShards

    comm = comm or Comm()
    shards = EmbeddingShards.of(path)
    blocks, starts, n = shards.process_blocks(comm, report, keep)
    clusters = clusters or default_clusters(n, k)
    state = _checkpoint(checkpoint, shards, n, keep, seed, clusters[0], niter, device, save_every)
    tree = kmeans_tree_blocks(blocks, starts, n, clusters, seed, niter, comm, device, progress, state, resample_steps)
    return balanced_order(tree, seed, within)[:k]


def prototypes_shards(path: Path | EmbeddingShards, k: int, seed: int, n_clusters: int, niter: int = 20, comm: Comm | None = None,
                      report=None, keep: np.ndarray | None = None, device=None, progress=None,
                      checkpoint: Path | None = None, save_every: float | None = None) -> np.ndarray:
    """The prototypes ordering (rows nearest their centroid first, `select.prototypes_order`'s rule) of an embeddings
    directory, with Lloyd's k-means across processes, each mapping only its own shards; every process returns it.
    With `keep`, over those rows alone, as positions in `keep`; `device`, `checkpoint` and `save_every` as
    `kmeans_balanced_shards`'."""
    from .shards import EmbeddingShards

    comm = comm or Comm()
    shards = EmbeddingShards.of(path)
    blocks, starts, n = shards.process_blocks(comm, report, keep)
    state = _checkpoint(checkpoint, shards, n, keep, seed, n_clusters, niter, device, save_every)
    _, _, distance = kmeans_blocks(blocks, starts, n, n_clusters, seed, niter, comm, device, progress, state)
    return typical_first(comm.concat(distance), seed)[:k]


def assignment_products(device) -> str:
    """Where the assignments (and a dedup's search) run, as far as their rounding goes: faiss on the CPU, or as
    `products`."""
    return "faiss" if device is None else products(device)


def _checkpoint(folder: Path | None, shards: EmbeddingShards, n: int, keep: np.ndarray | None, seed: int,
                n_clusters: int, niter: int, device, every: float | None) -> KMeansCheckpoint | None:
    """The finest level's checkpoint in `folder` (None: none), identified by everything its centroids depend on."""
    if folder is None:
        return None
    from .checkpoint import rows_identity

    identity = rows_identity(shards, n, keep) | {"seed": seed, "clusters": min(n_clusters, n), "niter": niter,
                                                 "products": assignment_products(device)}
    return KMeansCheckpoint(folder, identity, every)


def main(argv: list[str] | None = None) -> int:
    """`torchrun -m subsets.distributed_kmeans EMB --k K --out order.npy`: the balanced k-means ordering alone."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("embeddings", type=Path)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clusters", default="", help="clusters per level, finest first (default: about k/2 and its root)")
    p.add_argument("--niter", type=int, default=20)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None, help="a folder to save the passes to and resume from")
    p.add_argument("--save-every", type=float, default=None, help="seconds between saves (default 60)")
    p.add_argument("--resample-steps", type=int, default=0, help="kmeans-resampled's steps at every level (default 0)")
    a = p.parse_args(argv)
    from .ordering_job import run_ordering_job

    clusters = [int(c) for c in a.clusters.split(",") if c] or None
    return run_ordering_job(a.out, a.k, lambda comm, report: kmeans_balanced_shards(
        a.embeddings, a.k, a.seed, clusters, a.niter, comm=comm, report=report, checkpoint=a.checkpoint,
        save_every=a.save_every, resample_steps=a.resample_steps))


if __name__ == "__main__":
    sys.exit(main())
