"""A k-center ordering's checkpoint, so that a job stopped after hours resumes where it stood.

At an apply no pick is pending, and the whole state of the greedy loop is the picks so far and every row's bound
(`distributed_kcenter`; after an apply in the middle of a pick, its next candidate is taken, as it is on a
resume). Saved there, it lets a rerun continue with the same arithmetic: the resumed order equals the
uninterrupted one, bit for bit, for any number of processes (each process saves and loads the bounds of its own
blocks, keyed by the blocks' first rows, which are the same whatever the process count). The greedy order does
not depend on k, so a checkpoint serves any k (a larger one continues it).

Each save is a new generation: every process writes its blocks' bounds under the generation's number, then the
first process writes the picks and `state.json`, which names the generation; only then are older generations
removed. A job stopped mid-save leaves the previous generation whole. The folder must be one every process sees
(shared storage across machines), as the embeddings are.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from .comm import Comm
from .errors import InputError
from .fileio import read_json, write_json_atomic, write_npy_atomic

# Seconds between saves: a save writes 4 bytes per row, against an apply's 2 x 4 x dim x batch flops per row.
SAVE_EVERY = 60.0


class KCenterCheckpoint:
    """Saves and loads one ordering's state in `folder`. `identity`: everything the order depends on besides k (the
    embeddings, the rows kept, seed, batch, proposals, where the products run); a checkpoint of another identity is
    refused with one line naming what differs."""

    def __init__(self, folder: Path, identity: dict, every: float | None = None):
        self.folder, self.identity = Path(folder), identity
        self.every = SAVE_EVERY if every is None else every
        self.last = time.monotonic()
        self.generation = 0  # of the last save, loaded or made

    def load_agreed(self, starts: list[int], sizes: list[int], comm: Comm) -> tuple[np.ndarray, np.ndarray] | None:
        """`load` on every process, which must all find the same save (or none): a process that cannot read its part
        stops them all, each with one line, instead of leaving the others waiting for it."""
        problem, got = None, None
        try:
            got = self.load(starts, sizes)
        except InputError as e:
            problem = e
        picks = -2.0 if problem is not None else -1.0 if got is None else float(len(got[0]))
        seen = comm.gather_rows(np.array([picks]))[:, 0]
        if problem is not None:
            raise problem
        if (seen == -2).any():
            raise InputError(f"{self.folder}: another process could not read its part of the k-center checkpoint "
                             "(its line says why)")
        if len(set(seen.tolist())) > 1:
            raise InputError(f"{self.folder}: the processes found different k-center checkpoints (picks "
                             f"{', '.join(str(int(v)) if v >= 0 else 'none' for v in seen)}); it must be on storage "
                             "every process shares")
        return got

    def load(self, starts: list[int], sizes: list[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """(the picks so far, this process's bounds over its blocks in order), or None without a checkpoint."""
        state_file = self.folder / "state.json"
        if not state_file.exists():
            return None
        state = read_json(state_file, "a k-center checkpoint")
        theirs = state.get("identity", {})
        differs = sorted(k for k in set(theirs) | set(self.identity) if theirs.get(k) != self.identity.get(k))
        if differs:
            raise InputError(f"{self.folder}: a k-center checkpoint of another selection (differs in "
                             f"{', '.join(differs)}); delete it to start afresh, or rerun with its settings")
        picks, self.generation = int(state["picks"]), int(state["generation"])
        order = self._read(self._order_file(self.generation), (picks,))
        bound = np.concatenate([self._read(self._bound_file(start, self.generation), (size,))
                                for start, size in zip(starts, sizes) if size]
                               or [np.zeros(0, np.float32)]).astype(np.float32, copy=False)
        return order.astype(np.int64, copy=False), bound

    def _read(self, path: Path, shape: tuple[int]) -> np.ndarray:
        try:
            a = np.load(path)
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: unreadable k-center checkpoint file ({e}); delete {self.folder} to start "
                             "afresh") from None
        if a.shape != shape:
            raise InputError(f"{path}: holds {a.shape[0]:,} values where {shape[0]:,} were expected; delete "
                             f"{self.folder} to start afresh")
        return a

    def due(self, comm: Comm) -> bool:
        """Time for a save: the first process's clock decides for all (a save is collective)."""
        late = float(time.monotonic() - self.last >= self.every)
        return bool(comm.gather_rows(np.array([late]))[0, 0])

    def save(self, order: np.ndarray, bound: np.ndarray, starts: list[int], sizes: list[int], comm: Comm) -> None:
        """Save the picks `order` and this process's `bound` (its blocks in order) as a new generation."""
        self.generation += 1  # every process counts its saves alike
        self.folder.mkdir(parents=True, exist_ok=True)
        edges = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        for j, (start, size) in enumerate(zip(starts, sizes)):
            if size:
                write_npy_atomic(self._bound_file(start, self.generation), bound[edges[j]:edges[j + 1]])
        comm.gather_rows(np.zeros(1))  # every process's bounds are written
        if comm.rank == 0:
            write_npy_atomic(self._order_file(self.generation), np.asarray(order, np.int64))
            write_json_atomic(self.folder / "state.json", {"identity": self.identity, "picks": len(order),
                                                           "generation": self.generation})
        comm.gather_rows(np.zeros(1))  # state.json names the new generation: the older ones can go
        keep = {self._bound_file(start, self.generation).name for start in starts} | {self._order_file(self.generation).name}
        mine = [f"bound-{start}.g*.npy" for start in starts] + (["order.g*.npy"] if comm.rank == 0 else [])
        for old in (f for pattern in mine for f in self.folder.glob(pattern) if f.name not in keep):
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        self.last = time.monotonic()

    def _bound_file(self, start: int, generation: int) -> Path:
        return self.folder / f"bound-{start}.g{generation}.npy"

    def _order_file(self, generation: int) -> Path:
        return self.folder / f"order.g{generation}.npy"


def checkpoint_folder(out: Path) -> Path:
    """Where the selection job writing `out` keeps its k-center checkpoint until `out` is written."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoint")
