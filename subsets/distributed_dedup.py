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
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from .comm import Comm
from .distributed_kmeans import kmeans_blocks

if TYPE_CHECKING:
    from .shards import EmbeddingShards


def dedup_blocks(blocks: list[np.ndarray], starts: list[int], n: int, threshold: float, exact_max: int = 50_000,
                 seed: int = 0, comm: Comm | None = None, device=None) -> np.ndarray:
    """The global rows kept (sorted) of the n rows of every process's blocks (block j holds rows starts[j]...);
    `device`: a torch device for the search (None: faiss on the CPU)."""
    comm = comm or Comm()
    local = np.concatenate([np.arange(s, s + len(b)) for b, s in zip(blocks, starts)] or [np.zeros(0, np.int64)])
    if n <= exact_max:
        group, n_groups = np.zeros(len(local), np.int64), 1
    else:
        n_groups = max(2, n // 10_000)
        group = kmeans_blocks(blocks, starts, n, n_groups, seed, comm=comm, device=device)[1]
    sizes = np.concatenate([[0], np.cumsum([len(b) for b in blocks])])
    pairs = []
    for g in range(n_groups):
        mine = np.flatnonzero(group == g)
        rows = _read(blocks, sizes, mine)
        ids = local[mine]
        every = comm.concat_rows(rows)
        every_ids = comm.concat(ids.astype(np.float64)).astype(np.int64)
        if not len(rows) or not len(every):
            continue
        query, found = _pairs_above(rows, every, threshold, device)
        query, earlier = ids[query], every_ids[found]
        above = earlier < query
        pairs.append(np.stack([earlier[above], query[above]], 1))
    pairs = np.concatenate(pairs or [np.zeros((0, 2), np.int64)])
    gathered = comm.concat(pairs.ravel().astype(np.float64)).astype(np.int64).reshape(-1, 2)
    return kept_rows(n, gathered)


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
                 comm: Comm | None = None, device=None) -> np.ndarray:
    """`dedup_blocks` over an embeddings directory, each process mapping only its own shards."""
    from .shards import EmbeddingShards

    comm = comm or Comm()
    shards = EmbeddingShards.of(path)
    blocks, starts, n = shards.process_blocks(comm)
    return dedup_blocks(blocks, starts, n, threshold, exact_max, seed, comm, device)
