"""An embeddings directory read as memory maps, shard by shard: a selection job never holds every vector in one
process, and each process of a distributed job maps only the shards it owns.

A shard is a safetensors file; its `emb` tensor is mapped in place (the format is an 8-byte header length, a JSON
header giving each tensor's dtype, shape and byte range, then the data), so reading a row touches only its pages.
Everything that would make a job fail later (a missing shard, a shard of another dimension or dtype, more
processes than shards) is refused with one line when the shards are opened, before any work starts.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .fileio import file_sha256, read_json

DTYPES = {"F16": np.float16, "F32": np.float32}
META_DTYPES = {"float16": "F16", "float32": "F32"}


@dataclass(frozen=True)
class Shard:
    path: Path
    start: int  # global index of its first row
    rows: int
    dtype: str  # safetensors dtype name
    offset: int  # byte offset of `emb` in the file
    sha256: str | None  # of the file, as meta.json records it


def _header(path: Path) -> dict:
    """A safetensors header, read without loading any tensor."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100 * 2**20:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(f.read(length))
    except FileNotFoundError:
        raise InputError(f"{path}: missing (listed in meta.json)") from None
    except (OSError, ValueError, struct.error) as e:
        raise InputError(f"{path}: not a readable safetensors shard ({e})") from None
    return header | {"data_start": 8 + length}


def _emb_header(path: Path) -> dict:
    """The `emb` entry of a safetensors header, read without loading any tensor."""
    header = _header(path)
    emb = header.get("emb")
    if not isinstance(emb, dict) or len(emb.get("shape", [])) != 2:
        raise InputError(f"{path}: not an embeddings shard (needs an 'emb' [n, d] tensor)")
    return {**emb, "data_start": header["data_start"]}


class KeptRows:
    """Some rows of a mapped block (sorted local indices), read as an array of those rows alone: the pool a dedup
    leaves, without copying the block. Slicing it reads only the rows asked for."""

    def __init__(self, block: np.ndarray, rows: np.ndarray):
        self.block, self.rows = block, np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.block.shape[1]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.block[self.rows[key]])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)


