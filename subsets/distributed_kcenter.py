"""Exact greedy k-center over row blocks held by one or many processes (torch.distributed, any backend).

Each process holds some blocks of rows (its embedding shards, memory-mapped) and the distance `bound` of each of
its rows to the nearest applied pick. The rule is `select.kcenter_greedy`'s, step for step: the candidate is the
row with the largest bound over *all* processes, the lowest row index on ties, as np.argmax would (each process
proposes its largest bounds as [bound, row index, squared norm, vector] in one all-gather: `_Candidates`); it is
measured against the pending picks, which every process holds, and taken once its distance is exact and still
the largest, else its owner lowers its bound and the next candidate is taken. Every `batch` picks, each process
applies the pending picks to its own blocks, in matrix products over fixed chunks of rows.

Every decision is made from gathered values that all processes share, and each chunk's arithmetic is the same
whichever process holds it and whatever its thread count, so the ordering is the same for 1, 2 or 3 processes,
bit for bit (tested), provided the blocks are the same: `make_subset` uses the embedding shards as blocks
whatever the number of processes. With a torch `device` (a GPU), the products of applying the pending picks run
there over the same chunks (`subsets.device`): equal orders for any number of processes on one kind of GPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .comm import Comm

if TYPE_CHECKING:
    from .kcenter_checkpoint import KCenterCheckpoint
    from .shards import EmbeddingShards

# Rows per matrix product. Each product runs on one BLAS thread, and a process's threads take products in turn: a
# multi-threaded BLAS splits one product differently for another thread count, and the rounding of a row's
# distance then depends on how many threads its process had. This way it depends on nothing but the row's data.
CHUNK_ROWS = 8192
# A process's rows are kept as float32 when they fit in this many bytes; past it, each pass converts them from the
# map block by block, so memory stays flat in N (a pass reads the shards again: the page cache serves it when it can).
DENSE_BYTES = 1 << 30


class _Rows:
    """This process's blocks as float32 (converted block by block from the map), with their global offsets."""

    def __init__(self, blocks: list[np.ndarray], starts: list[int]):
        if sum(b.shape[0] * b.shape[1] for b in blocks) * 4 <= DENSE_BYTES:  # converted once, not at every pass
            blocks = [np.ascontiguousarray(b, dtype=np.float32) for b in blocks]
        self.blocks, self.starts = blocks, starts
        self.sizes = [len(b) for b in blocks]
        self.local_starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.sq = np.concatenate([np.einsum("ij,ij->i", *(2 * [self.dense(j)])) for j in range(len(blocks))]
                                 or [np.zeros(0, np.float32)])

    def dense(self, j: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        return np.ascontiguousarray(self.blocks[j][lo:hi], dtype=np.float32)

    def __len__(self) -> int:
        return int(self.local_starts[-1])

    def global_index(self, local: int) -> int:
        j = int(np.searchsorted(self.local_starts, local, side="right") - 1)
        return self.starts[j] + local - int(self.local_starts[j])

    def local_index(self, g: int) -> int | None:
        for j, (start, size) in enumerate(zip(self.starts, self.sizes)):
            if start <= g < start + size:
                return int(self.local_starts[j]) + g - start
        return None

    def row(self, local: int) -> np.ndarray:
        j = int(np.searchsorted(self.local_starts, local, side="right") - 1)
        i = local - int(self.local_starts[j])
        return self.dense(j, i, i + 1)[0]


def kcenter_blocks(blocks: list[np.ndarray], starts: list[int], n: int, dim: int, k: int, seed: int = 0,
                   batch: int = 64, comm: Comm | None = None, progress=None, proposals: int = 16,
                   device=None, checkpoint: KCenterCheckpoint | None = None) -> np.ndarray:
    """The greedy k-center order of n rows, of which this process holds `blocks` (first rows at `starts`); each
    process proposes its `proposals` largest bounds per gather. `device`: a torch device for the products (None:
    numpy on the CPU). `checkpoint`: resumed from when it holds a state, saved to at applies when due."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info, threadpool_limits

    rows, comm = _Rows(blocks, starts), comm or Comm()
    if device is not None:
        return _kcenter(rows, n, dim, k, seed, batch, comm, progress, proposals, _ApplyOn(rows, blocks, device),
                        checkpoint)
    threads = max([i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] or [1])
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        return _kcenter(rows, n, dim, k, seed, batch, comm, progress, proposals, _Apply(rows, pool), checkpoint)


def _kcenter(rows: _Rows, n, dim, k, seed, batch, comm, progress, proposals, apply, checkpoint) -> np.ndarray:
    k = min(k, n)
    pending: list[np.ndarray] = []  # picks not yet applied to every row: their vectors, and their squared norms
    pending_sq: list[float] = []
    order = np.empty(k, dtype=np.int64)
    resumed = checkpoint.load_agreed(rows.starts, rows.sizes, comm) if checkpoint is not None else None
    if resumed is not None:  # the state at an apply: nothing pending, every bound as the loop left it
        done, bound = resumed
        if len(done) >= k:
            return done[:k].copy()
        order[:len(done)], first_t = done, len(done)
        if comm.rank == 0:
            print(f"{checkpoint.folder}: resuming the k-center ordering at pick {first_t:,} of {k:,}", flush=True)
        if progress is not None:
            progress(first_t)
    else:
        bound = np.full(len(rows), np.inf, dtype=np.float32)
        first = int(np.random.default_rng(seed).integers(n))
        vec, vec_sq = _fetch(rows, comm, first, dim)
        pending.append(vec)
        pending_sq.append(vec_sq)
        order[0], first_t = first, 1
        apply(bound, pending, pending_sq)
        _retire(rows, bound, first)
    cands = _Candidates(rows, bound, comm, dim, proposals)

    def apply_pending(t: int) -> None:
        """Apply the pending picks to every row; nothing is pending after it, so the state may be saved here."""
        apply(bound, pending, pending_sq)
        cands.stale()
        if checkpoint is not None and checkpoint.due(comm):
            checkpoint.save(order[:t], bound, rows.starts, rows.sizes, comm)

    for t in range(first_t, k):
        if len(pending) >= batch:
            apply_pending(t)
        for tries in range(1, 1 << 30):
            value, g, vec, vec_sq = cands.best()
            d = _dist_to_rows(vec, vec_sq, np.stack(pending), np.array(pending_sq, np.float32)) if pending else np.inf
            if d >= value:
                break  # exact and still the largest: the greedy pick
            local = rows.local_index(g)
            if local is not None:
                bound[local] = d
            cands.lower(g, d)
            if tries % 32 == 0:  # many stale bounds at the top: cheaper to apply the pending picks now
                apply_pending(t)  # nothing pending then: the next candidate is the pick, as on a resume
        order[t] = g
        _retire(rows, bound, g)
        cands.lower(g, -np.inf)
        pending.append(vec)
        pending_sq.append(vec_sq)
        if progress is not None:
            progress(t + 1)
    return order


def _dist_to_rows(v: np.ndarray, v_sq: float, rows: np.ndarray, rows_sq: np.ndarray) -> float:
    return float(np.sqrt(max(float((rows_sq - 2.0 * (rows @ v)).min()) + float(v_sq), 0.0)))


def _retire(rows: _Rows, bound: np.ndarray, g: int) -> None:
    local = rows.local_index(g)
    if local is not None:
        bound[local] = -np.inf  # picked rows never win the argmax again


def _fetch(rows: _Rows, comm: Comm, g: int, dim: int) -> tuple[np.ndarray, float]:
    """Row g's vector and squared norm, from whichever process holds it."""
    local = rows.local_index(g)
    mine = np.zeros(dim + 2)
    if local is not None:
        mine[0], mine[1], mine[2:] = 1, rows.sq[local], rows.row(local)
    got = comm.gather_rows(mine)
    w = int(np.argmax(got[:, 0]))
    return got[w, 2:].astype(np.float32), float(np.float32(got[w, 1]))


class _Candidates:
    """Every process's `m` largest bounds, gathered in one all-gather and kept in step as bounds are lowered and rows
    picked (every process applies the same changes to its copy). The largest gathered bound is the global largest
    while it is strictly above every process's m-th (no row left out can reach it, nor tie it with a lower index);
    when it is not, the proposals are gathered afresh, and if it still is not (many tied rows), one exact argmax per
    process decides, as `_best` does. After the pending picks are applied, the proposals are stale."""

    def __init__(self, rows: _Rows, bound: np.ndarray, comm: Comm, dim: int, m: int):
        self.rows, self.bound, self.comm, self.dim, self.m = rows, bound, comm, dim, m
        self.table = None

    def stale(self) -> None:
        self.table = None

    def _gather(self) -> None:
        rows, bound, m = self.rows, self.bound, self.m
        mine = np.full((m + 1, self.dim + 3), 0.0)
        mine[:, 0], mine[:, 1] = -np.inf, np.inf  # padding: never the best
        take = min(m, len(rows))
        if take:
            top = np.argpartition(-bound, take - 1)[:take] if take < len(rows) else np.arange(len(rows))
            for r, local in enumerate(top):
                mine[r] = _proposal(rows, bound, int(local))
            # rows left out are at most the smallest proposed bound
            mine[m, 0] = bound[top].min() if len(rows) > take else -np.inf
        else:
            mine[m, 0] = -np.inf
        got = self.comm.gather_rows(mine.ravel()).reshape(self.comm.world, m + 1, self.dim + 3)
        self.ceiling = float(got[:, m, 0].max())
        self.table = got[:, :m].reshape(-1, self.dim + 3)

    def _top(self) -> int:
        t = self.table
        best = t[:, 0].max()
        return int(np.flatnonzero(t[:, 0] == best)[np.argmin(t[t[:, 0] == best, 1])])

    def best(self) -> tuple[float, int, np.ndarray, float]:
        if self.table is None or self.table[self._top(), 0] <= self.ceiling:
            self._gather()
        i = self._top()
        if self.table[i, 0] <= self.ceiling:  # ties at the proposals' edge: one exact argmax per process
            return _best(self.rows, self.bound, self.comm, self.dim)
        return _unpack(self.table[i])

    def lower(self, g: int, value: float) -> None:
        if self.table is not None:
            self.table[self.table[:, 1] == g, 0] = np.float32(value)


def _best(rows: _Rows, bound: np.ndarray, comm: Comm, dim: int) -> tuple[float, int, np.ndarray, float]:
    """The largest bound over all processes (lowest global row on ties) with its row's vector and squared norm."""
    mine = np.full(dim + 3, 0.0)
    mine[0] = -np.inf
    if len(rows):
        mine = _proposal(rows, bound, int(np.argmax(bound)))
    got = comm.gather_rows(mine)
    # rank order is row order, and each rank proposes its lowest row among its ties: the first maximum wins
    return _unpack(got[int(np.argmax(got[:, 0]))])


def _proposal(rows: _Rows, bound: np.ndarray, local: int) -> np.ndarray:
    """One of this process's rows as gathered: [bound, global row index, squared norm, vector] in float64 (exact
    for float32 values and for row indices below 2^53)."""
    return np.concatenate([[bound[local], rows.global_index(local), rows.sq[local]], rows.row(local)])


def _unpack(proposal: np.ndarray) -> tuple[float, int, np.ndarray, float]:
    """(bound, global row index, vector, squared norm) of a gathered proposal, at float32 as computed."""
    return float(np.float32(proposal[0])), int(proposal[1]), proposal[3:].astype(np.float32), float(np.float32(proposal[2]))


def _chunks(rows: _Rows) -> list[tuple[int, int, int]]:
    """(block, first row, end row) of every chunk of a process's rows: the same chunks whatever the device."""
    return [(j, lo, min(size, lo + CHUNK_ROWS)) for j, size in enumerate(rows.sizes) for lo in range(0, size, CHUNK_ROWS)]


class _Apply:
    """bound = min(bound, distance of each of this process's rows to the pending picks), numpy on the CPU, one chunk
    per BLAS thread; empties `pending`."""

    def __init__(self, rows: _Rows, pool):
        self.rows, self.pool, self.jobs = rows, pool, _chunks(rows)

    def __call__(self, bound: np.ndarray, pending: list[np.ndarray], pending_sq: list[float]) -> None:
        if not pending:
            return
        rows = self.rows
        c = np.stack(pending)
        c_sq = (c * c).sum(1)
        neg2ct = -2.0 * c.T

        def chunk(job: tuple[int, int, int]) -> None:
            j, lo, hi = job
            base = int(rows.local_starts[j])
            g = rows.dense(j, lo, hi) @ neg2ct
            g += c_sq
            d2 = g.min(axis=1) + rows.sq[base + lo:base + hi]
            out = bound[base + lo:base + hi]
            np.minimum(out, np.sqrt(np.maximum(d2, 0.0)), out=out)

        list(self.pool.map(chunk, self.jobs))  # disjoint slices of `bound`; numpy releases the GIL in the products
        pending.clear()
        pending_sq.clear()


class _ApplyOn:
    """`_Apply` with the products on a torch device (`subsets.device`): the chunks stay there, in their stored dtype,
    between applies when they fit; only each row's new distance comes back."""

    def __init__(self, rows: _Rows, blocks: list[np.ndarray], device):
        import torch

        from .device import DeviceChunks

        self.rows, self.device, self.jobs = rows, device, _chunks(rows)
        stored = np.asarray(blocks[0][:1]).itemsize * blocks[0].shape[1] if blocks else 0  # bytes a row
        self.chunks = DeviceChunks(device, lambda i: blocks[self.jobs[i][0]][self.jobs[i][1]:self.jobs[i][2]],
                                   len(self.jobs), len(rows) * stored, DENSE_BYTES)
        self.sq = torch.from_numpy(rows.sq).to(device)

    def __call__(self, bound: np.ndarray, pending: list[np.ndarray], pending_sq: list[float]) -> None:
        import torch

        from .device import min_distances

        if not pending:
            return
        c = torch.from_numpy(np.stack(pending)).to(self.device)
        c_sq = (c * c).sum(1)
        for i, (j, lo, hi) in enumerate(self.jobs):
            first = int(self.rows.local_starts[j]) + lo
            out = bound[first:first + hi - lo]
            np.minimum(out, min_distances(self.chunks[i], c, c_sq, self.sq[first:first + hi - lo]), out=out)
        pending.clear()
        pending_sq.clear()


def kcenter_shards(path: Path | EmbeddingShards, k: int, seed: int = 0, batch: int = 64, comm: Comm | None = None,
                   progress=None, report=None, proposals: int = 16, keep: np.ndarray | None = None,
                   device=None, checkpoint: Path | None = None, save_every: float | None = None) -> np.ndarray:
    """Greedy k-center over an embeddings directory, each process mapping only its own shards (`report(shards,
    bytes)` is told which, and how many bytes of vectors they hold). With `keep` (the sorted rows a dedup kept),
    over those rows alone, and the order is of positions in `keep`. `device`: a torch device for the products.
    `checkpoint`: a folder the ordering is saved to every `save_every` seconds and resumed from."""
    from .checkpoint import rows_identity
    from .kcenter_checkpoint import KCenterCheckpoint
    from .shards import EmbeddingShards

    comm = comm or Comm()
    shards = EmbeddingShards.of(path)
    blocks, starts, n = shards.process_blocks(comm, report, keep)
    state = None
    if checkpoint is not None:
        identity = rows_identity(shards, n, keep) | {"seed": seed, "batch": batch, "proposals": proposals,
                                                     "products": products(device)}
        state = KCenterCheckpoint(checkpoint, identity, save_every)
    return kcenter_blocks(blocks, starts, n, shards.dim, k, seed, batch, comm, progress, proposals, device, state)


def products(device) -> str:
    """Where the products run, as far as their rounding goes: numpy on the CPU, or a torch device's kind."""
    if device is None:
        return "numpy"
    import torch

    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"torch:{device.type}"


def main(argv: list[str] | None = None) -> int:
    """`accelerate launch -m subsets.distributed_kcenter EMB --k K --out order.npy`: the ordering alone."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("embeddings", type=Path)
    p.add_argument("--k", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None, help="a folder to save the ordering to and resume from")
    p.add_argument("--save-every", type=float, default=None, help="seconds between saves (default 60)")
    a = p.parse_args(argv)
    from .ordering_job import run_ordering_job

    return run_ordering_job(a.out, a.k, lambda comm, report: kcenter_shards(
        a.embeddings, a.k, a.seed, a.batch, comm, report=report, checkpoint=a.checkpoint, save_every=a.save_every))


if __name__ == "__main__":
    sys.exit(main())
