"""An ordering made elsewhere (another selection method, a filter, a list by hand) as a subset directory: the same
nested manifest as ours, its keys checked against the embeddings' corpus, so that caching, training, evaluation and
comparison treat it as any method of ours."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from .comm import Comm
from .coverage import default_report_ks
from .errors import InputError
from .fileio import file_sha256
from .manifest import Manifest, read_manifest, refuse_to_replace_subset, write_manifest
from .select import METHODS
from .shards import EmbeddingShards

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = {*METHODS, "full"}  # our methods' names, and the full corpus's row in a comparison


def read_ordering(keys_file: Path) -> list[str]:
    """The keys of an ordering, one a line, first pick first; a repeated key is refused (a subset holds an image
    once), blank lines at the end are ignored."""
    try:
        lines = Path(keys_file).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{keys_file}: cannot read the ordering ({getattr(e, 'strerror', None) or e})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{keys_file}: no keys (one image key a line, first pick first)")
    seen: dict[str, int] = {}
    for i, key in enumerate(lines, start=1):
        if not key.strip():
            raise InputError(f"{keys_file}: line {i} is blank (one image key a line)")
        if key in seen:
            raise InputError(f"{keys_file}: line {i}: key {key!r} repeats line {seen[key]}")
        seen[key] = i
    return lines


def rows_of_keys(shards: EmbeddingShards, keys: list[str], keys_file: Path) -> np.ndarray:
    """The corpus rows of `keys`, in their order, reading the embeddings' keys.txt line by line (the corpus's keys are
    never all held: only the ordering's)."""
    wanted = {key: i for i, key in enumerate(keys)}
    rows = np.full(len(keys), -1, dtype=np.int64)
    with open(shards.path / "keys.txt") as f:
        for row, line in enumerate(f):
            at = wanted.get(line.rstrip("\n"))
            if at is not None:
                rows[at] = row
    if (rows < 0).any():
        first = int(np.flatnonzero(rows < 0)[0])
        raise InputError(f"{keys_file}: line {first + 1}: key {keys[first]!r} is not in {shards.path / 'keys.txt'} "
                         f"({int((rows < 0).sum()):,} of its {len(keys):,} keys are not; the keys must be those the "
                         "corpus was embedded with)")
    return rows


def import_ordering(embeddings: Path, keys_file: Path, out: Path, name: str, seed: int = 0,
                    report_k: list[int] | None = None, overwrite: bool = False) -> Manifest:
    """Write a subset directory (method `name`) from an ordering of image keys, with its coverage against k."""
    if not NAME.match(name) or name.lower() in RESERVED:
        raise InputError(f"--name {name!r}: give the ordering a name of its own (letters, digits, _ . -), not one of "
                         f"{', '.join(sorted(RESERVED))}")
    out = Path(out)
    refuse_to_replace_subset(out, overwrite)
    from .make_subset import embeddings_record, shard_coverage  # here: a sweep's check reads orderings without torch

    shards = EmbeddingShards(embeddings)  # bad or missing shards: one line, before the keys are read
    start = time.perf_counter()
    keys = read_ordering(keys_file)
    order = rows_of_keys(shards, keys, keys_file)
    ks = sorted({k for k in (report_k or default_report_ks(len(order))) if k <= len(order)} | {len(order)})
    coverage = shard_coverage(shards, order, ks, Comm(alone=True))
    meta = {
        "method": name, "params": {"imported": str(Path(keys_file).resolve()), "sha256": file_sha256(keys_file)},
        "seed": seed, "clusters_used": None, "embeddings": embeddings_record(shards.path, shards.meta),
        "corpus_size": shards.count, "dedup": None, "select_seconds": round(time.perf_counter() - start, 3),
        "coverage": coverage,
    }
    write_manifest(out, meta, order, keys, overwrite)
    return read_manifest(out)
