"""A k-means ordering's checkpoint (`subsets.checkpoint`): Lloyd's passes over a large corpus take hours across
processes, and a stopped job resumes at the pass it had finished.

Between two passes the whole state of Lloyd's algorithm is the centroids, which every process holds alike (float64,
all-reduced): the first process saves them with the number of passes done. A resumed job starts from them with the
same arithmetic, so its centroids, labels and order equal an uninterrupted job's bit for bit, for any number of
processes. Only the finest level runs over the rows; the upper levels cluster its centroids in seconds and are not
saved.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import OrderingCheckpoint
from .comm import Comm


class KMeansCheckpoint(OrderingCheckpoint):
    """The centroids after a pass, written by the first process."""

    def __init__(self, folder: Path, identity: dict, every: float | None = None):
        super().__init__(folder, {"ordering": "kmeans"} | identity, "k-means", every)

    def load_agreed(self, n_clusters: int, dim: int, comm: Comm) -> tuple[int, np.ndarray] | None:
        """(passes done, the centroids after them) on every process, which must all find the same save (or none)."""
        def load():
            progress = self.state()
            if progress is None:
                return None
            passes = int(progress["passes"])
            return (passes, self.read("centroids", (n_clusters, dim)).astype(np.float64, copy=False)), passes
        return self.agreed(load, comm)

    def save(self, passes: int, centroids: np.ndarray, comm: Comm) -> None:
        super().save({"passes": passes}, {"centroids": np.asarray(centroids, np.float64)}, {}, comm)
