"""Selection methods. Each returns an ordering of rows whose every prefix is that method's subset.

All take float32 L2-normalised vectors [N, d] and return int64 row indices without repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import faiss
import numpy as np

METHODS = ("kcenter", "kmeans", "random")


# --------------------------------------------------------------------------- k-center greedy
def kcenter_greedy(x: np.ndarray, k: int, seed: int = 0, prune: bool = True) -> np.ndarray:
    """Greedy farthest-point selection (Sener & Savarese): each pick is the point farthest from all picks.

    With `prune`, a point is re-measured only when the new center can be closer to it than its
    current one: by the triangle inequality that needs d(new, its center) < 2 * its distance.
    This gives exactly the same picks as the plain O(N * k * d) loop, at a fraction of the work
    once the centers cover the data. `prune=False` is the plain loop (reference and baseline).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    k = min(k, n)
    sq = np.einsum("ij,ij->i", x, x)
    order = np.empty(k, dtype=np.int64)
    order[0] = np.random.default_rng(seed).integers(n)
    dist = _dist_to(x, sq, x[order[0]])
    dist[order[0]] = -np.inf  # picked points never win the argmax again
    assign = np.zeros(n, dtype=np.int32)  # which pick each point is nearest to
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    centers[0] = x[order[0]]
    for t in range(1, k):
        i = int(np.argmax(dist))
        c = x[i]
        order[t], centers[t] = i, c
        if prune:
            cc = np.sqrt(np.maximum(((centers[:t] - c) ** 2).sum(1), 0.0))
            cand = np.flatnonzero(cc[assign] < 2.0 * dist + 1e-6)
            if len(cand) > n // 4:  # copying most rows costs more than measuring them all
                cand = None
        else:
            cand = None
        if cand is None:
            d_new = _dist_to(x, sq, c)
            better = d_new < dist
            dist = np.where(better, d_new, dist)
            assign[better] = t
        else:
            d_new = _dist_to(x[cand], sq[cand], c)
            better = d_new < dist[cand]
            dist[cand[better]] = d_new[better]
            assign[cand[better]] = t
        dist[i] = -np.inf
        assign[i] = t
    return order


def _dist_to(x: np.ndarray, sq: np.ndarray, c: np.ndarray) -> np.ndarray:
    d2 = sq + float(c @ c) - 2.0 * (x @ c)
    return np.sqrt(np.maximum(d2, 0.0))


def kcenter_reference(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Textbook farthest-point traversal in float64, for tests."""
    x = np.asarray(x, dtype=np.float64)
    first = int(np.random.default_rng(seed).integers(len(x)))
    picks = [first]
    dist = np.linalg.norm(x - x[first], axis=1)
    for _ in range(1, min(k, len(x))):
        dist[picks] = -1
        i = int(np.argmax(dist))
        picks.append(i)
        dist = np.minimum(dist, np.linalg.norm(x - x[i], axis=1))
    return np.array(picks, dtype=np.int64)


# --------------------------------------------------------------------------- balanced k-means
@dataclass
class KMeansTree:
    """Cluster labels per level, finest first: levels[0][row], levels[1][level-0 cluster], ..."""

    levels: list[np.ndarray] = field(default_factory=list)

    def top_cluster_of_rows(self) -> np.ndarray:
        lab = self.levels[0]
        for up in self.levels[1:]:
            lab = up[lab]
        return lab


def default_clusters(n: int, k_max: int) -> list[int]:
    """Two levels: about k_max / 2 fine clusters, their square root of coarse ones."""
    fine = max(2, min(n // 4, k_max // 2))
    return [fine, max(2, round(math.sqrt(fine)))]


def kmeans(x: np.ndarray, n_clusters: int, seed: int, niter: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """faiss k-means; returns (centroids, label per row)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_clusters = min(n_clusters, len(x))
    km = faiss.Kmeans(x.shape[1], n_clusters, niter=niter, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=256)
    km.train(x)
    _, lab = km.index.search(x, 1)
    return km.centroids, lab[:, 0].astype(np.int64)


def hierarchical_kmeans(x: np.ndarray, clusters: list[int], seed: int, niter: int = 20) -> KMeansTree:
    """k-means on the rows, then on the centroids of that level, and so on (ssl-data-curation style)."""
    tree, points = KMeansTree(), x
    for level, n_c in enumerate(clusters):
        centroids, lab = kmeans(points, n_c, seed + level, niter)
        tree.levels.append(lab)
        points = centroids
    return tree


def balanced_order(tree: KMeansTree, seed: int) -> np.ndarray:
    """Round-robin over clusters at every level, so every prefix is balanced across clusters.

    Within a leaf cluster rows come in random order; a parent interleaves its children one row
    at a time (children in random order), and the root interleaves the top clusters. Done as one
    lexsort per level: a row's rank inside its parent is fixed by (its rank inside its child,
    the child's turn).
    """
    rng = np.random.default_rng(seed)
    leaf = tree.levels[0]
    n = len(leaf)
    # rank within leaf: random order inside each leaf cluster
    rank = _rank_within_groups(leaf, rng.permutation(n).argsort(), np.zeros(n, dtype=np.int64))
    child = leaf
    for up in tree.levels[1:] + [None]:
        parent = np.zeros_like(child) if up is None else up[child]
        turn = rng.permutation(child.max() + 1)  # a child's turn among its siblings
        rank = _rank_within_groups(parent, rank, turn[child])
        child = parent
    return np.argsort(rank, kind="stable")


def _rank_within_groups(group: np.ndarray, primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Position of each row inside its group when the group is sorted by (primary, secondary)."""
    idx = np.lexsort((secondary, primary, group))
    g = group[idx]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    pos = np.arange(len(idx)) - np.repeat(starts, np.diff(np.r_[starts, len(idx)]))
    rank = np.empty(len(idx), dtype=np.int64)
    rank[idx] = pos
    return rank


def kmeans_balanced(x: np.ndarray, k: int, seed: int = 0, clusters: list[int] | None = None,
                    niter: int = 20) -> tuple[np.ndarray, KMeansTree]:
    tree = hierarchical_kmeans(x, clusters or default_clusters(len(x), k), seed, niter)
    return balanced_order(tree, seed)[:k], tree


# --------------------------------------------------------------------------- random, dedup
def random_order(n: int, k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[:k].astype(np.int64)


def dedup(x: np.ndarray, threshold: float, exact_max: int = 50_000, seed: int = 0, batch: int = 4096) -> np.ndarray:
    """Rows kept after dropping near-duplicates (cosine > threshold); the first row of each group stays.

    Exact (all pairs) up to `exact_max` rows; above it, pairs are searched inside k-means clusters
    of about 10,000 rows (SemDeDup), which can miss a pair split across two clusters.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = len(x)
    if n <= exact_max:
        groups = [np.arange(n)]
    else:
        _, lab = kmeans(x, max(2, n // 10_000), seed)
        groups = [np.flatnonzero(lab == c) for c in range(lab.max() + 1)]
    removed = np.zeros(n, dtype=bool)
    for rows in groups:
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x[rows])
        for start in range(0, len(rows), batch):
            lims, _, nbr = index.range_search(x[rows[start:start + batch]], threshold)
            for q in range(len(lims) - 1):
                i = rows[start + q]
                if removed[i]:
                    continue
                dup = rows[nbr[lims[q]:lims[q + 1]]]
                removed[dup[dup > i]] = True
    return np.flatnonzero(~removed)
