"""Near-duplicate removal (`select.dedup`'s rule) over row blocks held by one or many processes.

A row is dropped when its cosine similarity to an earlier row that is kept is above the threshold. The pairs above
it are searched group by group: up to `exact_max` rows one group holds them all (exact), above it the groups are
the clusters of Lloyd's k-means across the processes (about 10,000 rows each, as SemDeDup; a pair split across two
clusters is missed). For each group every process contributes its rows of the group (an all-gather of the
group's vectors, so no process holds more than one group), and searches its own rows against the group for
earlier rows above the threshold. The pairs (12 bytes each) are gathered, and every process resolves them alike,
in row order. No process holds the corpus; traffic is each row's vector once to every process.

With one group the kept rows equal `select.dedup`'s (tested), up to a pair whose similarity rounds across the
threshold; with clusters they can differ, as the clusters are Lloyd's, not faiss.Kmeans's. With a torch `device` (a
GPU), the clustering and the search run there (`subsets.device`); the pairs are resolved on the host as ever.
A stopped job resumes from its checkpoint (`subsets.dedup_checkpoint`) and keeps the rows an uninterrupted one keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from .comm import Comm
from .dedup_checkpoint import DedupCheckpoint
from .distributed_kmeans import assignment_products, kmeans_blocks

NITER = 20  # Lloyd's passes of the clustering into groups

if TYPE_CHECKING:
    from .shards import EmbeddingShards


def dedup_blocks(blocks: list[np.ndarray], starts: list[int], n: int, threshold: float, exact_max: int = 50_000,
                 seed: int = 0, comm: Comm | None = None, device=None, progress=None,
                 checkpoint: DedupCheckpoint | None = None, group_rows: int = 10_000) -> np.ndarray:
    """The global rows kept (sorted) of the n rows of every process's blocks (block j holds rows starts[j]...);
    `device`: a torch device for the search (None: faiss on the CPU); `progress(done, of)` is told each group
    searched; `checkpoint`: resumed from when it holds a state, saved to between groups when due. Above `exact_max`
    rows the groups are k-means clusters of about `group_rows` rows."""
    comm = comm or Comm()
    saved = checkpoint.load_agreed(comm) if checkpoint is not None else None
    first, n_groups, saved_pairs = (0, None, None) if saved is None else saved
    if saved is not None and comm.rank == 0:
        print(f"{checkpoint.folder}: resuming dedup after group {first} of {n_groups}", flush=True)
    # the first process carries the saved pairs, so that every pair is gathered once at the end
    pairs = [saved_pairs] if saved_pairs is not None and comm.rank == 0 else []
    if first == n_groups:  # every group was searched before the job stopped
        return kept_rows(n, _gathered(pairs, comm))
    local = np.concatenate([np.arange(s, s + len(b)) for b, s in zip(blocks, starts)] or [np.zeros(0, np.int64)])
    if n <= exact_max:
        group, n_groups = np.zeros(len(local), np.int64), 1
    else:
        n_groups = max(2, n // group_rows)
        clustering = checkpoint.clustering(n_groups, NITER) if checkpoint is not None else None
        group = kmeans_blocks(blocks, starts, n, n_groups, seed, NITER, comm=comm, device=device,
                              checkpoint=clustering)[1]
    sizes = np.concatenate([[0], np.cumsum([len(b) for b in blocks])])
    if progress is not None:
        progress(first, n_groups)
    for g in range(first, n_groups):
        if checkpoint is not None and g > first and checkpoint.due(comm):
            checkpoint.save(g, n_groups, _gathered(pairs, comm), comm)
        mine = np.flatnonzero(group == g)
        rows = _read(blocks, sizes, mine)
        ids = local[mine]
        every = comm.concat_rows(rows)
        every_ids = comm.concat(ids.astype(np.float64)).astype(np.int64)
        if len(rows) and len(every):
            query, found = _pairs_above(rows, every, threshold, device)
            query, earlier = ids[query], every_ids[found]
            above = earlier < query
            pairs.append(np.stack([earlier[above], query[above]], 1))
        if progress is not None:
            progress(g + 1, n_groups)
    gathered = _gathered(pairs, comm)
    if checkpoint is not None:  # the whole result: a job stopped in its ordering does not search again
        checkpoint.save(n_groups, n_groups, gathered, comm)
    return kept_rows(n, gathered)


def _gathered(pairs: list[np.ndarray], comm: Comm) -> np.ndarray:
    """Every process's pairs, on every process."""
    mine = np.concatenate(pairs or [np.zeros((0, 2), np.int64)])
    return comm.concat(mine.ravel().astype(np.float64)).astype(np.int64).reshape(-1, 2)


def _pairs_above(rows: np.ndarray, every: np.ndarray, threshold: float, device) -> tuple[np.ndarray, np.ndarray]:
    """(position in rows, position in every) of each pair with inner product above the threshold: faiss's range
    search, or torch's products on `device`."""
    if device is None:
        index = faiss.IndexFlatIP(every.shape[1])
        index.add(every)
        lims, _, found = index.range_search(rows, threshold)
        return np.repeat(np.arange(len(rows)), np.diff(lims.astype(np.int64))), found.astype(np.int64)
    from .device import pairs_above

    return pairs_above(rows, every, threshold, device)


def _read(blocks: list[np.ndarray], sizes: np.ndarray, local: np.ndarray) -> np.ndarray:
    """This process's rows at local positions `local` (sorted), as float32."""
    parts = []
    for j, b in enumerate(blocks):
        lo, hi = np.searchsorted(local, [sizes[j], sizes[j + 1]])
        if hi > lo:
            parts.append(np.asarray(b[local[lo:hi] - sizes[j]], dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros((0, blocks[0].shape[1]), np.float32))


def kept_rows(n: int, pairs: np.ndarray) -> np.ndarray:
    """The rows left when, in row order, each row still kept drops every later row it is paired with."""
    pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    removed = np.zeros(n, dtype=bool)
    firsts, at = np.unique(pairs[:, 0], return_index=True)
    for i, lo, hi in zip(firsts, at, np.r_[at[1:], len(pairs)]):
        if not removed[i]:
            removed[pairs[lo:hi, 1]] = True
    return np.flatnonzero(~removed)


def dedup_shards(path: Path | EmbeddingShards, threshold: float, exact_max: int = 50_000, seed: int = 0,
                 comm: Comm | None = None, device=None, progress=None, checkpoint: Path | None = None,
                 save_every: float | None = None, group_rows: int = 10_000) -> np.ndarray:
    """`dedup_blocks` over an embeddings directory, each process mapping only its own shards; `checkpoint`: a folder
    its state is saved to every `save_every` seconds and resumed from."""
    from .shards import EmbeddingShards

    comm = comm or Comm()
    shards = EmbeddingShards.of(path)
    blocks, starts, n = shards.process_blocks(comm)
    state = None
    if checkpoint is not None:
        from .checkpoint import rows_identity

        state = DedupCheckpoint(checkpoint, rows_identity(shards, n, None) | {
            "threshold": threshold, "exact_max": exact_max, "group_rows": group_rows, "seed": seed,
            "products": assignment_products(device)}, save_every)
    return dedup_blocks(blocks, starts, n, threshold, exact_max, seed, comm, device, progress, state, group_rows)
