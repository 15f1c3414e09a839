"""A dedup's checkpoint (`subsets.checkpoint`): above 50,000 rows the dedup across processes clusters the corpus with
Lloyd's k-means, then searches each cluster for pairs above the threshold, hours of work on a large corpus that a
stopped job should not redo.

Its state is the clustering's (the k-means centroids, in `kmeans/` inside the folder: `KMeansCheckpoint`) and, once
that is done, the number of groups searched with the pairs they gave (gathered from every process, so the first
process writes them alone). A resumed job recomputes the group of each row from the saved centroids (one pass),
skips the groups searched and resolves the same pairs, so it keeps the rows an uninterrupted one keeps, for any
number of processes. Once every group is searched the pairs are the whole result: a job stopped later, in its
ordering, does not search again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import OrderingCheckpoint
from .comm import Comm
from .kmeans_checkpoint import KMeansCheckpoint


class DedupCheckpoint(OrderingCheckpoint):
    """The pairs of the groups searched so far, written by the first process; the clustering's in `kmeans/`."""

    def __init__(self, folder: Path, identity: dict, every: float | None = None):
        super().__init__(folder, {"ordering": "dedup"} | identity, "dedup", every)
        self.settings = identity  # the rows and the dedup's settings, which its clustering's identity starts from

    def clustering(self, n_clusters: int, niter: int) -> KMeansCheckpoint:
        """The checkpoint of the dedup's k-means (its groups)."""
        return KMeansCheckpoint(self.folder / "kmeans", self.settings | {"clusters": n_clusters, "niter": niter},
                                self.every)

    def load_agreed(self, comm: Comm) -> tuple[int, int, np.ndarray] | None:
        """(groups searched, groups in all, the pairs found in them) on every process, which must all find the same
        save (or none)."""
        def load():
            progress = self.state()
            if progress is None:
                return None
            done = int(progress["groups"])
            return (done, int(progress["of"]), self.read("pairs", (int(progress["pairs"]), 2))), done
        return self.agreed(load, comm)

    def save(self, groups: int, of: int, pairs: np.ndarray, comm: Comm) -> None:
        """After `groups` of `of` groups: `pairs` are every process's pairs so far (the first process's are saved)."""
        super().save({"groups": groups, "of": of, "pairs": len(pairs)}, {"pairs": np.asarray(pairs, np.int64)}, {},
                     comm)
