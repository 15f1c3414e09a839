"""The checkpoint of an ordering job across processes (k-center's greedy loop, k-means' Lloyd passes), so that a job
stopped after hours resumes where it stood and gives the order an uninterrupted one gives.

A checkpoint is a folder of numbered generations: at each save every process writes the arrays it alone holds
(`own`, say the bounds of its blocks), the first process writes the arrays every process holds alike (`shared`,
say the picks) and then `state.json`, which names the generation and how far the job got; only then are older
generations removed. A job stopped mid-save leaves the previous generation whole. The folder must be one every
process sees (shared storage across machines), as the embeddings are.

`state.json` also records the job's identity: everything its result depends on (the embeddings, the rows kept,
seeds, where the products run). A checkpoint of another identity is refused with one line naming what differs.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np

from .comm import Comm
from .errors import InputError
from .fileio import read_json, write_json_atomic, write_npy_atomic

# Seconds between saves: a save writes one value per row at most, against a pass over every row's vector between two.
SAVE_EVERY = 60.0


class OrderingCheckpoint:
    """Saves and loads one ordering job's state in `folder`; `what` names the job in messages ("k-center")."""

    def __init__(self, folder: Path, identity: dict, what: str, every: float | None = None):
        self.folder, self.identity, self.what = Path(folder), identity, what
        self.every = SAVE_EVERY if every is None else every
        self.last = time.monotonic()
        self.generation = 0  # of the last save, loaded or made

    def state(self) -> dict | None:
        """The saved progress (what `save` was given as `progress`), or None without a checkpoint; another
        identity's checkpoint is refused. Sets the generation that `read` reads."""
        state_file = self.folder / "state.json"
        if not state_file.exists():
            return None
        state = read_json(state_file, f"a {self.what} checkpoint")
        theirs = state.get("identity", {})
        differs = sorted(k for k in set(theirs) | set(self.identity) if theirs.get(k) != self.identity.get(k))
        if differs:
            raise InputError(f"{self.folder}: a checkpoint of another selection (differs in {', '.join(differs)}); "
                             "delete it to start afresh, or rerun with its settings")
        self.generation = int(state["generation"])
        return state["progress"]

    def read(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Array `name` of the generation `state` found, which must have `shape`."""
        path = self._file(name, self.generation)
        try:
            a = np.load(path)
        except (OSError, ValueError) as e:
            raise InputError(f"{path}: unreadable {self.what} checkpoint file ({e}); delete {self.folder} to start "
                             "afresh") from None
        if a.shape != shape:
            raise InputError(f"{path}: holds an array of shape {a.shape} where {shape} was expected; delete "
                             f"{self.folder} to start afresh")
        return a

    def agreed(self, load, comm: Comm):
        """`load()` -> (what it read, its progress as a number) or None, on every process, which must all find
        the same save (or none): a process that cannot read its part stops them all, each with one line, instead
        of leaving the others waiting for it. Returns what this process's `load` read."""
        problem, got = None, None
        try:
            got = load()
        except InputError as e:
            problem = e
        mark = -2.0 if problem is not None else -1.0 if got is None else float(got[1])
        seen = comm.gather_rows(np.array([mark]))[:, 0]
        if problem is not None:
            raise problem
        if (seen == -2).any():
            raise InputError(f"{self.folder}: another process could not read its part of the {self.what} checkpoint "
                             "(its line says why)")
        if len(set(seen.tolist())) > 1:
            raise InputError(f"{self.folder}: the processes found different {self.what} checkpoints (at "
                             f"{', '.join(str(int(v)) if v >= 0 else 'none' for v in seen)}); it must be on storage "
                             "every process shares")
        return None if got is None else got[0]

    def due(self, comm: Comm) -> bool:
        """Time for a save: the first process's clock decides for all (a save is collective)."""
        late = float(time.monotonic() - self.last >= self.every)
        return bool(comm.gather_rows(np.array([late]))[0, 0])

    def save(self, progress: dict, shared: dict[str, np.ndarray], own: dict[str, np.ndarray], comm: Comm) -> None:
        """A new generation: this process's `own` arrays (names no other process writes), the first process's
        `shared` ones, then `state.json` with `progress`."""
        self.generation += 1  # every process counts its saves alike
        self.folder.mkdir(parents=True, exist_ok=True)
        for name, a in own.items():
            write_npy_atomic(self._file(name, self.generation), a)
        comm.gather_rows(np.zeros(1))  # every process's arrays are written
        mine = list(own)
        if comm.rank == 0:
            for name, a in shared.items():
                write_npy_atomic(self._file(name, self.generation), a)
            write_json_atomic(self.folder / "state.json", {"identity": self.identity, "progress": progress,
                                                           "generation": self.generation})
            mine += list(shared)
        comm.gather_rows(np.zeros(1))  # state.json names the new generation: the older ones can go
        keep = {self._file(name, self.generation).name for name in mine}
        for old in (f for name in mine for f in self.folder.glob(f"{name}.g*.npy") if f.name not in keep):
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        self.last = time.monotonic()

    def _file(self, name: str, generation: int) -> Path:
        return self.folder / f"{name}.g{generation}.npy"


def rows_identity(shards, n: int, keep: np.ndarray | None) -> dict:
    """The part of an ordering's identity that names its rows: the embeddings, their count, the rows a dedup kept."""
    from .manifest import order_hash

    return {"embeddings": shards.meta["hash"], "rows": n,
            "kept": None if keep is None else order_hash(keep, shards.meta["hash"])}


def checkpoint_folder(out: Path) -> Path:
    """Where the selection job writing `out` keeps its checkpoint until `out` is written."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoint")
