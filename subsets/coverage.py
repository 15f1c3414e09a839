"""How well a subset covers its corpus: distances to the nearest selected point, labels and clusters hit."""

from __future__ import annotations

import faiss
import numpy as np


def default_report_ks(k_max: int) -> list[int]:
    """1-2-5 steps from 10 up to k_max, and k_max itself."""
    ks, base = [], 10
    while base <= k_max:
        ks += [m * base for m in (1, 2, 5) if m * base <= k_max]
        base *= 10
    return sorted(set(ks + [k_max]))


def coverage_curve(x: np.ndarray, order: np.ndarray, ks: list[int], labels: np.ndarray | None = None,
                   clusters: np.ndarray | None = None) -> list[dict]:
    """Coverage of every prefix order[:k] for k in ks.

    The prefixes are nested, so each k only searches the rows added since the previous one:
    the whole curve costs one nearest-neighbour pass over order[:max(ks)].
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    nearest = np.full(len(x), np.inf, dtype=np.float32)
    known = labels[labels >= 0] if labels is not None else np.array([])
    n_classes = len(np.unique(known))
    n_clusters = len(np.unique(clusters)) if clusters is not None else 0
    rows, prev = [], 0
    for k in sorted(ks):
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x[order[prev:k]])
        d2, _ = index.search(x, 1)
        nearest = np.minimum(nearest, np.sqrt(np.maximum(d2[:, 0], 0)))
        prev = k
        row = {"k": int(k), "mean_dist": float(nearest.mean()), "max_dist": float(nearest.max())}
        if n_classes:
            sel = labels[order[:k]]
            row["label_coverage"] = len(np.unique(sel[sel >= 0])) / n_classes
            counts = np.bincount(sel[sel >= 0], minlength=int(known.max()) + 1)[np.unique(known)]
            row["label_balance"] = _normalised_entropy(counts)
        if n_clusters:
            row["cluster_coverage"] = len(np.unique(clusters[order[:k]])) / n_clusters
        rows.append(row)
    return rows


def _normalised_entropy(counts: np.ndarray) -> float:
    """1.0 when every class has the same count, 0.0 when one class has them all."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(counts))) if len(counts) > 1 else 1.0
