"""How well a subset covers its corpus: distances to the nearest selected point, labels and clusters hit.

The rows may be split over processes (each its own shards, memory-mapped): every process measures its rows
against the selected vectors, and only per-k sums, maxima and cluster counts are reduced, so no process ever
holds the corpus. In one process the rows are one block, or the shards as blocks. The nearest-pick search costs
rows x k_max products, as much as k-center's own: it runs where the job's products run (`--device`).
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
                    comm: Comm | None = None, device=None) -> list[dict]:
    """Coverage of every prefix order[:k] for k in ks, over the rows of every process's blocks (block j holds global
    rows starts[j]...). `labels`: every row's class (-1 unknown; only the selected rows are read, so a memory map
    will do); `clusters`: this process's rows' cluster labels, in block order; `device`: a torch device for the
    distance products (None: faiss on the CPU; the two agree to float32 rounding). Every process returns the curve.

    The prefixes are nested, so each k only searches the rows added since the previous one: the whole curve costs
    one read of the rows and one nearest-neighbour search of each against order[:max(ks)].
    """
    comm = comm or Comm()
    ks = sorted(ks)
    picked = np.ascontiguousarray(fetch_rows(blocks, starts, order[:ks[-1]], comm), dtype=np.float32)
    segments = [picked[lo:hi] for lo, hi in zip([0] + ks[:-1], ks)]  # the picks each k adds to the one before
    distances = _faiss_distances(segments) if device is None else _device_distances(segments, device)
    chunk_sums, maxima = [], np.zeros(len(ks))
    for x in row_chunks(blocks):
        nearest = np.full(len(x), np.inf, dtype=np.float32)
        chunk_sums.append(np.zeros(len(ks)))
        for j, to_segment in enumerate(distances(x)):
            nearest = np.minimum(nearest, to_segment)
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


def _faiss_distances(segments: list[np.ndarray]):
    """chunk -> each row's distance to its nearest row of each segment, by faiss's exact search."""
    indexes = []
    for segment in segments:
        indexes.append(faiss.IndexFlatL2(segment.shape[1]))
        indexes[-1].add(segment)

    def distances(x: np.ndarray):
        for index in indexes:
            d2, _ = index.search(x, 1)
            yield np.sqrt(np.maximum(d2[:, 0], 0))
    return distances


def _device_distances(segments: list[np.ndarray], device, block: int = 32_768):
    """`_faiss_distances` by torch products on `device`: the chunk goes over once, each segment's picks stay there,
    and a segment is searched `block` picks at a time so a chunk's products stay near a GiB however large k is."""
    import torch

    from .device import min_distances

    on_device = [torch.from_numpy(s).to(device) for s in segments]
    squares = [(s * s).sum(1) for s in on_device]

    def distances(x: np.ndarray):
        rows = torch.from_numpy(x).to(device)
        rows_sq = (rows * rows).sum(1)
        for s, s_sq in zip(on_device, squares):
            yield np.min([min_distances(rows, s[lo:lo + block], s_sq[lo:lo + block], rows_sq)
                          for lo in range(0, len(s), block)], axis=0)
    return distances


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
