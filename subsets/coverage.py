"""How well a subset covers its corpus: distances to the nearest selected point, labels and clusters hit.

The rows may be split over processes (each its own shards, memory-mapped): every process measures its rows
against the selected vectors, and only per-k sums, maxima and cluster counts are reduced, so no process ever
holds the corpus. In one process the rows are one block, or the shards as blocks.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from .comm import Comm
from .distributed_kmeans import fetch_rows, row_chunks


def default_report_ks(k_max: int) -> list[int]:
    """1-2-5 steps from 10 up to k_max, and k_max itself."""
    ks, base = [], 10
    while base <= k_max:
        ks += [m * base for m in (1, 2, 5) if m * base <= k_max]
        base *= 10
    return sorted(set(ks + [k_max]))


def coverage_curve(x: np.ndarray, order: np.ndarray, ks: list[int], labels: np.ndarray | None = None,
                   clusters: np.ndarray | None = None) -> list[dict]:
    """Coverage of every prefix order[:k] for k in ks, of rows held in memory."""
    return coverage_blocks([x], [0], len(x), order, ks, labels, clusters, Comm(alone=True))


def coverage_blocks(blocks: list[np.ndarray], starts: list[int], n: int, order: np.ndarray, ks: list[int],
                    labels: np.ndarray | None = None, clusters: np.ndarray | None = None,
                    comm: Comm | None = None) -> list[dict]:
    """Coverage of every prefix order[:k] for k in ks, over the rows of every process's blocks (block j holds global
    rows starts[j]...). `labels`: every row's class (-1 unknown; only the selected rows are read, so a memory map
    will do); `clusters`: this process's rows' cluster labels, in block order. Every process returns the curve.

    The prefixes are nested, so each k only searches the rows added since the previous one: the whole curve costs
    one read of the rows and one nearest-neighbour search of each against order[:max(ks)].
    """
    comm = comm or Comm()
    ks = sorted(ks)
    picked = np.ascontiguousarray(fetch_rows(blocks, starts, order[:ks[-1]], comm), dtype=np.float32)
    indexes, prev = [], 0
    for k in ks:
        index = faiss.IndexFlatL2(picked.shape[1])
        index.add(picked[prev:k])
        indexes.append(index)
        prev = k
    chunk_sums, maxima = [], np.zeros(len(ks))
    for x in row_chunks(blocks):
        nearest = np.full(len(x), np.inf, dtype=np.float32)
        chunk_sums.append(np.zeros(len(ks)))
        for j, index in enumerate(indexes):
            d2, _ = index.search(x, 1)
            nearest = np.minimum(nearest, np.sqrt(np.maximum(d2[:, 0], 0)))
            chunk_sums[-1][j] = nearest.sum(dtype=np.float64)
            maxima[j] = max(maxima[j], float(nearest.max()))
    # Each chunk's sum is the same whichever process made it; fsum adds them exactly, so the mean is the same bit for
    # bit for any number of processes.
    chunk_sums = comm.concat(np.ravel(chunk_sums)).reshape(-1, len(ks))
    sums = [math.fsum(chunk_sums[:, j]) for j in range(len(ks))]
    maxima = comm.gather_rows(maxima).max(0)
    known = _classes(labels)
    hit_clusters, n_clusters = _clusters_of(blocks, starts, order[:ks[-1]], clusters, comm)
    rows = []
    for j, k in enumerate(ks):
        row = {"k": int(k), "mean_dist": float(sums[j] / n), "max_dist": float(maxima[j])}
        if len(known):
            sel = np.asarray(labels[np.sort(order[:k])])
            sel = sel[sel >= 0]
            row["label_coverage"] = len(np.unique(sel)) / len(known)
            row["label_balance"] = _normalised_entropy(np.bincount(sel, minlength=int(known.max()) + 1)[known])
        if n_clusters:
            row["cluster_coverage"] = len(np.unique(hit_clusters[:k])) / n_clusters
        rows.append(row)
    return rows


def _classes(labels: np.ndarray | None) -> np.ndarray:
    """The distinct known classes of the corpus (labels are metadata every process can read)."""
    if labels is None:
        return np.zeros(0, np.int64)
    labels = np.asarray(labels)
    return np.unique(labels[labels >= 0])


def _clusters_of(blocks, starts, rows: np.ndarray, clusters: np.ndarray | None, comm: Comm) -> tuple[np.ndarray, int]:
    """The cluster of each of `rows`, and how many clusters the corpus's rows fall in (0 without clusters)."""
    if clusters is None:
        return np.zeros(0, np.int64), 0
    size = int(comm.gather_rows(np.array([clusters.max() + 1 if len(clusters) else 0]))[:, 0].max())
    present = comm.sum(np.bincount(clusters, minlength=size).astype(np.float64)) > 0
    per_block = np.split(clusters[:, None], np.cumsum([len(b) for b in blocks])[:-1])  # the labels laid out as blocks
    return fetch_rows(per_block, starts, rows, comm)[:, 0].astype(np.int64), int(present.sum())


def _normalised_entropy(counts: np.ndarray) -> float:
    """1.0 when every class has the same count, 0.0 when one class has them all."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(counts))) if len(counts) > 1 else 1.0
