"""The processes of a selection job, and the few collective operations it needs, over torch.distributed (any
backend: gloo on CPUs) or, without it, this process alone. Every value crosses as float64, but vectors (float32)."""

from __future__ import annotations

import numpy as np


class Comm:
    """The processes of a job: torch.distributed when it is initialised, else this process alone."""

    def __init__(self, alone: bool = False):
        self.dist = None
        if not alone:  # torch is imported only where processes may share the work
            import torch.distributed as dist

            self.dist = dist if dist.is_available() and dist.is_initialized() else None
        self.world = self.dist.get_world_size() if self.dist else 1
        self.rank = self.dist.get_rank() if self.dist else 0

    def gather_rows(self, row: np.ndarray) -> np.ndarray:
        """One float64 row from every process, stacked in rank order."""
        if self.dist is None:
            return row[None]
        import torch

        t = torch.from_numpy(np.ascontiguousarray(row, dtype=np.float64))
        parts = [torch.empty_like(t) for _ in range(self.world)]
        self.dist.all_gather(parts, t)
        return torch.stack(parts).numpy()

    def sum(self, a: np.ndarray) -> np.ndarray:
        """Element-wise float64 sum over the processes."""
        if self.dist is None:
            return a
        import torch

        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
        self.dist.all_reduce(t)
        return t.numpy()

    def concat(self, a: np.ndarray) -> np.ndarray:
        """Every process's 1-d array (as float64), concatenated in rank order: global row order, as processes own
        their shards in rank order."""
        if self.dist is None:
            return a
        sizes = self.gather_rows(np.array([len(a)], dtype=np.float64))[:, 0].astype(int)
        padded = np.zeros(sizes.max(), dtype=np.float64)
        padded[:len(a)] = a
        rows = self.gather_rows(padded)
        return np.concatenate([rows[r, :sizes[r]] for r in range(self.world)])

    def concat_rows(self, a: np.ndarray) -> np.ndarray:
        """Every process's float32 rows [n_r, d], stacked in rank order."""
        if self.dist is None:
            return a
        import torch

        sizes = self.gather_rows(np.array([len(a)], dtype=np.float64))[:, 0].astype(int)
        padded = torch.zeros((int(sizes.max()), a.shape[1]), dtype=torch.float32)
        padded[:len(a)] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        self.dist.all_gather(parts, padded)
        return np.concatenate([parts[r][:sizes[r]].numpy() for r in range(self.world)])
