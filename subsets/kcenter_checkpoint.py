"""A k-center ordering's checkpoint (`subsets.checkpoint`), so that a job stopped after hours resumes where it stood.

At an apply no pick is pending, and the whole state of the greedy loop is the picks so far and every row's bound
(`distributed_kcenter`; after an apply in the middle of a pick, its next candidate is taken, as it is on a
resume). Saved there, it lets a rerun continue with the same arithmetic: the resumed order equals the
uninterrupted one, bit for bit, for any number of processes (each process saves and loads the bounds of its own
blocks, keyed by the blocks' first rows, which are the same whatever the process count). The greedy order does
not depend on k, so a checkpoint serves any k (a larger one continues it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import OrderingCheckpoint
from .comm import Comm


class KCenterCheckpoint(OrderingCheckpoint):
    """The picks (written by the first process) and each process's bounds over its own blocks."""

    def __init__(self, folder: Path, identity: dict, every: float | None = None):
        super().__init__(folder, {"ordering": "kcenter"} | identity, "k-center", every)

    def load_agreed(self, starts: list[int], sizes: list[int], comm: Comm) -> tuple[np.ndarray, np.ndarray] | None:
        """`load` on every process, which must all find the same save (or none)."""
        return self.agreed(lambda: self._load_counted(starts, sizes), comm)

    def _load_counted(self, starts, sizes):
        got = self.load(starts, sizes)
        return None if got is None else (got, len(got[0]))

    def load(self, starts: list[int], sizes: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """(the picks so far, this process's bounds over its blocks in order), or None without a checkpoint."""
        progress = self.state()
        if progress is None:
            return None
        order = self.read("order", (int(progress["picks"]),))
        bound = np.concatenate([self.read(f"bound-{start}", (size,)) for start, size in zip(starts, sizes) if size]
                               or [np.zeros(0, np.float32)]).astype(np.float32, copy=False)
        return order.astype(np.int64, copy=False), bound

    def save(self, order: np.ndarray, bound: np.ndarray, starts: list[int], sizes: list[int], comm: Comm) -> None:
        """Save the picks `order` and this process's `bound` (its blocks in order) as a new generation."""
        edges = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        own = {f"bound-{start}": bound[edges[j]:edges[j + 1]] for j, (start, size) in enumerate(zip(starts, sizes))
               if size}
        super().save({"picks": len(order)}, {"order": np.asarray(order, np.int64)}, own, comm)
