"""The command-line job of a selection across processes: join the processes (torchrun / accelerate launch set
WORLD_SIZE), run one selection with every process mapping its own shards, report each rank's shards, time and
peak memory, and write the ordering from rank 0. Bad input is one `error:` line."""

from __future__ import annotations

import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .comm import Comm
from .errors import InputError


def run_ordering_job(out: Path, k: int, select: Callable) -> int:
    """`select(comm, report)` gives the ordering; returns the exit status."""
    import torch.distributed as dist

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched:
        dist.init_process_group("gloo")
    try:
        comm = Comm()

        def report(mine, nbytes):
            print(f"rank {comm.rank} of {comm.world}: maps shards {mine[0]}-{mine[-1]} ({nbytes:,} bytes of vectors)",
                  flush=True)

        start = time.perf_counter()
        order = select(comm, report)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        print(f"rank {comm.rank} of {comm.world}: {k:,} picks in {time.perf_counter() - start:.2f} s, "
              f"peak RSS {peak:,.0f} MiB (mapped pages read count in it)", flush=True)
        if comm.rank == 0:
            np.save(out, order)
        return 0
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if launched:
            dist.destroy_process_group()
