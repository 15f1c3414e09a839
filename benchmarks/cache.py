"""Target cache speed: teacher write rate, bytes per image-view, reader throughput against raw reads.

    python benchmarks/cache.py            # k = 1,000 demo images, 2 views, default teacher at 128 px
    python benchmarks/cache.py --k 300    # quicker

Runs the subset stage on the built-in demo corpus if its output is not there yet (in --work).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

# This folder's select.py would shadow the standard library's `select`, which subprocess needs: drop the folder first.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from distill.encoders import resolve_encoder  # noqa: E402
from subsets.embed import EmbedConfig, embed_corpus  # noqa: E402
from subsets.make_subset import SelectConfig, make_subset  # noqa: E402
from subsets.manifest import read_manifest  # noqa: E402
from subsets.sources import open_source  # noqa: E402
from teachers import load_teacher  # noqa: E402
from teachers.cache import CacheConfig, TargetCache, cache_targets  # noqa: E402


def subset_for(work: Path, k: int):
    source = open_source("builtin:cifar10-demo")
    if not (work / "subset" / "manifest.json").exists():
        emb = embed_corpus(source, resolve_encoder(resolution=32), work / "emb", EmbedConfig())
        make_subset(emb, work / "subset", SelectConfig(method="random", k_max=k))
    return source, read_manifest(work / "subset")


def raw_read(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                total += len(chunk)
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--work", type=Path, default=None, help="folder for the subset and cache (default: a temp dir)")
    a = p.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-cache-"))
    console = Console(width=120)
    source, subset = subset_for(work, a.k)
    teacher = load_teacher("mobilenetv2_imagenet")
    out = work / f"targets-{time.time_ns()}"
    start = time.perf_counter()
    cache_targets(source, subset, teacher, out, a.k, CacheConfig())
    write_s = time.perf_counter() - start
    cache = TargetCache(out)
    views = cache.index["views"]
    per_view_measured = cache.index["bytes"] / (a.k * views)
    per_view_formula = (1 + teacher.info.grid ** 2) * teacher.info.token_dim * 2

    shards = [out / s["file"] for s in cache.index["shards"]]
    raw_read(shards)  # both reads below then come from the page cache
    start = time.perf_counter()
    raw_bytes = raw_read(shards)
    raw_s = time.perf_counter() - start
    order = np.random.default_rng(0).permutation(a.k)
    start = time.perf_counter()
    got = 0
    for position in order:
        got += sum(t.numel() * t.element_size() for t in cache.targets(int(position)).values())
    reader_s = time.perf_counter() - start

    batch = 256
    start = time.perf_counter()
    got_batched = 0
    for b0 in range(0, a.k, batch):
        got_batched += sum(t.numel() * t.element_size() for t in cache.targets_many(order[b0:b0 + batch]).values())
    batched_s = time.perf_counter() - start

    table = Table(title=f"target cache, {teacher.info.name} at {teacher.info.resolution} px, k = {a.k}, {views} views")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("write rate (teacher + shards)", f"{a.k / write_s:,.0f} images/s ({a.k * views / write_s:,.0f} views/s)")
    table.add_row("bytes per image-view, measured", f"{per_view_measured:,.0f}")
    table.add_row("bytes per image-view, DESIGN (1 + N) * D * 2", f"{per_view_formula:,} (N = {teacher.info.grid ** 2}, "
                                                                 f"D = {teacher.info.token_dim})")
    table.add_row("raw sequential read", f"{raw_bytes / raw_s / 2**30:,.2f} GiB/s")
    table.add_row("reader, random positions", f"{got / reader_s / 2**30:,.2f} GiB/s ({a.k / reader_s:,.0f} images/s)")
    table.add_row(f"reader, random batches of {batch}", f"{got_batched / batched_s / 2**30:,.2f} GiB/s "
                                                        f"({a.k / batched_s:,.0f} images/s)")
    table.add_row("reader / raw, one position at a time", f"{(got / reader_s) / (raw_bytes / raw_s):.2f}")
    table.add_row(f"reader / raw, batches of {batch}", f"{(got_batched / batched_s) / (raw_bytes / raw_s):.2f} (goal >= 0.8)")
    console.print(table)


if __name__ == "__main__":
    main()