class EmbeddingShards:
    """The shards of a complete embeddings directory, checked for one dimension and dtype, mapped on demand."""

    def __init__(self, path: Path):
        from .embed import FORMAT

        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not self.path.is_dir():
            raise InputError(f"{self.path}: no such embeddings directory")
        if not meta_file.exists():
            hint = " (the embed job has not finished: rerun it to resume)" if (self.path / "progress.json").exists() \
                else ""
            raise InputError(f"{self.path}: not a complete embeddings directory, meta.json is missing{hint}")
        self.meta = read_json(meta_file, "embeddings metadata")
        if self.meta.get("format") != FORMAT:
            raise InputError(f"{meta_file}: not an embeddings directory (format {self.meta.get('format')!r})")
        self.dim = int(self.meta["dim"])
        want = META_DTYPES.get(self.meta.get("dtype", "float16"))
        self.shards: list[Shard] = []
        start = 0
        for entry in self.meta["shards"]:
            path = self.path / entry["file"]
            emb = _emb_header(path)
            rows, dim = emb["shape"]
            if emb["dtype"] not in DTYPES or emb["dtype"] != want:
                raise InputError(f"{path}: emb is {emb['dtype']}, the other shards and meta.json say {want}; "
                                 "embed the corpus again into another --out")
            if dim != self.dim:
                raise InputError(f"{path}: wrong dimension: emb is [{rows}, {dim}], meta.json says dim {self.dim}")
            if rows != entry["count"]:
                raise InputError(f"{path}: {rows} vectors, meta.json lists {entry['count']}")
            self.shards.append(Shard(path, start, rows, emb["dtype"], emb["data_start"] + emb["data_offsets"][0],
                                     entry.get("sha256")))
            start += rows
        self.count = start

    @classmethod
    def of(cls, path_or_shards: Path | EmbeddingShards) -> EmbeddingShards:
        """The shards of a directory, or the ones given: a job opens them once (opening parses every header)."""
        return path_or_shards if isinstance(path_or_shards, cls) else cls(path_or_shards)

    def __len__(self) -> int:
        return len(self.shards)

    def owned(self, world: int, rank: int) -> list[int]:
        """The shards rank `rank` of `world` processes maps: a contiguous run, so global row order is rank order."""
        if world > len(self.shards):
            raise InputError(f"{self.path}: {world} processes but only {len(self.shards)} shard(s); run at most "
                             f"{len(self.shards)} processes, or embed with a smaller --shard-size")
        return list(range(round(rank * len(self.shards) / world), round((rank + 1) * len(self.shards) / world)))

    def owned_blocks(self, world: int, rank: int, report=None,
                     keep: np.ndarray | None = None) -> tuple[list[np.ndarray], list[int]]:
        """The maps of the shards rank `rank` owns and their first global rows; `report(shards, bytes)` is told which
        shards, and how many bytes of vectors they hold. With `keep` (sorted global rows: the pool left by dedup),
        each block holds only its kept rows and the first rows are positions in `keep`."""
        mine = self.owned(world, rank)
        if report is not None:
            report(mine, sum(self.shards[s].rows for s in mine) * self.dim * np.dtype(DTYPES[self.shards[0].dtype]).itemsize)
        blocks, starts = [self.map(s) for s in mine], [self.shards[s].start for s in mine]
        if keep is None:
            return blocks, starts
        cuts = [np.searchsorted(keep, [start, start + len(b)]) for b, start in zip(blocks, starts)]
        return ([KeptRows(b, keep[lo:hi] - start) for b, start, (lo, hi) in zip(blocks, starts, cuts)],
                [int(lo) for lo, _ in cuts])

    def process_blocks(self, comm, report=None,
                       keep: np.ndarray | None = None) -> tuple[list[np.ndarray], list[int], int]:
        """`owned_blocks` of this process of `comm`, and how many rows all the processes' blocks hold (the corpus, or
        the pool `keep`)."""
        blocks, starts = self.owned_blocks(comm.world, comm.rank, report, keep)
        return blocks, starts, self.count if keep is None else len(keep)

    def map(self, s: int) -> np.ndarray:
        """Shard s's vectors [rows, dim], memory-mapped read-only (pages are read when touched)."""
        sh = self.shards[s]
        return np.memmap(sh.path, dtype=DTYPES[sh.dtype], mode="r", offset=sh.offset, shape=(sh.rows, self.dim))

    def verify_owned(self, comm) -> None:
        """Each process of `comm` checks the shards it owns against meta.json (sha256) and keys.txt (the key each row
        was embedded from), as `load_embeddings` checks a whole directory; a damaged shard anywhere stops every
        process with the same one line."""
        keys_file = self.path / "keys.txt"
        mine = self.owned(comm.world, comm.rank)
        wanted = range(self.shards[mine[0]].start, self.shards[mine[-1]].start + self.shards[mine[-1]].rows)
        problem = [0.0, 0.0, 0.0, 0.0]  # found, shard, what (1 content, 2 key), row
        listed, lines = _key_lines(keys_file, wanted)
        for s in mine:
            sh = self.shards[s]
            if sh.sha256 is not None and file_sha256(sh.path) != sh.sha256:
                problem = [1.0, s, 1.0, 0.0]
                break
            held = json.loads(_header(sh.path).get("__metadata__", {}).get("info", "{}")).get("keys", [])
            ours = [lines[i] for i in range(sh.start, min(sh.start + sh.rows, listed))]
            if held != ours:
                row = next((i for i, (a, b) in enumerate(zip(held, ours)) if a != b), min(len(held), len(ours)))
                problem = [1.0, s, 2.0, sh.start + row]
                break
        found = comm.gather_rows(np.array(problem))
        if listed != self.count:
            raise InputError(f"{keys_file}: {listed} keys, the shards hold {self.count} rows (edited?); rerun the "
                             "embed job into another --out")
        if found[:, 0].any():
            _, s, what, row = found[int(np.argmax(found[:, 0]))]
            if what == 1:
                raise InputError(f"{self.shards[int(s)].path}: content differs from the sha256 in meta.json (edited or "
                                 "truncated)")
            raise InputError(f"{keys_file}: line {int(row) + 1} is not the key the shards hold at that row (edited?); "
                             "rerun the embed job into another --out")

    def keys_of(self, rows: np.ndarray) -> list[str]:
        """The keys of global rows `rows`, in their order, read from keys.txt line by line."""
        _, found = _key_lines(self.path / "keys.txt", set(np.asarray(rows, dtype=np.int64).tolist()))
        return [found[int(r)] for r in rows]


def _key_lines(keys_file: Path, wanted) -> tuple[int, dict[int, str]]:
    """How many keys keys.txt lists, and its lines whose (0-based) numbers are `in wanted`, by number (read line by
    line: the corpus's keys are never all held)."""
    if not keys_file.exists():
        raise InputError(f"{keys_file}: missing (the embed job writes it with meta.json)")
    lines, count = {}, 0
    with open(keys_file) as f:
        for count, line in enumerate(f, start=1):
            if count - 1 in wanted:
                lines[count - 1] = line.rstrip("\n")
    return count, lines
