"""Selection methods. Each returns an ordering of rows whose every prefix is that method's subset.

All take float32 L2-normalised vectors [N, d] and return int64 row indices without repeats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import faiss
import numpy as np

METHODS = ("kcenter", "kmeans", "kmeans-random", "kmeans-resampled", "prototypes", "random", "class-balanced")
KMEANS_METHODS = ("kmeans", "kmeans-random", "kmeans-resampled")  # the balanced hierarchical k-means orderings
LABEL_METHODS = ("class-balanced",)  # read the corpus's labels, not its embeddings: a labelled corpus only


# --------------------------------------------------------------------------- k-center greedy
def kcenter_greedy(x: np.ndarray, k: int, seed: int = 0, batch: int = 64) -> np.ndarray:
    """Greedy farthest-point selection (Sener & Savarese): each pick is the point farthest from all picks.

    Exact, with batched updates: `bound` holds each row's distance to the nearest pick that has
    been applied to all rows, an upper bound on its true distance. New picks wait in `pending`
    and are applied `batch` at a time with one matrix product, so the corpus is read once per
    `batch` picks rather than once per pick. A row is picked only after it has been measured
    against the pending picks too and is still the largest: its distance is then exact and no
    other row's true distance can exceed its bound. `batch=1` is the plain O(N * k * d) loop.
    """
    from .comm import Comm
    from .distributed_kcenter import kcenter_blocks

    x = np.ascontiguousarray(x, dtype=np.float32)
    return kcenter_blocks([x], [0], len(x), x.shape[1], k, seed, batch, Comm(alone=True))


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
    """Cluster labels per level, finest first: levels[0][row], levels[1][level-0 cluster], ...; and each row's
    distance to the centroid of its finest cluster."""

    levels: list[np.ndarray] = field(default_factory=list)
    distance: np.ndarray | None = None

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
    centroids, lab, _ = kmeans_with_distance(x, n_clusters, seed, niter)
    return centroids, lab


def kmeans_with_distance(x: np.ndarray, n_clusters: int, seed: int,
                         niter: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """faiss k-means; returns (centroids, label per row, each row's distance to its centroid)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n_clusters = min(n_clusters, len(x))
    km = faiss.Kmeans(x.shape[1], n_clusters, niter=niter, seed=seed, verbose=False,
                      min_points_per_centroid=1, max_points_per_centroid=256)
    km.train(x)
    return km.centroids, *nearest_centroid(x, km.centroids)


def hierarchical_kmeans(x: np.ndarray, clusters: list[int], seed: int, niter: int = 20,
                        resample_steps: int = 0) -> KMeansTree:
    """k-means on the rows, then on the centroids of that level, and so on (ssl-data-curation style); with
    `resample_steps`, each level's k-means is followed by that many resampling steps (`resampled_kmeans`)."""
    tree, points = KMeansTree(), x
    for level, n_c in enumerate(clusters):
        centroids, lab, distance = resampled_kmeans(points, n_c, seed + level, niter, resample_steps)
        tree.levels.append(lab)
        if level == 0:
            tree.distance = distance
        points = centroids
    return tree


def resample_size(points: int, n_clusters: int) -> int:
    """Rows taken from each cluster in a resampling step: about half the mean cluster size (ssl-data-curation's
    rule); below 2 a level is not resampled, as there (`steps_resampled`)."""
    return max(1, points // max(1, n_clusters) // 2)


def steps_resampled(points: int, n_clusters: int, steps: int) -> int:
    """The resampling steps a level of `points` in `n_clusters` clusters runs: none where its share is one row."""
    return steps if resample_size(points, n_clusters) > 1 else 0


def nearest_per_cluster(labels: np.ndarray, distance: np.ndarray, size: int) -> np.ndarray:
    """The rows (sorted) that are among the `size` nearest their cluster's centroid, ties to the lower row."""
    place = _rank_within_groups(labels, distance, np.arange(len(labels)))
    return np.flatnonzero(place < size)


def resampled_kmeans(x: np.ndarray, n_clusters: int, seed: int, niter: int = 20,
                     steps: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k-means, then `steps` resampling steps (Vo et al. 2024, ssl-data-curation): k-means again on the rows nearest
    each centroid, an equal number from every cluster, and every row assigned to the new centroids. On skewed data
    k-means spends its centroids on the dense regions; clustering an equal share of each cluster moves them toward
    an even cover of the support. Returns (centroids, label per row, distance per row)."""
    centroids, lab, distance = kmeans_with_distance(x, n_clusters, seed, niter)
    size = resample_size(len(x), len(centroids))
    for step in range(steps_resampled(len(x), len(centroids), steps)):
        sample = nearest_per_cluster(lab, distance, size)
        centroids, _, _ = kmeans_with_distance(x[sample], n_clusters, seed + 1000 * (step + 1), niter)
        lab, distance = nearest_centroid(x, centroids)
    return centroids, lab, distance


def nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's nearest centroid and its distance to it (faiss, exact L2)."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    d2, lab = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return lab[:, 0].astype(np.int64), np.sqrt(np.maximum(d2[:, 0], 0.0))


def balanced_order(tree: KMeansTree, seed: int, within: str = "nearest") -> np.ndarray:
    """Round-robin over clusters at every level, so every prefix is balanced across clusters.

    Within a leaf cluster rows come nearest its centroid first (`nearest`: each cluster's most typical
    image is picked first) or in random order (`random`, ssl-data-curation's sampling rule); a parent
    interleaves its children one row at a time (children in random order), and the root interleaves
    the top clusters. Done as one lexsort per level: a row's rank inside its parent is fixed by (its
    rank inside its child, the child's turn).
    """
    rng = np.random.default_rng(seed)
    leaf = tree.levels[0]
    n = len(leaf)
    shuffle = rng.permutation(n).argsort()  # random rank of each row: the order, or the tie-break of distances
    primary = shuffle if within == "random" else np.lexsort((shuffle, tree.distance)).argsort()
    rank = _rank_within_groups(leaf, primary, np.zeros(n, dtype=np.int64))
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
                    niter: int = 20, within: str = "nearest", resample_steps: int = 0) -> tuple[np.ndarray, KMeansTree]:
    tree = hierarchical_kmeans(x, clusters or default_clusters(len(x), k), seed, niter, resample_steps)
    return balanced_order(tree, seed, within)[:k], tree


# --------------------------------------------------------------------------- prototypes
def prototype_clusters(n: int, k_max: int) -> int:
    """As many clusters as the coarse level of the balanced k-means: few, so 'typical' means typical of a broad
    region of the corpus rather than of a handful of near neighbours."""
    return default_clusters(n, k_max)[-1]


def prototypes_order(x: np.ndarray, k: int, seed: int = 0, n_clusters: int | None = None,
                     niter: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows nearest their k-means centroid first, over the whole corpus (the self-supervised prototypicality
    metric of Sorscher et al., "Beyond neural scaling laws": easy, typical examples first). Not balanced:
    tight clusters give more of the first picks. Returns (order, label per row, distance per row)."""
    _, lab, distance = kmeans_with_distance(x, n_clusters or prototype_clusters(len(x), k), seed, niter)
    return typical_first(distance, seed)[:k], lab, distance


def typical_first(distance: np.ndarray, seed: int) -> np.ndarray:
    """Rows by their distance to their centroid, nearest first; ties in a seeded random order."""
    tie = np.random.default_rng(seed).permutation(len(distance))
    return np.lexsort((tie, distance)).astype(np.int64)


# --------------------------------------------------------------------------- random, class-balanced, dedup
def random_order(n: int, k: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(n)[:k].astype(np.int64)


def class_balanced_order(labels: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Round robin over the classes: each round a seeded random image of every class that has one left, the classes
    in a new random order each round. Every prefix is as even over the classes as their sizes allow (a class out of
    images drops out). It reads the labels, not the embeddings: on a skewed corpus, the reference for what evening
    out the classes alone is worth, which no label-free method can do better than."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(labels))
    shuffled = labels[perm]
    grouped = np.lexsort((np.arange(len(perm)), shuffled))  # the class's rows together, in their shuffled order
    first = np.searchsorted(shuffled[grouped], shuffled[grouped], side="left")
    rank = np.empty(len(perm), np.int64)
    rank[grouped] = np.arange(len(perm)) - first  # each shuffled row's round: its place among its class's rows
    return perm[np.lexsort((rng.random(len(perm)), rank))][:k].astype(np.int64)


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
