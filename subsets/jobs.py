"""The life cycle shared by the sharded, resumable jobs (embedding, target caching)."""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import DiskFull, InputError
from .fileio import write_json_atomic
from .lock import folder_lock


@contextlib.contextmanager
def resumable_job(out: Path, identity: dict, accelerator) -> Iterator[None]:
    """Start or resume a job writing shards into `out`, on every process of `accelerator`.

    `progress.json` (the job's identity) marks a job under way until its index is written; a lock keeps a second
    job out of `out` meanwhile. On a user error a directory this run created is removed; a full disk keeps it, so
    a rerun resumes.
    """
    created = not Path(out).exists()
    accelerator.wait_for_everyone()
    with folder_lock(out, accelerator):
        if accelerator.is_main_process:
            Path(out).mkdir(parents=True, exist_ok=True)
            write_json_atomic(Path(out) / "progress.json", identity)
        accelerator.wait_for_everyone()
        try:
            yield
            accelerator.wait_for_everyone()
        except InputError as e:
            if created and accelerator.is_main_process and not isinstance(e, DiskFull):
                shutil.rmtree(out, ignore_errors=True)
            raise


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """[start, stop) of each shard of n rows: fixed by n and shard_size alone, so every process and every rerun agree."""
    return [(s * shard_size, min(n, (s + 1) * shard_size)) for s in range(math.ceil(n / shard_size))]
